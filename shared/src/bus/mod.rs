//! The event-bus port: where business events ([`crate::business_events`]) go. The EventBridge
//! adapter and an in-memory fake sit beside it.

#[cfg(feature = "eventbridge")]
pub mod eventbridge;
pub mod memory;

use crate::business_events::BusinessEvent;
use crate::ports::PortError;
use async_trait::async_trait;

/// Most events one PutEvents call takes.
pub const MAX_EVENTS_PER_CALL: usize = 10;

/// What became of one event of a [`EventBus::publish`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Published,
    /// The bus refused this entry (throttled, internal error, ...): try it again later.
    Refused {
        code: String,
    },
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes up to [`MAX_EVENTS_PER_CALL`] events; one [`Delivery`] per event, in order.
    /// `Err` means the call failed as a whole and nothing is known to be published.
    async fn publish(&self, events: &[BusinessEvent]) -> Result<Vec<Delivery>, PortError>;
}
