//! Pull data in DynamoDB (the fetcher's side of the table).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | data summary (commit point) | `PULL#<pull_id>` | `DATA` | [`PullSummary`], `parts`, `sha256`, sizes, `fetched_at` |
//! | data part | `PULL#<pull_id>` | `DATA#PART#0000`.. | `gz`: a slice of the gzip of the whole pull JSON |
//! | refresh history | `MONITORING#<id>` | `REFRESH#<created_at>#<pull_id>` | pull id, created and fetched times |
//!
//! Fetch progress lives on the pull's `STATE` item (`fetch_*` attributes).

use super::aws::port_error;
use super::dynamo::{condition_failed, key, monitoring_pk, n, pull_pk, s, DynamoStore, STATE_SK};
use crate::fetcher::{fetch_decision, FetchClaim, PullDataStore, SkipReason, FAILED, FETCHED};
use crate::ports::PortError;
use crate::pull_data::{reassemble, PreparedPull, PullSummary};
use crate::records::PullRecord;
use crate::work::FetchTrigger;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const SERVICE: &str = "dynamodb";
pub const DATA_SK: &str = "DATA";

fn part_sk(i: usize) -> String {
    format!("DATA#PART#{i:04}")
}

/// A stored pull, read back.
#[derive(Debug, Clone)]
pub struct StoredPull {
    pub summary: PullSummary,
    pub fetched_at: String,
    pub pull: Value,
}

/// One entry of a monitoring's refresh history.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RefreshEntry {
    pub pull_id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    pub fetched_at: String,
}

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
        let summary: PullSummary =
            serde_dynamo::from_item(item).map_err(|_| unreadable("summary"))?;

        let mut chunks = Vec::with_capacity(parts);
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pull_pk(pull_id)))
                .expression_attribute_values(":prefix", s("DATA#PART#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error(SERVICE, e))?;
            for part in page.items.unwrap_or_default() {
                if let Some(AttributeValue::B(blob)) = part.get("gz") {
                    chunks.push(blob.clone().into_inner());
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // Parts beyond the committed count belong to an earlier, larger write.
        chunks.truncate(parts);
        let pull = reassemble(&chunks, &sha)
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
        Ok(Some(StoredPull {
            summary,
            fetched_at,
            pull,
        }))
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
        // `fetcher::fetch_decision`, as a condition.
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
                    let reason = fetch_decision(old.as_ref(), trigger, now)
                        .err()
                        .unwrap_or(SkipReason::InFlight);
                    Ok(FetchClaim::Skip(reason))
                }
                _ => Err(port_error(SERVICE, err)),
            },
        }
    }

    async fn store_pull_data(
        &self,
        pull_id: &str,
        data: &PreparedPull,
        fetched_at: &str,
    ) -> Result<(), PortError> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(data.parts.len());
        for (i, part) in data.parts.iter().enumerate() {
            let mut item = key(pull_pk(pull_id), part_sk(i));
            item.insert("gz".to_owned(), AttributeValue::B(part.clone().into()));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        // BatchWriteItem takes 25 items a call and may leave some unprocessed under load.
        for batch in requests.chunks(25) {
            let mut pending = batch.to_vec();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let out = self
                    .client()
                    .batch_write_item()
                    .request_items(self.table(), pending)
                    .send()
                    .await
                    .map_err(|e| port_error(SERVICE, e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(self.table()))
                    .unwrap_or_default();
                attempt += 1;
                if !pending.is_empty() {
                    if attempt >= 6 {
                        return Err(PortError::unavailable(
                            SERVICE,
                            "pull data writes left unprocessed",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        // The summary commits the parts: readers trust `parts` and `sha256` from here.
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&data.summary)
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
        item.extend(key(pull_pk(pull_id), DATA_SK));
        item.insert("parts".to_owned(), n(data.parts.len()));
        item.insert("sha256".to_owned(), s(&data.sha256));
        item.insert("json_bytes".to_owned(), n(data.json_bytes));
        item.insert("gzip_bytes".to_owned(), n(data.gzip_bytes));
        item.insert("fetched_at".to_owned(), s(fetched_at));
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
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
    ) -> Result<(), PortError> {
        self.lease_update(
            pull_id,
            lease_id,
            "SET fetch_status = :failed, fetch_error = :code, fetch_error_at = :at \
             REMOVE fetch_lease_id, fetch_lease_expires_at",
            vec![(":failed", s(FAILED)), (":code", s(code)), (":at", s(at))],
        )
        .await
    }
}
