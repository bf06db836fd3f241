//! An in-memory [`EventBus`] for unit tests: keeps what was published, refuses what AWS would
//! refuse (a request over [`MAX_EVENTS_PER_CALL`] entries or [`MAX_REQUEST_BYTES`], as a whole,
//! with [`REQUEST_INVALID`]), and can be told to fail, to refuse chosen events, or to take
//! time per call.

use crate::domain::business_events::BusinessEvent;
use crate::ports::bus::{
    event_entry_size, Delivery, EventBus, MAX_EVENTS_PER_CALL, MAX_REQUEST_BYTES, REQUEST_INVALID,
};
use crate::ports::PortError;
use async_trait::async_trait;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    published: Vec<BusinessEvent>,
    /// While set, every call fails as a whole (an outage).
    down: bool,
    /// Events with these ids are refused, each with its code.
    refuse: Vec<(String, String)>,
    /// How long each call takes (tokio time: a paused test clock advances through it).
    latency: Duration,
    /// When each call started (tokio time), in order.
    calls: Vec<tokio::time::Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryBus(Arc<Mutex<State>>);

impl MemoryBus {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn published(&self) -> Vec<BusinessEvent> {
        self.state().published.clone()
    }

    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Refuses the event `id` with `code` from now on.
    pub fn refuse(&self, id: &str, code: &str) {
        self.state().refuse.push((id.to_owned(), code.to_owned()));
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// When each PutEvents call started.
    pub fn calls(&self) -> Vec<tokio::time::Instant> {
        self.state().calls.clone()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, events: &[BusinessEvent]) -> Result<Vec<Delivery>, PortError> {
        let latency = {
            let mut state = self.state();
            state.calls.push(tokio::time::Instant::now());
            state.latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut state = self.state();
        if state.down {
            return Err(PortError::unavailable("events", "bus down"));
        }
        let bytes: usize = events.iter().map(event_entry_size).sum();
        if events.len() > MAX_EVENTS_PER_CALL || bytes >= MAX_REQUEST_BYTES {
            let code = REQUEST_INVALID.to_owned();
            return Ok(vec![Delivery::Refused { code }; events.len()]);
        }
        let mut deliveries = Vec::with_capacity(events.len());
        for e in events {
            match state.refuse.iter().find(|(id, _)| id == e.id()) {
                Some((_, code)) => deliveries.push(Delivery::Refused { code: code.clone() }),
                None => {
                    state.published.push(e.clone());
                    deliveries.push(Delivery::Published);
                }
            }
        }
        Ok(deliveries)
    }
}
