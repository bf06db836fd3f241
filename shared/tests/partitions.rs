//! A model of DynamoDB partition load: one second of 2,000 webhooks, each write's partition
//! keys (table and every index the written item is in) derived from the store's own key
//! builders, counted per partition. A table or index partition takes about 1,000 write units a
//! second, and an index partition that falls behind throttles writes to the table (principle
//! 13), so no partition may take more than that.
//!
//! The writes per webhook follow the flow (intake, pull-fetcher, reconnect-notifier and the
//! event publisher): each entry below names the code that makes it.

use canopy_monitor::adapters::dynamo::monitorings::status_shard_key;
use canopy_monitor::adapters::dynamo::operations::{recent_day, recent_key};
use canopy_monitor::adapters::dynamo::outbox::pending_partition;
use canopy_monitor::adapters::dynamo::{event_pk, monitoring_pk, pull_pk};
use canopy_monitor::domain::records::ACTIVE;
use std::collections::HashMap;

const WEBHOOKS_PER_SECOND: usize = 2_000;
const PARTITION_WRITES_PER_SECOND: usize = 1_000;

/// One write: the table partition and the index partitions it touches.
struct Write {
    table: String,
    indexes: Vec<(&'static str, String)>,
}

fn write(table: String, indexes: Vec<(&'static str, String)>) -> Write {
    Write { table, indexes }
}

/// The writes caused by webhook `i` of the second `at`, for a mix of event types: 60 %
/// COMPLETE (fetched, compared, events published), 20 % AUTH_STATUS, 10 % MONITORING_EVENTS,
/// 10 % MONITORING_RECONNECT (an episode opens, a notice is sent). Every webhook is about
/// another pull of another monitoring, as refreshes of many monitorings are.
fn webhook_writes(i: usize, at: &str, recent: &dyn Fn(&str, &str) -> String) -> Vec<Write> {
    let dedupe = format!("delivery-{i}");
    let pull = format!("pull-{i}");
    let monitoring = format!("monitoring-{i}");
    let event = event_pk(&dedupe);
    let pull_item = pull_pk(&pull);
    let monitoring_item = monitoring_pk(&monitoring);
    let status = ("by_status", status_shard_key(ACTIVE, &monitoring));
    let outbox = |pk: &str, sk: &str| ("outbox", pending_partition(pk, sk));
    let mut writes = vec![
        // intake: the claim (PutItem) and its completion (UpdateItem) of the event record.
        write(event, vec![("recent", recent(at, &dedupe))]),
        // intake: the pull's state and the monitoring's state.
        write(pull_item.clone(), vec![]),
        write(monitoring_item.clone(), vec![status.clone()]),
    ];
    match i % 10 {
        0..=5 => {
            // pull-fetcher: claim, data (two items), refresh entry, change set with its
            // events, the monitoring's latest data, finish; the publisher's acknowledgement.
            writes.push(write(pull_item.clone(), vec![]));
            writes.push(write(pull_item.clone(), vec![]));
            writes.push(write(pull_item.clone(), vec![]));
            writes.push(write(monitoring_item.clone(), vec![]));
            let change_set = format!("CHANGES#{at}#{pull}#canopy-monitor");
            writes.push(write(
                monitoring_item.clone(),
                vec![outbox(&monitoring_item, &change_set)],
            ));
            writes.push(write(monitoring_item.clone(), vec![status.clone()]));
            writes.push(write(pull_item.clone(), vec![]));
            writes.push(write(
                monitoring_item.clone(),
                vec![outbox(&monitoring_item, &change_set)],
            ));
        }
        6 | 7 => {}
        8 => {
            // intake: Canopy's changes kept with a relayed event; the publisher's acknowledgement.
            let changes = format!("CHANGES#{at}#{pull}#canopy#{dedupe}");
            writes.push(write(
                monitoring_item.clone(),
                vec![outbox(&monitoring_item, &changes)],
            ));
            writes.push(write(
                monitoring_item.clone(),
                vec![outbox(&monitoring_item, &changes)],
            ));
        }
        _ => {
            // intake: the episode opens on the monitoring item, with ReconnectNeeded.
            let reconnecting = ("reconnecting", status_shard_key(ACTIVE, &monitoring));
            writes.push(write(
                monitoring_item.clone(),
                vec![status, reconnecting, outbox(&monitoring_item, "STATE")],
            ));
            // reconnect-notifier: the episode item, its send claim and its record; the
            // publisher's acknowledgement.
            for _ in 0..3 {
                writes.push(write(monitoring_item.clone(), vec![]));
            }
            writes.push(write(
                monitoring_item.clone(),
                vec![outbox(&monitoring_item, "STATE")],
            ));
        }
    }
    writes
}

/// Writes per partition (`table` or the index name, and the key) in one second.
fn load(recent: &dyn Fn(&str, &str) -> String) -> HashMap<(&'static str, String), usize> {
    let at = "2026-12-02T18:00:00.000Z";
    let mut counts = HashMap::new();
    for i in 0..WEBHOOKS_PER_SECOND {
        for w in webhook_writes(i, at, recent) {
            *counts.entry(("table", w.table)).or_default() += 1;
            for index in w.indexes {
                *counts.entry(index).or_default() += 1;
            }
        }
    }
    // The completion of the event record writes its item and the `recent` index again.
    for i in 0..WEBHOOKS_PER_SECOND {
        let dedupe = format!("delivery-{i}");
        *counts.entry(("table", event_pk(&dedupe))).or_default() += 1;
        *counts.entry(("recent", recent(at, &dedupe))).or_default() += 1;
    }
    counts
}

fn hottest(counts: &HashMap<(&'static str, String), usize>) -> ((&'static str, String), usize) {
    counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, n)| (k.clone(), *n))
        .expect("some writes")
}

#[test]
fn at_2000_webhooks_a_second_no_partition_takes_more_than_1000_writes() {
    let counts = load(&|at, dedupe| recent_key(at, dedupe));
    let total: usize = counts.values().sum();
    let (partition, writes) = hottest(&counts);
    println!("{total} partition writes in one second; the hottest: {partition:?} with {writes}");
    for index in ["recent", "by_status", "outbox", "reconnecting"] {
        let partitions = counts.keys().filter(|(i, _)| *i == index).count();
        let most = counts
            .iter()
            .filter(|((i, _), _)| *i == index)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        println!("index {index}: {partitions} partitions, at most {most} writes each");
        assert!(partitions > 1, "index {index} is written in one partition");
    }
    assert!(
        writes <= PARTITION_WRITES_PER_SECOND,
        "{partition:?} takes {writes} writes a second"
    );
}

#[test]
fn the_model_finds_an_unsharded_key() {
    // The `recent` index keyed by the day alone, as it was: every delivery's claim and
    // completion in one partition.
    let counts = load(&|at, _| recent_day(at).to_owned());
    let (partition, writes) = hottest(&counts);
    assert_eq!(partition.0, "recent");
    assert_eq!(writes, 2 * WEBHOOKS_PER_SECOND);
}
