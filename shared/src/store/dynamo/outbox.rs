//! The outbox in the table (see [`crate::outbox`]).
//!
//! An event waits as an attribute `outbox_<event id>` (the event's JSON) of the item whose
//! write recorded it. That write also sets:
//! - `outbox_pending` = `PENDING` and `outbox_at` (kept from the first waiting event): the
//!   keys of the sparse `outbox` index the sweep reads, oldest first;
//! - `outbox_version`, fresh per write: acknowledging clears the pending mark only if no event
//!   was added since the publisher read the item.

use super::{condition_failed, s, DynamoStore, UpdateBuilder};
use crate::aws::port_error;
use crate::business_events::BusinessEvent;
use crate::ports::PortError;
use crate::store::{OutboxStore, PendingOutbox};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
pub const OUTBOX_INDEX: &str = "outbox";
const PREFIX: &str = "outbox_";
const PENDING_ATTR: &str = "outbox_pending";
const PENDING: &str = "PENDING";
const AT_ATTR: &str = "outbox_at";
const VERSION_ATTR: &str = "outbox_version";

fn entry_name(event: &BusinessEvent) -> String {
    format!("{PREFIX}{}", event.id())
}

fn entry_value(event: &BusinessEvent) -> AttributeValue {
    s(serde_json::to_string(event).unwrap_or_default())
}

fn is_entry(name: &str) -> bool {
    name.starts_with(PREFIX) && ![PENDING_ATTR, AT_ATTR, VERSION_ATTR].contains(&name)
}

/// Adds `events` to an item about to be put whole.
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
    item.insert(PENDING_ATTR.into(), s(PENDING));
    item.insert(AT_ATTR.into(), s(at));
    item.insert(VERSION_ATTR.into(), s(uuid::Uuid::new_v4().to_string()));
}

/// Adds `events` to an update of an item: they are written if, and only if, the update is.
pub(crate) fn add_to_update(b: &mut UpdateBuilder, events: &[BusinessEvent], at: &str) {
    if events.is_empty() {
        return;
    }
    for e in events {
        b.set(&entry_name(e), entry_value(e));
    }
    b.set(PENDING_ATTR, s(PENDING))
        .set_if_absent(AT_ATTR, s(at))
        .set(VERSION_ATTR, s(uuid::Uuid::new_v4().to_string()));
}

/// The waiting events of an item (from a Query, or a stream record's new image).
pub fn pending_from_item(item: &HashMap<String, AttributeValue>) -> Option<PendingOutbox> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let mut events: Vec<BusinessEvent> = item
        .iter()
        .filter(|(name, _)| is_entry(name))
        .filter_map(|(_, v)| serde_json::from_str(v.as_s().ok()?).ok())
        .collect();
    if events.is_empty() {
        return None;
    }
    // Oldest fact first is not knowable from the item; a stable order keeps batches stable.
    events.sort_by(|a, b| a.id().cmp(b.id()));
    Some(PendingOutbox {
        pk: text("pk")?,
        sk: text("sk")?,
        version: text(VERSION_ATTR).unwrap_or_default(),
        events,
    })
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn pending(&self, cutoff: &str, limit: usize) -> Result<Vec<PendingOutbox>, PortError> {
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("#p = :p AND #at < :cutoff")
            .expression_attribute_names("#p", PENDING_ATTR)
            .expression_attribute_names("#at", AT_ATTR)
            .expression_attribute_values(":p", s(PENDING))
            .expression_attribute_values(":cutoff", s(cutoff))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(page.items().iter().filter_map(pending_from_item).collect())
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
        // (and every waiting event was published).
        let all_published = item
            .events
            .iter()
            .all(|e| published_ids.iter().any(|id| id == e.id()));
        if all_published {
            let result = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key.clone()))
                .update_expression(format!(
                    "REMOVE {}, #pending, #at, #version",
                    removes.join(", ")
                ))
                .condition_expression("#version = :version")
                .set_expression_attribute_names(Some(names.clone()))
                .expression_attribute_names("#pending", PENDING_ATTR)
                .expression_attribute_names("#at", AT_ATTR)
                .expression_attribute_names("#version", VERSION_ATTR)
                .expression_attribute_values(":version", s(&item.version))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(port_error(SERVICE, e)),
            }
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
}
