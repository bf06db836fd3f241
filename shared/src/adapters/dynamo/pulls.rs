//! Pull data in DynamoDB (the fetcher's side of the table).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | data summary (commit point) | `PULL#<pull_id>` | `DATA` | [`PullSummary`], `version`, `parts`, `sha256`, sizes, `fetched_at` |
//! | data part | `PULL#<pull_id>` | `DATA#V#<version>#PART#0000`.. | `gz`: a slice of the gzip of the whole pull JSON |
//! | refresh history | `MONITORING#<id>` | `REFRESH#<created_at>#<pull_id>` | pull id, created and fetched times |
//!
//! Versions make the summary a true commit point: a fetch writes its parts under a version of
//! its own, then the summary naming that version, then deletes the parts of the version it
//! replaced. A reader follows the summary it read, so it sees the old pull or the new one,
//! never a mix; a fetch that fails half-way leaves only unreferenced parts (removed by the next
//! successful fetch, or by TTL when pull-data retention is set). Summaries written before
//! versions existed (no `version`) point at `DATA#PART#nnnn`.
//!
//! Fetch progress lives on the pull's `STATE` item (`fetch_*` attributes).

use super::outbox::add_to_update;
use super::{
    condition_failed, key, monitoring_pk, n, pull_pk, s, DynamoStore, UpdateBuilder, STATE_SK,
};
use crate::adapters::aws::port_error;
use crate::domain::business_events::BusinessEvent;
use crate::domain::fetch_claim::{fetch_decision, FetchClaim, FAILED, FETCHED};
use crate::domain::pull_data::{reassemble, PreparedPull, PullSummary};
use crate::domain::records::PullRecord;
use crate::domain::work::FetchTrigger;
use crate::ports::store::PullDataStore;
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use serde_json::Value;
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
pub const DATA_SK: &str = "DATA";

/// The sort-key prefix of a version's parts (`None`: the layout before versions).
fn parts_prefix(version: Option<&str>) -> String {
    match version {
        Some(v) => format!("DATA#V#{v}#PART#"),
        None => "DATA#PART#".to_owned(),
    }
}

fn part_sk(version: Option<&str>, i: usize) -> String {
    format!("{}{i:04}", parts_prefix(version))
}

/// A stored pull, read back.
#[derive(Debug, Clone)]
pub struct StoredPull {
    pub summary: PullSummary,
    pub fetched_at: String,
    pub pull: Value,
}

pub use crate::ports::store::{RefreshEntry, StoredGzip};

impl DynamoStore {
    /// Reads pull `pull_id`'s stored data: a GetItem and one Query, never a Scan.
    pub async fn get_pull_data(&self, pull_id: &str) -> Result<Option<StoredPull>, PortError> {
        let summary_item = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pull_pk(pull_id), DATA_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?
            .item;
        let Some(item) = summary_item else {
            return Ok(None);
        };
        let unreadable = |what: &str| {
            PortError::unavailable(SERVICE, format!("unreadable {what} of pull {pull_id}"))
        };
        let parts = item
            .get("parts")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| unreadable("part count"))?;
        let sha = item
            .get("sha256")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| unreadable("checksum"))?;
        let fetched_at = item
            .get("fetched_at")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let version = item.get("version").and_then(|v| v.as_s().ok()).cloned();
        let summary: PullSummary =
            serde_dynamo::from_item(item).map_err(|_| unreadable("summary"))?;

        let mut chunks = self
            .query_blobs(pull_pk(pull_id), &parts_prefix(version.as_deref()))
            .await?;
        // Parts beyond the committed count belong to an earlier, larger write (old layout).
        chunks.truncate(parts);
        let pull = reassemble(&chunks, &sha)
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
        Ok(Some(StoredPull {
            summary,
            fetched_at,
            pull,
        }))
    }

    /// Pull `pull_id`'s stored data as one gzip stream, exactly as kept (the parts are slices of
    /// one gzip of the pull's JSON text): a GetItem and one Query.
    pub async fn get_pull_gzip(&self, pull_id: &str) -> Result<Option<StoredGzip>, PortError> {
        let summary_item = self
            .get_item(
                pull_pk(pull_id),
                DATA_SK,
                Some("parts, version, json_bytes"),
            )
            .await?;
        let Some(item) = summary_item else {
            return Ok(None);
        };
        let number = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<usize>().ok())
        };
        let parts = number("parts").ok_or_else(|| {
            PortError::unavailable(SERVICE, format!("unreadable part count of pull {pull_id}"))
        })?;
        let version = item.get("version").and_then(|v| v.as_s().ok()).cloned();
        let mut chunks = self
            .query_blobs(pull_pk(pull_id), &parts_prefix(version.as_deref()))
            .await?;
        chunks.truncate(parts);
        Ok(Some(StoredGzip {
            gzip: chunks.concat(),
            json_bytes: number("json_bytes"),
        }))
    }

    /// The stored summary of pull `pull_id` and when it was fetched: one GetItem.
    pub async fn get_pull_summary(
        &self,
        pull_id: &str,
    ) -> Result<Option<(PullSummary, String)>, PortError> {
        let item = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pull_pk(pull_id), DATA_SK)))
            // The API reads this right after the fetcher's FETCHED, which it reads consistently.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?
            .item;
        let Some(item) = item else {
            return Ok(None);
        };
        let fetched_at = item
            .get("fetched_at")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let summary = serde_dynamo::from_item(item).map_err(|_| {
            PortError::unavailable(SERVICE, format!("unreadable summary of pull {pull_id}"))
        })?;
        Ok(Some((summary, fetched_at)))
    }

    /// The latest stored data of a monitoring: two GetItems and a Query.
    pub async fn latest_monitoring_data(
        &self,
        monitoring_id: &str,
    ) -> Result<Option<StoredPull>, PortError> {
        match self
            .get_monitoring(monitoring_id)
            .await?
            .and_then(|m| m.latest_data_pull_id)
        {
            Some(pull_id) => self.get_pull_data(&pull_id).await,
            None => Ok(None),
        }
    }

    /// A monitoring's refreshes, oldest first.
    pub async fn refresh_history(
        &self,
        monitoring_id: &str,
    ) -> Result<Vec<RefreshEntry>, PortError> {
        let items = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(monitoring_pk(monitoring_id)))
            .expression_attribute_values(":prefix", s("REFRESH#"))
            // The change log reads the entry its own fetch wrote milliseconds before.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?
            .items
            .unwrap_or_default();
        items
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item(i).map_err(|e| {
                    PortError::unavailable(SERVICE, format!("unreadable refresh: {e}"))
                })
            })
            .collect()
    }

    /// Deletes the data parts of `pull_id` that do not belong to `version`.
    async fn remove_other_versions(&self, pull_id: &str, version: &str) -> Result<(), PortError> {
        let keep = parts_prefix(Some(version));
        let stale = self
            .query_sort_keys(pull_pk(pull_id), "DATA#")
            .await?
            .into_iter()
            .filter(|sk| !sk.starts_with(&keep))
            .filter_map(|sk| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key(pull_pk(pull_id), sk)))
                    .build()
                    .ok()?;
                Some(WriteRequest::builder().delete_request(delete).build())
            })
            .collect();
        self.batch_write(stale).await
    }

    async fn lease_update(
        &self,
        pull_id: &str,
        lease_id: &str,
        update: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), PortError> {
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(pull_pk(pull_id), STATE_SK)))
            .update_expression(update)
            .condition_expression("fetch_lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // The lease ran out and another attempt took over: it will finish the job.
            Err(e) if condition_failed(&e) => {
                Err(PortError::unavailable(SERVICE, "fetch lease lost"))
            }
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}

#[async_trait]
impl PullDataStore for DynamoStore {
    async fn claim_fetch(
        &self,
        pull_id: &str,
        trigger: FetchTrigger,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<FetchClaim, PortError> {
        // `fetch_claim::fetch_decision`, as a condition.
        let mut condition = String::from(
            "attribute_not_exists(fetched_complete_at) \
             AND (attribute_not_exists(fetch_status) OR fetch_status <> :failed) \
             AND (attribute_not_exists(fetch_lease_expires_at) OR fetch_lease_expires_at < :now)",
        );
        if trigger == FetchTrigger::PoliciesAvailable {
            condition.push_str(
                " AND attribute_not_exists(fetched_at) AND attribute_not_exists(completed_at)",
            );
        }
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(pull_pk(pull_id), STATE_SK)))
            .update_expression(
                "SET fetch_lease_id = :lease, fetch_lease_expires_at = :expires, pull_id = if_not_exists(pull_id, :pull_id)",
            )
            .condition_expression(condition)
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":expires", n(lease_expires_at))
            .expression_attribute_values(":pull_id", s(pull_id))
            .expression_attribute_values(":failed", s(FAILED))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(FetchClaim::Claimed),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let old: Option<PullRecord> = failed
                        .item()
                        .and_then(|item| serde_dynamo::from_item(item.clone()).ok());
                    Ok(match fetch_decision(old.as_ref(), trigger, now) {
                        // Refused, yet the old item allows it: it changed in between. Retry
                        // soon rather than guess.
                        FetchClaim::Claimed => FetchClaim::Leased { expires_at: now },
                        other => other,
                    })
                }
                _ => Err(port_error(SERVICE, err)),
            },
        }
    }

    async fn store_pull_data(
        &self,
        pull_id: &str,
        version: &str,
        data: &PreparedPull,
        fetched_at: &str,
    ) -> Result<(), PortError> {
        let expires_at = self.pull_data_expiry();
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(data.parts.len());
        for (i, part) in data.parts.iter().enumerate() {
            let mut item = key(pull_pk(pull_id), part_sk(Some(version), i));
            item.insert("gz".to_owned(), AttributeValue::B(part.clone().into()));
            if let Some(at) = expires_at {
                item.insert("expires_at".to_owned(), n(at));
            }
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(requests).await?;
        // The summary commits the parts: readers trust `version`, `parts` and `sha256` from here.
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&data.summary)
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
        item.extend(key(pull_pk(pull_id), DATA_SK));
        item.insert("version".to_owned(), s(version));
        item.insert("parts".to_owned(), n(data.parts.len()));
        item.insert("sha256".to_owned(), s(&data.sha256));
        item.insert("json_bytes".to_owned(), n(data.json_bytes));
        item.insert("gzip_bytes".to_owned(), n(data.gzip_bytes));
        item.insert("fetched_at".to_owned(), s(fetched_at));
        if let Some(at) = expires_at {
            item.insert("expires_at".to_owned(), n(at));
        }
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        // Every other version is unreachable now: the one replaced, and any left by an attempt
        // that failed before its commit. Removing them is tidying, not correctness.
        if let Err(e) = self.remove_other_versions(pull_id, version).await {
            tracing::warn!(%pull_id, error = %e, "superseded pull data parts not removed");
        }
        Ok(())
    }

    async fn record_refresh(
        &self,
        monitoring_id: &str,
        pull_id: &str,
        created_at: Option<&str>,
        fetched_at: &str,
    ) -> Result<(), PortError> {
        let order = created_at.unwrap_or(fetched_at);
        let mut entry = key(
            monitoring_pk(monitoring_id),
            format!("REFRESH#{order}#{pull_id}"),
        );
        entry.insert("pull_id".to_owned(), s(pull_id));
        entry.insert("fetched_at".to_owned(), s(fetched_at));
        if let Some(c) = created_at {
            entry.insert("created_at".to_owned(), s(c));
        }
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(entry))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(monitoring_pk(monitoring_id), STATE_SK)))
            .update_expression(
                "SET latest_data_pull_id = :pull, latest_data_created_at = :order, \
                 latest_data_fetched_at = :fetched, monitoring_id = if_not_exists(monitoring_id, :m)",
            )
            // A refresh fetched late must not replace newer data.
            .condition_expression("attribute_not_exists(latest_data_created_at) OR latest_data_created_at <= :order")
            .expression_attribute_values(":pull", s(pull_id))
            .expression_attribute_values(":order", s(order))
            .expression_attribute_values(":fetched", s(fetched_at))
            .expression_attribute_values(":m", s(monitoring_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }

    async fn finish_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        trigger: FetchTrigger,
        at: &str,
    ) -> Result<(), PortError> {
        let complete = if trigger == FetchTrigger::Complete {
            ", fetched_complete_at = :at"
        } else {
            ""
        };
        self.lease_update(
            pull_id,
            lease_id,
            &format!(
                "SET fetch_status = :fetched, fetched_at = :at{complete} \
                 REMOVE fetch_lease_id, fetch_lease_expires_at, fetch_error, fetch_error_at"
            ),
            vec![(":fetched", s(FETCHED)), (":at", s(at))],
        )
        .await
    }

    async fn release_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), PortError> {
        self.lease_update(
            pull_id,
            lease_id,
            "SET fetch_error = :reason, fetch_error_at = :at REMOVE fetch_lease_id, fetch_lease_expires_at",
            vec![(":reason", s(reason)), (":at", s(at))],
        )
        .await
    }

    async fn fail_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        code: &str,
        at: &str,
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let mut b = UpdateBuilder::default();
        b.set("fetch_status", s(FAILED))
            .set("fetch_error", s(code))
            .set("fetch_error_at", s(at))
            .remove("fetch_lease_id")
            .remove("fetch_lease_expires_at");
        // The FetchFailed event is recorded by the write that records the failure, and the
        // pull joins the operator's list of failed fetches (a partition of the sparse gsi1).
        add_to_update(&mut b, &pull_pk(pull_id), STATE_SK, events, at);
        b.set("gsi1pk", s(super::operations::FETCH_FAILED_PK))
            .set("gsi1sk", s(format!("{at}#{pull_id}")));
        let lease = b.value("lease", s(lease_id));
        let lease_attr = b.name("fetch_lease_id");
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(pull_pk(pull_id), STATE_SK)))
            .update_expression(b.expression())
            .condition_expression(format!("{lease_attr} = {lease}"))
            .set_expression_attribute_names(Some(b.names))
            .set_expression_attribute_values(Some(b.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => {
                Err(PortError::unavailable(SERVICE, "fetch lease lost"))
            }
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}
