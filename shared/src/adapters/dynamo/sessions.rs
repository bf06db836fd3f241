//! Reconnect sessions in DynamoDB.
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | reconnect session | `RECONNECT#<session_id>` | `SESSION` | `owner_subject`, monitoring, pull, `sealed_jwt` (the pull's JWT, encrypted and bound to the session; never returned), `expires_at` (TTL) |
//!
//! A session is written once; the per-caller budgets are separate items (`limits.rs`).
//!
//! The owner is `owner_subject`, not `owner`: sessions must stay out of the `by_owner` index.

use super::{key, n, s, DynamoStore};
use crate::adapters::aws::port_error;
use crate::ports::store::{ReconnectSession, SessionStore};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

const SERVICE: &str = "dynamodb";
const SESSION_SK: &str = "SESSION";

/// The partition key prefix of session items (template.yaml's `dynamodb:LeadingKeys` for
/// reconnect-api names it; a test holds the two together).
pub const SESSION_PK_PREFIX: &str = "RECONNECT#";

fn session_pk(session_id: &str) -> String {
    format!("{SESSION_PK_PREFIX}{session_id}")
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
}
