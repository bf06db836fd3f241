//! Email through SES v2.

use crate::domain::contact::{render, Contact, Templates};
use crate::domain::notice::ChannelKind;
use crate::ports::channel::{classify, values, Channel, ChannelError, Notice};
use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

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
