//! The outbox: no business event is lost when EventBridge fails.
//!
//! An event is recorded in the same DynamoDB write as the state change that causes it, as an
//! attribute of the item that changed (a change set, a monitoring, a pull), and the item is
//! marked pending (a sparse index, its partition key sharded by item: see
//! [`crate::domain::shard`]). The table's stream hands each new pending item to the publisher within a
//! second; a scheduled sweep publishes whatever has waited longer than
//! [`OutboxConfig::grace`] (an EventBridge outage, a stream batch that failed). After
//! PutEvents accepts an event, it is removed from its item.
//!
//! Requests are cut by AWS's limits (10 entries, 256 KB by the entry-size formula: see
//! [`crate::ports::bus`]); an event too large for any request is published shrunk
//! ([`BusinessEvent::shrunk`]: its ids and a pointer to the change set). Every try of an item
//! fits its budget ([`OUTBOX_ITEM_BUDGET`]) and the invocation's deadline, or is not started.
//!
//! The sweep reads every shard of the index page by page, oldest first, and never stops at an
//! item the bus refuses: such an item counts a refused pass, and after
//! [`OutboxConfig::park_after`] of them it is parked (out of the index, its events kept, an
//! `EventsParked` metric and alarm), so nothing behind it waits. A pending mark with no event
//! left is cleared.
//!
//! Delivery is at least once: a crash between PutEvents and the removal, or the stream and a
//! sweep racing, publishes an event again, with the same `id` ([`crate::domain::business_events`]).

use crate::app::budget::AWS_OPERATION_TIMEOUT;
use crate::app::budget::{Deadline, OUTBOX_ACK_BUDGET, OUTBOX_ITEM_BUDGET, PUT_EVENTS_TRY};
use crate::domain::business_events::BusinessEvent;
use crate::domain::retry::RetryPolicy;
use crate::domain::shard::SHARDS;
use crate::domain::time_fmt::format_ts;
use crate::ports::bus::{
    event_entry_size, fits_one_request, is_transient, pack, Delivery, EventBus,
};
use crate::ports::store::{Counted, OutboxStore, PendingKey, PendingOutbox};
use crate::ports::{Clock, PortError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// PutEvents calls per request before its events are left for a later pass.
    pub attempts: u32,
    /// The pause after the first failed call; it doubles after each.
    pub first_pause: Duration,
    /// A sweep leaves events younger than this to the stream.
    pub grace: Duration,
    /// Items read per shard per sweep page.
    pub page: usize,
    /// Shards of the index read at once.
    pub shard_reads: usize,
    /// Sweeps that find an item's events refused before it is parked.
    pub park_after: u32,
    /// Items in a row left by a failing bus (not refusing them: unreachable, throttling) before
    /// a sweep stops for this pass.
    pub outage_after: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_pause: Duration::from_millis(200),
            grace: Duration::from_secs(60),
            page: 25,
            shard_reads: 4,
            park_after: 5,
            outage_after: 3,
        }
    }
}

/// What one item's publication did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    pub published: usize,
    /// Events still waiting (the bus refused or failed them, or time ran out).
    pub left: usize,
}

impl std::ops::AddAssign for Published {
    fn add_assign(&mut self, o: Self) {
        self.published += o.published;
        self.left += o.left;
    }
}

/// One item's publication in detail: why events were left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemOutcome {
    pub events: Published,
    /// Events the bus refused as themselves at fault (invalid, too large), on the last try.
    pub refused: usize,
    /// Events published in their shrunk form.
    pub shrunk: usize,
    /// A try was not started for lack of time.
    pub out_of_time: bool,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub items: usize,
    pub events: Published,
    /// Items parked by this sweep (their events refused [`OutboxConfig::park_after`] times).
    pub parked: usize,
    /// Pending marks cleared that carried no event.
    pub cleared: usize,
    /// Index pages read (one Query of one shard each).
    pub pages: usize,
    /// Every shard read to its end and nothing left waiting: `false` when the bus refused or
    /// failed events, or time ran out.
    pub complete: bool,
}

/// Where the sweep's reading of one shard stands.
#[derive(Debug, Clone)]
enum ShardCursor {
    Start,
    After(PendingKey),
    Done,
}

/// The events as they go on the bus: each in its full form if it fits a request, shrunk
/// otherwise.
pub fn bus_forms(events: &[BusinessEvent]) -> Vec<(BusinessEvent, bool)> {
    events
        .iter()
        .map(|e| match fits_one_request(event_entry_size(e)) {
            true => (e.clone(), false),
            false => (e.shrunk(), true),
        })
        .collect()
}

/// Whether a try that may wait `pause` first fits the item's budget: the call, and the
/// acknowledgement after it.
fn try_fits(item_deadline: &Deadline, pause: Duration) -> bool {
    item_deadline.allows(pause + PUT_EVENTS_TRY + OUTBOX_ACK_BUDGET)
}

/// Whether an item is worth starting before `deadline`: at least one try and its
/// acknowledgement fit.
pub fn item_can_start(deadline: &Deadline) -> bool {
    try_fits(deadline, Duration::ZERO)
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

    /// Publishes an item's events in requests within AWS's limits (retrying each a few times)
    /// and removes those published from the item. A try is started only if it and the
    /// acknowledgement fit before `deadline` and within [`OUTBOX_ITEM_BUDGET`]; what is not
    /// published stays on the item.
    pub async fn publish_item(
        &self,
        item: &PendingOutbox,
        deadline: Deadline,
    ) -> Result<ItemOutcome, PortError> {
        let item_deadline = deadline.within(OUTBOX_ITEM_BUDGET);
        let forms = bus_forms(&item.events);
        let sizes: Vec<usize> = forms.iter().map(|(e, _)| event_entry_size(e)).collect();
        let mut outcome = ItemOutcome::default();
        let mut published_ids = Vec::new();
        for request in pack(&sizes) {
            let mut waiting: Vec<&(BusinessEvent, bool)> = forms[request].iter().collect();
            let mut refused = 0;
            let backoff = RetryPolicy {
                base: self.config.first_pause,
                cap: OUTBOX_ITEM_BUDGET,
            };
            for attempt in 1..=self.config.attempts {
                let pause = if attempt == 1 {
                    Duration::ZERO
                } else {
                    backoff.backoff(attempt - 1)
                };
                if outcome.out_of_time || !try_fits(&item_deadline, pause) {
                    outcome.out_of_time = true;
                    break;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let events: Vec<_> = waiting.iter().map(|(e, _)| e.clone()).collect();
                match self.bus.publish(&events).await {
                    Ok(deliveries) => {
                        let mut still = Vec::new();
                        refused = 0;
                        for (form, delivery) in waiting.into_iter().zip(deliveries) {
                            match delivery {
                                Delivery::Published => {
                                    published_ids.push(form.0.id().to_owned());
                                    outcome.shrunk += usize::from(form.1);
                                }
                                Delivery::Refused { code } => {
                                    tracing::warn!(
                                        event_id = form.0.id(),
                                        code,
                                        "event refused by the bus"
                                    );
                                    refused += usize::from(!is_transient(&code));
                                    still.push(form);
                                }
                            }
                        }
                        waiting = still;
                    }
                    Err(e) => {
                        refused = 0;
                        tracing::warn!(pk = %item.pk, attempt, error = %e, "PutEvents failed");
                    }
                }
                if waiting.is_empty() {
                    break;
                }
            }
            outcome.events.left += waiting.len();
            outcome.refused += refused;
        }
        if !published_ids.is_empty() {
            self.store.acknowledge(item, &published_ids).await?;
        }
        outcome.events.published = published_ids.len();
        crate::app::metrics::events(outcome.events.published, outcome.events.left);
        Ok(outcome)
    }

    /// Reads the next page of every shard not read to its end, at most
    /// [`OutboxConfig::shard_reads`] at once, and merges them oldest first.
    async fn next_pages(
        &self,
        cursors: &mut [ShardCursor],
        cutoff: &str,
    ) -> Result<(Vec<PendingOutbox>, usize), PortError> {
        let reads: Vec<(u32, Option<PendingKey>)> = cursors
            .iter()
            .enumerate()
            .filter_map(|(shard, c)| {
                let shard = u32::try_from(shard).ok()?;
                match c {
                    ShardCursor::Start => Some((shard, None)),
                    ShardCursor::After(k) => Some((shard, Some(k.clone()))),
                    ShardCursor::Done => None,
                }
            })
            .collect();
        let pages: Vec<_> = stream::iter(reads)
            .map(|(shard, after)| async move {
                self.store
                    .pending(shard, cutoff, self.config.page, after.as_ref())
                    .await
                    .map(|page| (shard, page))
            })
            .buffer_unordered(self.config.shard_reads.max(1))
            .try_collect()
            .await?;
        let read = pages.len();
        let mut items = Vec::new();
        for (shard, page) in pages {
            if let Some(c) = usize::try_from(shard).ok().and_then(|s| cursors.get_mut(s)) {
                *c = page.next.map_or(ShardCursor::Done, ShardCursor::After);
            }
            items.extend(page.items);
        }
        items.sort_by(|a, b| (&a.at, &a.pk, &a.sk).cmp(&(&b.at, &b.pk, &b.sk)));
        Ok((items, read))
    }

    /// Publishes what has waited longer than the grace period, every shard page by page,
    /// oldest first, until all is read or `deadline` passes. An item the bus refuses counts a
    /// refused pass (parked after [`OutboxConfig::park_after`]) and the sweep goes on; a bus
    /// failing [`OutboxConfig::outage_after`] items in a row ends the pass.
    pub async fn sweep(&self, deadline: Deadline) -> Result<SweepReport, PortError> {
        let mut report = SweepReport::default();
        let cutoff = format_ts(self.clock.now() - self.config.grace);
        let mut cursors = vec![ShardCursor::Start; SHARDS as usize];
        let mut failing_in_a_row = 0;
        loop {
            if cursors.iter().all(|c| matches!(c, ShardCursor::Done)) {
                report.complete = report.events.left == 0;
                return Ok(report);
            }
            if !deadline.allows(AWS_OPERATION_TIMEOUT) {
                return Ok(report);
            }
            let (page, read) = self.next_pages(&mut cursors, &cutoff).await?;
            report.pages += read;
            for item in &page {
                if item.events.is_empty() {
                    // A mark whose events are gone (published by a racing pass, or written
                    // without any): it only costs reads.
                    if !deadline.allows(OUTBOX_ACK_BUDGET) {
                        return Ok(report);
                    }
                    self.store.acknowledge(item, &[]).await?;
                    report.cleared += 1;
                    continue;
                }
                if !item_can_start(&deadline) {
                    return Ok(report);
                }
                let done = self.publish_item(item, deadline).await?;
                report.items += 1;
                report.events += done.events;
                if done.events.left == 0 {
                    failing_in_a_row = 0;
                    continue;
                }
                if done.out_of_time {
                    return Ok(report);
                }
                if done.refused > 0 {
                    // The bus answers, and refuses this item's events: count it and go on.
                    failing_in_a_row = 0;
                    let now = format_ts(self.clock.now());
                    if let Counted::Parked = self
                        .store
                        .count_refusal(item, self.config.park_after, &now)
                        .await?
                    {
                        tracing::error!(pk = %item.pk, sk = %item.sk, events = item.events.len(),
                            "outbox item parked: its events were refused on every pass");
                        crate::app::metrics::events_parked(1);
                        report.parked += 1;
                    }
                    continue;
                }
                failing_in_a_row += 1;
                if failing_in_a_row >= self.config.outage_after.max(1) {
                    // The bus is failing (not refusing): the next sweep tries again.
                    return Ok(report);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::budget::FINISH_MARGIN;
    use crate::domain::business_events::{reconnect_needed, DetailType};
    use crate::fakes::bus::MemoryBus;
    use crate::ports::bus::MAX_REQUEST_BYTES;
    use crate::ports::store::PendingPage;
    use crate::ports::FixedClock;
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    /// The outbox index in memory, every item in shard 0 (the sweep reads every shard).
    #[derive(Default, Clone)]
    struct Items {
        pending: Arc<Mutex<Vec<PendingOutbox>>>,
        parked: Arc<Mutex<Vec<PendingOutbox>>>,
    }

    fn key_of(i: &PendingOutbox) -> (String, String, String) {
        (i.at.clone(), i.pk.clone(), i.sk.clone())
    }

    #[async_trait]
    impl OutboxStore for Items {
        async fn pending(
            &self,
            shard: u32,
            cutoff: &str,
            limit: usize,
            after: Option<&PendingKey>,
        ) -> Result<PendingPage, PortError> {
            let mut items: Vec<PendingOutbox> = self
                .pending
                .lock()
                .unwrap()
                .iter()
                .filter(|i| shard == 0 && i.at.as_str() < cutoff)
                .filter(|i| {
                    after.is_none_or(|a| key_of(i) > (a.at.clone(), a.pk.clone(), a.sk.clone()))
                })
                .cloned()
                .collect();
            items.sort_by_key(key_of);
            let more = items.len() > limit;
            items.truncate(limit);
            let next = items.last().filter(|_| more).map(|i| PendingKey {
                pk: i.pk.clone(),
                sk: i.sk.clone(),
                at: i.at.clone(),
            });
            Ok(PendingPage { items, next })
        }
        async fn acknowledge(&self, item: &PendingOutbox, ids: &[String]) -> Result<(), PortError> {
            let mut items = self.pending.lock().unwrap();
            for i in items.iter_mut().filter(|i| i.pk == item.pk) {
                i.events.retain(|e| !ids.iter().any(|id| id == e.id()));
            }
            items.retain(|i| !i.events.is_empty());
            Ok(())
        }
        async fn count_refusal(
            &self,
            item: &PendingOutbox,
            park_after: u32,
            _at: &str,
        ) -> Result<Counted, PortError> {
            let mut items = self.pending.lock().unwrap();
            let Some(i) = items.iter().position(|i| i.pk == item.pk) else {
                return Ok(Counted::Attempts(0));
            };
            items[i].attempts += 1;
            if items[i].attempts >= park_after {
                self.parked.lock().unwrap().push(items.remove(i));
                return Ok(Counted::Parked);
            }
            Ok(Counted::Attempts(items[i].attempts))
        }
    }

    fn item(n: usize) -> PendingOutbox {
        PendingOutbox {
            pk: format!("MONITORING#{n}"),
            sk: "STATE".into(),
            version: "v".into(),
            at: format!("2026-01-01T00:00:{n:02}Z"),
            attempts: 0,
            events: (0..n)
                .map(|i| reconnect_needed(&format!("m{n}"), &format!("p{i}"), "t"))
                .collect(),
        }
    }

    /// An event whose entry is about `kb` KB.
    fn event_of(kb: usize, n: usize) -> BusinessEvent {
        let mut e = reconnect_needed("m", &format!("big{n}"), "t");
        e.detail_type = DetailType::PolicyChanged;
        e.detail["changes"] = json!([{"kind": "premium_changed", "pad": "x".repeat(kb * 1024)}]);
        e
    }

    fn config() -> OutboxConfig {
        OutboxConfig {
            first_pause: Duration::from_millis(1),
            grace: Duration::ZERO,
            ..OutboxConfig::default()
        }
    }

    fn publisher_with(
        items: &Items,
        bus: &MemoryBus,
        config: OutboxConfig,
    ) -> OutboxPublisher<Items, MemoryBus, FixedClock> {
        OutboxPublisher::new(
            items.clone(),
            bus.clone(),
            FixedClock::at_unix(1_800_000_000),
            config,
        )
    }

    fn publisher(items: &Items, bus: &MemoryBus) -> OutboxPublisher<Items, MemoryBus, FixedClock> {
        publisher_with(items, bus, config())
    }

    fn ids(events: &[BusinessEvent]) -> Vec<String> {
        let mut ids: Vec<_> = events.iter().map(|e| e.id().to_owned()).collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_sweep_publishes_everything_once_the_bus_is_back() {
        let items = Items::default();
        items.pending.lock().unwrap().extend([item(3), item(12)]);
        let bus = MemoryBus::default();
        let p = publisher(&items, &bus);
        bus.set_down(true);
        let down = p.sweep(Deadline::NONE).await.unwrap();
        assert!(!down.complete);
        assert_eq!(down.events.published, 0);
        assert_eq!(down.parked, 0, "an outage counts against no item");
        assert_eq!(items.pending.lock().unwrap().len(), 2, "nothing removed");
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
        let mut published = ids(&bus.published());
        published.dedup();
        assert_eq!(published.len(), 15, "each event once");
        assert!(items.pending.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn events_go_out_in_requests_within_256_kb() {
        let items = Items::default();
        let mut big = item(0);
        // 11 events of about 27 KB: ten of them would make a request over 256 KB.
        big.events = (0..11).map(|n| event_of(27, n)).collect();
        items.pending.lock().unwrap().push(big.clone());
        let bus = MemoryBus::default();
        let report = publisher(&items, &bus).sweep(Deadline::NONE).await.unwrap();
        assert_eq!(report.events.published, 11);
        assert_eq!(
            bus.calls().len(),
            2,
            "9 + 2, each under the limit, none refused"
        );
        assert_eq!(ids(&bus.published()), ids(&big.events));
    }

    #[tokio::test]
    async fn an_event_too_large_for_any_request_is_published_shrunk() {
        let items = Items::default();
        let mut it = item(1);
        let huge = event_of(300, 0);
        it.events.push(huge.clone());
        items.pending.lock().unwrap().push(it);
        let bus = MemoryBus::default();
        let report = publisher(&items, &bus).sweep(Deadline::NONE).await.unwrap();
        assert_eq!(report.events.published, 2);
        assert!(items.pending.lock().unwrap().is_empty());
        let sent = bus.published();
        let shrunk = sent
            .iter()
            .find(|e| e.id() == huge.id())
            .expect("published");
        assert_eq!(shrunk.detail["truncated"], true);
        assert!(shrunk.detail.get("changes").is_none());
        assert_eq!(
            shrunk.detail["change_set"]["path"],
            "/v1/monitorings/m/changes"
        );
        assert!(event_entry_size(shrunk) < MAX_REQUEST_BYTES);
    }

    #[tokio::test]
    async fn an_item_refused_on_every_pass_is_parked_and_the_sweep_goes_on() {
        let items = Items::default();
        let (poison, behind) = (item(1), item(2));
        items
            .pending
            .lock()
            .unwrap()
            .extend([poison.clone(), behind.clone()]);
        let bus = MemoryBus::default();
        bus.refuse(poison.events[0].id(), "MalformedDetail");
        let p = publisher(&items, &bus);
        let first = p.sweep(Deadline::NONE).await.unwrap();
        assert_eq!(first.events.published, 2, "the item behind is published");
        assert_eq!(first.parked, 0);
        let mut parked = 0;
        for _ in 1..config().park_after {
            parked += p.sweep(Deadline::NONE).await.unwrap().parked;
        }
        assert_eq!(
            parked,
            1,
            "parked on the {}th refused pass",
            config().park_after
        );
        assert!(items.pending.lock().unwrap().is_empty(), "out of the index");
        let kept = items.parked.lock().unwrap();
        assert_eq!(kept[0].events, poison.events, "its events kept");
        // Every pass tried it once: three tries each.
        assert_eq!(bus.calls().len(), 1 + 3 * config().park_after as usize);
    }

    #[tokio::test]
    async fn a_sweep_pages_past_items_it_cannot_publish() {
        let items = Items::default();
        let all: Vec<_> = (1..=6).map(item).collect();
        items.pending.lock().unwrap().extend(all.clone());
        let bus = MemoryBus::default();
        // The two oldest fill the first page and are refused.
        for e in all[0].events.iter().chain(&all[1].events) {
            bus.refuse(e.id(), "MalformedDetail");
        }
        let p = publisher_with(
            &items,
            &bus,
            OutboxConfig {
                page: 2,
                ..config()
            },
        );
        let report = p.sweep(Deadline::NONE).await.unwrap();
        assert!(
            report.pages >= 3 + 15,
            "{report:?}: 3 pages of shard 0, 1 of each other"
        );
        assert_eq!(report.events.published, 3 + 4 + 5 + 6);
        let left: Vec<String> = items
            .pending
            .lock()
            .unwrap()
            .iter()
            .map(|i| i.pk.clone())
            .collect();
        assert_eq!(left, ["MONITORING#1", "MONITORING#2"]);
    }

    #[tokio::test]
    async fn a_pending_mark_without_events_is_cleared() {
        let items = Items::default();
        let mut empty = item(0);
        empty.pk = "PULL#x".into();
        items.pending.lock().unwrap().extend([empty, item(2)]);
        let bus = MemoryBus::default();
        let report = publisher(&items, &bus).sweep(Deadline::NONE).await.unwrap();
        assert_eq!(report.cleared, 1);
        assert_eq!(report.events.published, 2);
        assert!(items.pending.lock().unwrap().is_empty());
        assert!(report.complete);
    }

    /// Time budgets nest: with a bus that takes the SDK's whole operation timeout
    /// and fails, an item of two requests starts only the tries that, with the
    /// acknowledgement, end before the deadline. (Tokio's paused clock: no real waiting.)
    #[tokio::test(start_paused = true)]
    async fn no_put_events_try_is_started_that_could_not_finish_before_the_deadline() {
        let items = Items::default();
        items.pending.lock().unwrap().push(item(12));
        let bus = MemoryBus::default();
        bus.set_down(true);
        bus.set_latency(PUT_EVENTS_TRY);
        let p = publisher(&items, &bus);
        let left = Duration::from_secs(45);
        let end = tokio::time::Instant::now() + left;
        let report = p.sweep(Deadline::after(left)).await.unwrap();
        let calls = bus.calls();
        assert!(!calls.is_empty());
        for start in &calls {
            assert!(
                *start + PUT_EVENTS_TRY + OUTBOX_ACK_BUDGET + FINISH_MARGIN <= end,
                "a try started {:?} before the deadline",
                end - *start
            );
        }
        assert_eq!(report.events.left, 12, "unfinished: it stays pending");
        assert_eq!(items.pending.lock().unwrap().len(), 1);

        // The stream's way in: the same item, the same rule.
        let bus2 = MemoryBus::default();
        bus2.set_down(true);
        bus2.set_latency(PUT_EVENTS_TRY);
        let p2 = publisher(&items, &bus2);
        let end = tokio::time::Instant::now() + left;
        let done = p2
            .publish_item(&item(12), Deadline::after(left))
            .await
            .unwrap();
        assert!(done.out_of_time);
        for start in bus2.calls() {
            assert!(start + PUT_EVENTS_TRY + OUTBOX_ACK_BUDGET + FINISH_MARGIN <= end);
        }
    }
}
