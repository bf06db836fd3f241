//! The integrator's own HTTPS endpoint, signed per Standard Webhooks.

use crate::domain::contact::{Contact, Templates};
use crate::domain::notice::ChannelKind;
use crate::ports::channel::{Channel, ChannelError, Notice};
use async_trait::async_trait;
use serde_json::json;
use std::time::Duration;

/// The integrator's own HTTPS endpoint, signed per Standard Webhooks (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`).
pub struct OutboundWebhook {
    http: reqwest::Client,
    url: String,
    signer: standardwebhooks::Webhook,
}

impl OutboundWebhook {
    /// `secret` is a Standard Webhooks secret (`whsec_` + base64).
    pub fn new(url: String, secret: &str, timeout: Duration) -> Result<Self, String> {
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|e| format!("outbound webhook secret: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { http, url, signer })
    }
}

/// The outbound webhook's body.
pub fn webhook_payload(notice: &Notice, at: i64) -> serde_json::Value {
    json!({
        "type": "monitoring.reconnect_needed",
        "timestamp": at,
        "data": {
            "monitoring_id": notice.key.monitoring_id,
            "pull_id": notice.pull_id,
            "episode_started_at": notice.key.episode,
            "notice": notice.key.notice,
            "reconnect_link": notice.link,
            "carrier": notice.carrier,
            "contact": {
                "email": notice.contact.email,
                "phone": notice.contact.phone,
                "first_name": notice.contact.first_name,
            },
            "meta_data": notice.meta_data,
        }
    })
}

#[async_trait]
impl Channel for OutboundWebhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    /// The integrator may know its user without any contact detail of ours.
    fn reaches(&self, _contact: &Contact) -> bool {
        true
    }

    async fn send(&self, notice: &Notice, _templates: &Templates) -> Result<(), ChannelError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = serde_json::to_vec(&webhook_payload(notice, now))
            .map_err(|e| ChannelError::Permanent(e.to_string()))?;
        let id = notice.key.id();
        let signature = self
            .signer
            .sign(&id, now, &body)
            .map_err(|e| ChannelError::Permanent(e.to_string()))?;
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &id)
            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, now.to_string())
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ChannelError::Retryable(if e.is_timeout() {
                    "timeout".into()
                } else {
                    "connection failed".into()
                })
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 425 | 429 | 500..=599 => Err(ChannelError::Retryable(format!("HTTP {status}"))),
            _ => Err(ChannelError::Permanent(format!("HTTP {status}"))),
        }
    }
}
