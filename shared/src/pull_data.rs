//! How a fetched pull is kept: a small summary for quick reads, and the whole pull as gzip
//! split into parts that stay well under DynamoDB's 400 KB item limit. Nothing is dropped:
//! the parts reassemble to exactly the JSON Canopy sent (its `pull` object).
//!
//! Parsing is lenient: the summary reads what it knows and ignores the rest, unknown fields and
//! enum values pass through untouched, and numbers (money is integer cents) keep their value.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Largest part, in bytes of gzip: leaves room for the key and attributes under 400 KB.
pub const MAX_PART_BYTES: usize = 350 * 1024;

/// A policy at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_policy_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_premium_cents: Option<i64>,
    pub vehicles: usize,
    pub dwellings: usize,
}

/// The pull at a glance: holder, carrier, status and counts. The holder's contact fields are
/// what the reconnect notifier falls back to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PullSummary {
    pub pull_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_provider_friendly_name: Option<String>,
    pub policies: Vec<PolicySummary>,
    pub drivers: usize,
    pub documents: usize,
    pub claims: usize,
}

/// A pull ready to store.
#[derive(Debug, Clone)]
pub struct PreparedPull {
    pub summary: PullSummary,
    pub parts: Vec<Vec<u8>>,
    /// SHA-256 (hex) of the uncompressed JSON, checked when the parts are read back.
    pub sha256: String,
    pub json_bytes: usize,
    pub gzip_bytes: usize,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn count(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

/// Reads the summary of a pull object.
pub fn summarise(pull_id: &str, pull: &Value) -> PullSummary {
    let policies = pull
        .get("policies")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| PolicySummary {
                    policy_id: text(p, "policy_id"),
                    policy_type: text(p, "policy_type"),
                    carrier_policy_number: text(p, "carrier_policy_number"),
                    total_premium_cents: p.get("total_premium_cents").and_then(Value::as_i64),
                    vehicles: count(p, "vehicles"),
                    dwellings: count(p, "dwellings"),
                })
                .collect()
        })
        .unwrap_or_default();
    PullSummary {
        pull_id: text(pull, "pull_id").unwrap_or_else(|| pull_id.to_owned()),
        status: text(pull, "status"),
        created_at: text(pull, "created_at"),
        first_name: text(pull, "first_name"),
        last_name: text(pull, "last_name"),
        email: text(pull, "email"),
        account_email: text(pull, "account_email"),
        mobile_phone: text(pull, "mobile_phone"),
        phone: text(pull, "phone"),
        insurance_provider_name: text(pull, "insurance_provider_name"),
        insurance_provider_friendly_name: text(pull, "insurance_provider_friendly_name"),
        policies,
        drivers: count(pull, "drivers"),
        documents: count(pull, "documents"),
        claims: count(pull, "claims"),
    }
}

/// A JSON value kept as gzip parts (pull data, large `meta_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub parts: Vec<Vec<u8>>,
    /// SHA-256 (hex) of the uncompressed JSON.
    pub sha256: String,
    pub json_bytes: usize,
    pub gzip_bytes: usize,
}

/// Compresses JSON text and splits it into parts of at most [`MAX_PART_BYTES`].
pub fn pack(json: &[u8]) -> Packed {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(json);
    let gz = encoder.finish().unwrap_or_default();
    Packed {
        sha256: hex::encode(Sha256::digest(json)),
        json_bytes: json.len(),
        gzip_bytes: gz.len(),
        parts: gz.chunks(MAX_PART_BYTES).map(<[u8]>::to_vec).collect(),
    }
}

/// Serialises, compresses and splits a pull.
pub fn prepare(pull_id: &str, pull: &Value) -> PreparedPull {
    // Serialising a `Value` cannot fail.
    let json = serde_json::to_vec(pull).unwrap_or_default();
    let packed = pack(&json);
    PreparedPull {
        summary: summarise(pull_id, pull),
        sha256: packed.sha256,
        json_bytes: packed.json_bytes,
        gzip_bytes: packed.gzip_bytes,
        parts: packed.parts,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReassembleError {
    #[error("stored pull data is not valid gzip")]
    Corrupt,
    #[error("stored pull data does not match its checksum")]
    Checksum,
    #[error("stored pull data is not JSON")]
    NotJson,
}

/// Joins the parts back into the pull object and checks it against `sha256`.
pub fn reassemble(parts: &[Vec<u8>], sha256: &str) -> Result<Value, ReassembleError> {
    let gz: Vec<u8> = parts.concat();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut json)
        .map_err(|_| ReassembleError::Corrupt)?;
    if hex::encode(Sha256::digest(&json)) != sha256 {
        return Err(ReassembleError::Checksum);
    }
    serde_json::from_slice(&json).map_err(|_| ReassembleError::NotJson)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pull() -> Value {
        json!({
            "pull_id": "p1", "status": "SUCCESS", "first_name": "Clark", "last_name": "Kent",
            "account_email": "ck@example.com", "mobile_phone": "8885550000", "email": null,
            "insurance_provider_name": "statefarm", "created_at": "2023-01-12T20:59:42.811Z",
            "brand_new_field": {"x": [1, 2, 3]},
            "policies": [{"policy_id": "pol1", "policy_type": "AUTO", "total_premium_cents": 175300,
                          "vehicles": [{"vin": "1"}, {"vin": "2"}], "dwellings": [], "status": "SOMETHING_UNKNOWN"}],
            "drivers": [{}], "documents": [{}, {}], "claims": []
        })
    }

    #[test]
    fn summary_reads_holder_carrier_and_counts() {
        let s = summarise("p1", &pull());
        assert_eq!(s.first_name.as_deref(), Some("Clark"));
        assert_eq!(s.email, None);
        assert_eq!(s.account_email.as_deref(), Some("ck@example.com"));
        assert_eq!(s.insurance_provider_name.as_deref(), Some("statefarm"));
        assert_eq!(s.policies[0].vehicles, 2);
        assert_eq!(s.policies[0].total_premium_cents, Some(175300));
        assert_eq!((s.drivers, s.documents, s.claims), (1, 2, 0));
    }

    #[test]
    fn parts_reassemble_to_the_same_pull() {
        let p = pull();
        let prepared = prepare("p1", &p);
        assert_eq!(prepared.parts.len(), 1);
        assert_eq!(reassemble(&prepared.parts, &prepared.sha256).unwrap(), p);
    }

    #[test]
    fn numbers_read_back_value_for_value() {
        // Found by the pull_summary fuzz target: without correctly rounded float parsing the
        // stored copy of this number came back one unit in the last place off.
        for text in [
            "4912222222222222222222222222222222222222222222222222222222222224",
            "175.01",
            "1e-7",
            "18446744073709551616",
        ] {
            let pull: Value = serde_json::from_str(&format!(r#"{{"n":{text}}}"#)).unwrap();
            let prepared = prepare("p", &pull);
            assert_eq!(
                reassemble(&prepared.parts, &prepared.sha256).unwrap(),
                pull,
                "{text}"
            );
        }
    }

    #[test]
    fn large_pulls_split_into_parts_under_the_limit() {
        // Incompressible content forces several parts.
        let noise: Vec<String> = (0..40_000)
            .map(|i| format!("{:x}", Sha256::digest(i.to_string().as_bytes())))
            .collect();
        let p = json!({"pull_id": "big", "documents": noise});
        let prepared = prepare("big", &p);
        assert!(prepared.parts.len() > 1, "{} parts", prepared.parts.len());
        assert!(prepared
            .parts
            .iter()
            .all(|part| part.len() <= MAX_PART_BYTES));
        assert_eq!(reassemble(&prepared.parts, &prepared.sha256).unwrap(), p);
        let mut broken = prepared.parts.clone();
        broken.pop();
        assert!(reassemble(&broken, &prepared.sha256).is_err());
        assert_eq!(
            reassemble(&prepared.parts, "00"),
            Err(ReassembleError::Checksum)
        );
    }
}
