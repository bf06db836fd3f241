//! Canopy webhook bodies: lenient parsing and the dedupe key.
//!
//! Canopy's bodies vary by age and event type, so only `event_type` and `pull_id` are required;
//! every other field is optional and a field of the wrong type is treated as absent. Unknown
//! event types parse to [`EventType::Other`] and unknown fields are ignored (they are still
//! kept in the stored copy of the body).

use serde_json::{Map, Value};
use std::fmt;

/// The `event_type` of a webhook. Unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    PolicyAvailable,
    PoliciesAvailable,
    Complete,
    AuthStatus,
    Error,
    MonitoringReconnect,
    MonitoringEvents,
    DataUpdated,
    ValidationComplete,
    ServicingWaitingForConsumerConfirmation,
    Other(String),
}

impl EventType {
    pub fn parse(s: &str) -> Self {
        match s {
            "POLICY_AVAILABLE" => Self::PolicyAvailable,
            "POLICIES_AVAILABLE" => Self::PoliciesAvailable,
            "COMPLETE" => Self::Complete,
            "AUTH_STATUS" => Self::AuthStatus,
            "ERROR" => Self::Error,
            "MONITORING_RECONNECT" => Self::MonitoringReconnect,
            "MONITORING_EVENTS" => Self::MonitoringEvents,
            "DATA_UPDATED" => Self::DataUpdated,
            "VALIDATION_COMPLETE" => Self::ValidationComplete,
            "SERVICING_WAITING_FOR_CONSUMER_CONFIRMATION" => {
                Self::ServicingWaitingForConsumerConfirmation
            }
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::PolicyAvailable => "POLICY_AVAILABLE",
            Self::PoliciesAvailable => "POLICIES_AVAILABLE",
            Self::Complete => "COMPLETE",
            Self::AuthStatus => "AUTH_STATUS",
            Self::Error => "ERROR",
            Self::MonitoringReconnect => "MONITORING_RECONNECT",
            Self::MonitoringEvents => "MONITORING_EVENTS",
            Self::DataUpdated => "DATA_UPDATED",
            Self::ValidationComplete => "VALIDATION_COMPLETE",
            Self::ServicingWaitingForConsumerConfirmation => {
                "SERVICING_WAITING_FOR_CONSUMER_CONFIRMATION"
            }
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `canopy-ops ping`'s event type: no function acts on it (nothing is fetched or notified);
/// intake records it like any delivery, and the ping removes the record.
pub const PING_EVENT_TYPE: &str = "CANOPY_MONITOR_PING";
/// The pull id prefix of a ping (`canopy-ops ping` removes only pulls named so).
pub const PING_PULL_PREFIX: &str = "canopy-monitor-ping-";

/// `monitoring {initial_pull_id, monitoring_id}`, present on monitored pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringRef {
    pub monitoring_id: String,
    pub initial_pull_id: Option<String>,
}

/// The reconnect link and token of a MONITORING_RECONNECT. Credentials: `Debug` hides them.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconnectLink {
    pub reconnect_url: Option<String>,
    pub reconnect_token: Option<String>,
}

impl fmt::Debug for ReconnectLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectLink")
            .field(
                "reconnect_url",
                &self.reconnect_url.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "reconnect_token",
                &self.reconnect_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A parsed webhook. `Debug` shows ids and types only: bodies carry personal data.
#[derive(Clone)]
pub struct WebhookEvent {
    pub event_type: EventType,
    pub pull_id: String,
    pub widget_id: Option<String>,
    pub team_id: Option<String>,
    /// The pull status at the time of the event (kept as text: new values must not break us).
    pub status: Option<String>,
    pub account_identifier: Option<String>,
    pub is_monitored: bool,
    pub monitoring: Option<MonitoringRef>,
    /// The developer's meta_data, normalised: an object, or a JSON string parsed into a value.
    pub meta_data: Option<Value>,
    /// `data.auth_status` (AUTH_STATUS, MONITORING_RECONNECT).
    pub auth_status: Option<String>,
    /// AUTH_STATUS ordering: `sequence` at the top level or inside `data`.
    pub sequence: Option<i64>,
    /// `data.type` of an ERROR (PROVIDER_ERROR, INTERNAL_ERROR) or of a MONITORING_EVENTS.
    pub data_type: Option<String>,
    /// `data.login_error_message` of an AUTH_STATUS.
    pub login_error_message: Option<String>,
    /// `data.mfa_options` of an AUTH_STATUS (IDENTITY_VERIFICATION_OPTIONS): the choices a
    /// consumer picks from, keyed by the `optionKey` to send back. At most
    /// [`MAX_MFA_OPTIONS_BYTES`] of JSON; larger is dropped.
    pub mfa_options: Option<Value>,
    pub reconnect: Option<ReconnectLink>,
    /// `data.changes` of a MONITORING_EVENTS: what Canopy found changed (before and after
    /// values, so personal data: stored, never logged or relayed).
    pub monitoring_changes: Option<Value>,
    /// See [`dedupe_key`].
    pub dedupe_key: String,
}

impl fmt::Debug for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEvent")
            .field("event_type", &self.event_type)
            .field("pull_id", &self.pull_id)
            .field("monitoring", &self.monitoring)
            .field("status", &self.status)
            .field("sequence", &self.sequence)
            .field("dedupe_key", &self.dedupe_key)
            .finish_non_exhaustive()
    }
}

impl WebhookEvent {
    pub fn monitoring_id(&self) -> Option<&str> {
        self.monitoring.as_ref().map(|m| m.monitoring_id.as_str())
    }
}

/// Why a body was refused. Messages name the problem, never the content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{0}` must be a non-empty string")]
    InvalidField(&'static str),
    #[error("field `{0}` must be an id of 1 to 128 letters, digits, '-' or '_'")]
    InvalidId(&'static str),
}

/// Parses a webhook body leniently. See the module docs for what is required.
/// The largest `mfa_options` kept (they are a handful of short labels).
pub const MAX_MFA_OPTIONS_BYTES: usize = 4096;

pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages name a position, not the content.
        ParseError::MalformedJson(e.to_string())
    })?;
    let obj = value.as_object().ok_or(ParseError::NotAnObject)?;
    let event_type = required_str(obj, "event_type")?;
    let pull_id = checked_id("pull_id", Some(required_str(obj, "pull_id")?))?.unwrap_or_default();
    let data = obj.get("data").and_then(Value::as_object);
    let data_str = |k: &str| data.and_then(|d| opt_str(d, k));

    let monitoring = match obj.get("monitoring").and_then(Value::as_object) {
        Some(m) => match checked_id("monitoring.monitoring_id", opt_str(m, "monitoring_id"))? {
            Some(monitoring_id) => Some(MonitoringRef {
                monitoring_id,
                initial_pull_id: checked_id(
                    "monitoring.initial_pull_id",
                    opt_str(m, "initial_pull_id"),
                )?,
            }),
            None => None,
        },
        None => None,
    };
    let event_type = EventType::parse(&event_type);
    let reconnect = match event_type {
        EventType::MonitoringReconnect => Some(ReconnectLink {
            reconnect_url: data_str("reconnect_url"),
            reconnect_token: data_str("reconnect_token"),
        }),
        _ => None,
    };
    let sequence = obj
        .get("sequence")
        .or_else(|| data.and_then(|d| d.get("sequence")))
        .and_then(as_i64);

    Ok(WebhookEvent {
        pull_id,
        widget_id: opt_str(obj, "widget_id"),
        team_id: opt_str(obj, "team_id"),
        status: opt_str(obj, "status"),
        account_identifier: opt_str(obj, "account_identifier"),
        is_monitored: obj
            .get("is_monitored")
            .and_then(Value::as_bool)
            .unwrap_or(monitoring.is_some()),
        monitoring,
        meta_data: obj.get("meta_data").and_then(normalise_meta_data),
        auth_status: data_str("auth_status"),
        sequence,
        data_type: data_str("type"),
        login_error_message: data_str("login_error_message"),
        mfa_options: data
            .and_then(|d| d.get("mfa_options"))
            .filter(|o| o.is_object() || o.is_array())
            .filter(|o| serde_json::to_vec(o).map_or(0, |j| j.len()) <= MAX_MFA_OPTIONS_BYTES)
            .cloned(),
        reconnect,
        monitoring_changes: (event_type == EventType::MonitoringEvents)
            .then(|| {
                data.and_then(|d| d.get("changes"))
                    .filter(|c| c.is_array())
                    .cloned()
            })
            .flatten(),
        dedupe_key: dedupe_key(&value),
        event_type,
    })
}

/// An id that becomes a key or a URL segment, in its canonical form
/// ([`crate::domain::ids::canonical_id`]); refused if it is not an id.
fn checked_id(field: &'static str, id: Option<String>) -> Result<Option<String>, ParseError> {
    id.map(|id| crate::domain::ids::canonical_id(&id).ok_or(ParseError::InvalidId(field)))
        .transpose()
}

fn required_str(obj: &Map<String, Value>, key: &'static str) -> Result<String, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(ParseError::MissingField(key)),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(ParseError::InvalidField(key)),
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `meta_data` arrives as an object, as a JSON string (the spec's type for Pull.meta_data), or
/// null. A string that holds JSON is parsed; any other string is kept as a string.
pub fn normalise_meta_data(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(serde_json::from_str(s).unwrap_or_else(|_| v.clone())),
        other => Some(other.clone()),
    }
}

/// What replaces a credential in a stored body.
pub const REDACTED: &str = "[REDACTED]";

/// The body as it may be kept at rest: the raw bytes, except that a reconnect token and
/// reconnect URL (credentials, see FACTS.md) are redacted wherever they appear. Bodies without
/// a reconnect link are returned unchanged; redacted ones are re-serialised (keys sorted).
pub fn body_for_storage<'a>(event: &WebhookEvent, body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    let Some(link) = &event.reconnect else {
        return std::borrow::Cow::Borrowed(body);
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return std::borrow::Cow::Borrowed(body);
    };
    let mut secrets: Vec<&str> = [&link.reconnect_token, &link.reconnect_url]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    // The URL holds the token: replace it whole before the token inside it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    redact_strings(&mut value, &secrets);
    std::borrow::Cow::Owned(serde_json::to_vec(&value).unwrap_or_default())
}

fn redact_strings(v: &mut Value, secrets: &[&str]) {
    match v {
        Value::String(text) if secrets.iter().any(|s| text.contains(s)) => {
            for s in secrets {
                *text = text.replace(s, REDACTED);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_strings(i, secrets)),
        Value::Object(map) => map.values_mut().for_each(|i| redact_strings(i, secrets)),
        _ => {}
    }
}

/// The dedupe key of a webhook: `sha256` over the body's canonical JSON (object keys sorted,
/// no insignificant white space), prefixed with a version.
///
/// Canopy sends no event id, and a redelivery repeats the body (only the signature header's
/// timestamp changes). Hashing the whole canonical body makes every redelivery collide, while
/// two events that differ in anything (another pull, status, `sequence`, policy or change set)
/// stay distinct; canonicalising first makes the key immune to key order and white space.
pub fn dedupe_key(body: &Value) -> String {
    let mut canonical = String::with_capacity(256);
    write_canonical(body, &mut canonical);
    format!(
        "v1:{}",
        crate::domain::crypto::sha256_hex(canonical.as_bytes())
    )
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<WebhookEvent, ParseError> {
        parse_event(v.to_string().as_bytes())
    }

    #[test]
    fn parses_a_monitoring_reconnect() {
        let e = parse(json!({
            "widget_id": "w", "team_id": "t", "pull_id": "p2", "status": "NOT_AUTHENTICATED",
            "meta_data": {"user_id": "u1"}, "event_type": "MONITORING_RECONNECT",
            "is_monitored": true,
            "monitoring": {"initial_pull_id": "p1", "monitoring_id": "m1"},
            "data": {"auth_status": "NOT_AUTHENTICATED", "reconnect_url": "https://x/r?reconnectToken=abc", "reconnect_token": "abc"}
        }))
        .unwrap();
        assert_eq!(e.event_type, EventType::MonitoringReconnect);
        assert_eq!(e.monitoring_id(), Some("m1"));
        assert_eq!(
            e.monitoring.as_ref().unwrap().initial_pull_id.as_deref(),
            Some("p1")
        );
        assert_eq!(
            e.reconnect.as_ref().unwrap().reconnect_token.as_deref(),
            Some("abc")
        );
        assert_eq!(e.meta_data, Some(json!({"user_id": "u1"})));
        let shown = format!("{e:?} {:?}", e.reconnect);
        assert!(
            !shown.contains("abc"),
            "Debug must not show tokens: {shown}"
        );
        assert!(
            !shown.contains("u1"),
            "Debug must not show meta_data: {shown}"
        );
    }

    #[test]
    fn the_dedupe_key_survives_reserialising_any_number() {
        // Found by the event fuzz target: a 120-digit integer parses as a float, and without
        // correctly rounded parsing its re-serialised form parsed to another value.
        let body = format!(
            r#"{{"event_type":"MONITORING_EVENTS","pull_id":"p","data":{{"after":{{"total_premium_cents":{}}},"before":{{"total_premium_cents":175.01}}}}}}"#,
            "18707777777706074668".to_owned() + &"2".repeat(100)
        );
        let e = parse_event(body.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(&body).unwrap();
        let again = parse_event(serde_json::to_string(&value).unwrap().as_bytes()).unwrap();
        assert_eq!(e.dedupe_key, again.dedupe_key);
    }

    #[test]
    fn stored_bodies_hold_no_reconnect_credentials() {
        let body = json!({"event_type": "MONITORING_RECONNECT", "pull_id": "p2",
            "monitoring": {"monitoring_id": "m1"},
            "data": {"reconnect_url": "https://app.usecanopy.com/c/x?reconnectToken=tok123",
                     "reconnect_token": "tok123", "note": "see tok123"}})
        .to_string();
        let e = parse_event(body.as_bytes()).unwrap();
        let stored = body_for_storage(&e, body.as_bytes());
        let text = String::from_utf8(stored.to_vec()).unwrap();
        assert!(
            !text.contains("tok123") && !text.contains("reconnectToken="),
            "{text}"
        );
        assert!(text.contains(REDACTED));
        let kept: Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(kept["pull_id"], "p2", "everything else is kept");
        // Other events are kept byte for byte.
        let complete = br#"{"event_type":"COMPLETE", "pull_id":"p"}"#;
        let e = parse_event(complete).unwrap();
        assert_eq!(&*body_for_storage(&e, complete), complete);
    }

    #[test]
    fn only_event_type_and_pull_id_are_required() {
        let e = parse(json!({"event_type": "COMPLETE", "pull_id": "p"})).unwrap();
        assert_eq!(e.event_type, EventType::Complete);
        assert!(!e.is_monitored);
        assert_eq!(e.meta_data, None);
        assert_eq!(e.team_id, None);
    }

    #[test]
    fn unknown_event_types_and_fields_are_kept() {
        let e =
            parse(json!({"event_type": "SOMETHING_NEW", "pull_id": "p", "extra": [1, 2]})).unwrap();
        assert_eq!(e.event_type, EventType::Other("SOMETHING_NEW".into()));
        assert_eq!(e.event_type.as_str(), "SOMETHING_NEW");
    }

    #[test]
    fn meta_data_as_object_string_or_null() {
        let obj = parse(json!({"event_type": "COMPLETE", "pull_id": "p", "meta_data": {"a": 1}}))
            .unwrap();
        let s = parse(json!({"event_type": "COMPLETE", "pull_id": "p", "meta_data": "{\"a\":1}"}))
            .unwrap();
        let n =
            parse(json!({"event_type": "COMPLETE", "pull_id": "p", "meta_data": null})).unwrap();
        let plain = parse(json!({"event_type": "COMPLETE", "pull_id": "p", "meta_data": "crm-42"}))
            .unwrap();
        assert_eq!(obj.meta_data, Some(json!({"a": 1})));
        assert_eq!(s.meta_data, Some(json!({"a": 1})));
        assert_eq!(n.meta_data, None);
        assert_eq!(plain.meta_data, Some(json!("crm-42")));
    }

    #[test]
    fn wrong_typed_optional_fields_are_ignored() {
        let e = parse(
            json!({"event_type": "ERROR", "pull_id": "p", "status": 5, "is_monitored": "yes",
            "monitoring": "m", "data": {"type": "PROVIDER_ERROR"}}),
        )
        .unwrap();
        assert_eq!(e.status, None);
        assert!(e.monitoring.is_none());
        assert_eq!(e.data_type.as_deref(), Some("PROVIDER_ERROR"));
    }

    #[test]
    fn sequence_at_top_level_or_in_data() {
        let top = parse(json!({"event_type": "AUTH_STATUS", "pull_id": "p", "sequence": 3, "data": {"auth_status": "SUCCESS"}})).unwrap();
        let inner =
            parse(json!({"event_type": "AUTH_STATUS", "pull_id": "p", "data": {"sequence": "4"}}))
                .unwrap();
        assert_eq!(top.sequence, Some(3));
        assert_eq!(top.auth_status.as_deref(), Some("SUCCESS"));
        assert_eq!(inner.sequence, Some(4));
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        assert!(matches!(
            parse_event(b"{not json"),
            Err(ParseError::MalformedJson(_))
        ));
        assert_eq!(parse_event(b"[1,2]").unwrap_err(), ParseError::NotAnObject);
        assert_eq!(parse_event(b"\"x\"").unwrap_err(), ParseError::NotAnObject);
        assert_eq!(
            parse(json!({"pull_id": "p"})).unwrap_err(),
            ParseError::MissingField("event_type")
        );
        assert_eq!(
            parse(json!({"event_type": "COMPLETE"})).unwrap_err(),
            ParseError::MissingField("pull_id")
        );
        assert_eq!(
            parse(json!({"event_type": 7, "pull_id": "p"})).unwrap_err(),
            ParseError::InvalidField("event_type")
        );
        assert_eq!(
            parse(json!({"event_type": "COMPLETE", "pull_id": ""})).unwrap_err(),
            ParseError::InvalidField("pull_id")
        );
        // Ids become keys and URL segments: nothing but short plain tokens.
        assert_eq!(
            parse(json!({"event_type": "COMPLETE", "pull_id": "p#STATE"})).unwrap_err(),
            ParseError::InvalidId("pull_id")
        );
        assert_eq!(
            parse(json!({"event_type": "COMPLETE", "pull_id": "p",
                         "monitoring": {"monitoring_id": "../m"}}))
            .unwrap_err(),
            ParseError::InvalidId("monitoring.monitoring_id")
        );
        assert_eq!(
            parse(json!({"event_type": "COMPLETE", "pull_id": "p",
                         "monitoring": {"monitoring_id": "m", "initial_pull_id": "x".repeat(200)}}))
            .unwrap_err(),
            ParseError::InvalidId("monitoring.initial_pull_id")
        );
    }

    #[test]
    fn dedupe_key_ignores_key_order_and_whitespace_but_not_content() {
        let a = parse_event(
            br#"{"event_type":"COMPLETE","pull_id":"p","data":{"x":1,"y":[1,{"b":2,"a":1}]}}"#,
        )
        .unwrap();
        let b = parse_event(b"{ \"pull_id\" : \"p\",\n \"data\": {\"y\": [1, {\"a\": 1, \"b\": 2}], \"x\": 1}, \"event_type\": \"COMPLETE\" }").unwrap();
        let c = parse_event(
            br#"{"event_type":"COMPLETE","pull_id":"q","data":{"x":1,"y":[1,{"b":2,"a":1}]}}"#,
        )
        .unwrap();
        let d = parse_event(
            br#"{"event_type":"COMPLETE","pull_id":"p","data":{"x":1,"y":[{"b":2,"a":1},1]}}"#,
        )
        .unwrap();
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_ne!(a.dedupe_key, c.dedupe_key);
        assert_ne!(a.dedupe_key, d.dedupe_key, "array order is content");
        assert!(a.dedupe_key.starts_with("v1:") && a.dedupe_key.len() == 67);
    }
}
