//! The project's cryptography, in one place and from one library: aws-lc-rs, which every
//! function links anyway for TLS (rustls over aws-lc). SHA-256 for ids and checksums,
//! HMAC-SHA256 for webhook signatures and listing cursors, HKDF-SHA256 and AES-256-GCM for
//! sealing the credentials a session stores.

use aws_lc_rs::{aead, constant_time, digest, hkdf, hmac};

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::new().chain(data).finish()
}

/// The SHA-256 of `data`, in lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// SHA-256 over data given in pieces.
pub struct Sha256(digest::Context);

impl Sha256 {
    pub fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }

    pub fn chain(mut self, data: &[u8]) -> Self {
        self.0.update(data);
        self
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// An HMAC-SHA256 key.
#[derive(Clone)]
pub struct HmacKey(hmac::Key);

impl HmacKey {
    /// HMAC takes a key of any length.
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The tag of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// Whether `tag` is the tag of the concatenation of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        same_tag(&self.sign(parts), tag)
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// Whether two tags are equal, compared in constant time (a timing difference would tell an
/// attacker how much of a forged tag is right).
pub fn same_tag(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

const NONCE_LEN: usize = aead::NONCE_LEN;

/// An AES-256-GCM key derived with HKDF-SHA256, for values stored at rest: each seal takes a
/// fresh random nonce and binds the value to `aad` (what it belongs to).
pub struct SealingKey(aead::LessSafeKey);

/// Sealing failed: the system's random source failed (opening failures are `None`).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("could not seal a value")]
pub struct SealError;

impl SealingKey {
    /// The key HKDF-SHA256 derives from `secret` with `salt` and `info` (RFC 5869).
    pub fn derive(secret: &[u8], salt: &[u8], info: &[u8]) -> Result<Self, SealError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret);
        let info = [info];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .map_err(|_| SealError)?;
        Ok(Self(aead::LessSafeKey::new(aead::UnboundKey::from(okm))))
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError)?;
        let mut in_out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| SealError)?;
        Ok([nonce.as_slice(), &in_out].concat())
    }

    /// The plaintext, or `None` if `sealed` was not sealed with this key for `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, text) = sealed.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = text.to_vec();
        let plain_len = self
            .0
            .open_in_place(nonce, aead::Aad::from(aad), &mut in_out)
            .ok()?
            .len();
        in_out.truncate(plain_len);
        Some(in_out)
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180-2's "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Sha256::new().chain(b"a").chain(b"bc").finish(),
            sha256(b"abc")
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let key = HmacKey::new(b"Jefe");
        let tag = key.sign(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(key.verify(&[b"what do ya want for nothing?"], &tag));
        assert!(!key.verify(&[b"what do ya want for nothing!"], &tag));
        assert!(!key.verify(&[b"what do ya want for nothing?"], &tag[..31]));
    }

    #[test]
    fn hkdf_matches_rfc_5869() {
        // RFC 5869, test case 1: the first 32 bytes of its OKM are the AES-256 key, so a value
        // sealed under a key derived here opens under an AES-256-GCM key made of those bytes.
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let derived = SealingKey::derive(&ikm, &salt, &info).unwrap();
        let okm = hex::decode("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")
            .unwrap();
        let direct = SealingKey(aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, &okm).unwrap(),
        ));
        let sealed = derived.seal(b"secret", b"for").unwrap();
        assert_eq!(
            direct.open(&sealed, b"for").as_deref(),
            Some(&b"secret"[..])
        );
    }

    #[test]
    fn sealing_binds_key_and_purpose_and_never_repeats() {
        let key = SealingKey::derive(b"client secret", b"salt", b"info").unwrap();
        let a = key.seal(b"jwt", b"session 1").unwrap();
        let b = key.seal(b"jwt", b"session 1").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(key.open(&a, b"session 1").as_deref(), Some(&b"jwt"[..]));
        assert_eq!(key.open(&a, b"session 2"), None);
        let other = SealingKey::derive(b"another secret", b"salt", b"info").unwrap();
        assert_eq!(other.open(&a, b"session 1"), None);
        assert_eq!(key.open(&a[..5], b"session 1"), None);
    }
}
