//! In-memory queue adapters for unit tests: they keep what was asked of them.

use crate::domain::work::Outgoing;
use crate::ports::queue::{MessageVisibility, WorkQueue};
use crate::ports::PortError;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// A [`MessageVisibility`] that records the delays asked for.
#[derive(Debug, Clone, Default)]
pub struct MemoryVisibility(pub Arc<Mutex<Vec<(String, std::time::Duration)>>>);

#[async_trait]
impl MessageVisibility for MemoryVisibility {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), PortError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

/// A [`WorkQueue`] that keeps what was sent.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    pub sent: Arc<Mutex<Vec<Outgoing>>>,
    pub failing: Arc<Mutex<bool>>,
}

impl MemoryQueue {
    pub fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = failing;
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn enqueue(&self, work: &Outgoing) -> Result<(), PortError> {
        if *self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(PortError::unavailable("memory-queue", "send fails"));
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(work.clone());
        Ok(())
    }
}
