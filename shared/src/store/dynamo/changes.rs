//! The change history in DynamoDB (see [`crate::change_log`]).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | our change set | `MONITORING#<id>` | `CHANGES#<created_at>#<pull_id>#canopy-monitor` | previous pull, `changes_json`, counts, outbox events |
//! | Canopy's MONITORING_EVENTS | `MONITORING#<id>` | `CHANGES#<first_seen_at>#<pull_id>#canopy#<dedupe key>` | `data.type`, `changes_json` as Canopy sent it, outbox event |
//!
//! Both sort by when their pull was made (Canopy creates a pull, then sends its webhooks), so
//! one Query, newest first, reads a monitoring's history with Canopy's events beside ours.

use super::outbox::add_to_item;
use super::{key, monitoring_pk, n, s, DynamoStore};
use crate::aws::port_error;
use crate::business_events::BusinessEvent;
use crate::ports::PortError;
use crate::store::{
    BadCursor, CanopyChangeRecord, ChangeSetRecord, ChangeStore, Page, RefreshEntry,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
const PREFIX: &str = "CHANGES#";
pub const SOURCE_OURS: &str = "canopy-monitor";
pub const SOURCE_CANOPY: &str = "canopy";
/// Largest `changes_json` kept in an item (DynamoDB's limit is 400 KB); a longer list keeps
/// its first changes and says so.
const MAX_CHANGES_JSON: usize = 300 * 1024;

fn change_set_sk(order: &str, pull_id: &str) -> String {
    format!("{PREFIX}{order}#{pull_id}#{SOURCE_OURS}")
}

fn canopy_sk(r: &CanopyChangeRecord) -> String {
    format!(
        "{PREFIX}{}#{}#{SOURCE_CANOPY}#{}",
        r.pull_seen_at, r.pull_id, r.dedupe_key
    )
}

/// The JSON of `changes`, cut to whole changes under [`MAX_CHANGES_JSON`].
fn bounded_json(changes: &[Value]) -> (String, bool) {
    let full = serde_json::to_string(changes).unwrap_or_default();
    if full.len() <= MAX_CHANGES_JSON {
        return (full, false);
    }
    let mut kept = Vec::new();
    let mut size = 2;
    for c in changes {
        let len = serde_json::to_string(c).map_or(0, |t| t.len()) + 1;
        if size + len > MAX_CHANGES_JSON {
            break;
        }
        size += len;
        kept.push(c);
    }
    (serde_json::to_string(&kept).unwrap_or_default(), true)
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

/// One history entry as the Monitoring API shows it.
fn entry(item: &HashMap<String, AttributeValue>) -> Value {
    let changes: Value = text(item, "changes_json")
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let flag = |k: &str| item.get(k).and_then(|v| v.as_bool().ok()).copied();
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if text(item, "source").as_deref() == Some(SOURCE_CANOPY) {
        return json!({
            "source": SOURCE_CANOPY,
            "pull_id": text(item, "pull_id"),
            "event_type": text(item, "data_type"),
            "received_at": text(item, "received_at"),
            "changes": changes,
        });
    }
    json!({
        "source": SOURCE_OURS,
        "pull_id": text(item, "pull_id"),
        "previous_pull_id": text(item, "previous_pull_id"),
        "pull_created_at": text(item, "order"),
        "computed_at": text(item, "computed_at"),
        "compared": text(item, "not_compared").is_none(),
        "not_compared": text(item, "not_compared"),
        "change_count": number("change_count"),
        "truncated": flag("truncated").unwrap_or(false),
        "counts": text(item, "counts_json").and_then(|t| serde_json::from_str::<Value>(&t).ok()),
        "changes": changes,
    })
}

impl DynamoStore {
    /// Keeps Canopy's MONITORING_EVENTS with its relayed event, in one PutItem (a redelivery
    /// rewrites the same item).
    pub async fn put_canopy_change(
        &self,
        record: &CanopyChangeRecord,
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let list = record.changes.as_array().cloned().unwrap_or_default();
        let (changes_json, truncated) = bounded_json(&list);
        let mut item = key(monitoring_pk(&record.monitoring_id), canopy_sk(record));
        item.insert("source".into(), s(SOURCE_CANOPY));
        item.insert("pull_id".into(), s(&record.pull_id));
        item.insert("dedupe_key".into(), s(&record.dedupe_key));
        if let Some(t) = &record.data_type {
            item.insert("data_type".into(), s(t));
        }
        item.insert("changes_json".into(), s(changes_json));
        item.insert("truncated".into(), AttributeValue::Bool(truncated));
        item.insert("received_at".into(), s(&record.received_at));
        add_to_item(&mut item, events, &record.received_at);
        self.put(item).await
    }

    /// A monitoring's change history, newest first: our change sets and Canopy's events.
    pub async fn change_history_page(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<Value>, BadCursor>, PortError> {
        let Ok((items, next_cursor)) = self
            .newest_first_page(monitoring_pk(monitoring_id), PREFIX, limit, cursor)
            .await?
        else {
            return Ok(Err(BadCursor));
        };
        Ok(Ok(Page {
            items: items.iter().map(entry).collect(),
            next_cursor,
        }))
    }

    async fn put(&self, item: HashMap<String, AttributeValue>) -> Result<(), PortError> {
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(())
    }
}

#[async_trait]
impl ChangeStore for DynamoStore {
    async fn refreshes(&self, monitoring_id: &str) -> Result<Vec<RefreshEntry>, PortError> {
        self.refresh_history(monitoring_id).await
    }

    async fn initial_pull_id(&self, monitoring_id: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get_monitoring(monitoring_id)
            .await?
            .and_then(|m| m.initial_pull_id))
    }

    async fn stored_pull(&self, pull_id: &str) -> Result<Option<Value>, PortError> {
        Ok(self.get_pull_data(pull_id).await?.map(|p| p.pull))
    }

    async fn put_change_set(
        &self,
        record: &ChangeSetRecord,
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let mut item = key(
            monitoring_pk(&record.monitoring_id),
            change_set_sk(&record.order, &record.pull_id),
        );
        item.insert("source".into(), s(SOURCE_OURS));
        item.insert("monitoring_id".into(), s(&record.monitoring_id));
        item.insert("pull_id".into(), s(&record.pull_id));
        item.insert("order".into(), s(&record.order));
        if let Some(p) = &record.previous_pull_id {
            item.insert("previous_pull_id".into(), s(p));
        }
        item.insert("computed_at".into(), s(&record.computed_at));
        item.insert("counts_json".into(), s(record.counts.to_string()));
        if let Some(reason) = record.not_compared {
            item.insert("not_compared".into(), s(reason));
        }
        let list: Vec<Value> = record
            .changes
            .as_ref()
            .map(|c| {
                c.changes
                    .iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        item.insert("change_count".into(), n(list.len()));
        let (changes_json, truncated) = bounded_json(&list);
        item.insert("changes_json".into(), s(changes_json));
        item.insert("truncated".into(), AttributeValue::Bool(truncated));
        add_to_item(&mut item, events, &record.computed_at);
        self.put(item).await
    }
}
