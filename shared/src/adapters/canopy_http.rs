//! The Canopy API over HTTPS (reqwest).

use crate::ports::canopy::{
    classify, classify_pull_call, CanopyApi, CanopyCredentials, CanopyError, CanopyMonitoring,
    ConnectRequest, EnableRequest, MonitoredPull, MonitoringControl, PatchRequest, PullJson,
    PullJwt, PullSession, ReconnectToken, WidgetApi,
};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
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
        self.send(self.http.get(url), limit).await
    }

    /// Sends a monitoring call (JSON body or none) and reads its answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&dyn erased_json::Json>,
    ) -> Result<T, CanopyError> {
        let mut url = self.team_url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_json());
        }
        let answer = self.send(request, MONITORING_ANSWER_LIMIT).await?;
        serde_json::from_slice(&answer).map_err(|_| CanopyError::RetryLater {
            reason: "unexpected answer from the Monitoring API".to_owned(),
            retry_after: None,
        })
    }

    /// Sends with the team's credentials (Basic auth).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<Vec<u8>, CanopyError> {
        let request = request.basic_auth(
            &self.credentials.client_id,
            Some(&self.credentials.client_secret),
        );
        self.send_as_is(request, limit, classify).await
    }

    /// `{base}/widget/pull/{segments...}`, each segment percent-encoded.
    fn widget_url(&self, segments: &[&str]) -> Result<reqwest::Url, CanopyError> {
        let invalid = || CanopyError::Misconfigured {
            status: 0,
            code: "INVALID_BASE_URL".to_owned(),
        };
        let mut url = reqwest::Url::parse(&self.base_url).map_err(|_| invalid())?;
        url.path_segments_mut()
            .map_err(|_| invalid())?
            .pop_if_empty()
            .extend(["widget", "pull"])
            .extend(segments);
        Ok(url)
    }

    /// A whitelabel call on a pull, authorized by its `pull-jwt` (no team credentials).
    async fn pull_call(
        &self,
        pull_id: &str,
        action: &str,
        jwt: &PullJwt,
        body: &dyn erased_json::Json,
    ) -> Result<(), CanopyError> {
        let request = self
            .http
            .post(self.widget_url(&[pull_id, action])?)
            .header("pull-jwt", jwt.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_json());
        // Authorized by the JWT alone: a 401 is about it, not about our keys.
        self.send_as_is(request, MONITORING_ANSWER_LIMIT, classify_pull_call)
            .await?;
        Ok(())
    }

    /// Sends, and classifies a non-2xx answer with `classify_answer`.
    async fn send_as_is(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
        classify_answer: fn(u16, Option<&str>, &[u8]) -> CanopyError,
    ) -> Result<Vec<u8>, CanopyError> {
        let mut response = request.send().await.map_err(|e| CanopyError::RetryLater {
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
            return Err(classify_answer(status, retry_after.as_deref(), &body));
        }
        Ok(body)
    }
}

/// Monitoring answers are small; a page of 100 monitorings is about 30 KB.
const MONITORING_ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Request bodies as JSON text, whatever their type.
mod erased_json {
    pub trait Json: Send + Sync {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize + Send + Sync> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[derive(serde::Deserialize)]
struct MonitoringAnswer {
    monitoring: CanopyMonitoring,
}

#[derive(serde::Deserialize)]
struct ListAnswer {
    monitorings: Vec<CanopyMonitoring>,
}

#[derive(serde::Deserialize)]
struct RefreshAnswer {
    pull_id: String,
}

#[derive(serde::Deserialize)]
struct WithPullsAnswer {
    #[serde(default)]
    pulls: Vec<MonitoredPull>,
}

#[async_trait]
impl MonitoringControl for CanopyClient {
    async fn enable_monitoring(
        &self,
        request: &EnableRequest,
    ) -> Result<CanopyMonitoring, CanopyError> {
        let answer: MonitoringAnswer = self
            .call(reqwest::Method::POST, &["monitorings"], &[], Some(request))
            .await?;
        Ok(answer.monitoring)
    }

    async fn update_monitoring(
        &self,
        monitoring_id: &str,
        patch: &PatchRequest,
    ) -> Result<CanopyMonitoring, CanopyError> {
        let answer: MonitoringAnswer = self
            .call(
                reqwest::Method::PATCH,
                &["monitorings", monitoring_id],
                &[],
                Some(patch),
            )
            .await?;
        Ok(answer.monitoring)
    }

    async fn stop_monitoring(&self, monitoring_id: &str) -> Result<CanopyMonitoring, CanopyError> {
        let answer: MonitoringAnswer = self
            .call(
                reqwest::Method::DELETE,
                &["monitorings", monitoring_id],
                &[],
                None,
            )
            .await?;
        Ok(answer.monitoring)
    }

    async fn refresh_monitoring(&self, monitoring_id: &str) -> Result<String, CanopyError> {
        let answer: RefreshAnswer = self
            .call(
                reqwest::Method::POST,
                &["monitorings", monitoring_id, "refresh"],
                &[],
                None,
            )
            .await?;
        Ok(answer.pull_id)
    }

    async fn list_monitorings(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<CanopyMonitoring>, CanopyError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(before) = before {
            query.push(("before", before.to_owned()));
        }
        let answer: ListAnswer = self
            .call(reqwest::Method::GET, &["monitorings"], &query, None)
            .await?;
        Ok(answer.monitorings)
    }

    async fn latest_pull(&self, monitoring_id: &str) -> Result<Option<MonitoredPull>, CanopyError> {
        let query = [("with_pulls", "true".to_owned()), ("limit", "1".to_owned())];
        let answer: WithPullsAnswer = self
            .call(
                reqwest::Method::GET,
                &["monitorings", monitoring_id],
                &query,
                None,
            )
            .await?;
        Ok(answer.pulls.into_iter().next())
    }
}

#[derive(serde::Deserialize)]
struct ExchangeAnswer {
    pull_id: String,
    pull_jwt: String,
}

#[async_trait]
impl WidgetApi for CanopyClient {
    async fn exchange_reconnect_token(
        &self,
        reconnect_token: &str,
    ) -> Result<PullSession, CanopyError> {
        let request = self
            .http
            .post(self.widget_url(&["reconnectToken"])?)
            .json(&serde_json::json!({"reconnect_token": reconnect_token}));
        let answer = self.send(request, MONITORING_ANSWER_LIMIT).await?;
        let answer: ExchangeAnswer =
            serde_json::from_slice(&answer).map_err(|_| CanopyError::RetryLater {
                reason: "reconnectToken answer without pull_id and pull_jwt".to_owned(),
                retry_after: None,
            })?;
        Ok(PullSession {
            pull_id: answer.pull_id,
            pull_jwt: PullJwt::new(answer.pull_jwt),
        })
    }

    async fn connect(
        &self,
        pull_id: &str,
        jwt: &PullJwt,
        request: &ConnectRequest,
    ) -> Result<(), CanopyError> {
        self.pull_call(pull_id, "connect", jwt, request).await
    }

    async fn idv_options(
        &self,
        pull_id: &str,
        jwt: &PullJwt,
        option_key: &str,
    ) -> Result<(), CanopyError> {
        let body = serde_json::json!({"optionKey": option_key});
        self.pull_call(pull_id, "idvoptions", jwt, &body).await
    }

    async fn idv(&self, pull_id: &str, jwt: &PullJwt, mfa_value: &str) -> Result<(), CanopyError> {
        let body = serde_json::json!({"mfaValue": mfa_value});
        self.pull_call(pull_id, "idv", jwt, &body).await
    }
}

/// Canopy's webhook registrations of the team and key type (`/teams/{teamId}/webhooks`): what
/// `canopy-ops setup` and `doctor` call. Not a port: no function registers webhooks.
impl CanopyClient {
    pub async fn list_webhooks(
        &self,
    ) -> Result<Vec<crate::ports::canopy::WebhookRegistration>, CanopyError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            webhooks: Vec<crate::ports::canopy::WebhookRegistration>,
        }
        let answer: Answer = self
            .call(reqwest::Method::GET, &["webhooks"], &[], None)
            .await?;
        Ok(answer.webhooks)
    }

    pub async fn register_webhook(
        &self,
        url: &str,
        event_types: &[&str],
    ) -> Result<crate::ports::canopy::NewWebhook, CanopyError> {
        let body = serde_json::json!({"hookUrl": url, "eventTypes": event_types});
        self.call(reqwest::Method::POST, &["webhooks"], &[], Some(&body))
            .await
    }

    pub async fn update_webhook(
        &self,
        webhook_id: &str,
        event_types: &[&str],
        active: bool,
    ) -> Result<(), CanopyError> {
        let body = serde_json::json!({"isActive": active, "eventTypes": event_types});
        let _: serde_json::Value = self
            .call(
                reqwest::Method::PATCH,
                &["webhooks", webhook_id],
                &[],
                Some(&body),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_webhook(&self, webhook_id: &str) -> Result<(), CanopyError> {
        let _: serde_json::Value = self
            .call(
                reqwest::Method::DELETE,
                &["webhooks", webhook_id],
                &[],
                None,
            )
            .await?;
        Ok(())
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
        let body = self
            .get_body(
                &["pulls", pull_id],
                crate::domain::pull_data::MAX_PULL_BYTES,
            )
            .await?;
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
