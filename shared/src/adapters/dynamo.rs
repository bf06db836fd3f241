//! The DynamoDB adapter: one table, generic `pk`/`sk` keys.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | event record (dedupe) | `EVENT#<dedupe key>` | `EVENT` | lease, outcome, gzip body, TTL `expires_at` |
//! | pull state | `PULL#<pull_id>` | `STATE` | [`PullRecord`] |
//! | monitoring state | `MONITORING#<monitoring_id>` | `STATE` | [`MonitoringRecord`] |

use super::aws::port_error;
use crate::plan::{Milestone, MonitoringChange, MonitoringUpdate, PullUpdate};
use crate::ports::{ClaimResult, EventClaim, IntakeStore, PortError};
use crate::records::{MonitoringRecord, PullRecord};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::io::Write;

const SERVICE: &str = "dynamodb";
/// Bodies are stored gzip-compressed when they fit well inside DynamoDB's 400 KB item limit.
const MAX_STORED_BODY: usize = 300 * 1024;

pub const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
pub const STATUS_COMPLETED: &str = "COMPLETED";

pub fn event_pk(dedupe_key: &str) -> String {
    format!("EVENT#{dedupe_key}")
}
pub fn pull_pk(pull_id: &str) -> String {
    format!("PULL#{pull_id}")
}
pub fn monitoring_pk(monitoring_id: &str) -> String {
    format!("MONITORING#{monitoring_id}")
}
pub const EVENT_SK: &str = "EVENT";
pub const STATE_SK: &str = "STATE";

/// The state table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
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
/// The key of the item `pk`/`sk`.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Builds `SET a = :v, b = if_not_exists(b, :w) REMOVE c` expressions with placeholder names.
#[derive(Default)]
struct UpdateBuilder {
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

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
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
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, STATE_SK)))
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
            ("status".to_owned(), s(STATUS_IN_PROGRESS)),
            ("lease_id".to_owned(), s(&claim.lease_id)),
            ("lease_expires_at".to_owned(), n(claim.lease_expires_at)),
            ("expires_at".to_owned(), n(claim.expires_at)),
            ("received_at".to_owned(), s(&claim.received_at)),
            ("event_type".to_owned(), s(&claim.event_type)),
            ("pull_id".to_owned(), s(&claim.pull_id)),
        ]);
        if let Some(m) = &claim.monitoring_id {
            item.insert("monitoring_id".to_owned(), s(m));
        }
        match gzip(&claim.body).filter(|gz| gz.len() <= MAX_STORED_BODY) {
            Some(gz) => {
                item.insert("body_gz".to_owned(), AttributeValue::B(gz.into()));
            }
            None => {
                item.insert("body_omitted".to_owned(), AttributeValue::Bool(true));
            }
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // New, or expired (TTL deletion lags by up to days), or abandoned by a crashed attempt.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now \
                 OR (#status = :in_progress AND lease_expires_at < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(claim.now))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimResult::Claimed),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(old) => Ok(claim_result_of(old)),
                        // The condition failed but the old item was not returned: read it.
                        None => Ok(match self.get_event_status(&claim.dedupe_key).await? {
                            Some((status, _)) if status == STATUS_COMPLETED => {
                                ClaimResult::Completed
                            }
                            _ => ClaimResult::InProgress,
                        }),
                    }
                }
                _ => Err(port_error(SERVICE, err)),
            },
        }
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
            .condition_expression("lease_id = :lease")
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
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(event_pk(dedupe_key), EVENT_SK)))
            .condition_expression("lease_id = :lease AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else holds it now: nothing of ours to release.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }

    async fn apply_pull_update(&self, update: &PullUpdate) -> Result<bool, PortError> {
        let mut b = UpdateBuilder::default();
        b.set("pull_id", s(&update.pull_id))
            .set_opt("widget_id", update.widget_id.as_ref().map(s))
            .set_opt("team_id", update.team_id.as_ref().map(s))
            .set_opt(
                "account_identifier",
                update.account_identifier.as_ref().map(s),
            )
            .set_opt("monitoring_id", update.monitoring_id.as_ref().map(s))
            .set_opt("initial_pull_id", update.initial_pull_id.as_ref().map(s))
            .set_opt("meta_data", update.meta_data.as_ref().and_then(json_attr))
            .set("last_event_type", s(&update.event_type))
            .set("last_event_at", s(&update.at))
            .set_if_absent("first_seen_at", s(&update.at));
        let mut condition = None;
        if let Some(p) = &update.progress {
            b.set("status_rank", n(p.rank))
                .set_opt("status", p.status.as_ref().map(s))
                .set_opt("auth_status", p.auth_status.as_ref().map(s))
                .set_opt("auth_sequence", p.sequence.map(n))
                .set_opt("error_type", p.error_type.as_ref().map(s));
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pull_pk(&update.pull_id), STATE_SK)))
            .update_expression(b.expression())
            .set_condition_expression(condition)
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

    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<(), PortError> {
        let mut b = UpdateBuilder::default();
        b.set("monitoring_id", s(&update.monitoring_id))
            .set_opt("initial_pull_id", update.initial_pull_id.as_ref().map(s))
            .set("last_event_type", s(&update.event_type))
            .set("last_event_pull_id", s(&update.pull_id))
            .set("last_event_at", s(&update.at))
            .set_if_absent("first_seen_at", s(&update.at));
        match update.change {
            MonitoringChange::Seen => {}
            MonitoringChange::ReconnectNeeded => {
                b.set_if_absent("reconnect_needed_since", s(&update.at))
                    .set("reconnect_pull_id", s(&update.pull_id));
            }
            MonitoringChange::Refreshed => {
                b.set("latest_pull_id", s(&update.pull_id))
                    .set("last_refresh_at", s(&update.at))
                    .remove("reconnect_needed_since")
                    .remove("reconnect_pull_id");
            }
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(monitoring_pk(&update.monitoring_id), STATE_SK)))
            .update_expression(b.expression())
            .set_expression_attribute_names(Some(b.names))
            .set_expression_attribute_values(Some(b.values))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(())
    }
}
