//! Reconnect sessions in DynamoDB.
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | reconnect session | `RECONNECT#<session_id>` | `SESSION` | `owner_subject`, monitoring, pull, `sealed_jwt` (the pull's JWT, encrypted; never returned), attempt counters, `expires_at` (TTL) |
//!
//! The owner is `owner_subject`, not `owner`: sessions must stay out of the `by_owner` index.

use super::{key, n, s, DynamoStore};
use crate::aws::port_error;
use crate::ports::PortError;
use crate::store::{AttemptTaken, ReconnectSession, SessionStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
const SESSION_SK: &str = "SESSION";

fn session_pk(session_id: &str) -> String {
    format!("RECONNECT#{session_id}")
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn put_session(&self, session: &ReconnectSession) -> Result<(), PortError> {
        let mut item = key(session_pk(&session.session_id), SESSION_SK);
        item.extend([
            ("session_id".to_owned(), s(&session.session_id)),
            ("owner_subject".to_owned(), s(&session.owner)),
            ("monitoring_id".to_owned(), s(&session.monitoring_id)),
            ("pull_id".to_owned(), s(&session.pull_id)),
            ("sealed_jwt".to_owned(), s(&session.sealed_jwt)),
            ("created_at".to_owned(), s(&session.created_at)),
            ("expires_at".to_owned(), n(session.expires_at)),
        ]);
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?;
        Ok(())
    }

    async fn session(
        &self,
        session_id: &str,
        now: i64,
    ) -> Result<Option<ReconnectSession>, PortError> {
        let item = self
            .get_item(session_pk(session_id), SESSION_SK, None)
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let expires_at = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        // TTL deletion lags by up to days: expiry is checked here.
        if expires_at <= now {
            return Ok(None);
        }
        let field = |k: &str| {
            text(&item, k).ok_or_else(|| {
                PortError::unavailable(SERVICE, format!("session {session_id} lacks {k}"))
            })
        };
        Ok(Some(ReconnectSession {
            session_id: field("session_id")?,
            owner: field("owner_subject")?,
            monitoring_id: field("monitoring_id")?,
            pull_id: field("pull_id")?,
            sealed_jwt: field("sealed_jwt")?,
            created_at: field("created_at")?,
            expires_at,
        }))
    }

    async fn take_attempt(
        &self,
        session_id: &str,
        kind: &str,
        max: u32,
        now: i64,
    ) -> Result<AttemptTaken, PortError> {
        let counter = format!("attempts_{kind}");
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(session_pk(session_id), SESSION_SK)))
            .update_expression("SET #c = if_not_exists(#c, :zero) + :one")
            .condition_expression(
                "attribute_exists(pk) AND expires_at > :now AND (attribute_not_exists(#c) OR #c < :max)",
            )
            .expression_attribute_names("#c", &counter)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":max", n(max))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AttemptTaken::Taken),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let alive = failed.item().is_some_and(|old| {
                        old.get("expires_at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse::<i64>().ok())
                            .is_some_and(|at| at > now)
                    });
                    Ok(if alive {
                        AttemptTaken::LimitReached
                    } else {
                        AttemptTaken::NoSession
                    })
                }
                _ => Err(port_error(SERVICE, err)),
            },
        }
    }
}
