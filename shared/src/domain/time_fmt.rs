//! One timestamp format for everything we store: UTC, millisecond precision, fixed width, so
//! that string order is time order (DynamoDB sort keys and `<` conditions rely on it).

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const STORED: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats an instant the way every `*_at` attribute is stored.
pub fn format_ts(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(STORED)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses a stored timestamp back; `None` for anything else.
pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(s, STORED)
        .ok()
        .map(|p| p.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_as_time() {
        let a = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let b = a + time::Duration::milliseconds(5);
        let (fa, fb) = (format_ts(a), format_ts(b));
        assert_eq!(fa, "2023-11-14T22:13:20.000Z");
        assert!(fa < fb);
        assert_eq!(parse_ts(&fb), Some(b));
        assert_eq!(parse_ts("yesterday"), None);
    }
}
