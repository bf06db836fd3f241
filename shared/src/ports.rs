//! The ports: what the domain needs from the outside world, as small traits. Adapters live
//! in `adapters/`; unit tests use the in-memory ones.

use crate::plan::{MonitoringUpdate, PullApplied, PullUpdate};
use crate::work::Outgoing;
use async_trait::async_trait;
use time::OffsetDateTime;

/// A failure of a storage or queue call. `Unavailable` may succeed on retry; `Misconfigured`
/// (missing table or queue, no permission) will not until an operator acts.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PortError {
    #[error("{service} unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    #[error("{service} misconfigured: {detail}")]
    Misconfigured {
        service: &'static str,
        detail: String,
    },
}

impl PortError {
    pub fn unavailable(service: &'static str, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            service,
            detail: detail.into(),
        }
    }
    pub fn misconfigured(service: &'static str, detail: impl Into<String>) -> Self {
        Self::Misconfigured {
            service,
            detail: detail.into(),
        }
    }
}

/// The first write of a delivery: who holds it and for how long (see [`crate::intake`]).
#[derive(Debug, Clone)]
pub struct EventClaim {
    pub dedupe_key: String,
    pub event_type: String,
    pub pull_id: String,
    pub monitoring_id: Option<String>,
    /// Random per attempt; completing or releasing the claim requires it.
    pub lease_id: String,
    pub received_at: String,
    /// Unix seconds; compared with `lease_expires_at` and `expires_at` in the condition.
    pub now: i64,
    /// Unix seconds after which another attempt may take over an unfinished claim.
    pub lease_expires_at: i64,
    /// Unix seconds; the table's TTL attribute (the record outlives Canopy's retries).
    pub expires_at: i64,
    /// The body as kept at rest (credentials redacted: [`crate::event::body_for_storage`]),
    /// so an event can be inspected or replayed.
    pub body: Vec<u8>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    /// This attempt owns the event now.
    Claimed,
    /// An earlier delivery was processed to the end.
    Completed,
    /// Another attempt holds an unexpired lease.
    InProgress,
}

/// The state intake writes: the event log (dedupe) and pull / monitoring state.
#[async_trait]
pub trait IntakeStore: Send + Sync {
    async fn claim_event(&self, claim: &EventClaim) -> Result<ClaimResult, PortError>;
    /// Marks the event processed; only the lease holder may.
    async fn complete_event(
        &self,
        dedupe_key: &str,
        lease_id: &str,
        outcome: &str,
        at: &str,
    ) -> Result<(), PortError>;
    /// Gives an unfinished claim up so that the sender's retry is processed afresh.
    async fn release_event(&self, dedupe_key: &str, lease_id: &str) -> Result<(), PortError>;
    /// Applies a pull update (its status fields only if the ordering rule allows) and says
    /// what the pull item holds.
    async fn apply_pull_update(&self, update: &PullUpdate) -> Result<PullApplied, PortError>;
    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<(), PortError>;
}

/// Where work goes: the fetch and notify queues.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn enqueue(&self, work: &Outgoing) -> Result<(), PortError>;
}

/// Time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Puts a received message back on its queue after `delay` (SQS: ChangeMessageVisibility).
#[async_trait]
pub trait MessageVisibility: Send + Sync {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), PortError>;
}
