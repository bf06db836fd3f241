//! Listing cursors: the one codec of every paged listing.
//!
//! A cursor is `base64url(JSON position) "." base64url(HMAC-SHA256(key, JSON))`. The position
//! names its listing (a fingerprint of the query and its partition), the partition index and
//! the start key. Opening a cursor checks, in order: the MAC (constant time), that it belongs
//! to the listing being read, and then the caller checks that the start key lies in the
//! partition it will query. So an altered, forged or foreign cursor is refused (400) before it
//! reaches DynamoDB, which would answer a start key outside the queried partition with a
//! ValidationException (a 500); moto silently ignores such a key.
//!
//! The key is derived from a secret the function already holds (the monitoring-api uses its
//! Canopy client secret): rotating that secret invalidates outstanding cursors, which then get
//! 400 and the client starts the listing again.

use crate::domain::crypto::HmacKey;
use crate::ports::store::BadCursor;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain separation: this key signs cursors and nothing else.
const KEY_LABEL: &[u8] = b"canopy-monitor listing cursor v1";
/// Longest cursor text looked at: real cursors are a few hundred bytes.
const MAX_CURSOR_CHARS: usize = 2048;

/// The key cursors are signed with.
#[derive(Clone)]
pub struct CursorKey(HmacKey);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    /// The cursor key of `secret` (HMAC-SHA256 of a fixed label under the secret).
    pub fn derive(secret: &[u8]) -> Self {
        Self(HmacKey::new(&HmacKey::new(secret).sign(&[KEY_LABEL])))
    }

    /// A key of this process only: its cursors page within one process (tools, tests).
    pub fn random() -> Self {
        let mut seed = Vec::with_capacity(32);
        seed.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self::derive(&seed)
    }
}

/// Where a listing continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Which listing: a cursor continues only the listing it came from.
    #[serde(rename = "l")]
    pub listing: String,
    /// Index of the partition in the listing's list of partitions.
    #[serde(rename = "p", default)]
    pub partition: usize,
    /// The `ExclusiveStartKey` (all string attributes); none to start the partition.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub start: Option<BTreeMap<String, String>>,
}

impl Position {
    /// Whether the start key (if any) has only attributes among `names`, and `attr = value`:
    /// the start key lies in the partition the listing will query.
    pub fn start_within(&self, names: &[&str], attr: &str, value: &str) -> bool {
        self.start.as_ref().is_none_or(|k| {
            k.keys().all(|n| names.contains(&n.as_str()))
                && k.get(attr).map(String::as_str) == Some(value)
        })
    }
}

/// The cursor text of `position`.
pub fn seal(key: &CursorKey, position: &Position) -> String {
    let payload = serde_json::to_vec(position).unwrap_or_default();
    let tag = key.0.sign(&[&payload]);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The position of `text`, if it was sealed with `key` for `listing`.
pub fn open(key: &CursorKey, listing: &str, text: &str) -> Result<Position, BadCursor> {
    if text.len() > MAX_CURSOR_CHARS {
        return Err(BadCursor);
    }
    let (payload, tag) = text.split_once('.').ok_or(BadCursor)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| BadCursor)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| BadCursor)?;
    if !key.0.verify(&[&payload], &tag) {
        return Err(BadCursor);
    }
    let position: Position = serde_json::from_slice(&payload).map_err(|_| BadCursor)?;
    if position.listing != listing {
        return Err(BadCursor);
    }
    Ok(position)
}

/// A listing's id in its cursors: 16 hex digits of the SHA-256 of what it lists.
pub fn listing_id(parts: &[&str]) -> String {
    crate::domain::monitoring::fingerprint(parts)[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            listing: listing_id(&["changes", "MONITORING#m1"]),
            partition: 0,
            start: Some(BTreeMap::from([
                ("pk".into(), "MONITORING#m1".into()),
                ("sk".into(), "CHANGES#2026".into()),
            ])),
        }
    }

    #[test]
    fn a_sealed_cursor_opens_for_its_listing_only() {
        let key = CursorKey::derive(b"secret");
        let p = position();
        let text = seal(&key, &p);
        assert_eq!(open(&key, &p.listing, &text), Ok(p.clone()));
        let other = listing_id(&["changes", "MONITORING#m2"]);
        assert_eq!(open(&key, &other, &text), Err(BadCursor), "foreign listing");
        let wrong_key = CursorKey::derive(b"other secret");
        assert_eq!(open(&wrong_key, &p.listing, &text), Err(BadCursor));
    }

    #[test]
    fn an_altered_or_forged_cursor_is_refused() {
        let key = CursorKey::derive(b"secret");
        let p = position();
        let text = seal(&key, &p);
        let (_, tag) = text.split_once('.').unwrap();
        // Same MAC, another start key: the re-encoded JSON no longer matches it.
        let mut forged = p.clone();
        forged
            .start
            .as_mut()
            .unwrap()
            .insert("pk".into(), "MONITORING#m2".into());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            open(&key, &p.listing, &format!("{payload}.{tag}")),
            Err(BadCursor)
        );
        // No MAC at all, or garbage.
        assert_eq!(open(&key, &p.listing, &payload), Err(BadCursor));
        assert_eq!(open(&key, &p.listing, "not a cursor!"), Err(BadCursor));
        assert_eq!(open(&key, &p.listing, "e30.e30"), Err(BadCursor));
        assert_eq!(open(&key, &p.listing, &"a".repeat(5000)), Err(BadCursor));
    }

    #[test]
    fn the_start_key_must_lie_in_the_queried_partition() {
        let p = position();
        assert!(p.start_within(&["pk", "sk"], "pk", "MONITORING#m1"));
        assert!(!p.start_within(&["pk", "sk"], "pk", "MONITORING#m2"));
        assert!(
            !p.start_within(&["pk"], "pk", "MONITORING#m1"),
            "sk is not a key here"
        );
        assert!(!p.start_within(&["pk", "sk"], "owner", "MONITORING#m1"));
        let fresh = Position { start: None, ..p };
        assert!(fresh.start_within(&["pk", "sk"], "pk", "anything"));
    }

    #[test]
    fn derived_keys_are_stable() {
        let a = seal(&CursorKey::derive(b"s"), &position());
        let b = seal(&CursorKey::derive(b"s"), &position());
        assert_eq!(a, b);
    }
}
