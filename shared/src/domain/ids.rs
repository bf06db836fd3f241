//! Outside ids (`pull_id`, `monitoring_id`, `initial_pull_id`, ...) become DynamoDB keys
//! (`PULL#<id>`) and Canopy URL path segments. They are checked once, where they enter, so a
//! `#`, a `/` or a megabyte of text never reaches either.
//!
//! One rule for every entry point (webhooks, the Monitoring API, the in-app reconnect):
//! Canopy's ids are UUIDs; the rule allows any short token of letters, digits, `-` and `_`,
//! so a change of id format on Canopy's side does not break intake, and keeps a UUID in its
//! canonical lowercase form, so the same id typed in capitals finds the same items.

/// Longest id accepted (a UUID is 36).
pub const MAX_ID_LEN: usize = 128;

/// Whether `id` may be used as a key part and a URL path segment.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The id as stored and looked up: a plain token as given, a UUID in its hyphenated lowercase
/// form; `None` for text that is not an id. Ids from Canopy's answers go through it too, so
/// one monitoring never lives under two keys.
pub fn canonical_id(text: &str) -> Option<String> {
    if !is_valid_id(text) {
        return None;
    }
    Some(match uuid::Uuid::try_parse(text) {
        Ok(uuid) => uuid.hyphenated().to_string(),
        Err(_) => text.to_owned(),
    })
}

/// What an id must be, for an error message.
pub const ID_RULE: &str = "must be 1 to 128 letters, digits, '-' or '_' (Canopy's ids are UUIDs)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_plain_tokens() {
        assert!(is_valid_id("8b6a1f3e-1c2d-4e5f-9a0b-1c2d3e4f5a6b"));
        assert!(is_valid_id("p_1"));
        for bad in [
            "",
            "a#b",
            "a/b",
            "../x",
            "a b",
            "a%2F",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        assert!(is_valid_id(&"x".repeat(128)));
        assert_eq!(
            canonical_id("8B6A1F3E-1C2D-4E5F-9A0B-1C2D3E4F5A6B").as_deref(),
            Some("8b6a1f3e-1c2d-4e5f-9a0b-1c2d3e4f5a6b")
        );
        assert_eq!(canonical_id("Pull_A").as_deref(), Some("Pull_A"));
        assert_eq!(
            canonical_id("8B6A1F3E1C2D4E5F9A0B1C2D3E4F5A6B").as_deref(),
            Some("8b6a1f3e-1c2d-4e5f-9a0b-1c2d3e4f5a6b"),
            "one UUID, one key, however it is written"
        );
        assert_eq!(canonical_id("a/b"), None);
    }
}
