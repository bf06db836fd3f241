//! Reconnect sessions in DynamoDB.
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | reconnect session | `RECONNECT#<session_id>` | `SESSION` | `owner_subject`, monitoring, pull, `sealed_jwt` (the pull's JWT, encrypted and bound to the session; never returned), `expires_at` (TTL) |
//!
//! A session is written once; the per-caller budgets are separate items (`limits.rs`).
//!
//! The owner is `owner_subject`, not `owner`: sessions must stay out of the `by_owner` index.

use super::DynamoStore;
use crate::adapters::aws::port_error;
use crate::ports::store::{ReconnectSession, SessionStore};
use crate::ports::PortError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

const SERVICE: &str = "dynamodb";
const SESSION_SK: &str = "SESSION";

/// The partition key prefix of session items (template.yaml's `dynamodb:LeadingKeys` for
/// reconnect-api names it; a test holds the two together).
pub const SESSION_PK_PREFIX: &str = "RECONNECT#";

fn session_pk(session_id: &str) -> String {
    format!("{SESSION_PK_PREFIX}{session_id}")
}

/// A session item, as stored (through `serde_dynamo`).
#[derive(Serialize, Deserialize)]
struct SessionItem {
    pk: String,
    sk: String,
    session_id: String,
    owner_subject: String,
    monitoring_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    pull_id: String,
    sealed_jwt: String,
    created_at: String,
    expires_at: i64,
}

impl From<&ReconnectSession> for SessionItem {
    fn from(session: &ReconnectSession) -> Self {
        Self {
            pk: session_pk(&session.session_id),
            sk: SESSION_SK.to_owned(),
            session_id: session.session_id.clone(),
            owner_subject: session.owner.clone(),
            monitoring_id: session.monitoring_id.clone(),
            source: session.source.clone(),
            pull_id: session.pull_id.clone(),
            sealed_jwt: session.sealed_jwt.clone(),
            created_at: session.created_at.clone(),
            expires_at: session.expires_at,
        }
    }
}

impl From<SessionItem> for ReconnectSession {
    fn from(item: SessionItem) -> Self {
        Self {
            session_id: item.session_id,
            owner: item.owner_subject,
            monitoring_id: item.monitoring_id,
            source: item.source,
            pull_id: item.pull_id,
            sealed_jwt: item.sealed_jwt,
            created_at: item.created_at,
            expires_at: item.expires_at,
        }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn put_session(&self, session: &ReconnectSession) -> Result<(), PortError> {
        let item = serde_dynamo::to_item(SessionItem::from(session))
            .map_err(|e| PortError::unavailable(SERVICE, e.to_string()))?;
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
        let session: SessionItem = serde_dynamo::from_item(item).map_err(|e| {
            PortError::unavailable(SERVICE, format!("session {session_id} is malformed: {e}"))
        })?;
        // TTL deletion lags by up to days: expiry is checked here.
        if session.expires_at <= now {
            return Ok(None);
        }
        Ok(Some(session.into()))
    }
}
