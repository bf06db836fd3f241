//! The outbox in the table (see [`crate::app::outbox`]).
//!
//! An event waits as an attribute `outbox_<event id>` (the event's JSON) of the item whose
//! write recorded it. That write also sets:
//! - `outbox_pending` = [`pending_partition`] (`PENDING#<shard>`, the shard of the item's key:
//!   no index partition that every event-carrying write shares) and
//!   `outbox_at` (kept from the first waiting event): the keys of the sparse `outbox` index the
//!   sweep reads, every shard, oldest first;
//! - `outbox_version`, fresh per write: acknowledging clears the pending mark only if no event
//!   was added since the publisher read the item.
//!
//! A sweep that finds an item's events refused counts `outbox_attempts`; parking removes
//! `outbox_pending` (the item leaves the index, its events stay) and sets `outbox_parked_at`.
//! A later write that adds events marks the item pending again.

use super::{condition_failed, s, text, DynamoStore, UpdateBuilder};
use crate::adapters::aws::port_error;
use crate::domain::business_events::BusinessEvent;
use crate::domain::shard::{shard_key, sharded_key};
use crate::ports::store::{Counted, OutboxStore, PendingKey, PendingOutbox, PendingPage};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
pub const OUTBOX_INDEX: &str = "outbox";
const PREFIX: &str = "outbox_";
pub const PENDING_ATTR: &str = "outbox_pending";
const PENDING: &str = "PENDING";
const AT_ATTR: &str = "outbox_at";
const VERSION_ATTR: &str = "outbox_version";
const ATTEMPTS_ATTR: &str = "outbox_attempts";
const PARKED_ATTR: &str = "outbox_parked_at";

/// The outbox index's partition key of the item `pk`/`sk`: `PENDING#<shard>`, the shard
/// derived from the item's own key, so the same item always lands in the same shard.
pub fn pending_partition(pk: &str, sk: &str) -> String {
    sharded_key(PENDING, &format!("{pk}\u{0}{sk}"))
}

fn entry_name(event: &BusinessEvent) -> String {
    format!("{PREFIX}{}", event.id())
}

fn entry_value(event: &BusinessEvent) -> AttributeValue {
    s(serde_json::to_string(event).unwrap_or_default())
}

fn is_entry(name: &str) -> bool {
    name.starts_with(PREFIX)
        && ![
            PENDING_ATTR,
            AT_ATTR,
            VERSION_ATTR,
            ATTEMPTS_ATTR,
            PARKED_ATTR,
        ]
        .contains(&name)
}

/// Adds `events` to an item about to be put whole (its `pk` and `sk` already set).
pub(crate) fn add_to_item(
    item: &mut HashMap<String, AttributeValue>,
    events: &[BusinessEvent],
    at: &str,
) {
    if events.is_empty() {
        return;
    }
    for e in events {
        item.insert(entry_name(e), entry_value(e));
    }
    let partition = pending_partition(
        &text(item, "pk").unwrap_or_default(),
        &text(item, "sk").unwrap_or_default(),
    );
    item.insert(PENDING_ATTR.into(), s(partition));
    item.insert(AT_ATTR.into(), s(at));
    item.insert(VERSION_ATTR.into(), s(uuid::Uuid::new_v4().to_string()));
}

/// Adds `events` to an update of the item `pk`/`sk`: they are written if, and only if, the
/// update is. A parked item is pending again.
pub(crate) fn add_to_update(
    b: &mut UpdateBuilder,
    pk: &str,
    sk: &str,
    events: &[BusinessEvent],
    at: &str,
) {
    if events.is_empty() {
        return;
    }
    for e in events {
        b.set(&entry_name(e), entry_value(e));
    }
    b.set(PENDING_ATTR, s(pending_partition(pk, sk)))
        .set_if_absent(AT_ATTR, s(at))
        .set(VERSION_ATTR, s(uuid::Uuid::new_v4().to_string()))
        .remove(PARKED_ATTR);
}

/// An item of the outbox index (from a Query), its waiting events possibly none.
pub fn outbox_item(item: &HashMap<String, AttributeValue>) -> Option<PendingOutbox> {
    let mut events: Vec<BusinessEvent> = item
        .iter()
        .filter(|(name, _)| is_entry(name))
        .filter_map(|(_, v)| serde_json::from_str(v.as_s().ok()?).ok())
        .collect();
    // Oldest fact first is not knowable from the item; a stable order keeps batches stable.
    events.sort_by(|a, b| a.id().cmp(b.id()));
    let attempts = item
        .get(ATTEMPTS_ATTR)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(PendingOutbox {
        pk: text(item, "pk")?,
        sk: text(item, "sk")?,
        version: text(item, VERSION_ATTR).unwrap_or_default(),
        at: text(item, AT_ATTR).unwrap_or_default(),
        attempts,
        events,
    })
}

/// The waiting events of an item (a stream record's new image); `None` if it has none.
pub fn pending_from_item(item: &HashMap<String, AttributeValue>) -> Option<PendingOutbox> {
    outbox_item(item).filter(|p| !p.events.is_empty())
}

/// The condition "nothing was added since `item` was read".
fn unchanged(item: &PendingOutbox) -> (&'static str, Option<AttributeValue>) {
    if item.version.is_empty() {
        ("attribute_not_exists(#version)", None)
    } else {
        ("#version = :version", Some(s(&item.version)))
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn pending(
        &self,
        shard: u32,
        cutoff: &str,
        limit: usize,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, PortError> {
        let partition = shard_key(PENDING, shard);
        let start = after.map(|k| {
            HashMap::from([
                ("pk".to_owned(), s(&k.pk)),
                ("sk".to_owned(), s(&k.sk)),
                (PENDING_ATTR.to_owned(), s(&partition)),
                (AT_ATTR.to_owned(), s(&k.at)),
            ])
        });
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("#p = :p AND #at < :cutoff")
            .expression_attribute_names("#p", PENDING_ATTR)
            .expression_attribute_names("#at", AT_ATTR)
            .expression_attribute_values(":p", s(&partition))
            .expression_attribute_values(":cutoff", s(cutoff))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        let next = page.last_evaluated_key().and_then(|k| {
            Some(PendingKey {
                pk: text(k, "pk")?,
                sk: text(k, "sk")?,
                at: text(k, AT_ATTR)?,
            })
        });
        Ok(PendingPage {
            items: page.items().iter().filter_map(outbox_item).collect(),
            next,
        })
    }

    async fn acknowledge(
        &self,
        item: &PendingOutbox,
        published_ids: &[String],
    ) -> Result<(), PortError> {
        let names: HashMap<String, String> = published_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("#e{i}"), format!("{PREFIX}{id}")))
            .collect();
        let removes: Vec<&str> = names.keys().map(String::as_str).collect();
        let key = super::key(item.pk.clone(), item.sk.clone());
        // First try to clear the pending mark too: only if nothing was added since the read
        // (and every waiting event was published; an item with none: just the mark).
        let all_published = item
            .events
            .iter()
            .all(|e| published_ids.iter().any(|id| id == e.id()));
        if all_published {
            let (condition, version) = unchanged(item);
            let mut clear: Vec<&str> = removes.clone();
            clear.extend(["#pending", "#at", "#version", "#attempts"]);
            let result = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key.clone()))
                .update_expression(format!("REMOVE {}", clear.join(", ")))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names.clone()))
                .expression_attribute_names("#pending", PENDING_ATTR)
                .expression_attribute_names("#at", AT_ATTR)
                .expression_attribute_names("#version", VERSION_ATTR)
                .expression_attribute_names("#attempts", ATTEMPTS_ATTR)
                .set_expression_attribute_values(
                    version.map(|v| HashMap::from([(":version".to_owned(), v)])),
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(port_error(SERVICE, e)),
            }
        }
        if removes.is_empty() {
            // Events were added since the read: the mark stays for them.
            return Ok(());
        }
        // Other events wait on the item: remove only what was published.
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names(Some(names))
            .send()
            .await;
        match result {
            // The item is gone (replaced or deleted): nothing left to remove.
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }

    async fn count_refusal(
        &self,
        item: &PendingOutbox,
        park_after: u32,
        at: &str,
    ) -> Result<Counted, PortError> {
        let key = super::key(item.pk.clone(), item.sk.clone());
        let attempts = item.attempts.saturating_add(1);
        if attempts >= park_after {
            // Out of the index, events kept; not if events were added since the read (they
            // deserve their own tries: the item is counted instead).
            let (condition, version) = unchanged(item);
            let mut values = HashMap::from([
                (":at".to_owned(), s(at)),
                (":n".to_owned(), AttributeValue::N(attempts.to_string())),
            ]);
            values.extend(version.map(|v| (":version".to_owned(), v)));
            let result = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key.clone()))
                .update_expression("SET #parked = :at, #attempts = :n REMOVE #pending")
                .condition_expression(format!("attribute_exists(#pending) AND {condition}"))
                .expression_attribute_names("#parked", PARKED_ATTR)
                .expression_attribute_names("#attempts", ATTEMPTS_ATTR)
                .expression_attribute_names("#pending", PENDING_ATTR)
                .expression_attribute_names("#version", VERSION_ATTR)
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Counted::Parked),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(port_error(SERVICE, e)),
            }
        }
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression("ADD #attempts :one")
            .condition_expression("attribute_exists(#pending)")
            .expression_attribute_names("#attempts", ATTEMPTS_ATTR)
            .expression_attribute_names("#pending", PENDING_ATTR)
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Counted::Attempts(
                out.attributes()
                    .and_then(|a| a.get(ATTEMPTS_ATTR))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(attempts),
            )),
            // Published meanwhile (by the stream), or gone: nothing to count.
            Err(e) if condition_failed(&e) => Ok(Counted::Attempts(0)),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::shard::{all_shard_keys, SHARDS};
    use std::collections::HashSet;

    #[test]
    fn the_pending_partition_is_one_of_16_shards_fixed_per_item() {
        let p = pending_partition("MONITORING#m1", "STATE");
        assert_eq!(p, pending_partition("MONITORING#m1", "STATE"));
        assert!(all_shard_keys(PENDING).any(|k| k == p), "{p}");
        let spread: HashSet<String> = (0..200)
            .map(|i| pending_partition(&format!("PULL#{i}"), "STATE"))
            .collect();
        assert_eq!(
            spread.len(),
            SHARDS as usize,
            "writes spread over every shard"
        );
    }

    #[test]
    fn the_sample_stream_record_carries_its_items_partition() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/stream-outbox.json");
        let sample: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let image = &sample["Records"][0]["dynamodb"]["NewImage"];
        let (pk, sk) = (
            image["pk"]["S"].as_str().unwrap(),
            image["sk"]["S"].as_str().unwrap(),
        );
        assert_eq!(image[PENDING_ATTR]["S"], pending_partition(pk, sk));
    }
}
