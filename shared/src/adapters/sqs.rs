//! The SQS adapter: one standard queue per kind of work. Standard, not FIFO: FIFO queues
//! have no per-message delay (the POLICIES_AVAILABLE fallback needs one) and consumers are
//! idempotent anyway.

use super::aws::port_error;
use crate::ports::{PortError, WorkQueue};
use crate::work::{Outgoing, QueueKind};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

/// SQS's maximum per-message delay.
pub const MAX_DELAY_SECS: u64 = 900;

#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    fetch_queue_url: String,
    notify_queue_url: String,
}

impl SqsWorkQueue {
    pub fn new(client: Client, fetch_queue_url: String, notify_queue_url: String) -> Self {
        Self {
            client,
            fetch_queue_url,
            notify_queue_url,
        }
    }

    pub fn url(&self, kind: QueueKind) -> &str {
        match kind {
            QueueKind::Fetch => &self.fetch_queue_url,
            QueueKind::Notify => &self.notify_queue_url,
        }
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn enqueue(&self, work: &Outgoing) -> Result<(), PortError> {
        let kind = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(work.message.kind())
            .build()
            .map_err(|e| PortError::misconfigured("sqs", e.to_string()))?;
        let delay = work.delay.as_secs().min(MAX_DELAY_SECS) as i32;
        self.client
            .send_message()
            .queue_url(self.url(work.message.queue()))
            .message_body(work.message.to_json())
            .delay_seconds(delay)
            .message_attributes("kind", kind)
            .send()
            .await
            .map_err(|e| port_error("sqs", e))?;
        Ok(())
    }
}
