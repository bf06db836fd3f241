//! Leased claims: the one way an attempt takes hold of a piece of work in the table (a webhook
//! delivery, a Monitoring API request, a notice send) so that a concurrent or redelivered
//! attempt does not do it twice, while a crashed attempt never holds it for ever.
//!
//! A claim is a conditional put of the work's item, marked `status = <held>` with a
//! `lease_id` and a `lease_expires_at`. It takes the item when none exists, when a kept item's
//! TTL (`expires_at`) has passed (DynamoDB deletes expired items up to days late), or when the
//! attempt holding it let its lease run out. Only the holder finishes the work
//! ([`HELD_BY_LEASE`]) or releases it. The fetch claim is the one lease of another shape: it
//! leases fields of the pull's state item under the fetch rule (`pulls.rs`).

use super::{condition_failed, n, s, DynamoStore, SERVICE};
use crate::adapters::aws::port_error;
use crate::ports::PortError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The condition of every write that finishes leased work: only the lease's holder may.
pub(super) const HELD_BY_LEASE: &str = "lease_id = :lease";

/// A lease an attempt holds until `expires_at` (Unix seconds).
pub(super) struct Lease<'a> {
    pub id: &'a str,
    pub expires_at: i64,
}

/// What a claim found.
pub(super) enum Claim {
    /// The item is ours until the lease ends.
    Taken,
    /// Done or held by another attempt: the item as it stood (`None`: gone again meanwhile).
    Refused(Option<Item>),
}

/// Whether `item` is held by this very lease (our own earlier attempt of the same put).
fn is_own_hold(item: &Item, held: &str, lease_id: &str) -> bool {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
    text("status") == Some(held) && text("lease_id") == Some(lease_id)
}

impl DynamoStore {
    /// Puts `item` as held (`status = held`) by `lease` at `now` (Unix seconds), if it may.
    pub(super) async fn claim_lease(
        &self,
        mut item: Item,
        held: &str,
        lease: &Lease<'_>,
        now: i64,
    ) -> Result<Claim, PortError> {
        let key: Item = ["pk", "sk"]
            .into_iter()
            .filter_map(|k| Some((k.to_owned(), item.get(k)?.clone())))
            .collect();
        item.extend([
            ("status".to_owned(), s(held)),
            ("lease_id".to_owned(), s(lease.id)),
            ("lease_expires_at".to_owned(), n(lease.expires_at)),
        ]);
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now \
                 OR (#status = :held AND lease_expires_at < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":held", s(held))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(Claim::Taken),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(old) => Some(old.clone()),
                        // Refused, yet the old item was not returned: read it.
                        None => self.read_back(&key).await?,
                    }
                }
                _ => return Err(port_error(SERVICE, err)),
            },
        };
        if old.as_ref().is_some_and(|o| is_own_hold(o, held, lease.id)) {
            // The SDK retried a put whose first attempt landed but timed out: that hold is ours.
            return Ok(Claim::Taken);
        }
        Ok(Claim::Refused(old))
    }

    /// The item under `key`, read consistently.
    async fn read_back(&self, key: &Item) -> Result<Option<Item>, PortError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(out.item)
    }

    /// Deletes the item `key` if `lease_id` still holds it in status `held`, so that a retry
    /// finds the work free at once. Someone else's hold, or finished work, stays.
    pub(super) async fn release_lease(
        &self,
        key: Item,
        held: &str,
        lease_id: &str,
    ) -> Result<(), PortError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key))
            .condition_expression("lease_id = :lease AND #status = :held")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":held", s(held))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_leases_own_hold_counts_as_taken() {
        let item: Item = [
            ("status".to_owned(), s("in_progress")),
            ("lease_id".to_owned(), s("lease-1")),
        ]
        .into_iter()
        .collect();
        assert!(is_own_hold(&item, "in_progress", "lease-1"));
        assert!(!is_own_hold(&item, "in_progress", "lease-2"));
        assert!(!is_own_hold(&item, "completed", "lease-1"));
        assert!(!is_own_hold(&Item::new(), "in_progress", "lease-1"));
    }
}
