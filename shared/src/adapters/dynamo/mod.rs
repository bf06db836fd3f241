//! The DynamoDB adapter: one table, generic `pk`/`sk` keys.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | event record (dedupe) | `EVENT#<dedupe key>` | `EVENT` | lease, outcome, gzip body, TTL `expires_at` |
//! | pull state | `PULL#<pull_id>` | `STATE` | [`PullRecord`] |
//! | monitoring state | `MONITORING#<monitoring_id>` | `STATE` | [`MonitoringRecord`] |
//! | large meta_data | `PULL#<pull_id>` | `META#<sha256>#PART#0000`.. | gzip parts of a `meta_data` over [`MAX_INLINE_META_DATA`] |
//!
//! Whatever intake accepts can be stored: a body of up to 1 MB fits its
//! event record (gzip inline up to 300 KB, else only its state and work are kept), and a large
//! `meta_data` is kept once, compressed and split, with the pull item pointing at it.

pub mod changes;
pub mod cursor;
pub mod episodes;
pub mod item_size;
mod lease;
pub mod limits;
pub mod monitorings;
pub mod operations;
pub mod outbox;
pub mod pulls;
pub mod sessions;

use crate::domain::business_events::{reconnect_needed, reconnect_resolved};
use outbox::add_to_update;

use crate::adapters::aws::port_error;
use crate::domain::gzip;
use crate::domain::plan::{Milestone, MonitoringChange, MonitoringUpdate, PullApplied, PullUpdate};
use crate::domain::records::{MonitoringRecord, PullRecord};
use crate::ports::store::{ClaimResult, EventClaim, IntakeStore, PortError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use lease::{Claim, Lease, HELD_BY_LEASE};
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
/// Bodies are stored gzip-compressed when they fit well inside DynamoDB's 400 KB item limit.
const MAX_STORED_BODY: usize = 300 * 1024;
/// The largest webhook body ever stored: API Gateway accepts no larger request.
pub const MAX_EVENT_BODY_BYTES: usize = 10 * 1024 * 1024;

pub const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
pub const STATUS_COMPLETED: &str = "COMPLETED";

/// Partition-key prefixes. template.yaml limits each function's writes to the prefixes it
/// uses (`dynamodb:LeadingKeys`); tests/integration/template.rs checks them against these.
pub const EVENT_PK_PREFIX: &str = "EVENT#";
pub const PULL_PK_PREFIX: &str = "PULL#";
pub const MONITORING_PK_PREFIX: &str = "MONITORING#";

pub fn event_pk(dedupe_key: &str) -> String {
    format!("{EVENT_PK_PREFIX}{dedupe_key}")
}
pub fn pull_pk(pull_id: &str) -> String {
    format!("{PULL_PK_PREFIX}{pull_id}")
}
pub fn monitoring_pk(monitoring_id: &str) -> String {
    format!("{MONITORING_PK_PREFIX}{monitoring_id}")
}
pub const EVENT_SK: &str = "EVENT";
/// Largest `meta_data` (JSON bytes) kept inline in the pull item and in messages.
pub const MAX_INLINE_META_DATA: usize = crate::domain::work::MAX_INLINE_META_DATA;

fn meta_parts_prefix(sha256: &str) -> String {
    format!("META#{sha256}#PART#")
}
pub const STATE_SK: &str = "STATE";

/// The state table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long stored pull data is kept (TTL); `None` keeps it until deleted.
    pull_data_retention: Option<std::time::Duration>,
    /// Signs listing cursors ([`cursor`]).
    cursor_key: cursor::CursorKey,
}

/// A page of partition `pk`'s items whose sort key starts with `prefix`, newest (greatest
/// sort key) first, and the signed cursor of the next page ([`cursor`]).
/// `Err(BadCursor)` when `cursor` is not one of this listing's.
type PrefixPage =
    Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), crate::ports::store::BadCursor>;

/// The listing id of a prefix listing: one partition, one sort-key prefix.
fn prefix_listing(pk: &str, prefix: &str) -> String {
    cursor::listing_id(&["prefix", pk, prefix])
}

impl DynamoStore {
    /// The cursor that continues the prefix listing of `pk` after the item `sk`.
    pub(crate) fn prefix_cursor(&self, pk: &str, prefix: &str, sk: &str) -> String {
        cursor::seal(
            &self.cursor_key,
            &cursor::Position {
                listing: prefix_listing(pk, prefix),
                partition: 0,
                start: Some(
                    [("pk", pk), ("sk", sk)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ),
            },
        )
    }

    /// The signing key of listing cursors.
    pub(crate) fn cursor_key(&self) -> &cursor::CursorKey {
        &self.cursor_key
    }

    pub(crate) async fn newest_first_page(
        &self,
        pk: String,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<PrefixPage, PortError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                let position = cursor::open(&self.cursor_key, &prefix_listing(&pk, prefix), c);
                let sk = position
                    .ok()
                    .filter(|p| p.start_within(&["pk", "sk"], "pk", &pk))
                    .and_then(|p| p.start?.get("sk").cloned())
                    .filter(|sk| sk.starts_with(prefix));
                match sk {
                    Some(sk) => Some(key(pk.clone(), sk)),
                    None => return Ok(Err(crate::ports::store::BadCursor)),
                }
            }
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(prefix))
            // Histories are read beside state read consistently (and right after the events
            // that announce them): they must not be older than it.
            .consistent_read(true)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        let next_cursor = page
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| self.prefix_cursor(&pk, prefix, sk));
        Ok(Ok((page.items.unwrap_or_default(), next_cursor)))
    }
}

/// Whether a write was refused by its condition expression (any DynamoDB operation).
pub(crate) fn condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
/// A number attribute.
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
/// The string attribute `k` of an item read back.
pub(crate) fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}
/// The number attribute `k` of an item read back, as any integer type.
pub(crate) fn number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    k: &str,
) -> Option<T> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
/// The key of the item `pk`/`sk`.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Builds `SET a = :v, b = if_not_exists(b, :w) REMOVE c` expressions with placeholder names.
#[derive(Default)]
pub(crate) struct UpdateBuilder {
    sets: Vec<String>,
    removes: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateBuilder {
    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }
    fn value(&mut self, attr: &str, v: AttributeValue) -> String {
        let placeholder = format!(":{attr}");
        self.values.insert(placeholder.clone(), v);
        placeholder
    }
    fn set(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(attr, v));
        self.sets.push(format!("{name} = {value}"));
        self
    }
    fn set_opt(&mut self, attr: &str, v: Option<AttributeValue>) -> &mut Self {
        if let Some(v) = v {
            self.set(attr, v);
        }
        self
    }
    fn set_if_absent(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (name, value) = (self.name(attr), self.value(attr, v));
        self.sets
            .push(format!("{name} = if_not_exists({name}, {value})"));
        self
    }
    fn remove(&mut self, attr: &str) -> &mut Self {
        let name = self.name(attr);
        self.removes.push(name);
        self
    }
    fn expression(&self) -> String {
        let mut expr = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        expr
    }
}

fn json_attr(v: &serde_json::Value) -> Option<AttributeValue> {
    serde_dynamo::to_attribute_value(v).ok()
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            pull_data_retention: None,
            cursor_key: cursor::CursorKey::random(),
        }
    }

    /// Signs listing cursors with `key`: every instance of a function must share one key for
    /// a cursor from one instance to page on another (see [`cursor`]).
    pub fn with_cursor_key(mut self, key: cursor::CursorKey) -> Self {
        self.cursor_key = key;
        self
    }

    /// Expires stored pull data (summary and parts) `retention` after each fetch.
    pub fn with_pull_data_retention(mut self, retention: Option<std::time::Duration>) -> Self {
        self.pull_data_retention = retention;
        self
    }

    /// The TTL of pull data written now, if retention is set.
    pub(crate) fn pull_data_expiry(&self) -> Option<i64> {
        let retention = i64::try_from(self.pull_data_retention?.as_secs()).ok()?;
        Some(time::OffsetDateTime::now_utc().unix_timestamp() + retention)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_state_item(
        &self,
        pk: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        self.get_item(pk, STATE_SK, None).await
    }

    /// One item by key, read consistently; `projection` names the attributes wanted (all if
    /// `None`).
    pub(crate) async fn get_item(
        &self,
        pk: String,
        sk: &str,
        projection: Option<&str>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(out.item)
    }

    /// Reads a pull's state.
    pub async fn get_pull(&self, pull_id: &str) -> Result<Option<PullRecord>, PortError> {
        self.get_state_item(pull_pk(pull_id))
            .await?
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| PortError::unavailable(SERVICE, format!("unreadable pull: {e}")))
            })
            .transpose()
    }

    /// Reads a monitoring's state.
    pub async fn get_monitoring(
        &self,
        monitoring_id: &str,
    ) -> Result<Option<MonitoringRecord>, PortError> {
        self.get_state_item(monitoring_pk(monitoring_id))
            .await?
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| {
                    PortError::unavailable(SERVICE, format!("unreadable monitoring: {e}"))
                })
            })
            .transpose()
    }

    /// Reads an event record's status (`IN_PROGRESS` / `COMPLETED`) and outcome.
    pub async fn get_event_status(
        &self,
        dedupe_key: &str,
    ) -> Result<Option<(String, Option<String>)>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(event_pk(dedupe_key), EVENT_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(out.item.map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            (text("status").unwrap_or_default(), text("outcome"))
        }))
    }
}

fn claim_result_of(item: &HashMap<String, AttributeValue>) -> ClaimResult {
    match item.get("status").and_then(|v| v.as_s().ok()) {
        Some(status) if status == STATUS_COMPLETED => ClaimResult::Completed,
        _ => ClaimResult::InProgress,
    }
}

#[async_trait]
impl IntakeStore for DynamoStore {
    async fn claim_event(&self, claim: &EventClaim) -> Result<ClaimResult, PortError> {
        let mut item = key(event_pk(&claim.dedupe_key), EVENT_SK);
        item.extend([
            ("expires_at".to_owned(), n(claim.expires_at)),
            ("received_at".to_owned(), s(&claim.received_at)),
            // The `recent` index: deliveries by day (sharded), for the operator's tail and status.
            (
                operations::RECENT_DAY_ATTR.to_owned(),
                s(operations::recent_key(
                    &claim.received_at,
                    &claim.dedupe_key,
                )),
            ),
            ("event_type".to_owned(), s(&claim.event_type)),
            ("pull_id".to_owned(), s(&claim.pull_id)),
        ]);
        if let Some(m) = &claim.monitoring_id {
            item.insert("monitoring_id".to_owned(), s(m));
        }
        if let Some(source) = &claim.source {
            item.insert("source".to_owned(), s(source));
        }
        match Some(gzip::compress(&claim.body)).filter(|gz| gz.len() <= MAX_STORED_BODY) {
            Some(gz) => {
                item.insert("body_gz".to_owned(), AttributeValue::B(gz.into()));
            }
            None => {
                item.insert("body_omitted".to_owned(), AttributeValue::Bool(true));
            }
        }
        let lease = Lease {
            id: &claim.lease_id,
            expires_at: claim.lease_expires_at,
        };
        Ok(
            match self
                .claim_lease(item, STATUS_IN_PROGRESS, &lease, claim.now)
                .await?
            {
                Claim::Taken => ClaimResult::Claimed,
                Claim::Refused(Some(old)) => claim_result_of(&old),
                // Gone again since: another attempt released it; wait and claim again.
                Claim::Refused(None) => ClaimResult::InProgress,
            },
        )
    }

    async fn complete_event(
        &self,
        dedupe_key: &str,
        lease_id: &str,
        outcome: &str,
        at: &str,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(event_pk(dedupe_key), EVENT_SK)))
            .update_expression("SET #status = :done, outcome = :outcome, completed_at = :at")
            .condition_expression(HELD_BY_LEASE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s(STATUS_COMPLETED))
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":lease", s(lease_id))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(())
    }

    async fn release_event(&self, dedupe_key: &str, lease_id: &str) -> Result<(), PortError> {
        self.release_lease(
            key(event_pk(dedupe_key), EVENT_SK),
            STATUS_IN_PROGRESS,
            lease_id,
        )
        .await
    }

    async fn apply_pull_update(&self, update: &PullUpdate) -> Result<PullApplied, PortError> {
        let mut b = UpdateBuilder::default();
        b.set("pull_id", s(&update.pull_id))
            .set_opt("widget_id", update.widget_id.as_ref().map(s))
            .set_opt("team_id", update.team_id.as_ref().map(s))
            .set_opt("source", update.source.as_ref().map(|st| s(&st.name)))
            .set_opt(
                "account_identifier",
                update.account_identifier.as_ref().map(s),
            )
            .set_opt("monitoring_id", update.monitoring_id.as_ref().map(s))
            .set_opt("initial_pull_id", update.initial_pull_id.as_ref().map(s))
            .set("last_event_type", s(&update.event_type))
            .set("last_event_at", s(&update.at))
            .set_if_absent("first_seen_at", s(&update.at));
        if let Some(meta) = &update.meta_data {
            match self.keep_meta_data(&update.pull_id, meta).await? {
                MetaDataKept::Inline(attr) => {
                    b.set("meta_data", attr);
                }
                MetaDataKept::Parts { sha256, parts } => {
                    b.set("meta_data_sha256", s(sha256))
                        .set("meta_data_parts", n(parts))
                        .remove("meta_data");
                }
            }
        }
        let mut condition = None;
        if let Some(p) = &update.progress {
            b.set("status_rank", n(p.rank))
                .set_opt("status", p.status.as_ref().map(s))
                .set_opt("auth_status", p.auth_status.as_ref().map(s))
                .set_opt("auth_sequence", p.sequence.map(n))
                .set_opt("error_type", p.error_type.as_ref().map(s));
            if let Some(prompt) = &p.auth_prompt {
                match &prompt.login_error_message {
                    Some(m) => b.set("login_error_message", s(m)),
                    None => b.remove("login_error_message"),
                };
                match prompt.mfa_options.as_ref().and_then(json_attr) {
                    Some(o) => b.set("mfa_options", o),
                    None => b.remove("mfa_options"),
                };
            }
            match p.milestone {
                Some(Milestone::PoliciesAvailable) => {
                    b.set_if_absent("policies_available_at", s(&update.at));
                }
                Some(Milestone::Completed) => {
                    b.set_if_absent("completed_at", s(&update.at));
                }
                Some(Milestone::Failed) => {
                    b.set_if_absent("failed_at", s(&update.at));
                }
                None => {}
            }
            // The ordering rule of `plan::progress_applies`, as a condition.
            let rank = b.name("status_rank");
            let rank_value = b.value("status_rank", n(p.rank));
            condition = Some(match p.sequence {
                Some(seq) => {
                    let seq_name = b.name("auth_sequence");
                    let seq_value = b.value("auth_sequence", n(seq));
                    format!(
                        "attribute_not_exists({rank}) OR {rank} < {rank_value} OR ({rank} = {rank_value} \
                         AND (attribute_not_exists({seq_name}) OR {seq_name} <= {seq_value}))"
                    )
                }
                None => format!("attribute_not_exists({rank}) OR {rank} <= {rank_value}"),
            });
        }
        // The pull belongs to the source that first named it (`source_allows`).
        if let Some(stamp) = &update.source {
            let guard = source_guard(&mut b, stamp);
            condition = Some(match condition {
                Some(c) => format!("({guard}) AND ({c})"),
                None => guard,
            });
        }
        // The item as it is afterwards (or as it was, when refused) tells the caller when the
        // pull was first seen and whether it completed: no second read.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pull_pk(&update.pull_id), STATE_SK)))
            .update_expression(b.expression())
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(b.names))
            .set_expression_attribute_values(Some(b.values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let found = |item: Option<&HashMap<String, AttributeValue>>, applied: bool| PullApplied {
            other_source: !applied
                && update.source.as_ref().is_some_and(|stamp| {
                    !crate::domain::source::source_allows(
                        item.and_then(|i| text(i, "source")).as_deref(),
                        item.is_some(),
                        stamp,
                    )
                }),
            applied,
            first_seen_at: item
                .and_then(|i| i.get("first_seen_at"))
                .and_then(|v| v.as_s().ok())
                .cloned(),
            completed: item.is_some_and(|i| i.contains_key("completed_at")),
        };
        match result {
            Ok(out) => Ok(found(out.attributes.as_ref(), true)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(found(c.item(), false))
                }
                _ => Err(port_error(SERVICE, err)),
            },
        }
    }

    async fn record_canopy_changes(
        &self,
        record: &crate::domain::plan::CanopyChangeRecord,
        events: &[crate::domain::business_events::BusinessEvent],
    ) -> Result<(), PortError> {
        self.put_canopy_change(record, events).await
    }

    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<bool, PortError> {
        // `MonitoringRecord::apply` as conditional writes. The common case is one write; when
        // its condition fails, the parts whose own guard holds are applied one by one (see
        // `plan` for the order of refreshes). Opening and closing an episode are parts of
        // their own, each recording its event: a write that records a `ReconnectNeeded` or
        // `ReconnectResolved` is one that opened or closed the episode.
        let (first, then): (&[MonitoringPart], &[MonitoringPart]) = match update.change {
            MonitoringChange::Seen => (&[MonitoringPart::Seen], &[]),
            MonitoringChange::ReconnectNeeded => (&[MonitoringPart::OpenEpisode], &[]),
            MonitoringChange::Refreshed => (
                &[MonitoringPart::Latest, MonitoringPart::NoEpisode],
                &[MonitoringPart::Latest, MonitoringPart::CloseEpisode],
            ),
        };
        if self.monitoring_write(update, first).await? {
            return Ok(true);
        }
        let mut applied = false;
        for part in then {
            applied |= self.monitoring_write(update, &[*part]).await?;
        }
        if !applied {
            // Every guard refused: the event is older than what is recorded; note that we heard.
            // `Seen` has no guard but the source's: refused, the monitoring is another source's.
            return self.monitoring_write(update, &[MonitoringPart::Seen]).await;
        }
        Ok(true)
    }
}

/// The condition of `source_allows` on the item being written.
fn source_guard(b: &mut UpdateBuilder, stamp: &crate::domain::source::SourceStamp) -> String {
    let source = b.name("source");
    let value = b.value("source_stamp", s(&stamp.name));
    if stamp.adopts_unnamed {
        format!("attribute_not_exists({source}) OR {source} = {value}")
    } else {
        let pk = b.name("pk");
        format!("attribute_not_exists({pk}) OR {source} = {value}")
    }
}

/// The pieces of a monitoring update, each with its own guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonitoringPart {
    /// Ids and when we last heard: always.
    Seen,
    /// Open a reconnect episode (and record `ReconnectNeeded`) unless one is open, or this
    /// pull or a later one completed.
    OpenEpisode,
    /// Move `latest_pull_id` forward only.
    Latest,
    /// Only a guard: no episode is open (a COMPLETE's common case).
    NoEpisode,
    /// Close the open episode (and record `ReconnectResolved`) if this pull is the
    /// reconnect's or a later one.
    CloseEpisode,
}

/// Where a `meta_data` value went.
enum MetaDataKept {
    Inline(AttributeValue),
    Parts { sha256: String, parts: usize },
}

impl DynamoStore {
    /// One UpdateItem of the monitoring with `parts`; `false` when a guard refused it.
    async fn monitoring_write(
        &self,
        update: &MonitoringUpdate,
        parts: &[MonitoringPart],
    ) -> Result<bool, PortError> {
        let mut b = UpdateBuilder::default();
        b.set("monitoring_id", s(&update.monitoring_id))
            .set_opt("initial_pull_id", update.initial_pull_id.as_ref().map(s))
            .set_opt("owner", update.owner.as_ref().map(s))
            .set_opt("source", update.source.as_ref().map(|st| s(&st.name)))
            // An event of a monitored pull: active unless the API or the reconciler said otherwise.
            .set_if_absent("monitoring_status", s(crate::domain::records::ACTIVE))
            .set_if_absent(
                monitorings::STATUS_SHARD_ATTR,
                s(monitorings::status_shard_key(
                    crate::domain::records::ACTIVE,
                    &update.monitoring_id,
                )),
            )
            .set("last_event_type", s(&update.event_type))
            .set("last_event_pull_id", s(&update.pull_id))
            .set("last_event_at", s(&update.at))
            .set_if_absent("first_seen_at", s(&update.at));
        // Each guard compares a stored first-sight time with this pull's (see `plan`); and the
        // monitoring belongs to the source that first named it (`source_allows`).
        let mut guards = Vec::new();
        if let Some(stamp) = &update.source {
            let guard = source_guard(&mut b, stamp);
            guards.push(format!("({guard})"));
        }
        let guard = |b: &mut UpdateBuilder, stored: &str, op: &str| {
            let stored = b.name(stored);
            let seen = b.value("pull_seen_at", s(&update.pull_seen_at));
            format!("(attribute_not_exists({stored}) OR {stored} {op} {seen})")
        };
        for part in parts {
            match part {
                MonitoringPart::Seen => {}
                MonitoringPart::OpenEpisode => {
                    b.set("reconnect_needed_since", s(&update.at))
                        .set(
                            monitorings::RECONNECT_KEY_ATTR,
                            s(monitorings::reconnect_key(
                                &update.at,
                                &update.monitoring_id,
                            )),
                        )
                        .set("reconnect_pull_id", s(&update.pull_id))
                        .set("reconnect_pull_seen_at", s(&update.pull_seen_at));
                    let since = b.name("reconnect_needed_since");
                    guards.push(format!("attribute_not_exists({since})"));
                    // No COMPLETE of this pull or a later one is recorded.
                    guards.push(guard(&mut b, "latest_pull_seen_at", "<"));
                    let event =
                        reconnect_needed(&update.monitoring_id, &update.pull_id, &update.at);
                    add_to_update(
                        &mut b,
                        &monitoring_pk(&update.monitoring_id),
                        STATE_SK,
                        &[event],
                        &update.at,
                    );
                }
                MonitoringPart::Latest => {
                    b.set("latest_pull_id", s(&update.pull_id))
                        .set("latest_pull_seen_at", s(&update.pull_seen_at))
                        .set("last_refresh_at", s(&update.at));
                    guards.push(guard(&mut b, "latest_pull_seen_at", "<="));
                }
                MonitoringPart::NoEpisode => {
                    let since = b.name("reconnect_needed_since");
                    guards.push(format!("attribute_not_exists({since})"));
                }
                MonitoringPart::CloseEpisode => {
                    b.remove("reconnect_needed_since")
                        .remove(monitorings::RECONNECT_KEY_ATTR)
                        .remove("reconnect_pull_id")
                        .remove("reconnect_pull_seen_at");
                    let since = b.name("reconnect_needed_since");
                    guards.push(format!("attribute_exists({since})"));
                    guards.push(guard(&mut b, "reconnect_pull_seen_at", "<="));
                    let event =
                        reconnect_resolved(&update.monitoring_id, &update.pull_id, &update.at);
                    add_to_update(
                        &mut b,
                        &monitoring_pk(&update.monitoring_id),
                        STATE_SK,
                        &[event],
                        &update.at,
                    );
                }
            }
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(monitoring_pk(&update.monitoring_id), STATE_SK)))
            .update_expression(b.expression())
            .set_condition_expression((!guards.is_empty()).then(|| guards.join(" AND ")))
            .set_expression_attribute_names(Some(b.names))
            .set_expression_attribute_values(Some(b.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }

    /// Keeps `meta` inline when small, else once as gzip parts under the pull (idempotent:
    /// the parts are keyed by the content's hash, so a redelivery rewrites the same items).
    async fn keep_meta_data(
        &self,
        pull_id: &str,
        meta: &serde_json::Value,
    ) -> Result<MetaDataKept, PortError> {
        let json = serde_json::to_vec(meta).unwrap_or_default();
        if json.len() <= MAX_INLINE_META_DATA {
            if let Some(attr) = json_attr(meta) {
                return Ok(MetaDataKept::Inline(attr));
            }
        }
        let packed = crate::domain::pull_data::pack(&json);
        let prefix = meta_parts_prefix(&packed.sha256);
        let items = packed
            .parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut item = key(pull_pk(pull_id), format!("{prefix}{i:04}"));
                item.insert("gz".to_owned(), AttributeValue::B(part.clone().into()));
                item
            })
            .collect();
        self.put_items(items).await?;
        Ok(MetaDataKept::Parts {
            parts: packed.parts.len(),
            sha256: packed.sha256,
        })
    }

    /// BatchWriteItem in calls of 25, retrying what DynamoDB leaves unprocessed under load.
    pub(crate) async fn batch_write(
        &self,
        requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), PortError> {
        for batch in requests.chunks(25) {
            let mut pending = batch.to_vec();
            // Unprocessed items are throttled ones: back off before each retry.
            let backoff = crate::domain::retry::RetryPolicy {
                base: std::time::Duration::from_millis(100),
                cap: std::time::Duration::from_millis(1600),
            };
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| port_error(SERVICE, e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                attempt += 1;
                if !pending.is_empty() {
                    if attempt >= 6 {
                        return Err(PortError::unavailable(SERVICE, "writes left unprocessed"));
                    }
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// Puts whole items with BatchWriteItem.
    pub(crate) async fn put_items(
        &self,
        items: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    /// The `gz` blobs of the items under `pk` whose sort key starts with `prefix`, in key order.
    pub(crate) async fn query_blobs(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Vec<u8>>, PortError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(items
            .into_iter()
            .filter_map(|part| match part.get("gz") {
                Some(AttributeValue::B(blob)) => Some(blob.clone().into_inner()),
                _ => None,
            })
            .collect())
    }

    /// The sort keys under `pk` that start with `prefix` (keys only: nothing else is read).
    pub(crate) async fn query_sort_keys(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<String>, PortError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(prefix))
            .projection_expression("sk")
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(items.iter().filter_map(|i| text(i, "sk")).collect())
    }

    /// A pull's `meta_data`, inline or from its parts.
    pub async fn pull_meta_data(
        &self,
        pull_id: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        let Some(item) = self.get_state_item(pull_pk(pull_id)).await? else {
            return Ok(None);
        };
        if let Some(inline) = item.get("meta_data") {
            return Ok(serde_dynamo::from_attribute_value(inline.clone()).ok());
        }
        let (Some(sha), Some(parts)) = (
            item.get("meta_data_sha256").and_then(|v| v.as_s().ok()),
            item.get("meta_data_parts")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<usize>().ok()),
        ) else {
            return Ok(None);
        };
        let mut chunks = self
            .query_blobs(pull_pk(pull_id), &meta_parts_prefix(sha))
            .await?;
        chunks.truncate(parts);
        crate::domain::pull_data::reassemble(&chunks, sha)
            .map(Some)
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))
    }
}
