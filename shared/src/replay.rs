//! Replaying a stored webhook: its redacted body, kept by intake, goes through the same plan
//! again ([`crate::intake::apply_event`]). The Monitoring API's `POST /v1/events/{key}/replay`
//! and the operator CLI's `canopy-ops replay` both come here.

use crate::event::parse_event;
use crate::intake::apply_event;
use crate::plan::PlanConfig;
use crate::ports::PortError;
use crate::queue::WorkQueue;
use crate::store::{IntakeStore, MonitoringStore};
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
    let event = parse_event(&body).map_err(|_| {
        ReplayError::NotReplayable(key.to_owned(), "its stored body does not parse")
    })?;
    let (state_applied, queued) = apply_event(store, queue, &event, at, plan).await?;
    tracing::info!(dedupe_key = %key, event_type = %event.event_type, queued, "event replayed");
    Ok(Replayed {
        dedupe_key: key.to_owned(),
        event_type: event.event_type.to_string(),
        pull_id: event.pull_id,
        state_applied,
        queued,
    })
}
