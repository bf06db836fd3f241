//! What an operator reads (`tools/canopy-ops`): deliveries by day, and the pulls whose fetch
//! failed for good. Queries only.
//!
//! | index | partition | sort | holds |
//! |---|---|---|---|
//! | `recent` (INCLUDE) | `recent_day` = `<the delivery's UTC date>#<shard>` | `received_at` | event records: type, pull, monitoring, status, outcome |
//! | `gsi1` | `FETCH_FAILED` | `<failed_at>#<pull_id>` | pull state items whose fetch failed permanently |

use super::{s, text, DynamoStore};
use crate::adapters::aws::port_error;
use crate::ports::PortError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
pub const RECENT_INDEX: &str = "recent";
pub const RECENT_DAY_ATTR: &str = "recent_day";
pub const FETCH_FAILED_PK: &str = "FETCH_FAILED";

/// The UTC day of an RFC 3339 time (`2026-11-27T...` -> `2026-11-27`).
pub fn recent_day(at: &str) -> &str {
    at.get(..10).unwrap_or(at)
}

/// The `recent` index partition of a delivery: its day, sharded by its dedupe key
/// (`2026-11-27#07`), so that a day's deliveries spread over [`crate::domain::shard::SHARDS`]
/// partitions instead of all landing in one.
pub fn recent_key(received_at: &str, dedupe_key: &str) -> String {
    crate::domain::shard::sharded_key(recent_day(received_at), dedupe_key)
}

/// One delivery, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub received_at: String,
    pub event_type: String,
    pub pull_id: String,
    pub monitoring_id: Option<String>,
    /// `IN_PROGRESS` or `COMPLETED`.
    pub status: String,
    /// `accepted`, `duplicate`... once completed.
    pub outcome: Option<String>,
    pub dedupe_key: String,
}

/// A pull Canopy will never serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFetch {
    pub pull_id: String,
    /// The pull's source; `None` for pulls recorded before sources (the primary).
    pub source: Option<String>,
    pub monitoring_id: Option<String>,
    pub code: String,
    pub failed_at: String,
}

impl DynamoStore {
    /// The newest deliveries, newest first, from the days ending with `today` (at most
    /// `days` of them).
    pub async fn recent_deliveries(
        &self,
        today: time::Date,
        days: u16,
        limit: usize,
    ) -> Result<Vec<Delivery>, PortError> {
        let mut out = Vec::new();
        let mut day = today;
        for _ in 0..days {
            if out.len() >= limit {
                break;
            }
            let wanted = limit - out.len();
            // The day's shards, read in parallel; each is newest first, so the newest `wanted`
            // of the day are among the first `wanted` of each shard.
            let day_key = day.to_string();
            let shards = futures::future::try_join_all(
                crate::domain::shard::all_shard_keys(&day_key)
                    .map(|shard| self.recent_shard(shard, wanted)),
            )
            .await?;
            let mut deliveries: Vec<Delivery> = shards.into_iter().flatten().collect();
            deliveries.sort_by(|a, b| b.received_at.cmp(&a.received_at));
            deliveries.truncate(wanted);
            out.extend(deliveries);
            match day.previous_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        Ok(out)
    }

    /// The newest `limit` deliveries of one shard of a day.
    async fn recent_shard(&self, shard: String, limit: usize) -> Result<Vec<Delivery>, PortError> {
        let items = self
            .newest_in_partition(RECENT_INDEX, RECENT_DAY_ATTR, shard, limit)
            .await?;
        Ok(items
            .iter()
            .map(|i| Delivery {
                received_at: text(i, "received_at").unwrap_or_default(),
                event_type: text(i, "event_type").unwrap_or_default(),
                pull_id: text(i, "pull_id").unwrap_or_default(),
                monitoring_id: text(i, "monitoring_id"),
                status: text(i, "status").unwrap_or_default(),
                outcome: text(i, "outcome"),
                dedupe_key: text(i, "pk")
                    .map(|pk| pk.trim_start_matches(super::EVENT_PK_PREFIX).to_owned())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// The newest `limit` items of one partition of an index (the operator's views: eventual
    /// reads are fine, a second's lag shows on the next look).
    async fn newest_in_partition(
        &self,
        index: &str,
        hash_attr: &str,
        value: String,
        limit: usize,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(index)
            .key_condition_expression("#hash = :hash")
            .expression_attribute_names("#hash", hash_attr)
            .expression_attribute_values(":hash", s(value))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(page.items.unwrap_or_default())
    }

    /// Removes what a `canopy-ops ping` left: its event record and its pull item. Only pulls
    /// named as pings ([`crate::domain::event::PING_PULL_PREFIX`]) are touched.
    pub async fn remove_ping(&self, dedupe_key: &str, pull_id: &str) -> Result<(), PortError> {
        if !pull_id.starts_with(crate::domain::event::PING_PULL_PREFIX) {
            return Err(PortError::misconfigured(
                SERVICE,
                format!("{pull_id} is not a ping's pull"),
            ));
        }
        for (pk, sk) in [
            (super::event_pk(dedupe_key), super::EVENT_SK),
            (super::pull_pk(pull_id), super::STATE_SK),
        ] {
            self.client()
                .delete_item()
                .table_name(self.table())
                .key("pk", s(pk))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|e| port_error(SERVICE, e))?;
        }
        Ok(())
    }

    /// Pulls whose fetch failed for good, newest first.
    pub async fn failed_fetches(&self, limit: usize) -> Result<Vec<FailedFetch>, PortError> {
        let items = self
            .newest_in_partition("gsi1", "gsi1pk", FETCH_FAILED_PK.to_owned(), limit)
            .await?;
        Ok(items
            .iter()
            .map(|i| FailedFetch {
                pull_id: text(i, "pull_id").unwrap_or_default(),
                source: text(i, "source"),
                monitoring_id: text(i, "monitoring_id"),
                code: text(i, "fetch_error").unwrap_or_default(),
                failed_at: text(i, "fetch_error_at").unwrap_or_default(),
            })
            .collect())
    }
}
