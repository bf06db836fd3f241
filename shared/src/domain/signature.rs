//! `canopy-signature` verification and signing.
//!
//! Header: `t=<unix seconds>,s=<hex>[,s=<hex>...]`; elements split on `,` then `=`, unknown
//! elements ignored. `s = hex(HMAC-SHA256(key = secret as UTF-8, msg = t + "." + raw_body))`.
//! A delivery is genuine when any `s` matches any configured secret (two may be configured at
//! once so a secret can be rotated) and `t` is within the tolerance in either direction.
//! MACs are compared in constant time ([`HmacKey::verify`]).

use crate::domain::crypto::{same_tag, HmacKey};
use crate::domain::source::{Source, Sources};
use std::fmt;

/// The tolerance Stripe and Standard Webhooks use; Canopy documents none.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The header name, lower-case as HTTP/2 and API Gateway deliver it.
pub const SIGNATURE_HEADER: &str = "canopy-signature";

/// At most two signing secrets: the current one and, during a rotation, the previous one.
#[derive(Clone)]
pub struct SigningSecrets(Vec<String>);

impl fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningSecrets({} configured)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("no signing secret configured")]
    Empty,
    #[error("at most two signing secrets may be configured at once, got {0}")]
    TooMany(usize),
    #[error("the signing secret value is neither a plain string nor a JSON object with `current`")]
    Unreadable,
}

impl SigningSecrets {
    pub fn new(secrets: Vec<String>) -> Result<Self, SecretsError> {
        let secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        match secrets.len() {
            0 => Err(SecretsError::Empty),
            1 | 2 => Ok(Self(secrets)),
            n => Err(SecretsError::TooMany(n)),
        }
    }

    /// Reads the Secrets Manager value: either the secret itself as plain text, or
    /// `{"current": "...", "previous": "..."}` while rotating.
    pub fn from_secret_string(value: &str) -> Result<Self, SecretsError> {
        let trimmed = value.trim();
        if trimmed.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(trimmed).map_err(|_| SecretsError::Unreadable)?;
            let current = v
                .get("current")
                .and_then(|c| c.as_str())
                .ok_or(SecretsError::Unreadable)?;
            let mut all = vec![current.to_owned()];
            if let Some(prev) = v.get("previous").and_then(|p| p.as_str()) {
                all.push(prev.to_owned());
            }
            Self::new(all)
        } else {
            Self::new(vec![trimmed.to_owned()])
        }
    }

    /// How many: 2 while a rotation keeps the previous one.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never empty (see [`SigningSecrets::new`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `secret` is one of them.
    pub fn contains(&self, secret: &str) -> bool {
        self.0.iter().any(|s| s == secret)
    }

    /// The secret new signatures are made with (the first).
    pub fn current(&self) -> &str {
        &self.0[0]
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Why a delivery was refused. Shown to the caller as a 401 with this text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing canopy-signature header")]
    Missing,
    #[error("malformed canopy-signature header: {0}")]
    Malformed(&'static str),
    #[error("signature timestamp is outside the {tolerance}s tolerance")]
    OutsideTolerance { tolerance: i64 },
    #[error("no signature matches")]
    NoMatch,
    #[error("the body's team_id is not the team of the secret that signed it")]
    TeamMismatch,
}

struct ParsedHeader {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for element in header.split(',') {
        let Some((key, value)) = element.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            // A value that is not hex cannot match; skipping it keeps the others usable.
            "s" => {
                if let Ok(bytes) = hex::decode(value.trim()) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= element"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no hex s= element"));
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

/// What Canopy signs: `{timestamp}.{body}`.
fn signed_parts<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 3] {
    [timestamp.as_bytes(), b".", body]
}

/// Verifies a delivery. `now` is unix seconds.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &SigningSecrets,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let parsed = parse_in_tolerance(header, now, tolerance_secs)?;
    if signed_with(secrets, &parsed, body) {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// Verifies a delivery against every source's secrets: the sources whose secret signed it,
/// in order (one, unless two sources share a secret). Then [`source_of`] picks the one.
pub fn verify_sources<'a>(
    header: Option<&str>,
    body: &[u8],
    sources: &'a Sources<SigningSecrets>,
    now: i64,
    tolerance_secs: i64,
) -> Result<Vec<&'a Source>, SignatureError> {
    let parsed = parse_in_tolerance(header, now, tolerance_secs)?;
    let verified: Vec<&Source> = sources
        .iter()
        .filter(|(_, secrets)| signed_with(secrets, &parsed, body))
        .map(|(source, _)| source)
        .collect();
    if verified.is_empty() {
        return Err(SignatureError::NoMatch);
    }
    Ok(verified)
}

/// The source of a verified delivery: the secret names it, and the body's `team_id`, when
/// present, must be that source's team. A delivery signed by one team's secret that claims
/// another team is refused: it would have its work done with the other team's keys.
pub fn source_of<'a>(
    verified: &[&'a Source],
    team_id: Option<&str>,
) -> Result<&'a Source, SignatureError> {
    verified
        .iter()
        .find(|s| team_id.is_none_or(|team| crate::domain::source::same_team(&s.team_id, team)))
        .copied()
        .ok_or(SignatureError::TeamMismatch)
}

fn parse_in_tolerance(
    header: Option<&str>,
    now: i64,
    tolerance_secs: i64,
) -> Result<ParsedHeader, SignatureError> {
    let header = header
        .filter(|h| !h.trim().is_empty())
        .ok_or(SignatureError::Missing)?;
    let parsed = parse_header(header)?;
    // `abs_diff`: a hostile `t` near i64::MIN must not overflow the subtraction.
    if now.abs_diff(parsed.timestamp) > u64::try_from(tolerance_secs).unwrap_or(0) {
        return Err(SignatureError::OutsideTolerance {
            tolerance: tolerance_secs,
        });
    }
    Ok(parsed)
}

/// Whether any `s` of the header is the MAC of the body under any of `secrets`.
fn signed_with(secrets: &SigningSecrets, parsed: &ParsedHeader, body: &[u8]) -> bool {
    let timestamp = parsed.timestamp.to_string();
    secrets.iter().any(|secret| {
        let expected = HmacKey::new(secret.as_bytes()).sign(&signed_parts(&timestamp, body));
        parsed
            .signatures
            .iter()
            .any(|candidate| same_tag(&expected, candidate))
    })
}

/// Makes a `canopy-signature` header value, as Canopy would. Used by the fake Canopy, the
/// signing helper and the tests.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let t = timestamp.to_string();
    let signature = hex::encode(HmacKey::new(secret.as_bytes()).sign(&signed_parts(&t, body)));
    format!("t={timestamp},s={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_115_200;
    const BODY: &[u8] = br#"{"event_type":"COMPLETE","pull_id":"p"}"#;

    fn secrets(list: &[&str]) -> SigningSecrets {
        SigningSecrets::new(list.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    fn check(header: &str) -> Result<(), SignatureError> {
        verify(Some(header), BODY, &secrets(&["whsec_a"]), NOW, 300)
    }

    #[test]
    fn known_vector() {
        // Computed independently:
        // printf '1764115200.{body}' | openssl dgst -sha256 -hmac whsec_a
        let header = sign(BODY, "whsec_a", NOW);
        assert_eq!(
            header,
            "t=1764115200,s=200d0ae028527873ea3fd2c4e1d4e3f0abcde10875c2b5abb3570a448173e226"
        );
        assert_eq!(check(&header), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        let header = sign(BODY, "whsec_a", NOW);
        let tampered = br#"{"event_type":"COMPLETE","pull_id":"q"}"#;
        assert_eq!(
            verify(Some(&header), tampered, &secrets(&["whsec_a"]), NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            check(&sign(BODY, "whsec_b", NOW)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn tolerance_is_inclusive_in_both_directions() {
        assert_eq!(check(&sign(BODY, "whsec_a", NOW - 300)), Ok(()));
        assert_eq!(check(&sign(BODY, "whsec_a", NOW + 300)), Ok(()));
        let outside = Err(SignatureError::OutsideTolerance { tolerance: 300 });
        assert_eq!(check(&sign(BODY, "whsec_a", NOW - 301)), outside);
        assert_eq!(check(&sign(BODY, "whsec_a", NOW + 301)), outside);
    }

    #[test]
    fn a_changed_timestamp_breaks_the_signature() {
        let header = sign(BODY, "whsec_a", NOW);
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(check(&moved), Err(SignatureError::NoMatch));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = sign(BODY, "whsec_a", NOW);
        let good_s = good.split_once(",s=").unwrap().1;
        let header = format!("t={NOW},s={},s={good_s},v9=ignored", "00".repeat(32));
        assert_eq!(check(&header), Ok(()));
        let reordered = format!("s={good_s}, t={NOW}");
        assert_eq!(check(&reordered), Ok(()));
    }

    #[test]
    fn either_of_two_secrets_may_match_during_rotation() {
        let both = secrets(&["whsec_new", "whsec_old"]);
        for secret in ["whsec_new", "whsec_old"] {
            let header = sign(BODY, secret, NOW);
            assert_eq!(verify(Some(&header), BODY, &both, NOW, 300), Ok(()));
        }
        let header = sign(BODY, "whsec_other", NOW);
        assert_eq!(
            verify(Some(&header), BODY, &both, NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            verify(None, BODY, &secrets(&["k"]), NOW, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some(" "), BODY, &secrets(&["k"]), NOW, 300),
            Err(SignatureError::Missing)
        );
        assert!(matches!(check("s=abcd"), Err(SignatureError::Malformed(_))));
        assert!(matches!(
            check("t=notanumber,s=abcd"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check(&format!("t={NOW}")),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check(&format!("t={NOW},s=zz-not-hex")),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check("garbage"),
            Err(SignatureError::Malformed(_))
        ));
        // A signature of the wrong length is simply no match.
        assert_eq!(
            check(&format!("t={NOW},s=abcd")),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn secret_values_plain_or_rotating() {
        let plain = SigningSecrets::from_secret_string("whsec_a\n").unwrap();
        assert_eq!(plain.current(), "whsec_a");
        let rotating =
            SigningSecrets::from_secret_string(r#"{"current":"n","previous":"o"}"#).unwrap();
        assert_eq!(rotating.0, vec!["n".to_string(), "o".to_string()]);
        assert_eq!(
            SigningSecrets::from_secret_string("").unwrap_err(),
            SecretsError::Empty
        );
        assert_eq!(
            SigningSecrets::from_secret_string(r#"{"previous":"o"}"#).unwrap_err(),
            SecretsError::Unreadable
        );
        assert_eq!(format!("{rotating:?}"), "SigningSecrets(2 configured)");
    }
    #[test]
    fn the_secret_names_the_source_and_the_team_must_agree() {
        use crate::domain::source::{KeyType, Source, Sources};
        let production = Source::new("production", "team-p", KeyType::Production).unwrap();
        let sandbox = Source::new("sandbox", "team-s", KeyType::Sandbox).unwrap();
        let sources = Sources::new(vec![
            (production.clone(), secrets(&["whsec_p"])),
            (sandbox.clone(), secrets(&["whsec_s_new", "whsec_s_old"])),
        ])
        .unwrap();
        let header = sign(BODY, "whsec_s_old", NOW);
        let verified = verify_sources(Some(&header), BODY, &sources, NOW, 300).unwrap();
        assert_eq!(verified, vec![&sandbox]);
        assert_eq!(source_of(&verified, None), Ok(&sandbox));
        assert_eq!(source_of(&verified, Some("team-s")), Ok(&sandbox));
        // Signed with the sandbox's secret, claiming the production team: refused.
        assert_eq!(
            source_of(&verified, Some("team-p")),
            Err(SignatureError::TeamMismatch)
        );
        let stranger = sign(BODY, "whsec_x", NOW);
        assert_eq!(
            verify_sources(Some(&stranger), BODY, &sources, NOW, 300),
            Err(SignatureError::NoMatch)
        );
        let late = sign(BODY, "whsec_p", NOW - 301);
        assert!(matches!(
            verify_sources(Some(&late), BODY, &sources, NOW, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }
}
