//! The change history in DynamoDB (see [`crate::app::change_log`]).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | our change set | `MONITORING#<id>` | `CHANGES#<created_at>#<pull_id>#canopy-monitor` | previous pull, `changes_json`, counts, outbox events |
//! | Canopy's MONITORING_EVENTS | `MONITORING#<id>` | `CHANGES#<first_seen_at>#<pull_id>#canopy#<dedupe key>` | `data.type`, `changes_json` as Canopy sent it, outbox event |
//!
//! | a change list's gzip part | `MONITORING#<id>` | `PART#<item sk>#<sha256>#0000`.. | `gz`: a slice of the gzip of a change list too large for its item |
//!
//! Both sort by when their pull was made (Canopy creates a pull, then sends its webhooks), so
//! one Query, newest first, reads a monitoring's history with Canopy's events beside ours.
//!
//! Whatever is accepted is stored whole: an item is sized as DynamoDB
//! counts it ([`item_size`]) before it is written. Its change list is kept inline when the
//! item fits [`ITEM_BUDGET`], else gzip-compressed in the item (`changes_gz`), else as gzip
//! parts beside it (`changes_parts`), both checked by `changes_sha256`. If the outbox events
//! alone still overflow the item, the largest are kept in their compact form (lists emptied,
//! `truncated`): the full list stays readable through the Monitoring API.

use super::item_size::{item_size, ITEM_BUDGET};
use super::outbox::add_to_item;
use super::{key, monitoring_pk, n, s, text, DynamoStore};
use crate::adapters::aws::port_error;
use crate::domain::business_events::BusinessEvent;
use crate::domain::plan::CanopyChangeRecord;
use crate::ports::store::{BadCursor, ChangeSetRecord, ChangeStore, Page, RefreshEntry};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
const PREFIX: &str = "CHANGES#";
pub const SOURCE_OURS: &str = "canopy-monitor";
pub const SOURCE_CANOPY: &str = "canopy";
/// JSON of history entries one page answers with (more than one entry only while under it):
/// a Lambda response is at most 6 MB, and escaping the JSON into the response adds up to half.
const MAX_PAGE_JSON: usize = 3 * 1024 * 1024;

type Item = HashMap<String, AttributeValue>;

fn change_set_sk(order: &str, pull_id: &str) -> String {
    format!("{PREFIX}{order}#{pull_id}#{SOURCE_OURS}")
}

fn canopy_sk(r: &CanopyChangeRecord) -> String {
    format!(
        "{PREFIX}{}#{}#{SOURCE_CANOPY}#{}",
        r.pull_seen_at, r.pull_id, r.dedupe_key
    )
}

/// Where the gzip parts of the change list of item `sk` are kept.
fn parts_prefix(sk: &str, sha256: &str) -> String {
    format!("PART#{sk}#{sha256}#")
}

/// An item to put and the part items it points at (written first).
#[derive(Debug)]
struct Layout {
    item: Item,
    parts: Vec<Item>,
}

/// An event's compact form: its lists emptied and, where it has the flag, `truncated`. Ids,
/// counts and kinds stay; the full lists are the change set's, behind the Monitoring API.
fn compact_event(event: &BusinessEvent) -> BusinessEvent {
    let mut event = event.clone();
    if let Some(detail) = event.detail.as_object_mut() {
        for list in ["changes", "account_changes"] {
            if let Some(v) = detail.get_mut(list).filter(|v| v.is_array()) {
                *v = json!([]);
            }
        }
        if let Some(flag) = detail.get_mut("truncated") {
            *flag = json!(true);
        }
    }
    event
}

fn event_len(event: &BusinessEvent) -> usize {
    serde_json::to_string(event).map_or(0, |t| t.len())
}

/// Lays out `base` (keys and small attributes) with its change list and outbox events so that
/// the item fits [`ITEM_BUDGET`]; see the module docs for the order of resorts.
fn lay_out(base: &Item, changes_json: &str, events: &[BusinessEvent], at: &str) -> Layout {
    let with = |events: &[BusinessEvent], attrs: &[(&str, AttributeValue)]| {
        let mut item = base.clone();
        item.extend(attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        add_to_item(&mut item, events, at);
        item
    };
    let item = with(events, &[("changes_json", s(changes_json))]);
    if item_size(&item) <= ITEM_BUDGET {
        return Layout {
            item,
            parts: Vec::new(),
        };
    }
    let packed = crate::domain::pull_data::pack(changes_json.as_bytes());
    if let [gz] = packed.parts.as_slice() {
        let attrs = [
            ("changes_gz", AttributeValue::B(gz.clone().into())),
            ("changes_sha256", s(&packed.sha256)),
        ];
        let item = with(events, &attrs);
        if item_size(&item) <= ITEM_BUDGET {
            return Layout {
                item,
                parts: Vec::new(),
            };
        }
    }
    let text = |k: &str| base.get(k).and_then(|v| v.as_s().ok()).cloned();
    let (pk, sk) = (
        text("pk").unwrap_or_default(),
        text("sk").unwrap_or_default(),
    );
    let prefix = parts_prefix(&sk, &packed.sha256);
    let parts = packed
        .parts
        .iter()
        .enumerate()
        .map(|(i, gz)| {
            let mut part = key(pk.clone(), format!("{prefix}{i:04}"));
            part.insert("gz".into(), AttributeValue::B(gz.clone().into()));
            part
        })
        .collect();
    let attrs = [
        ("changes_parts", n(packed.parts.len())),
        ("changes_sha256", s(&packed.sha256)),
    ];
    let mut events = events.to_vec();
    loop {
        let item = with(&events, &attrs);
        if item_size(&item) <= ITEM_BUDGET {
            return Layout { item, parts };
        }
        // The largest event that still lists something becomes compact.
        let largest = events
            .iter()
            .enumerate()
            .filter(|(_, e)| compact_event(e) != **e)
            .max_by_key(|(_, e)| event_len(e))
            .map(|(i, _)| i);
        match largest {
            Some(i) => events[i] = compact_event(&events[i]),
            // Nothing left to shrink: DynamoDB refuses the write, and the failure is loud.
            None => return Layout { item, parts },
        }
    }
}

/// The fields of a history entry item (ours or Canopy's) the Monitoring API shows, read
/// through `serde_dynamo`; the change list itself is stored apart (inline, gzip or parts).
#[derive(Deserialize, Default)]
#[serde(default)]
struct EntryItem {
    source: Option<String>,
    pull_id: Option<String>,
    // Canopy's MONITORING_EVENTS.
    data_type: Option<String>,
    received_at: Option<String>,
    // Our change sets.
    previous_pull_id: Option<String>,
    order: Option<String>,
    computed_at: Option<String>,
    not_compared: Option<String>,
    change_count: Option<u64>,
    truncated: Option<bool>,
    counts_json: Option<String>,
}

/// One history entry as the Monitoring API shows it, with its change list read back.
fn entry(item: &HashMap<String, AttributeValue>, changes: Value) -> Value {
    let e: EntryItem = match serde_dynamo::from_item(item.clone()) {
        Ok(e) => e,
        Err(err) => {
            // Not expected (the writer above sets these types); shown rather than hidden.
            tracing::warn!(error = %err, "a history entry has an attribute of another type");
            EntryItem::default()
        }
    };
    if e.source.as_deref() == Some(SOURCE_CANOPY) {
        return json!({
            "source": SOURCE_CANOPY,
            "pull_id": e.pull_id,
            "event_type": e.data_type,
            "received_at": e.received_at,
            "changes": changes,
        });
    }
    json!({
        "source": SOURCE_OURS,
        "pull_id": e.pull_id,
        "previous_pull_id": e.previous_pull_id,
        "pull_created_at": e.order,
        "computed_at": e.computed_at,
        "compared": e.not_compared.is_none(),
        "not_compared": e.not_compared,
        "change_count": e.change_count,
        "truncated": e.truncated.unwrap_or(false),
        "counts": e.counts_json.and_then(|t| serde_json::from_str::<Value>(&t).ok()),
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
        let mut item = key(monitoring_pk(&record.monitoring_id), canopy_sk(record));
        item.insert("source".into(), s(SOURCE_CANOPY));
        item.insert("pull_id".into(), s(&record.pull_id));
        item.insert("dedupe_key".into(), s(&record.dedupe_key));
        if let Some(t) = &record.data_type {
            item.insert("data_type".into(), s(t));
        }
        item.insert("received_at".into(), s(&record.received_at));
        let layout = lay_out(
            &item,
            &record.changes.to_string(),
            events,
            &record.received_at,
        );
        self.put_layout(layout).await
    }

    /// The change list of a history item: inline, compressed in the item, or from its parts.
    async fn changes_of(&self, item: &Item) -> Result<Value, PortError> {
        if let Some(t) = text(item, "changes_json") {
            return Ok(serde_json::from_str(&t).unwrap_or(Value::Null));
        }
        let Some(sha) = text(item, "changes_sha256") else {
            return Ok(Value::Null);
        };
        let (pk, sk) = (
            text(item, "pk").unwrap_or_default(),
            text(item, "sk").unwrap_or_default(),
        );
        let chunks = match item.get("changes_gz") {
            Some(AttributeValue::B(gz)) => vec![gz.clone().into_inner()],
            _ => {
                let parts = item
                    .get("changes_parts")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut chunks = self.query_blobs(pk, &parts_prefix(&sk, &sha)).await?;
                if chunks.len() < parts {
                    return Err(PortError::unavailable(
                        SERVICE,
                        format!("change list of {sk}: {} of {parts} parts", chunks.len()),
                    ));
                }
                chunks.truncate(parts);
                chunks
            }
        };
        crate::domain::pull_data::reassemble(&chunks, &sha)
            .map_err(|e| PortError::unavailable(SERVICE, format!("change list of {sk}: {e}")))
    }

    /// Writes the parts, then the item that points at them.
    async fn put_layout(&self, layout: Layout) -> Result<(), PortError> {
        if !layout.parts.is_empty() {
            self.put_items(layout.parts).await?;
        }
        self.put(layout.item).await
    }

    /// A monitoring's change history, newest first: our change sets and Canopy's events.
    pub async fn change_history_page(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<Value>, BadCursor>, PortError> {
        let pk = monitoring_pk(monitoring_id);
        let Ok((items, mut next_cursor)) = self
            .newest_first_page(pk.clone(), PREFIX, limit, cursor)
            .await?
        else {
            return Ok(Err(BadCursor));
        };
        let mut entries = Vec::with_capacity(items.len());
        let mut bytes = 0;
        for item in &items {
            let e = entry(item, self.changes_of(item).await?);
            let len = e.to_string().len();
            // A page stops early rather than outgrow a Lambda response; the cursor resumes
            // after the last entry it holds.
            let last_kept = entries.len().checked_sub(1).and_then(|i| items.get(i));
            if let Some(last) = last_kept.filter(|_| bytes + len > MAX_PAGE_JSON) {
                let sk = text(last, "sk").unwrap_or_default();
                next_cursor = Some(self.prefix_cursor(&pk, PREFIX, &sk));
                break;
            }
            bytes += len;
            entries.push(e);
        }
        Ok(Ok(Page {
            items: entries,
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
        let changes_json = serde_json::to_string(&list).unwrap_or_default();
        let layout = lay_out(&item, &changes_json, events, &record.computed_at);
        self.put_layout(layout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::business_events::{refresh_events, RefreshContext};
    use crate::domain::changes::{Change, ChangeSet, CoverageScope, ItemRef, MatchedBy};
    use crate::domain::pull_data::PullSummary;

    fn id(text: String) -> ItemRef {
        ItemRef {
            id: Some(text),
            matched_by: MatchedBy::Id,
        }
    }

    /// 10 policies x 100 coverage changes, and the events a refresh records with them.
    fn big_change_set() -> (Vec<Value>, Vec<BusinessEvent>) {
        let changes = ChangeSet {
            changes: (0..1000)
                .map(|n| Change::CoverageChanged {
                    policy: id(format!("5d7c2a10-3e4b-4f6a-8c9d-policy{:02}", n / 100)),
                    scope: CoverageScope::Vehicle {
                        vehicle: id(format!("b0f1c9de-7a55-4c1e-9f0e-vehicle{n:04}")),
                    },
                    coverage: format!("BODILY_INJURY_LIABILITY_{n:04}"),
                    field: "per_person_limit_cents".into(),
                    before: json!(2_500_000),
                    after: json!(5_000_000),
                })
                .collect(),
        };
        let ctx = RefreshContext {
            monitoring_id: "m",
            pull_id: "p2",
            previous_pull_id: Some("p1"),
            created_at: None,
            at: "t",
        };
        let events = refresh_events(&ctx, &PullSummary::default(), Some(&changes));
        let list = changes
            .changes
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        (list, events)
    }

    fn base() -> Item {
        key("MONITORING#m".into(), "CHANGES#t#p2#canopy-monitor")
    }

    fn read_back(layout: &Layout) -> Value {
        let sha = text(&layout.item, "changes_sha256").unwrap();
        let chunks: Vec<Vec<u8>> = match layout.item.get("changes_gz") {
            Some(AttributeValue::B(gz)) => vec![gz.clone().into_inner()],
            _ => layout
                .parts
                .iter()
                .map(|p| p["gz"].as_b().unwrap().clone().into_inner())
                .collect(),
        };
        crate::domain::pull_data::reassemble(&chunks, &sha).unwrap()
    }

    #[test]
    fn a_large_change_set_with_its_events_fits_compressed() {
        let (list, events) = big_change_set();
        let json = serde_json::to_string(&list).unwrap();
        let layout = lay_out(&base(), &json, &events, "t");
        assert!(item_size(&layout.item) <= ITEM_BUDGET);
        assert!(!layout.item.contains_key("changes_json"));
        assert_eq!(read_back(&layout), Value::Array(list));
        // The events stay whole when the list alone moves.
        let kept = crate::adapters::dynamo::outbox::pending_from_item(&layout.item).unwrap();
        assert_eq!(kept.events.len(), events.len());
        assert!(kept.events.iter().all(|e| events.contains(e)));
    }

    #[test]
    fn an_incompressible_list_goes_to_parts_and_oversized_events_become_compact() {
        // Random text compresses little: about 900 KB of gzip, three parts.
        let list: Vec<Value> = (0..9000)
            .map(|_| json!({"v": uuid::Uuid::new_v4().to_string(), "w": uuid::Uuid::new_v4().to_string()}))
            .collect();
        let json = serde_json::to_string(&list).unwrap();
        // Events that alone overflow the item.
        let (_, mut events) = big_change_set();
        let (_, more) = big_change_set();
        events.extend(more.into_iter().map(|mut e| {
            e.detail["id"] = json!(format!("{}x", e.id()));
            e
        }));
        let layout = lay_out(&base(), &json, &events, "t");
        assert!(
            item_size(&layout.item) <= ITEM_BUDGET,
            "{}",
            item_size(&layout.item)
        );
        assert!(layout.parts.len() >= 2);
        assert!(layout
            .parts
            .iter()
            .all(|p| item_size(p) <= crate::adapters::dynamo::item_size::MAX_ITEM_BYTES));
        assert_eq!(read_back(&layout), Value::Array(list));
        let kept = crate::adapters::dynamo::outbox::pending_from_item(&layout.item).unwrap();
        assert_eq!(kept.events.len(), events.len(), "every event is kept");
        let compact: Vec<_> = kept
            .events
            .iter()
            .filter(|e| e.detail["truncated"] == true)
            .collect();
        assert!(!compact.is_empty());
        assert!(compact
            .iter()
            .all(|e| e.detail["changes"] == json!([]) && e.detail["change_count"] == 100));
    }

    #[test]
    fn a_small_change_set_stays_inline() {
        let layout = lay_out(&base(), "[]", &[], "t");
        assert_eq!(text(&layout.item, "changes_json").as_deref(), Some("[]"));
        assert!(layout.parts.is_empty());
    }
}
