//! The notification channels: email (SES v2), SMS (SNS) and the integrator's own HTTPS
//! webhook, signed the Standard Webhooks way.

use crate::contact::{render, Contact, MessageValues, Templates};
use crate::notifier::{Channel, ChannelError, ChannelKind, Notice};
use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use serde_json::json;
use std::time::Duration;

/// Error codes a retry will not fix: this message is wrong.
const PERMANENT_CODES: &[&str] = &[
    "MessageRejected",
    "NotFoundException",
    "BadRequestException",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterException",
    "ValidationError",
    "OptedOut",
];

/// Error codes of the sending account, not of the message: an operator fixes them (lifts the
/// suspension, resumes sending, verifies the domain) and the retry then succeeds.
const ACCOUNT_CODES: &[&str] = &[
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "KMSAccessDenied",
    "KMSDisabled",
    "AuthorizationError",
];

/// Classifies an SES or SNS error by its code; `None` for transport failures.
pub fn classify_code(code: Option<&str>) -> ChannelError {
    match code {
        Some(code) if ACCOUNT_CODES.contains(&code) => ChannelError::Account(code.to_owned()),
        Some(code) if PERMANENT_CODES.contains(&code) => ChannelError::Permanent(code.to_owned()),
        Some(code) => ChannelError::Retryable(code.to_owned()),
        None => ChannelError::Retryable("transport error".to_owned()),
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> ChannelError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    classify_code(err.as_service_error().and_then(|e| e.code()))
}

fn values(notice: &Notice) -> MessageValues<'_> {
    MessageValues {
        first_name: notice.contact.first_name.as_deref(),
        carrier: notice.carrier.as_deref(),
        link: &notice.link,
    }
}

/// Email through SES v2.
pub struct SesEmail {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesEmail {
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Self {
        Self { client, from }
    }
}

fn content(text: String) -> Result<Content, ChannelError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| ChannelError::Permanent(e.to_string()))
}

#[async_trait]
impl Channel for SesEmail {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn reaches(&self, contact: &Contact) -> bool {
        contact.email.is_some()
    }

    async fn send(&self, notice: &Notice, templates: &Templates) -> Result<(), ChannelError> {
        let to = notice
            .contact
            .email
            .clone()
            .ok_or_else(|| ChannelError::Permanent("no email address".into()))?;
        let v = values(notice);
        let message = Message::builder()
            .subject(content(render(&templates.email_subject, &v, false))?)
            .body(
                Body::builder()
                    .text(content(render(&templates.email_text, &v, false))?)
                    .html(content(render(&templates.email_html, &v, true))?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// SMS through SNS (transactional).
pub struct SnsSms {
    client: aws_sdk_sns::Client,
}

impl SnsSms {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Channel for SnsSms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn reaches(&self, contact: &Contact) -> bool {
        contact.phone.is_some()
    }

    async fn send(&self, notice: &Notice, templates: &Templates) -> Result<(), ChannelError> {
        let phone = notice
            .contact
            .phone
            .clone()
            .ok_or_else(|| ChannelError::Permanent("no phone number".into()))?;
        let sms_type = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|e| ChannelError::Permanent(e.to_string()))?;
        self.client
            .publish()
            .phone_number(phone)
            .message(render(&templates.sms, &values(notice), false))
            .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
            .send()
            .await
            .map_err(|e| {
                classify_code(
                    e.as_service_error()
                        .and_then(|s| aws_sdk_sns::error::ProvideErrorMetadata::code(s)),
                )
            })?;
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_problems_are_retried_message_problems_are_not() {
        for code in [
            "AccountSuspendedException",
            "SendingPausedException",
            "MailFromDomainNotVerifiedException",
        ] {
            assert!(
                matches!(classify_code(Some(code)), ChannelError::Account(_)),
                "{code}"
            );
        }
        for code in ["MessageRejected", "InvalidParameter", "BadRequestException"] {
            assert!(
                matches!(classify_code(Some(code)), ChannelError::Permanent(_)),
                "{code}"
            );
        }
        for code in [Some("Throttling"), Some("TooManyRequestsException"), None] {
            assert!(
                matches!(classify_code(code), ChannelError::Retryable(_)),
                "{code:?}"
            );
        }
    }
}
