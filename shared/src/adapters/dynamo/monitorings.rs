//! The Monitoring API's side of the table.
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | monitoring state | `MONITORING#<id>` | `STATE` | [`MonitoringRecord`]: Canopy's view (`monitoring_status`, `interval`, dates), `owner`, the refresh guard |
//! | idempotent request | `REQUEST#<route>#<key>` | `REQUEST` | fingerprint, lease, the answer to replay; TTL `expires_at` |
//!
//! Three sparse indexes answer the listings with one Query each, never a Scan. Only monitoring
//! items carry `monitoring_status` and `owner` (pull items keep their own `status`), so the
//! indexes hold monitorings and nothing else:
//!
//! | index | hash | range | answers |
//! |---|---|---|---|
//! | `by_status` | `status_shard` = `<monitoring_status>#<shard>` | `monitoring_id` | all monitorings of a status |
//! | `by_owner` | `owner` | `monitoring_id` | a customer's monitorings |
//! | `reconnecting` | `status_shard` | `reconnect_key` = `<reconnect_needed_since>#<monitoring_id>` | monitorings with an open reconnect episode, oldest first |
//!
//! Every webhook of a monitored pull updates its monitoring item, and each update of an item in
//! an index is a write to that index's partition: the status partitions are therefore sharded
//! by monitoring id ([`crate::domain::shard`]), and a status listing merges its shards by sort key.
//! An owner's partition takes only that customer's monitorings.

use super::lease::{Claim, Lease};
use super::{
    condition_failed, cursor, key, monitoring_pk, n, number, pull_pk, s, text, DynamoStore,
    UpdateBuilder, EVENT_SK, STATE_SK,
};
use crate::adapters::aws::port_error;
use crate::domain::gzip;
use crate::domain::monitoring::{CanopyMonitoring, RefreshCutoffs};
use crate::domain::pull_data::PullSummary;
use crate::domain::records::{MonitoringRecord, PullRecord};
use crate::domain::records::{ACTIVE, STOPPED};
use crate::ports::store::{
    BadCursor, MonitoringQuery, MonitoringStore, Page, RefreshClaim, RefreshEntry, RequestClaim,
    RequestClaimResult, StoredEvent, StoredGzip, StoredResponse, ViewContext,
};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::{BTreeMap, HashMap};

const SERVICE: &str = "dynamodb";
pub const STATUS_INDEX: &str = "by_status";
pub const OWNER_INDEX: &str = "by_owner";
pub const RECONNECT_INDEX: &str = "reconnecting";
const REQUEST_SK: &str = "REQUEST";
/// Queries one listing page may take (filters can leave a Query short).
const MAX_QUERIES_PER_PAGE: usize = 8;

/// The partition-key prefix of idempotent requests (see [`super::EVENT_PK_PREFIX`]).
pub const REQUEST_PK_PREFIX: &str = "REQUEST#";

fn request_pk(key: &str) -> String {
    format!("{REQUEST_PK_PREFIX}{key}")
}

/// The sharded `status_shard` attribute (index `by_status` and `reconnecting`) of a monitoring
/// of `status`: every monitoring item is in one of [`crate::domain::shard::SHARDS`] partitions per
/// status, not all in one.
pub const STATUS_SHARD_ATTR: &str = "status_shard";
/// The `reconnecting` index's sort key: `<reconnect_needed_since>#<monitoring_id>`, unique, so a
/// listing can continue strictly after the last monitoring it returned.
pub const RECONNECT_KEY_ATTR: &str = "reconnect_key";

/// The `status_shard` value of monitoring `monitoring_id` in `status`.
pub fn status_shard_key(status: &str, monitoring_id: &str) -> String {
    crate::domain::shard::sharded_key(status, monitoring_id)
}

/// The `reconnect_key` value of a monitoring whose episode opened at `since`.
pub fn reconnect_key(since: &str, monitoring_id: &str) -> String {
    format!("{since}#{monitoring_id}")
}

/// How a listing is answered: one index, groups of partitions in order (the shards of one
/// status form a group, merged by sort key), and a filter.
struct ListingPlan {
    index: &'static str,
    hash_attr: &'static str,
    range_attr: &'static str,
    groups: Vec<Vec<String>>,
    filter: Vec<&'static str>,
    status_filter: Option<String>,
}

fn listing_plan(q: &MonitoringQuery) -> ListingPlan {
    let statuses = match &q.status {
        Some(st) => vec![st.clone()],
        None => vec![ACTIVE.to_owned(), STOPPED.to_owned()],
    };
    let shard_groups = || -> Vec<Vec<String>> {
        statuses
            .iter()
            .map(|status| crate::domain::shard::all_shard_keys(status).collect())
            .collect()
    };
    let reconnect_filter = match q.reconnect_needed {
        Some(true) => Some("attribute_exists(reconnect_needed_since)"),
        Some(false) => Some("attribute_not_exists(reconnect_needed_since)"),
        None => None,
    };
    if let Some(owner) = &q.owner {
        let mut filter: Vec<&'static str> = reconnect_filter.into_iter().collect();
        if q.status.is_some() {
            filter.push("monitoring_status = :status");
        }
        return ListingPlan {
            index: OWNER_INDEX,
            hash_attr: "owner",
            range_attr: "monitoring_id",
            groups: vec![vec![owner.clone()]],
            filter,
            status_filter: q.status.clone(),
        };
    }
    if q.reconnect_needed == Some(true) {
        return ListingPlan {
            index: RECONNECT_INDEX,
            hash_attr: STATUS_SHARD_ATTR,
            range_attr: RECONNECT_KEY_ATTR,
            groups: shard_groups(),
            filter: Vec::new(),
            status_filter: None,
        };
    }
    ListingPlan {
        index: STATUS_INDEX,
        hash_attr: STATUS_SHARD_ATTR,
        range_attr: "monitoring_id",
        groups: shard_groups(),
        filter: reconnect_filter.into_iter().collect(),
        status_filter: None,
    }
}

/// What one partition's Query gave: its items with their sort keys, and the sort key of its
/// `LastEvaluatedKey` when it has more.
struct PartitionPage {
    items: Vec<(String, HashMap<String, AttributeValue>)>,
    more_after: Option<String>,
}

/// Merges the pages of one partition group, in sort-key order: at most `wanted` items, none past
/// a partition that has more (its unread items could sort before the others' later ones).
/// Returns the items taken and where the group continues: `Some(after)` with more to read,
/// `None` when the group is done.
fn merge_group(
    pages: Vec<PartitionPage>,
    wanted: usize,
) -> (Vec<HashMap<String, AttributeValue>>, Option<String>) {
    let cutoff = pages.iter().filter_map(|p| p.more_after.clone()).min();
    let mut merged: Vec<(String, HashMap<String, AttributeValue>)> = pages
        .into_iter()
        .flat_map(|p| p.items)
        .filter(|(sort, _)| cutoff.as_ref().is_none_or(|c| sort <= c))
        .collect();
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    if merged.len() > wanted {
        merged.truncate(wanted);
        let after = merged.last().map(|(sort, _)| sort.clone());
        return (merged.into_iter().map(|(_, i)| i).collect(), after);
    }
    // Every item up to the cutoff was taken: continue after it, or the group is done.
    (merged.into_iter().map(|(_, i)| i).collect(), cutoff)
}

impl DynamoStore {
    /// One Query of one partition of a listing, from strictly after `after`.
    async fn listing_query(
        &self,
        plan: &ListingPlan,
        partition: &str,
        after: Option<&str>,
        wanted: usize,
    ) -> Result<PartitionPage, PortError> {
        let mut request = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(plan.index)
            .expression_attribute_names("#hash", plan.hash_attr)
            .expression_attribute_values(":hash", s(partition))
            .limit(i32::try_from(wanted).unwrap_or(i32::MAX));
        request = match after {
            Some(after) => request
                .key_condition_expression("#hash = :hash AND #range > :after")
                .expression_attribute_names("#range", plan.range_attr)
                .expression_attribute_values(":after", s(after)),
            None => request.key_condition_expression("#hash = :hash"),
        };
        if !plan.filter.is_empty() {
            request = request.filter_expression(plan.filter.join(" AND "));
        }
        if let Some(status) = &plan.status_filter {
            request = request.expression_attribute_values(":status", s(status));
        }
        let page = request.send().await.map_err(|e| port_error(SERVICE, e))?;
        let sort_of = |item: &HashMap<String, AttributeValue>| text(item, plan.range_attr);
        Ok(PartitionPage {
            more_after: page
                .last_evaluated_key
                .as_ref()
                .filter(|k| !k.is_empty())
                .and_then(sort_of),
            items: page
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| sort_of(&item).map(|sort| (sort, item)))
                .collect(),
        })
    }

    async fn update_monitoring_guarded(
        &self,
        monitoring_id: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Result<(), Option<MonitoringRecord>>, PortError> {
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(monitoring_pk(monitoring_id), STATE_SK)))
            .update_expression(update)
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(Ok(())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(Err(failed
                    .item()
                    .and_then(|item| serde_dynamo::from_item(item.clone()).ok()))),
                _ => Err(port_error(SERVICE, err)),
            },
        }
    }
}

#[async_trait]
impl MonitoringStore for DynamoStore {
    async fn monitoring(&self, monitoring_id: &str) -> Result<Option<MonitoringRecord>, PortError> {
        self.get_monitoring(monitoring_id).await
    }

    async fn pull(&self, pull_id: &str) -> Result<Option<PullRecord>, PortError> {
        self.get_pull(pull_id).await
    }

    async fn pull_meta_data(&self, pull_id: &str) -> Result<Option<serde_json::Value>, PortError> {
        DynamoStore::pull_meta_data(self, pull_id).await
    }

    async fn record_canopy_view(
        &self,
        view: &CanopyMonitoring,
        context: &ViewContext,
        at: &str,
    ) -> Result<MonitoringRecord, PortError> {
        let mut b = UpdateBuilder::default();
        b.set("monitoring_id", s(&view.monitoring_id))
            .set("synced_at", s(at))
            .set_if_absent("first_seen_at", s(at))
            .set_opt("owner", context.owner.as_ref().map(s))
            .set_opt("source", context.source.as_ref().map(s))
            .set_opt("interval", view.interval.as_ref().map(s));
        if let Some(status) = &view.status {
            b.set("monitoring_status", s(status)).set(
                STATUS_SHARD_ATTR,
                s(status_shard_key(status, &view.monitoring_id)),
            );
            if status == STOPPED {
                b.set_if_absent("stopped_at", s(at));
            } else {
                b.remove("stopped_at");
            }
        }
        for (attr, date) in [
            ("next_pull_date", &view.next_pull_date),
            ("stop_after_date", &view.stop_after_date),
        ] {
            match crate::domain::monitoring::stored_date(date) {
                Some(d) => b.set(attr, s(d)),
                None => b.remove(attr),
            };
        }
        if let Some(pull_id) = &context.enabled_pull_id {
            b.set_if_absent("initial_pull_id", s(pull_id))
                .set_if_absent("enabled_at", s(at));
        }
        let written = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(monitoring_pk(&view.monitoring_id), STATE_SK)))
            .update_expression(b.expression())
            .set_expression_attribute_names(Some(b.names))
            .set_expression_attribute_values(Some(b.values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        let record: MonitoringRecord =
            serde_dynamo::from_item(written.attributes.unwrap_or_default()).map_err(|e| {
                PortError::unavailable(SERVICE, format!("unreadable monitoring: {e}"))
            })?;
        if let Some(pull_id) = &context.enabled_pull_id {
            // The pull names its monitoring: a second enable of it finds this one. A pull not
            // seen yet is created here, and belongs to the source it was enabled with (its
            // webhooks, signed with that source's secret, are then applied to it).
            let mut update = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key(pull_pk(pull_id), STATE_SK)))
                .expression_attribute_values(":pull", s(pull_id))
                .expression_attribute_values(":m", s(&view.monitoring_id));
            update = match &context.source {
                Some(source) => update
                    .update_expression(
                        "SET pull_id = :pull, monitoring_id = :m, #source = if_not_exists(#source, :source)",
                    )
                    .expression_attribute_names("#source", "source")
                    .expression_attribute_values(":source", s(source)),
                None => update.update_expression("SET pull_id = :pull, monitoring_id = :m"),
            };
            update.send().await.map_err(|e| port_error(SERVICE, e))?;
        }
        Ok(record)
    }

    async fn claim_refresh(
        &self,
        monitoring_id: &str,
        request_id: &str,
        now: &str,
        cutoffs: Option<&RefreshCutoffs>,
    ) -> Result<RefreshClaim, PortError> {
        // `monitoring::refresh_decision`, as a condition: two requests cannot both pass.
        let mut condition = String::from(
            "attribute_exists(pk) AND (attribute_not_exists(monitoring_status) OR monitoring_status <> :stopped)",
        );
        let mut values = vec![
            (":now", s(now)),
            (":rid", s(request_id)),
            (":stopped", s(STOPPED)),
        ];
        if let Some(cut) = cutoffs {
            condition.push_str(
                " AND (attribute_not_exists(refresh_requested_at) \
                 OR refresh_requested_at < :in_flight_since \
                 OR last_refresh_at >= refresh_requested_at \
                 OR reconnect_needed_since >= refresh_requested_at) \
                 AND (attribute_not_exists(last_refresh_at) OR last_refresh_at < :completed_before)",
            );
            values.push((":in_flight_since", s(&cut.in_flight_since)));
            values.push((":completed_before", s(&cut.completed_before)));
        }
        let result = self
            .update_monitoring_guarded(
                monitoring_id,
                "SET refresh_requested_at = :now, refresh_request_id = :rid REMOVE refresh_pull_id",
                &condition,
                values,
            )
            .await?;
        Ok(match result {
            Ok(()) => RefreshClaim::Claimed,
            Err(old) => RefreshClaim::Refused(old.map(Box::new)),
        })
    }

    async fn finish_refresh(
        &self,
        monitoring_id: &str,
        request_id: &str,
        pull_id: &str,
    ) -> Result<(), PortError> {
        // Refused only if a forced refresh took over since: it records its own pull.
        let _ = self
            .update_monitoring_guarded(
                monitoring_id,
                "SET refresh_pull_id = :pull",
                "refresh_request_id = :rid",
                vec![(":pull", s(pull_id)), (":rid", s(request_id))],
            )
            .await?;
        Ok(())
    }

    async fn release_refresh(
        &self,
        monitoring_id: &str,
        request_id: &str,
    ) -> Result<(), PortError> {
        let _ = self
            .update_monitoring_guarded(
                monitoring_id,
                "REMOVE refresh_requested_at, refresh_request_id",
                "refresh_request_id = :rid",
                vec![(":rid", s(request_id))],
            )
            .await?;
        Ok(())
    }

    async fn list_monitorings(
        &self,
        q: &MonitoringQuery,
    ) -> Result<Result<Page<MonitoringRecord>, BadCursor>, PortError> {
        let plan = listing_plan(q);
        let reconnect = q
            .reconnect_needed
            .map(|b| b.to_string())
            .unwrap_or_default();
        let query_id = cursor::listing_id(&[
            plan.index,
            q.status.as_deref().unwrap_or(""),
            &reconnect,
            q.owner.as_deref().unwrap_or(""),
        ]);
        let (mut group, mut after) = match &q.cursor {
            None => (0, None),
            Some(text) => {
                let Ok(c) = cursor::open(self.cursor_key(), &query_id, text) else {
                    return Ok(Err(BadCursor));
                };
                // A cursor holds only the sort key of the last item returned, in a group of
                // this listing: the next Query's key condition is always the listing's own.
                let start = c.start.unwrap_or_default();
                if c.partition >= plan.groups.len()
                    || start.keys().any(|name| name != plan.range_attr)
                {
                    return Ok(Err(BadCursor));
                }
                (c.partition, start.get(plan.range_attr).cloned())
            }
        };
        let mut items = Vec::new();
        let mut rounds = 0;
        while group < plan.groups.len() && items.len() < q.limit {
            if rounds == MAX_QUERIES_PER_PAGE {
                break;
            }
            rounds += 1;
            let wanted = q.limit - items.len();
            let pages =
                futures::future::try_join_all(plan.groups[group].iter().map(|partition| {
                    self.listing_query(&plan, partition, after.as_deref(), wanted)
                }))
                .await?;
            let (taken, next) = merge_group(pages, wanted);
            for item in taken {
                items.push(serde_dynamo::from_item(item).map_err(|e| {
                    PortError::unavailable(SERVICE, format!("unreadable monitoring: {e}"))
                })?);
            }
            match next {
                Some(sort) => after = Some(sort),
                None => {
                    group += 1;
                    after = None;
                }
            }
        }
        let next_cursor = (group < plan.groups.len()).then(|| {
            cursor::seal(
                self.cursor_key(),
                &cursor::Position {
                    listing: query_id,
                    partition: group,
                    start: after.map(|sort| BTreeMap::from([(plan.range_attr.to_owned(), sort)])),
                },
            )
        });
        Ok(Ok(Page { items, next_cursor }))
    }

    async fn refresh_history(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<RefreshEntry>, BadCursor>, PortError> {
        let Ok((items, next_cursor)) = self
            .newest_first_page(monitoring_pk(monitoring_id), "REFRESH#", limit, cursor)
            .await?
        else {
            return Ok(Err(BadCursor));
        };
        let items = items
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item(i).map_err(|e| {
                    PortError::unavailable(SERVICE, format!("unreadable refresh: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ok(Page { items, next_cursor }))
    }

    async fn change_history(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<serde_json::Value>, BadCursor>, PortError> {
        self.change_history_page(monitoring_id, limit, cursor).await
    }

    async fn pull_summary(
        &self,
        pull_id: &str,
    ) -> Result<Option<(PullSummary, String)>, PortError> {
        self.get_pull_summary(pull_id).await
    }

    async fn pull_gzip(&self, pull_id: &str) -> Result<Option<StoredGzip>, PortError> {
        self.get_pull_gzip(pull_id).await
    }

    async fn stored_event(&self, dedupe_key: &str) -> Result<Option<StoredEvent>, PortError> {
        let item = self
            .get_item(super::event_pk(dedupe_key), EVENT_SK, None)
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let body = match item.get("body_gz") {
            Some(AttributeValue::B(gz)) => {
                let body =
                    gzip::decompress(gz.as_ref(), super::MAX_EVENT_BODY_BYTES).map_err(|_| {
                        PortError::unavailable(SERVICE, "stored event body is not gzip")
                    })?;
                Some(body)
            }
            _ => None,
        };
        Ok(Some(StoredEvent {
            completed: text(&item, "status").as_deref() == Some(super::STATUS_COMPLETED),
            event_type: text(&item, "event_type"),
            source: text(&item, "source"),
            body,
        }))
    }

    async fn claim_request(&self, claim: &RequestClaim) -> Result<RequestClaimResult, PortError> {
        let mut item = key(request_pk(&claim.key), REQUEST_SK);
        item.extend([
            ("fingerprint".to_owned(), s(&claim.fingerprint)),
            ("expires_at".to_owned(), n(claim.expires_at)),
        ]);
        let lease = Lease {
            id: &claim.lease_id,
            expires_at: claim.lease_expires_at,
        };
        let old = match self
            .claim_lease(item, super::STATUS_IN_PROGRESS, &lease, claim.now)
            .await?
        {
            Claim::Taken => return Ok(RequestClaimResult::Claimed),
            Claim::Refused(old) => old.unwrap_or_default(),
        };
        let fingerprint = text(&old, "fingerprint").unwrap_or_default();
        Ok(
            match (
                text(&old, "status").as_deref(),
                number(&old, "response_status"),
            ) {
                (Some(super::STATUS_COMPLETED), Some(status)) => RequestClaimResult::Completed {
                    fingerprint,
                    response: StoredResponse {
                        status,
                        body: text(&old, "response_body").unwrap_or_default(),
                    },
                },
                _ => RequestClaimResult::InProgress { fingerprint },
            },
        )
    }

    async fn complete_request(
        &self,
        key_: &str,
        lease_id: &str,
        response: &StoredResponse,
    ) -> Result<(), PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(request_pk(key_), REQUEST_SK)))
            .update_expression("SET #status = :done, response_status = :rs, response_body = :rb")
            .condition_expression(super::HELD_BY_LEASE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s(super::STATUS_COMPLETED))
            .expression_attribute_values(":rs", n(response.status))
            .expression_attribute_values(":rb", s(&response.body))
            .expression_attribute_values(":lease", s(lease_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The lease ran out and another attempt owns the key: its answer will be kept.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }

    async fn release_request(&self, key_: &str, lease_id: &str) -> Result<(), PortError> {
        self.release_lease(
            key(request_pk(key_), REQUEST_SK),
            super::STATUS_IN_PROGRESS,
            lease_id,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_pick_the_most_selective_index() {
        let plan = listing_plan(&MonitoringQuery {
            owner: Some("c-1".into()),
            status: Some(ACTIVE.into()),
            reconnect_needed: Some(true),
            ..MonitoringQuery::default()
        });
        assert_eq!(plan.index, OWNER_INDEX);
        assert_eq!(plan.filter.len(), 2);
        let plan = listing_plan(&MonitoringQuery {
            reconnect_needed: Some(true),
            ..MonitoringQuery::default()
        });
        assert_eq!(plan.index, RECONNECT_INDEX);
        assert_eq!(plan.range_attr, RECONNECT_KEY_ATTR);
        assert_eq!(plan.groups.len(), 2, "ACTIVE, then STOPPED");
        assert_eq!(plan.groups[0].len(), crate::domain::shard::SHARDS as usize);
        assert!(plan.groups[0].iter().all(|k| k.starts_with("ACTIVE#")));
        assert!(plan.groups[1].iter().all(|k| k.starts_with("STOPPED#")));
        let plan = listing_plan(&MonitoringQuery {
            status: Some(STOPPED.into()),
            reconnect_needed: Some(false),
            ..MonitoringQuery::default()
        });
        assert_eq!(plan.index, STATUS_INDEX);
        assert_eq!(plan.groups.len(), 1);
        assert!(plan.groups[0].contains(&status_shard_key(STOPPED, "any monitoring")));
        assert_eq!(
            plan.filter,
            ["attribute_not_exists(reconnect_needed_since)"]
        );
    }

    fn page(sorts: &[&str], more_after: Option<&str>) -> PartitionPage {
        PartitionPage {
            items: sorts
                .iter()
                .map(|sort| {
                    (
                        sort.to_string(),
                        HashMap::from([("monitoring_id".to_owned(), s(*sort))]),
                    )
                })
                .collect(),
            more_after: more_after.map(str::to_owned),
        }
    }

    fn ids(items: &[HashMap<String, AttributeValue>]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| text(i, "monitoring_id"))
            .collect()
    }

    #[test]
    fn shards_merge_in_sort_order_and_continue_after_the_last_item() {
        let (items, next) = merge_group(
            vec![page(&["b", "e"], None), page(&["a", "c", "d"], None)],
            3,
        );
        assert_eq!(ids(&items), ["a", "b", "c"]);
        assert_eq!(next.as_deref(), Some("c"), "more to read in the group");
        let (items, next) = merge_group(vec![page(&["e"], None), page(&["d"], None)], 3);
        assert_eq!(ids(&items), ["d", "e"]);
        assert_eq!(next, None, "every shard is done");
    }

    #[test]
    fn nothing_past_a_shard_with_unread_items_is_returned() {
        // The second shard stopped at "c" (a filter or its limit): its unread items sort after
        // "c" and could come before "d", so "d" waits for the next round.
        let (items, next) = merge_group(vec![page(&["a", "d"], None), page(&["b"], Some("c"))], 10);
        assert_eq!(ids(&items), ["a", "b"]);
        assert_eq!(next.as_deref(), Some("c"));
        // A shard that returned nothing but has more still holds the others back.
        let (items, next) = merge_group(vec![page(&["x"], None), page(&[], Some("m"))], 10);
        assert!(items.is_empty());
        assert_eq!(next.as_deref(), Some("m"));
    }
}
