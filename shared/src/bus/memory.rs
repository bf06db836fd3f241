//! An in-memory [`EventBus`] for unit tests: keeps what was published, and can be told to fail.

use super::{Delivery, EventBus};
use crate::business_events::BusinessEvent;
use crate::ports::PortError;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    published: Arc<Mutex<Vec<BusinessEvent>>>,
    /// While set, every call fails as a whole (an outage).
    down: Arc<Mutex<bool>>,
}

impl MemoryBus {
    pub fn published(&self) -> Vec<BusinessEvent> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, events: &[BusinessEvent]) -> Result<Vec<Delivery>, PortError> {
        if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(PortError::unavailable("events", "bus down"));
        }
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events.iter().cloned());
        Ok(vec![Delivery::Published; events.len()])
    }
}
