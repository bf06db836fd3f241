//! The SQS adapter: one standard queue per kind of work. Standard, not FIFO: FIFO queues
//! have no per-message delay (the POLICIES_AVAILABLE fallback needs one) and consumers are
//! idempotent anyway.

use crate::adapters::aws::port_error;
use crate::domain::work::{Outgoing, QueueKind};
use crate::ports::queue::{MessageVisibility, WorkQueue};
use crate::ports::PortError;
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

/// Delays a received message's next delivery by changing its visibility timeout.
#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: Client,
    queue_url: String,
}

impl SqsVisibility {
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl MessageVisibility for SqsVisibility {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), PortError> {
        // SQS caps visibility at 12 hours.
        let secs = delay.as_secs().min(43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| port_error("sqs", e))?;
        Ok(())
    }
}
