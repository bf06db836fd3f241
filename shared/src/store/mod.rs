//! The storage port: what intake, the fetcher, the notifier and the reminder pass read and
//! write, as traits. The DynamoDB adapter (`dynamo/`, one table) and an in-memory fake
//! (`memory.rs`, for unit tests and benchmarks) implement them.

#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod memory;

use crate::fetcher::FetchClaim;
use crate::notifier::{Episode, NoticeRecord, SendClaim, SendKey};
use crate::plan::{MonitoringUpdate, PullApplied, PullUpdate};
use crate::pull_data::{PreparedPull, PullSummary};
use crate::work::{FetchTrigger, ReconnectJob};
use async_trait::async_trait;

pub use crate::ports::PortError;

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

/// What the fetcher needs from storage.
#[async_trait]
pub trait PullDataStore: Send + Sync {
    async fn claim_fetch(
        &self,
        pull_id: &str,
        trigger: FetchTrigger,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<FetchClaim, PortError>;
    /// Writes the data as version `version` (parts, then the summary that commits them), then
    /// removes the version it replaced. A reader sees the old version or the new, never a mix.
    async fn store_pull_data(
        &self,
        pull_id: &str,
        version: &str,
        data: &PreparedPull,
        fetched_at: &str,
    ) -> Result<(), PortError>;
    /// Links the pull to its monitoring: refresh history, and the latest data if newer.
    async fn record_refresh(
        &self,
        monitoring_id: &str,
        pull_id: &str,
        created_at: Option<&str>,
        fetched_at: &str,
    ) -> Result<(), PortError>;
    async fn finish_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        trigger: FetchTrigger,
        at: &str,
    ) -> Result<(), PortError>;
    /// Gives the lease up after a retryable failure, noting why.
    async fn release_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), PortError>;
    /// Records a permanent failure; no further fetch of this pull will be tried.
    async fn fail_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        code: &str,
        at: &str,
    ) -> Result<(), PortError>;
}

/// Storage the notifier needs.
#[async_trait]
pub trait EpisodeStore: Send + Sync {
    /// The open episode of the job's monitoring (created on first sight), or `None` when the
    /// monitoring has none open (already resolved).
    async fn open_episode(
        &self,
        job: &ReconnectJob,
        now: &str,
    ) -> Result<Option<Episode>, PortError>;
    /// A pull's `meta_data` as intake kept it (for values too large to travel in messages).
    async fn stored_meta_data(&self, pull_id: &str)
        -> Result<Option<serde_json::Value>, PortError>;
    /// The stored summary of the first of `pull_ids` that has data, for contact details.
    async fn pull_summary(&self, pull_ids: &[&str]) -> Result<Option<PullSummary>, PortError>;
    async fn claim_send(
        &self,
        key: &SendKey,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<SendClaim, PortError>;
    /// Marks a claimed send `SENT` (no error) or `FAILED` (a permanent error).
    async fn finish_send(
        &self,
        key: &SendKey,
        lease_id: &str,
        failure: Option<&str>,
        at: &str,
    ) -> Result<(), PortError>;
    async fn release_send(&self, key: &SendKey, lease_id: &str) -> Result<(), PortError>;
    /// Records a notice on the episode and schedules the next reminder (or none).
    async fn record_notice(
        &self,
        episode: &Episode,
        record: &NoticeRecord,
        at: &str,
        next_reminder_at: Option<&str>,
    ) -> Result<(), PortError>;
}

/// A reminder found due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueReminder {
    pub monitoring_id: String,
    pub started_at: String,
    pub notices_sent: u32,
    pub due_key: String,
    pub job: ReconnectJob,
}

/// What the reminder pass needs from storage.
#[async_trait]
pub trait ReminderStore: Send + Sync {
    /// Reminders due at `now` (oldest first), at most `limit`.
    async fn due_reminders(&self, now: &str, limit: i32) -> Result<Vec<DueReminder>, PortError>;
    /// When the monitoring's open episode started, or `None` when none is open.
    async fn open_episode_start(&self, monitoring_id: &str) -> Result<Option<String>, PortError>;
    /// Takes the reminder off the due list (`resolved_at` when its episode is over). `false`
    /// when another run took it first.
    async fn take_reminder(
        &self,
        due: &DueReminder,
        resolved_at: Option<&str>,
    ) -> Result<bool, PortError>;
}
