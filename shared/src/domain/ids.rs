//! Outside ids (`pull_id`, `monitoring_id`, `initial_pull_id`, ...) become DynamoDB keys
//! (`PULL#<id>`) and Canopy URL path segments. They are checked once, where they enter, so a
//! `#`, a `/` or a megabyte of text never reaches either.
//!
//! Canopy's ids are UUIDs; the rule allows any short token of letters, digits, `-` and `_`,
//! so a change of id format on Canopy's side does not break intake.

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
    }
}
