//! The work-queue port: where intake and the reminder pass put work, and how a consumer puts a
//! message back for later. The SQS adapter and an in-memory fake sit beside it.

use crate::domain::work::Outgoing;
use crate::ports::PortError;
use async_trait::async_trait;

/// Where work goes: the fetch and notify queues.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn enqueue(&self, work: &Outgoing) -> Result<(), PortError>;
}

/// Puts a received message back on its queue after `delay` (SQS: ChangeMessageVisibility).
#[async_trait]
pub trait MessageVisibility: Send + Sync {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), PortError>;
}
