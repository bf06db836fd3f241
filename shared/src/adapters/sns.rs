//! SMS through SNS (transactional).

use crate::domain::contact::{render, Contact, Templates};
use crate::domain::notice::ChannelKind;
use crate::ports::channel::{classify_code, values, Channel, ChannelError, Notice};
use async_trait::async_trait;

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
