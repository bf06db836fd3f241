//! The channel port: one way of reaching a consumer. Adapters: email (SES v2), SMS (SNS), the
//! integrator's own HTTPS webhook (signed the Standard Webhooks way); and an in-memory fake.

#[cfg(any(feature = "email", feature = "sms"))]
use crate::domain::contact::MessageValues;
use crate::domain::contact::{Contact, Templates};
use crate::domain::notice::{ChannelKind, SendKey};
use async_trait::async_trait;
#[cfg(any(feature = "email", feature = "sms"))]
use aws_smithy_runtime_api::client::result::SdkError;
#[cfg(any(feature = "email", feature = "sms"))]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A message to send on one channel. Holds the link: never log it.
#[derive(Clone)]
pub struct Notice {
    pub key: SendKey,
    pub pull_id: String,
    pub contact: Contact,
    pub carrier: Option<String>,
    pub link: String,
    pub meta_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("retryable: {0}")]
    Retryable(String),
    /// The sending account cannot send (suspended, paused, unverified sender): an operator
    /// must act, then the retry succeeds. Retried, and logged as an error.
    #[error("sending account problem: {0}")]
    Account(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

/// One way of reaching the consumer.
#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Whether this channel can reach the contact (email needs an address, SMS a number).
    fn reaches(&self, contact: &Contact) -> bool;
    async fn send(&self, notice: &Notice, templates: &Templates) -> Result<(), ChannelError>;
}

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

#[cfg(any(feature = "email", feature = "sms"))]
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> ChannelError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    classify_code(err.as_service_error().and_then(|e| e.code()))
}

#[cfg(any(feature = "email", feature = "sms"))]
pub(crate) fn values(notice: &Notice) -> MessageValues<'_> {
    MessageValues {
        first_name: notice.contact.first_name.as_deref(),
        carrier: notice.carrier.as_deref(),
        link: &notice.link,
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
