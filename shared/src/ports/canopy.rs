//! The Canopy port: the calls the functions make to Canopy Connect's API, its error
//! classification, the HTTP adapter (`http.rs`, reqwest + rustls) and an in-memory fake.
//!
//! Errors fall in three kinds, because the consumers act on the kind:
//! - [`CanopyError::RetryLater`]: timeouts, connection errors, 429 (with `Retry-After`), 5xx,
//!   malformed answers: try again with a delay;
//! - [`CanopyError::Permanent`]: 404 / NOT_FOUND and other 4xx about the request: never works;
//! - [`CanopyError::Misconfigured`]: 401, 403, INCORRECT_API_KEY_TYPE: our credentials or
//!   subscription are wrong; retried (an operator may fix them) and finally dead-lettered.
//!   Not a 401 to a call made with a pull's JWT: that JWT is over ([`classify_pull_call`]).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

pub use crate::domain::monitoring::{CanopyMonitoring, EnableRequest, MonitoredPull, PatchRequest};
pub use crate::domain::pull_data::PullJson;

/// Canopy's production API.
pub const DEFAULT_BASE_URL: &str = "https://app.usecanopy.com/api/v1.0.0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanopyError {
    #[error("Canopy unavailable ({reason}); retry later")]
    RetryLater {
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("Canopy refused the request: {status} {code}")]
    Permanent { status: u16, code: String },
    #[error("Canopy rejected our credentials or configuration: {status} {code}")]
    Misconfigured { status: u16, code: String },
}

impl CanopyError {
    /// A 429: Canopy refused the request before doing anything with it.
    pub fn is_throttled(&self) -> bool {
        // `classify` writes the status first in the reason.
        matches!(self, CanopyError::RetryLater { reason, .. } if reason.starts_with("429 "))
    }

    /// The answer's status as the `CanopyResponses` metric counts it: the status (`401`,
    /// `404`, `429`...), `5xx` for server errors, `transport` when no answer came.
    pub fn status_class(&self) -> String {
        let status = match self {
            CanopyError::Permanent { status, .. } | CanopyError::Misconfigured { status, .. } => {
                Some(*status)
            }
            // `classify` writes the status first in the reason; transport errors do not.
            CanopyError::RetryLater { reason, .. } => {
                reason.split(' ').next().and_then(|s| s.parse::<u16>().ok())
            }
        };
        match status {
            Some(500..=599) => "5xx".to_owned(),
            Some(s) => s.to_string(),
            None => "transport".to_owned(),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            CanopyError::RetryLater { .. } => "RETRY_LATER",
            CanopyError::Permanent { code, .. } | CanopyError::Misconfigured { code, .. } => code,
        }
    }
}

impl crate::domain::retry::RetryHint for CanopyError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            CanopyError::RetryLater { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Classifies a non-2xx answer from its status, `Retry-After` and body `{"error":"CODE"}`.
pub fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> CanopyError {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP_{status}"));
    match status {
        429 => CanopyError::RetryLater {
            reason: format!("429 {code}"),
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        500..=599 => CanopyError::RetryLater {
            reason: format!("{status} {code}"),
            retry_after: None,
        },
        401 | 403 => CanopyError::Misconfigured { status, code },
        400 if code == "INCORRECT_API_KEY_TYPE" => CanopyError::Misconfigured { status, code },
        408 => CanopyError::RetryLater {
            reason: format!("{status} {code}"),
            retry_after: None,
        },
        _ => CanopyError::Permanent { status, code },
    }
}

/// Classifies a non-2xx answer to a whitelabel call made with a pull's JWT (`pull-jwt`, no
/// team credentials): there a 401 says that JWT is expired or unknown, so the consumer's
/// session is over ([`CanopyError::Permanent`] with status 401); it says nothing about our
/// keys. Anything else is classified like any answer.
pub fn classify_pull_call(status: u16, retry_after: Option<&str>, body: &[u8]) -> CanopyError {
    match classify(status, retry_after, body) {
        CanopyError::Misconfigured { status: 401, code } => {
            CanopyError::Permanent { status: 401, code }
        }
        other => other,
    }
}

/// A fresh reconnect link for a monitoring. Credentials: `Debug` hides them.
#[derive(Clone, Deserialize)]
pub struct ReconnectToken {
    pub pull_id: Option<String>,
    pub reconnect_url: String,
    pub reconnect_token: String,
}

impl fmt::Debug for ReconnectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectToken")
            .field("pull_id", &self.pull_id)
            .finish_non_exhaustive()
    }
}

/// The Canopy calls the functions make.
#[async_trait]
pub trait CanopyApi: Send + Sync {
    /// `GET /teams/{teamId}/pulls/{pullId}`: the raw JSON of the answer's `pull`.
    async fn get_pull(&self, pull_id: &str) -> Result<PullJson, CanopyError>;
    /// `GET /teams/{teamId}/monitorings/{id}/reconnectToken`.
    async fn reconnect_token(&self, monitoring_id: &str) -> Result<ReconnectToken, CanopyError>;
}

/// Canopy's Monitoring API (`/teams/{teamId}/monitorings...`): what the Monitoring API and the
/// reconciler call. Each refresh is billed like a pull.
#[async_trait]
pub trait MonitoringControl: Send + Sync {
    /// `POST /monitorings`.
    async fn enable_monitoring(
        &self,
        request: &EnableRequest,
    ) -> Result<CanopyMonitoring, CanopyError>;
    /// `PATCH /monitorings/{id}`.
    async fn update_monitoring(
        &self,
        monitoring_id: &str,
        patch: &PatchRequest,
    ) -> Result<CanopyMonitoring, CanopyError>;
    /// `DELETE /monitorings/{id}`.
    async fn stop_monitoring(&self, monitoring_id: &str) -> Result<CanopyMonitoring, CanopyError>;
    /// `POST /monitorings/{id}/refresh`: the new pull's id. Billed.
    async fn refresh_monitoring(&self, monitoring_id: &str) -> Result<String, CanopyError>;
    /// `GET /monitorings?limit=&before=`: one page, newest first as Canopy lists them.
    async fn list_monitorings(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<CanopyMonitoring>, CanopyError>;
    /// `GET /monitorings/{id}?with_pulls=true&limit=1`: the monitoring's newest pull.
    async fn latest_pull(&self, monitoring_id: &str) -> Result<Option<MonitoredPull>, CanopyError>;
}

/// A pull's whitelabel credential (`pull_jwt`): kept server-side, never logged (`Debug`
/// hides it) and never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct PullJwt(String);

impl PullJwt {
    pub fn new(jwt: String) -> Self {
        Self(jwt)
    }
    /// The value, for the `pull-jwt` header and the session item only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PullJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PullJwt(<redacted>)")
    }
}

/// `POST /widget/pull/reconnectToken`'s answer.
#[derive(Debug, Clone)]
pub struct PullSession {
    pub pull_id: String,
    pub pull_jwt: PullJwt,
}

/// `POST /widget/pull/{id}/connect`: the insurer and the credential tokens from Canopy's
/// Components library (not raw passwords). `Debug` hides the tokens.
#[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectRequest {
    pub insurer_name: String,
    pub insurer_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurer_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurer_third_field: Option<String>,
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("insurer_name", &self.insurer_name)
            .finish_non_exhaustive()
    }
}

/// Canopy's whitelabel reconnect calls (`/widget/pull/...`).
#[async_trait]
pub trait WidgetApi: Send + Sync {
    /// `POST /widget/pull/reconnectToken` (team credentials): the pull to reconnect and its JWT.
    async fn exchange_reconnect_token(
        &self,
        reconnect_token: &str,
    ) -> Result<PullSession, CanopyError>;
    /// `POST /widget/pull/{id}/connect` with `pull-jwt`.
    async fn connect(
        &self,
        pull_id: &str,
        jwt: &PullJwt,
        request: &ConnectRequest,
    ) -> Result<(), CanopyError>;
    /// `POST /widget/pull/{id}/idvoptions {optionKey}` with `pull-jwt`.
    async fn idv_options(
        &self,
        pull_id: &str,
        jwt: &PullJwt,
        option_key: &str,
    ) -> Result<(), CanopyError>;
    /// `POST /widget/pull/{id}/idv {mfaValue}` with `pull-jwt`.
    async fn idv(&self, pull_id: &str, jwt: &PullJwt, mfa_value: &str) -> Result<(), CanopyError>;
}

/// API credentials, from Secrets Manager: `{"client_id": "...", "client_secret": "..."}`.
#[derive(Clone, Deserialize)]
pub struct CanopyCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for CanopyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanopyCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The event types a registration can name (Canopy's spec); MONITORING_* and ERROR come to
/// every registration of the team and key type.
pub const REGISTRABLE_EVENT_TYPES: &[&str] = &[
    "COMPLETE",
    "POLICIES_AVAILABLE",
    "POLICY_AVAILABLE",
    "AUTH_STATUS",
    "VALIDATION_COMPLETE",
];

/// The registrable event types a stack acts on: COMPLETE (fetch), POLICIES_AVAILABLE (the
/// fallback fetch), AUTH_STATUS (the in-app reconnect). POLICY_AVAILABLE adds nothing.
pub const HANDLED_EVENT_TYPES: &[&str] = &["COMPLETE", "POLICIES_AVAILABLE", "AUTH_STATUS"];

/// A webhook registration (`GET /teams/{teamId}/webhooks`). `Debug` hides the secret.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct WebhookRegistration {
    pub webhook_id: String,
    #[serde(default)]
    pub signing_secret: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub is_sandbox: bool,
    #[serde(default)]
    pub is_active: bool,
    /// Empty: every event type.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl fmt::Debug for WebhookRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRegistration")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("is_active", &self.is_active)
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

impl WebhookRegistration {
    /// Whether it sends each of `wanted` (an empty list sends all).
    pub fn sends(&self, wanted: &[&str]) -> bool {
        self.event_types.is_empty()
            || wanted
                .iter()
                .all(|w| self.event_types.iter().any(|t| t == w))
    }
}

/// A new registration's answer (`POST /teams/{teamId}/webhooks`). `Debug` hides the secret.
#[derive(Clone, Deserialize)]
pub struct NewWebhook {
    pub webhook_id: String,
    pub signing_secret: String,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("webhook_id", &self.webhook_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        assert_eq!(
            classify(429, Some("12"), b""),
            CanopyError::RetryLater {
                reason: "429 HTTP_429".into(),
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert!(matches!(
            classify(503, None, b"oops"),
            CanopyError::RetryLater {
                retry_after: None,
                ..
            }
        ));
        assert_eq!(
            classify(404, None, br#"{"error":"NOT_FOUND"}"#),
            CanopyError::Permanent {
                status: 404,
                code: "NOT_FOUND".into()
            }
        );
        assert_eq!(
            classify(400, None, br#"{"error":"VALIDATION_ERROR"}"#),
            CanopyError::Permanent {
                status: 400,
                code: "VALIDATION_ERROR".into()
            }
        );
        assert_eq!(
            classify(400, None, br#"{"error":"INCORRECT_API_KEY_TYPE"}"#),
            CanopyError::Misconfigured {
                status: 400,
                code: "INCORRECT_API_KEY_TYPE".into()
            }
        );
        assert!(matches!(
            classify(401, None, br#"{"error":"UNAUTHORIZED"}"#),
            CanopyError::Misconfigured { .. }
        ));
        assert!(matches!(
            classify(403, None, br#"{"error":"SUBSCRIPTION_INACTIVE"}"#),
            CanopyError::Misconfigured { .. }
        ));
        // With a pull's JWT, a 401 is about that JWT; a 403 (subscription) stays ours.
        assert_eq!(
            classify_pull_call(401, None, br#"{"error":"UNAUTHORIZED"}"#),
            CanopyError::Permanent {
                status: 401,
                code: "UNAUTHORIZED".into()
            }
        );
        assert!(matches!(
            classify_pull_call(403, None, br#"{"error":"SUBSCRIPTION_INACTIVE"}"#),
            CanopyError::Misconfigured { .. }
        ));
        // An HTTP-date Retry-After is not understood: the caller's own backoff applies.
        assert!(matches!(
            classify(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b""),
            CanopyError::RetryLater {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn debug_hides_credentials() {
        let c = CanopyCredentials {
            client_id: "id".into(),
            client_secret: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let t = ReconnectToken {
            pull_id: None,
            reconnect_url: "https://x/r?t=tok".into(),
            reconnect_token: "tok".into(),
        };
        assert!(!format!("{t:?}").contains("tok"));
    }
}
