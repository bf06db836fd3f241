//! The Canopy Connect API client (reqwest + rustls) and its error classification.
//!
//! Errors fall in three kinds, because the consumers act on the kind:
//! - [`CanopyError::RetryLater`]: timeouts, connection errors, 429 (with `Retry-After`), 5xx,
//!   malformed answers: try again with a delay;
//! - [`CanopyError::Permanent`]: 404 / NOT_FOUND and other 4xx about the request: never works;
//! - [`CanopyError::Misconfigured`]: 401, 403, INCORRECT_API_KEY_TYPE: our credentials or
//!   subscription are wrong; retried (an operator may fix them) and finally dead-lettered.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

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
    pub fn code(&self) -> &str {
        match self {
            CanopyError::RetryLater { .. } => "RETRY_LATER",
            CanopyError::Permanent { code, .. } | CanopyError::Misconfigured { code, .. } => code,
        }
    }
}

impl crate::consumer::RetryHint for CanopyError {
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
    async fn get_pull(&self, pull_id: &str) -> Result<Value, CanopyError>;
    /// `GET /teams/{teamId}/monitorings/{id}/reconnectToken`.
    async fn reconnect_token(&self, monitoring_id: &str) -> Result<ReconnectToken, CanopyError>;
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

/// The reqwest client.
#[derive(Debug, Clone)]
pub struct CanopyClient {
    http: reqwest::Client,
    base_url: String,
    team_id: String,
    credentials: CanopyCredentials,
}

impl CanopyClient {
    pub fn new(
        base_url: &str,
        team_id: &str,
        credentials: CanopyCredentials,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .user_agent(concat!("canopy-monitor/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            team_id: team_id.to_owned(),
            credentials,
        })
    }

    /// `{base}/teams/{team}/{segments...}`, each segment percent-encoded.
    pub fn team_url(&self, segments: &[&str]) -> Result<reqwest::Url, CanopyError> {
        let mut url =
            reqwest::Url::parse(&self.base_url).map_err(|_| CanopyError::Misconfigured {
                status: 0,
                code: "INVALID_BASE_URL".to_owned(),
            })?;
        url.path_segments_mut()
            .map_err(|_| CanopyError::Misconfigured {
                status: 0,
                code: "INVALID_BASE_URL".to_owned(),
            })?
            .pop_if_empty()
            .extend(["teams", self.team_id.as_str()])
            .extend(segments);
        Ok(url)
    }

    async fn get_json(&self, segments: &[&str]) -> Result<Value, CanopyError> {
        let url = self.team_url(segments)?;
        let response = self
            .http
            .get(url)
            .basic_auth(
                &self.credentials.client_id,
                Some(&self.credentials.client_secret),
            )
            .send()
            .await
            .map_err(|e| CanopyError::RetryLater {
                reason: transport_reason(&e),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| CanopyError::RetryLater {
                reason: transport_reason(&e),
                retry_after: None,
            })?;
        if !(200..300).contains(&status) {
            return Err(classify(status, retry_after.as_deref(), &body));
        }
        serde_json::from_slice(&body).map_err(|_| CanopyError::RetryLater {
            reason: format!("malformed JSON in a {status} answer"),
            retry_after: None,
        })
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "transport error".to_owned()
    }
}

#[async_trait]
impl CanopyApi for CanopyClient {
    async fn get_pull(&self, pull_id: &str) -> Result<Value, CanopyError> {
        let mut answer = self.get_json(&["pulls", pull_id]).await?;
        match answer.get_mut("pull").map(Value::take) {
            Some(pull @ Value::Object(_)) => Ok(pull),
            _ => Err(CanopyError::RetryLater {
                reason: "answer without a pull object".to_owned(),
                retry_after: None,
            }),
        }
    }

    async fn reconnect_token(&self, monitoring_id: &str) -> Result<ReconnectToken, CanopyError> {
        let answer = self
            .get_json(&["monitorings", monitoring_id, "reconnectToken"])
            .await?;
        serde_json::from_value(answer).map_err(|_| CanopyError::RetryLater {
            reason: "reconnectToken answer without url and token".to_owned(),
            retry_after: None,
        })
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
    fn ids_are_percent_encoded_in_paths() {
        let client = CanopyClient::new(
            "https://canopy.example/api/v1.0.0/",
            "team 1",
            CanopyCredentials {
                client_id: "id".into(),
                client_secret: "secret".into(),
            },
            Duration::from_secs(1),
        )
        .unwrap();
        let url = client.team_url(&["pulls", "a/b?c#d"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://canopy.example/api/v1.0.0/teams/team%201/pulls/a%2Fb%3Fc%23d"
        );
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
