//! The outbox: no business event is lost when EventBridge fails.
//!
//! An event is recorded in the same DynamoDB write as the state change that causes it, as an
//! attribute of the item that changed (a change set, a monitoring, a pull), and the item is
//! marked pending (a sparse index). The table's stream hands each new pending item to the
//! publisher within a second; a scheduled sweep publishes whatever has waited longer than
//! [`OutboxConfig::grace`] (an EventBridge outage, a stream batch that failed). After
//! PutEvents accepts an event, it is removed from its item.
//!
//! Delivery is at least once: a crash between PutEvents and the removal, or the stream and a
//! sweep racing, publishes an event again, with the same `id` ([`crate::business_events`]).

use crate::budget::{Deadline, OUTBOX_ITEM_BUDGET};
use crate::bus::{Delivery, EventBus, MAX_EVENTS_PER_CALL};
use crate::ports::{Clock, PortError};
use crate::store::{OutboxStore, PendingOutbox};
use crate::time_fmt::format_ts;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// PutEvents calls per batch of events before they are left for a later sweep.
    pub attempts: u32,
    /// The pause after the first failed call; it doubles after each.
    pub first_pause: Duration,
    /// A sweep leaves events younger than this to the stream.
    pub grace: Duration,
    /// Items read per sweep page.
    pub page: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_pause: Duration::from_millis(200),
            grace: Duration::from_secs(60),
            page: 25,
        }
    }
}

/// What one item's publication did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    pub published: usize,
    /// Events still waiting (the bus refused them every time).
    pub left: usize,
}

impl std::ops::AddAssign for Published {
    fn add_assign(&mut self, o: Self) {
        self.published += o.published;
        self.left += o.left;
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub items: usize,
    pub events: Published,
    /// `false` when the sweep stopped early: the bus kept failing, or time ran out.
    pub complete: bool,
}

pub struct OutboxPublisher<S, B, C> {
    store: S,
    bus: B,
    clock: C,
    config: OutboxConfig,
}

impl<S: OutboxStore, B: EventBus, C: Clock> OutboxPublisher<S, B, C> {
    pub fn new(store: S, bus: B, clock: C, config: OutboxConfig) -> Self {
        Self {
            store,
            bus,
            clock,
            config,
        }
    }

    /// Publishes an item's events (retrying each batch a few times) and removes those
    /// published from the item.
    pub async fn publish_item(&self, item: &PendingOutbox) -> Result<Published, PortError> {
        let mut published_ids = Vec::new();
        let mut left = 0;
        for batch in item.events.chunks(MAX_EVENTS_PER_CALL) {
            let mut waiting: Vec<_> = batch.iter().collect();
            let mut pause = self.config.first_pause;
            for attempt in 1..=self.config.attempts {
                let events: Vec<_> = waiting.iter().map(|e| (*e).clone()).collect();
                match self.bus.publish(&events).await {
                    Ok(deliveries) => {
                        let mut still = Vec::new();
                        for (event, delivery) in waiting.into_iter().zip(deliveries) {
                            match delivery {
                                Delivery::Published => published_ids.push(event.id().to_owned()),
                                Delivery::Refused { code } => {
                                    tracing::warn!(
                                        event_id = event.id(),
                                        code,
                                        "event refused by the bus"
                                    );
                                    still.push(event);
                                }
                            }
                        }
                        waiting = still;
                    }
                    Err(e) => {
                        tracing::warn!(pk = %item.pk, attempt, error = %e, "PutEvents failed")
                    }
                }
                if waiting.is_empty() {
                    break;
                }
                if attempt < self.config.attempts {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
            left += waiting.len();
        }
        if !published_ids.is_empty() {
            self.store.acknowledge(item, &published_ids).await?;
        }
        crate::metrics::events(published_ids.len(), left);
        Ok(Published {
            published: published_ids.len(),
            left,
        })
    }

    /// Publishes what has waited longer than the grace period, oldest first, until none is
    /// left, the bus keeps failing, or `deadline` passes.
    pub async fn sweep(&self, deadline: Deadline) -> Result<SweepReport, PortError> {
        let mut report = SweepReport::default();
        loop {
            let cutoff = self.clock.now() - self.config.grace;
            let page = self
                .store
                .pending(&format_ts(cutoff), self.config.page)
                .await?;
            if page.is_empty() {
                report.complete = true;
                return Ok(report);
            }
            for item in &page {
                if !deadline.allows(OUTBOX_ITEM_BUDGET) {
                    return Ok(report);
                }
                let done = self.publish_item(item).await?;
                report.items += 1;
                report.events += done;
                if done.left > 0 {
                    // The bus is failing: the next sweep tries again.
                    return Ok(report);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::business_events::reconnect_needed;
    use crate::ports::FixedClock;
    use async_trait::async_trait;
    use std::sync::{Arc, Mutex};

    #[derive(Default, Clone)]
    struct Items(Arc<Mutex<Vec<PendingOutbox>>>);

    #[async_trait]
    impl OutboxStore for Items {
        async fn pending(&self, _: &str, limit: usize) -> Result<Vec<PendingOutbox>, PortError> {
            let items = self.0.lock().unwrap();
            Ok(items.iter().take(limit).cloned().collect())
        }
        async fn acknowledge(&self, item: &PendingOutbox, ids: &[String]) -> Result<(), PortError> {
            let mut items = self.0.lock().unwrap();
            for i in items.iter_mut().filter(|i| i.pk == item.pk) {
                i.events.retain(|e| !ids.iter().any(|id| id == e.id()));
            }
            items.retain(|i| !i.events.is_empty());
            Ok(())
        }
    }

    fn item(n: usize) -> PendingOutbox {
        PendingOutbox {
            pk: format!("MONITORING#{n}"),
            sk: "STATE".into(),
            version: "v".into(),
            events: (0..n)
                .map(|i| reconnect_needed(&format!("m{n}"), &format!("p{i}"), "t"))
                .collect(),
        }
    }

    fn publisher(items: &Items, bus: &MemoryBus) -> OutboxPublisher<Items, MemoryBus, FixedClock> {
        let config = OutboxConfig {
            first_pause: Duration::from_millis(1),
            ..OutboxConfig::default()
        };
        OutboxPublisher::new(
            items.clone(),
            bus.clone(),
            FixedClock::at_unix(1_800_000_000),
            config,
        )
    }

    #[tokio::test]
    async fn a_sweep_publishes_everything_once_the_bus_is_back() {
        let items = Items::default();
        items.0.lock().unwrap().extend([item(3), item(12)]);
        let bus = MemoryBus::default();
        let p = publisher(&items, &bus);
        bus.set_down(true);
        let down = p.sweep(Deadline::NONE).await.unwrap();
        assert!(!down.complete);
        assert_eq!(
            down.events,
            Published {
                published: 0,
                left: 3
            }
        );
        assert_eq!(items.0.lock().unwrap().len(), 2, "nothing removed");
        bus.set_down(false);
        let up = p.sweep(Deadline::NONE).await.unwrap();
        assert!(up.complete);
        assert_eq!(
            up.events,
            Published {
                published: 15,
                left: 0
            }
        );
        let mut ids: Vec<_> = bus.published().iter().map(|e| e.id().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            15,
            "each event once, 12 of them in two PutEvents calls"
        );
        assert!(items.0.lock().unwrap().is_empty());
    }
}
