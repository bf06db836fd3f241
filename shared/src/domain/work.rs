//! Messages between intake and the consumers. One definition, used by the producer (intake),
//! the consumers (pull-fetcher, reconnect-notifier) and the tests; `version` lets a consumer
//! refuse a format it does not know instead of guessing.

use crate::domain::event::ReconnectLink;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const MESSAGE_VERSION: u32 = 1;

/// Largest `meta_data` (JSON bytes) carried in a message or kept inline in an item. Larger
/// values are kept once, with the pull (see `store::dynamo`), and messages carry the pull's
/// id instead (SQS takes 256 KB a message; a delivery may be 1 MB).
pub const MAX_INLINE_META_DATA: usize = 16 * 1024;

/// `meta` if it is small enough to carry inline.
pub fn inline_meta_data(meta: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let meta = meta?;
    let len = serde_json::to_vec(meta).map_or(usize::MAX, |j| j.len());
    (len <= MAX_INLINE_META_DATA).then(|| meta.clone())
}

/// Which event asked for a fetch. COMPLETE means everything (documents too) is in;
/// POLICIES_AVAILABLE is the fallback for a pull whose COMPLETE never comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FetchTrigger {
    Complete,
    PoliciesAvailable,
}

/// Fetch pull `pull_id` from Canopy and store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPullJob {
    pub pull_id: String,
    /// The source whose keys fetch it (see [`crate::domain::source`]); absent in messages
    /// written before sources existed: the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_pull_id: Option<String>,
    pub trigger: FetchTrigger,
    /// The dedupe key of the webhook that asked for it (for tracing a message to its event).
    pub event_key: String,
    pub requested_at: String,
}

/// Tell the consumer of monitoring `monitoring_id` to reconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconnectJob {
    pub monitoring_id: String,
    /// As [`FetchPullJob::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The new pull that needs the consumer (the MONITORING_RECONNECT's pull_id).
    pub pull_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_id: Option<String>,
    /// The developer's `meta_data`, when small (see [`MAX_INLINE_META_DATA`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<serde_json::Value>,
    /// Set when `meta_data` was too large to carry: the pull whose item keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data_pull_id: Option<String>,
    /// The webhook's own link, the fallback when a fresh one cannot be had. Queues are
    /// encrypted at rest; `Debug` of the link redacts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<ReconnectLink>,
    pub event_key: String,
    pub requested_at: String,
    /// 0 for the first notice of an episode, then 1, 2, ... for reminders.
    #[serde(default)]
    pub notice: u32,
    /// For reminders: the episode they belong to (its start); a resolved or newer episode
    /// makes the reminder moot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkMessage {
    FetchPull(FetchPullJob),
    NotifyReconnect(ReconnectJob),
}

/// The envelope on the wire: `{"version":1,"kind":"fetch_pull",...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    #[serde(flatten)]
    pub message: WorkMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Fetch,
    Notify,
}

/// A message and when it should become visible.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub message: WorkMessage,
    pub delay: Duration,
}

impl WorkMessage {
    pub fn queue(&self) -> QueueKind {
        match self {
            WorkMessage::FetchPull(_) => QueueKind::Fetch,
            WorkMessage::NotifyReconnect(_) => QueueKind::Notify,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WorkMessage::FetchPull(_) => "fetch_pull",
            WorkMessage::NotifyReconnect(_) => "notify_reconnect",
        }
    }

    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            version: MESSAGE_VERSION,
            message: self.clone(),
        };
        // Serialising these plain structs cannot fail.
        serde_json::to_string(&envelope).expect("work messages serialise")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not a work message: {0}")]
    Unreadable(String),
    #[error("message version {0} is not supported (expected {MESSAGE_VERSION})")]
    UnsupportedVersion(u32),
}

/// Reads a message body back.
pub fn parse_message(body: &str) -> Result<WorkMessage, MessageError> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|e| MessageError::Unreadable(e.to_string()))?;
    if envelope.version != MESSAGE_VERSION {
        return Err(MessageError::UnsupportedVersion(envelope.version));
    }
    Ok(envelope.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_kind_and_version() {
        let m = WorkMessage::FetchPull(FetchPullJob {
            pull_id: "p".into(),
            source: Some("sandbox".into()),
            monitoring_id: Some("m".into()),
            initial_pull_id: None,
            trigger: FetchTrigger::Complete,
            event_key: "v1:ab".into(),
            requested_at: "2026-01-01T00:00:00.000Z".into(),
        });
        let json = m.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["kind"], "fetch_pull");
        assert_eq!(v["trigger"], "COMPLETE");
        assert_eq!(v["source"], "sandbox");
        assert_eq!(parse_message(&json).unwrap(), m);
        assert_eq!(m.queue(), QueueKind::Fetch);
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        let body = r#"{"version":2,"kind":"fetch_pull","pull_id":"p","trigger":"COMPLETE","event_key":"k","requested_at":"t"}"#;
        assert!(matches!(
            parse_message(body),
            Err(MessageError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            parse_message("nope"),
            Err(MessageError::Unreadable(_))
        ));
    }
}
