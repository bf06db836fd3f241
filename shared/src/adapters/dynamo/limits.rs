//! Per-caller budgets of the browser-facing routes in DynamoDB (see [`crate::app::reconnect`]).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | uses in a window | `LIMIT#<subject hash>` | `<limit>#<monitoring or ->#<window start>` | `uses`, `expires_at` (TTL: the window's end) |
//! | slots held | `LIMIT#<subject hash>` | `<limit>#<monitoring or ->` | `held`, `expires_at` (TTL: when the count lapses) |
//!
//! One partition per subject: a consumer's counters share it, and no two consumers share
//! one. The subject is hashed into the key: any string a JWT carries fits, and the
//! key names no one. Each decision is one conditional UpdateItem, so two requests at once can
//! never both take the last use.

use super::{condition_failed, n, number, DynamoStore};
use crate::adapters::aws::port_error;
use crate::ports::store::{LimitKey, LimitStore, Window};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

const SERVICE: &str = "dynamodb";

/// The partition key prefix of limit items (template.yaml's `dynamodb:LeadingKeys` for
/// reconnect-api names it; a test holds the two together).
pub const LIMIT_PK_PREFIX: &str = "LIMIT#";

/// `LIMIT#` and the first 128 bits of the subject's SHA-256, in hex.
pub fn limit_pk(subject: &str) -> String {
    let digest = crate::domain::crypto::sha256(subject.as_bytes());
    format!("{LIMIT_PK_PREFIX}{}", hex::encode(&digest[..16]))
}

fn scope_sk(key: &LimitKey<'_>) -> String {
    format!("{}#{}", key.name, key.monitoring_id.unwrap_or("-"))
}

/// The sort key of `key`'s counter in `window`.
pub fn window_sk(key: &LimitKey<'_>, window: Window) -> String {
    format!("{}#{}", scope_sk(key), window.start)
}

/// The sort key of `key`'s slot count.
pub fn slot_sk(key: &LimitKey<'_>) -> String {
    scope_sk(key)
}

#[async_trait]
impl LimitStore for DynamoStore {
    async fn take_in_window(
        &self,
        key: &LimitKey<'_>,
        window: Window,
        max: u32,
    ) -> Result<bool, PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(super::key(
                limit_pk(key.subject),
                window_sk(key, window),
            )))
            .update_expression("ADD #uses :one SET expires_at = :end")
            .condition_expression("attribute_not_exists(#uses) OR #uses < :max")
            .expression_attribute_names("#uses", "uses")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":end", n(window.end))
            .expression_attribute_values(":max", n(max))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(port_error(SERVICE, err)),
        }
    }

    async fn take_slot(
        &self,
        key: &LimitKey<'_>,
        cap: u32,
        now: i64,
        hold_until: i64,
    ) -> Result<bool, PortError> {
        let item_key = super::key(limit_pk(key.subject), slot_sk(key));
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item_key.clone()))
            .update_expression("ADD #held :one SET expires_at = :until")
            .condition_expression("attribute_not_exists(#held) OR #held < :cap")
            .expression_attribute_names("#held", "held")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":until", n(hold_until))
            .expression_attribute_values(":cap", n(cap))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old_until = match result {
            Ok(_) => return Ok(true),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed
                    .item()
                    .and_then(|old| number(old, "expires_at"))
                    .unwrap_or(i64::MAX),
                _ => return Err(port_error(SERVICE, err)),
            },
        };
        if old_until > now {
            return Ok(false);
        }
        // Every slot is held, but nobody took one since the count lapsed: its holders ended
        // without releasing (a crash, a timeout). Start the count again, unless another
        // request did so first.
        let reset = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(item_key))
            .update_expression("SET #held = :one, expires_at = :until")
            .condition_expression("expires_at = :old")
            .expression_attribute_names("#held", "held")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":until", n(hold_until))
            .expression_attribute_values(":old", n(old_until))
            .send()
            .await;
        match reset {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(port_error(SERVICE, err)),
        }
    }

    async fn release_slot(&self, key: &LimitKey<'_>) -> Result<(), PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(super::key(limit_pk(key.subject), slot_sk(key))))
            .update_expression("ADD #held :minus_one")
            .condition_expression("#held > :zero")
            .expression_attribute_names("#held", "held")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            // Nothing held (the count was started again): nothing to give back.
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(port_error(SERVICE, err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_limit_the_scope_and_the_window_but_not_the_subject() {
        let key = LimitKey {
            subject: "cust#7|x",
            name: "attempts_idv",
            monitoring_id: Some("m-1"),
        };
        let pk = limit_pk(key.subject);
        assert!(pk.starts_with(LIMIT_PK_PREFIX));
        assert_eq!(pk.len(), LIMIT_PK_PREFIX.len() + 32);
        assert!(!pk.contains("cust"));
        assert_ne!(pk, limit_pk("cust#7|y"));
        assert_eq!(
            window_sk(
                &key,
                Window {
                    start: 900,
                    end: 1800
                }
            ),
            "attempts_idv#m-1#900"
        );
        let unscoped = LimitKey {
            monitoring_id: None,
            ..key
        };
        assert_eq!(slot_sk(&unscoped), "attempts_idv#-");
    }
}
