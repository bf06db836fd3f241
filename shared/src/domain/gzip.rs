//! gzip, the one compression of the project: stored pulls, stored webhook bodies, change
//! lists and API responses. One level, and every decompression bounded, because a stored or
//! received stream may claim to expand to anything.

use std::io::{Read, Write};

/// Compresses `data` at flate2's default level: stored data is written once and read many
/// times, so size wins over the few milliseconds a faster level saves.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Why a gzip stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    #[error("not a gzip stream")]
    Corrupt,
    #[error("expands past {0} bytes")]
    TooLarge(usize),
}

/// Decompresses `gz`, refusing to produce more than `max_bytes`.
pub fn decompress(gz: &[u8], max_bytes: usize) -> Result<Vec<u8>, GzipError> {
    // Most of what is stored expands 4 to 10 times; growing from there costs few copies.
    let mut out = Vec::with_capacity(gz.len().saturating_mul(4).min(max_bytes));
    flate2::read::GzDecoder::new(gz)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| GzipError::Corrupt)?;
    if out.len() > max_bytes {
        return Err(GzipError::TooLarge(max_bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds_what_it_expands() {
        let data = vec![b'a'; 100_000];
        let gz = compress(&data);
        assert!(gz.len() < 1_000, "repetitive data compresses");
        assert_eq!(decompress(&gz, 100_000).unwrap(), data);
        assert_eq!(decompress(&gz, 99_999), Err(GzipError::TooLarge(99_999)));
        assert_eq!(decompress(b"not gzip", 10), Err(GzipError::Corrupt));
        assert_eq!(decompress(&compress(b""), 0).unwrap(), b"");
    }
}
