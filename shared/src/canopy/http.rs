//! The Canopy API over HTTPS (reqwest).

use super::{
    classify, CanopyApi, CanopyCredentials, CanopyError, PullJson, ReconnectToken, MAX_PULL_BYTES,
};
use async_trait::async_trait;
use std::time::Duration;

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

    /// GETs a team path and reads a 2xx answer's body into one buffer (sized from
    /// `Content-Length`, chunk by chunk, at most `limit` bytes).
    async fn get_body(&self, segments: &[&str], limit: usize) -> Result<Vec<u8>, CanopyError> {
        let url = self.team_url(segments)?;
        let mut response = self
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
        let too_large = || CanopyError::Permanent {
            status,
            code: "PULL_TOO_LARGE".to_owned(),
        };
        let expected = response.content_length().unwrap_or(0);
        if expected > limit as u64 {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(expected as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CanopyError::RetryLater {
                reason: transport_reason(&e),
                retry_after: None,
            })?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(classify(status, retry_after.as_deref(), &body));
        }
        Ok(body)
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
    async fn get_pull(&self, pull_id: &str) -> Result<PullJson, CanopyError> {
        let body = self.get_body(&["pulls", pull_id], MAX_PULL_BYTES).await?;
        PullJson::from_answer(body).map_err(|_| CanopyError::RetryLater {
            reason: "answer without a pull object".to_owned(),
            retry_after: None,
        })
    }

    async fn reconnect_token(&self, monitoring_id: &str) -> Result<ReconnectToken, CanopyError> {
        let body = self
            .get_body(&["monitorings", monitoring_id, "reconnectToken"], 64 * 1024)
            .await?;
        serde_json::from_slice(&body).map_err(|_| CanopyError::RetryLater {
            reason: "reconnectToken answer without url and token".to_owned(),
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
