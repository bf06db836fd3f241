//! Replaying a stored webhook: its redacted body, kept by intake, goes through the same plan
//! again ([`crate::app::intake::apply_event`]). The Monitoring API's `POST /v1/events/{key}/replay`
//! and the operator CLI's `canopy-ops replay` both come here.

use crate::app::intake::apply_plan;
use crate::domain::event::{parse_event, WebhookEvent, REDACTED};
use crate::domain::plan::{plan_event, MonitoringUpdate, PlanConfig};
use crate::ports::queue::WorkQueue;
use crate::ports::store::{IntakeStore, MonitoringStore};
use crate::ports::PortError;
use serde::Serialize;

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub dedupe_key: String,
    pub event_type: String,
    pub pull_id: String,
    /// Whether the pull's status fields applied (not stale).
    pub state_applied: bool,
    /// Work messages queued.
    pub queued: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("event {0} not found")]
    NotFound(String),
    #[error("event {0} cannot be replayed: {1}")]
    NotReplayable(String, &'static str),
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Replays stored event `key` (already validated) at time `at`.
pub async fn replay_stored_event<S, Q>(
    store: &S,
    queue: &Q,
    key: &str,
    at: &str,
    plan: &PlanConfig,
) -> Result<Replayed, ReplayError>
where
    S: MonitoringStore + IntakeStore + ?Sized,
    Q: WorkQueue + ?Sized,
{
    let stored = store
        .stored_event(key)
        .await?
        .ok_or_else(|| ReplayError::NotFound(key.to_owned()))?;
    if !stored.completed {
        return Err(ReplayError::NotReplayable(
            key.to_owned(),
            "it is still being processed",
        ));
    }
    let Some(body) = stored.body else {
        return Err(ReplayError::NotReplayable(
            key.to_owned(),
            "its body was too large to keep (its state and work were recorded on arrival)",
        ));
    };
    let mut event = parse_event(&body).map_err(|_| {
        ReplayError::NotReplayable(key.to_owned(), "its stored body does not parse")
    })?;
    drop_redacted_link(&mut event);
    // No source stamp: the event was verified when it arrived, and its source recorded then.
    let mut planned = plan_event(&event, None, at, plan);
    if let Some(update) = planned.monitoring.as_mut() {
        let stored = store.monitoring(&update.monitoring_id).await?;
        if keep_stored_owner(update, stored.and_then(|m| m.owner).as_deref()) {
            tracing::warn!(dedupe_key = %key, monitoring_id = %update.monitoring_id,
                "the replayed event names another owner; the stored owner is kept");
        }
    }
    let (state_applied, queued) = match apply_plan(store, queue, planned, at).await? {
        crate::app::intake::Applied::Done {
            state_applied,
            queued,
        } => (state_applied, queued),
        // Unreachable without a stamp; said plainly if it ever is.
        crate::app::intake::Applied::OtherSource => {
            return Err(ReplayError::NotReplayable(
                key.to_owned(),
                "its pull or monitoring belongs to another source",
            ))
        }
    };
    tracing::info!(dedupe_key = %key, event_type = %event.event_type, queued, "event replayed");
    Ok(Replayed {
        dedupe_key: key.to_owned(),
        event_type: event.event_type.to_string(),
        pull_id: event.pull_id,
        state_applied,
        queued,
    })
}

/// A replay never hands a monitoring to another owner: the event may be older than the owner
/// stored since, or read under another `OwnerMetaDataKey`. An owner already stored stays; only
/// a monitoring without one takes the event's. Returns whether the event's owner was dropped.
fn keep_stored_owner(update: &mut MonitoringUpdate, stored: Option<&str>) -> bool {
    let differs = stored.is_some_and(|s| update.owner.as_deref().is_some_and(|o| o != s));
    if differs {
        update.owner = None;
    }
    differs
}

/// A stored body's reconnect link was redacted ([`crate::domain::event::body_for_storage`]): what is
/// left is `[REDACTED]`, never a link. The replayed event carries none, so its notice gets a
/// fresh one from Canopy or is retried; it can never fall back to the redacted text.
fn drop_redacted_link(event: &mut WebhookEvent) {
    if let Some(link) = event.reconnect.as_mut() {
        for value in [&mut link.reconnect_url, &mut link.reconnect_token] {
            if value.as_deref().is_some_and(|v| v.contains(REDACTED)) {
                *value = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::body_for_storage;

    #[test]
    fn a_replay_keeps_a_stored_owner() {
        let event = parse_event(
            br#"{"event_type":"COMPLETE","pull_id":"p","monitoring":{"monitoring_id":"m"},"meta_data":{"customer_id":"new"}}"#,
        )
        .unwrap();
        let planned = plan_event(
            &event,
            None,
            "2026-01-01T00:00:00.000Z",
            &PlanConfig::default(),
        );
        let update = planned.monitoring.expect("a monitoring update");
        assert_eq!(update.owner.as_deref(), Some("new"));
        for (stored, kept, dropped) in [
            (Some("old"), None, true),
            (Some("new"), Some("new"), false),
            (None, Some("new"), false),
        ] {
            let mut u = update.clone();
            assert_eq!(keep_stored_owner(&mut u, stored), dropped, "{stored:?}");
            assert_eq!(u.owner.as_deref(), kept, "{stored:?}");
        }
    }

    #[test]
    fn a_replayed_reconnect_carries_no_redacted_link() {
        let body = br#"{"event_type":"MONITORING_RECONNECT","pull_id":"p","monitoring":{"monitoring_id":"m"},
            "data":{"reconnect_url":"https://x/r?reconnectToken=tok","reconnect_token":"tok"}}"#;
        let event = parse_event(body).unwrap();
        let stored = body_for_storage(&event, body);
        let mut replayed = parse_event(&stored).unwrap();
        assert!(
            replayed
                .reconnect
                .as_ref()
                .unwrap()
                .reconnect_url
                .as_deref()
                == Some(REDACTED)
        );
        drop_redacted_link(&mut replayed);
        let link = replayed.reconnect.unwrap();
        assert_eq!((link.reconnect_url, link.reconnect_token), (None, None));
    }
}
