//! The local stand-in for API Gateway's JWT authorizer: HS256 tokens signed with a documented
//! local key. In AWS, API Gateway verifies your identity provider's tokens (issuer, audience,
//! expiry) and hands the claims to reconnect-api; locally, the runner does the same with these.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use canopy_monitor::domain::crypto::HmacKey;
use serde_json::{json, Map, Value};

/// The local signing key. Local use only: it is public.
pub const LOCAL_JWT_KEY: &str = "canopy-monitor-local-jwt-key-not-for-production";
/// The audience local tokens carry and the runner checks.
pub const LOCAL_JWT_AUDIENCE: &str = "canopy-monitor-local";

fn key() -> HmacKey {
    HmacKey::new(LOCAL_JWT_KEY.as_bytes())
}

/// A token for `subject`, valid `ttl_secs` from `now`.
pub fn mint(subject: &str, now: i64, ttl_secs: i64) -> String {
    let header = B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let claims = B64.encode(
        json!({"sub": subject, "aud": LOCAL_JWT_AUDIENCE, "iss": "canopy-local", "iat": now, "exp": now + ttl_secs})
            .to_string(),
    );
    let sig = B64.encode(key().sign(&[format!("{header}.{claims}").as_bytes()]));
    format!("{header}.{claims}.{sig}")
}

/// The claims of a valid token (HS256 with the local key, right audience, not expired), as
/// strings, the way API Gateway passes them.
pub fn verify(token: &str, now: i64) -> Result<Map<String, Value>, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let header: Value = B64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("bad header")?;
    if header["alg"] != "HS256" {
        return Err("unexpected algorithm");
    }
    let signed = format!("{}.{claims}", token.split('.').next().unwrap_or_default());
    if !key().verify(
        &[signed.as_bytes()],
        &B64.decode(sig).map_err(|_| "bad signature")?,
    ) {
        return Err("bad signature");
    }
    let claims: Map<String, Value> = B64
        .decode(claims)
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or("bad claims")?;
    if claims.get("aud").and_then(Value::as_str) != Some(LOCAL_JWT_AUDIENCE) {
        return Err("wrong audience");
    }
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= now)
    {
        return Err("expired");
    }
    Ok(claims
        .into_iter()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k, Value::String(text))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_altered() {
        let t = mint("cust-1", 1000, 60);
        assert_eq!(verify(&t, 1000).unwrap()["sub"], "cust-1");
        assert_eq!(verify(&t, 1060), Err("expired"));
        let mut forged = t.clone();
        forged.push('x');
        assert!(verify(&forged, 1000).is_err());
        let other = mint("cust-2", 1000, 60);
        let swapped = format!(
            "{}.{}.{}",
            t.split('.').next().unwrap(),
            other.split('.').nth(1).unwrap(),
            t.split('.').nth(2).unwrap()
        );
        assert_eq!(verify(&swapped, 1000), Err("bad signature"));
    }
}
