//! The EventBridge adapter: PutEvents on the stack's custom bus, source
//! [`crate::domain::business_events::SOURCE`].

use crate::adapters::aws::port_error;
use crate::domain::business_events::{BusinessEvent, SOURCE};
use crate::ports::bus::{Delivery, EventBus, MAX_EVENTS_PER_CALL, REQUEST_INVALID};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    /// The bus's name or ARN.
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: String) -> Self {
        Self { client, bus }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[BusinessEvent]) -> Result<Vec<Delivery>, PortError> {
        if events.len() > MAX_EVENTS_PER_CALL {
            return Err(PortError::misconfigured(
                "events",
                format!("{} events in one PutEvents call", events.len()),
            ));
        }
        let entries = events
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.detail_type.as_str())
                    .detail(e.detail_json())
                    .build()
            })
            .collect();
        let answer = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(answer) => answer,
            // The request itself is refused (too large, malformed): these entries are at
            // fault, not the bus.
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some(REQUEST_INVALID) => {
                let code = REQUEST_INVALID.to_owned();
                return Ok(vec![Delivery::Refused { code }; events.len()]);
            }
            Err(e) => return Err(port_error("events", e)),
        };
        let results = answer.entries();
        Ok((0..events.len())
            .map(|i| match results.get(i) {
                Some(r) if r.error_code().is_none() && r.event_id().is_some() => {
                    Delivery::Published
                }
                Some(r) => Delivery::Refused {
                    code: r.error_code().unwrap_or("Unknown").to_owned(),
                },
                // An answer with fewer entries than asked: treat the rest as not published.
                None => Delivery::Refused {
                    code: "MissingResult".to_owned(),
                },
            })
            .collect())
    }
}
