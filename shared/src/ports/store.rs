//! The storage port: what intake, the fetcher, the notifier and the reminder pass read and
//! write, as traits. The DynamoDB adapter (`dynamo/`, one table) and an in-memory fake
//! (`memory.rs`, for unit tests and benchmarks) implement them.

use crate::domain::fetch_claim::FetchClaim;
use crate::domain::notice::{Episode, NoticeRecord, SendClaim, SendKey};
use crate::domain::plan::{CanopyChangeRecord, MonitoringUpdate, PullApplied, PullUpdate};
use crate::domain::pull_data::{PreparedPull, PullSummary};
use crate::domain::work::{FetchTrigger, ReconnectJob};
use async_trait::async_trait;

pub use crate::ports::PortError;

/// The first write of a delivery: who holds it and for how long (see [`crate::app::intake`]).
#[derive(Debug, Clone)]
pub struct EventClaim {
    pub dedupe_key: String,
    /// The source whose secret verified it (kept so a replay uses the same keys).
    pub source: Option<String>,
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
    /// The body as kept at rest (credentials redacted: [`crate::domain::event::body_for_storage`]),
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
    /// `false`: the monitoring belongs to another source and nothing was written.
    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<bool, PortError>;
    /// Keeps Canopy's MONITORING_EVENTS changes, with the event relaying them, in one write.
    async fn record_canopy_changes(
        &self,
        record: &CanopyChangeRecord,
        events: &[crate::domain::business_events::BusinessEvent],
    ) -> Result<(), PortError>;
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
    /// Records a permanent failure, with its `events`; no further fetch of this pull will be
    /// tried.
    async fn fail_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        code: &str,
        at: &str,
        events: &[crate::domain::business_events::BusinessEvent],
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

/// One page of a listing, with the opaque cursor of the next (none on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/monitorings` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitoringQuery {
    pub status: Option<String>,
    pub reconnect_needed: Option<bool>,
    pub owner: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Why a cursor was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this listing handed out")]
pub struct BadCursor;

/// What the Monitoring API writes besides Canopy's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewContext {
    /// The pull monitoring was enabled on (enable only): linked both ways.
    pub enabled_pull_id: Option<String>,
    pub owner: Option<String>,
    /// The source whose keys made the call (or listed the monitoring).
    pub source: Option<String>,
}

/// What a refresh claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshClaim {
    Claimed,
    /// The guard refused; the record as it was (`None`: no such monitoring).
    Refused(Option<Box<crate::domain::records::MonitoringRecord>>),
}

/// An idempotent request's first write (see [`crate::app::monitoring_api`]).
#[derive(Debug, Clone)]
pub struct RequestClaim {
    /// `<route>#<Idempotency-Key>`.
    pub key: String,
    /// SHA-256 of the route, path and body: the same key with another request is refused.
    pub fingerprint: String,
    pub lease_id: String,
    pub now: i64,
    pub lease_expires_at: i64,
    pub expires_at: i64,
}

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestClaimResult {
    Claimed,
    Completed {
        fingerprint: String,
        response: StoredResponse,
    },
    InProgress {
        fingerprint: String,
    },
}

/// A webhook event as intake kept it (for replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Processed to the end (not an attempt in flight).
    pub completed: bool,
    pub event_type: Option<String>,
    /// As [`EventClaim::source`].
    pub source: Option<String>,
    /// The body as stored (credentials redacted), `None` when it was too large to keep.
    pub body: Option<Vec<u8>>,
}

/// What the Monitoring API and the reconciler read and write.
#[async_trait]
pub trait MonitoringStore: Send + Sync {
    async fn monitoring(
        &self,
        monitoring_id: &str,
    ) -> Result<Option<crate::domain::records::MonitoringRecord>, PortError>;
    async fn pull(
        &self,
        pull_id: &str,
    ) -> Result<Option<crate::domain::records::PullRecord>, PortError>;
    /// A pull's `meta_data` as intake kept it.
    async fn pull_meta_data(&self, pull_id: &str) -> Result<Option<serde_json::Value>, PortError>;
    /// Writes Canopy's view of a monitoring (after enable, patch, stop, or by the reconciler).
    async fn record_canopy_view(
        &self,
        view: &crate::domain::monitoring::CanopyMonitoring,
        context: &ViewContext,
        at: &str,
    ) -> Result<crate::domain::records::MonitoringRecord, PortError>;
    /// Takes the refresh guard (`cutoffs` `None`: forced, only an active monitoring needed).
    async fn claim_refresh(
        &self,
        monitoring_id: &str,
        request_id: &str,
        now: &str,
        cutoffs: Option<&crate::domain::monitoring::RefreshCutoffs>,
    ) -> Result<RefreshClaim, PortError>;
    async fn finish_refresh(
        &self,
        monitoring_id: &str,
        request_id: &str,
        pull_id: &str,
    ) -> Result<(), PortError>;
    /// Gives the guard back after Canopy refused or failed (nothing was billed).
    async fn release_refresh(&self, monitoring_id: &str, request_id: &str)
        -> Result<(), PortError>;
    async fn list_monitorings(
        &self,
        query: &MonitoringQuery,
    ) -> Result<Result<Page<crate::domain::records::MonitoringRecord>, BadCursor>, PortError>;
    /// Newest first.
    async fn refresh_history(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<RefreshEntry>, BadCursor>, PortError>;
    /// Change sets and Canopy's MONITORING_EVENTS, newest first (see [`crate::app::change_log`]).
    async fn change_history(
        &self,
        monitoring_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Result<Page<serde_json::Value>, BadCursor>, PortError>;
    async fn pull_summary(&self, pull_id: &str)
        -> Result<Option<(PullSummary, String)>, PortError>;
    async fn pull_gzip(&self, pull_id: &str) -> Result<Option<StoredGzip>, PortError>;
    async fn stored_event(&self, dedupe_key: &str) -> Result<Option<StoredEvent>, PortError>;
    async fn claim_request(&self, claim: &RequestClaim) -> Result<RequestClaimResult, PortError>;
    async fn complete_request(
        &self,
        key: &str,
        lease_id: &str,
        response: &StoredResponse,
    ) -> Result<(), PortError>;
    async fn release_request(&self, key: &str, lease_id: &str) -> Result<(), PortError>;
}

/// A stored pull as its gzip stream.
#[derive(Debug, Clone)]
pub struct StoredGzip {
    pub gzip: Vec<u8>,
    /// The JSON text's length, when recorded.
    pub json_bytes: Option<usize>,
}

/// One entry of a monitoring's refresh history.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct RefreshEntry {
    pub pull_id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    pub fetched_at: String,
}

/// A browser's reconnect session (see [`crate::app::reconnect`]). The `pull_jwt` stays here,
/// server-side, sealed ([`crate::app::reconnect::SessionKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectSession {
    pub session_id: String,
    /// The JWT subject that started it; only it may use the session.
    pub owner: String,
    pub monitoring_id: String,
    /// The monitoring's source: its keys made the exchange, and make the steps' calls.
    pub source: Option<String>,
    pub pull_id: String,
    /// The pull's JWT, sealed ([`crate::app::reconnect::SessionKey::seal`]): bound to this session,
    /// owner and pull.
    pub sealed_jwt: String,
    pub created_at: String,
    /// Unix seconds; the table's TTL attribute, also checked on every read.
    pub expires_at: i64,
}

/// Storage of reconnect sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn put_session(&self, session: &ReconnectSession) -> Result<(), PortError>;
    /// The session, if it exists and has not expired at `now` (Unix seconds).
    async fn session(
        &self,
        session_id: &str,
        now: i64,
    ) -> Result<Option<ReconnectSession>, PortError>;
}

/// What a per-caller budget counts (see [`crate::app::reconnect::Limit`]): a limit, for a subject,
/// optionally narrowed to one monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitKey<'a> {
    pub subject: &'a str,
    /// The limit's name ([`crate::app::reconnect::Limit::name`]).
    pub name: &'static str,
    pub monitoring_id: Option<&'a str>,
}

/// A fixed window of time, `[start, end)` in Unix seconds ([`crate::app::reconnect::window_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// Per-caller budgets of the browser-facing routes: uses counted over a fixed window, and
/// slots held at once.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Counts one use of `key` in `window` unless `max` are counted there already; `false`
    /// when refused.
    async fn take_in_window(
        &self,
        key: &LimitKey<'_>,
        window: Window,
        max: u32,
    ) -> Result<bool, PortError>;
    /// Takes one of `cap` slots of `key` unless all are held; `false` when refused. Every
    /// take sets the count to lapse at `hold_until`: a count nobody took from since then is
    /// stale (its holders have ended, released or not) and starts again.
    async fn take_slot(
        &self,
        key: &LimitKey<'_>,
        cap: u32,
        now: i64,
        hold_until: i64,
    ) -> Result<bool, PortError>;
    /// Gives a slot back.
    async fn release_slot(&self, key: &LimitKey<'_>) -> Result<(), PortError>;
}

/// An item holding business events that wait to be published (see [`crate::app::outbox`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOutbox {
    pub pk: String,
    pub sk: String,
    /// Changes with every write that adds events: the pending mark is cleared only if no
    /// event was added since this was read.
    pub version: String,
    /// Since when its events wait (the outbox index's sort key).
    pub at: String,
    /// Sweeps that found its events refused by the bus.
    pub attempts: u32,
    /// Empty for a pending mark whose events are gone: the sweep clears it.
    pub events: Vec<crate::domain::business_events::BusinessEvent>,
}

/// Where the reading of one shard of the outbox index goes on: after this item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub pk: String,
    pub sk: String,
    pub at: String,
}

/// One page of one shard of the outbox index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingPage {
    pub items: Vec<PendingOutbox>,
    /// `None` once the shard is read to its end.
    pub next: Option<PendingKey>,
}

/// What counting a refused pass did to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted; the item stays pending with this many refused passes.
    Attempts(u32),
    /// Out of the pending index, its events kept on it, `outbox_parked_at` set.
    Parked,
}

/// The outbox side of the table: events recorded with the writes that caused them.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Items of outbox shard `shard` (`0..`[`crate::domain::shard::SHARDS`]) whose events have waited
    /// since before `cutoff` (RFC 3339), oldest first, at most `limit`, after `after`.
    async fn pending(
        &self,
        shard: u32,
        cutoff: &str,
        limit: usize,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, PortError>;
    /// Removes the published events from `item`, and its pending mark if nothing was added
    /// since it was read (an item with no events: just the mark).
    async fn acknowledge(
        &self,
        item: &PendingOutbox,
        published_ids: &[String],
    ) -> Result<(), PortError>;
    /// Counts a sweep that found `item`'s events refused; the `park_after`-th parks it, unless
    /// events were added since it was read.
    async fn count_refusal(
        &self,
        item: &PendingOutbox,
        park_after: u32,
        at: &str,
    ) -> Result<Counted, PortError>;
}

/// One refresh's stored change set, compared with the previous stored pull of its monitoring
/// (see [`crate::app::change_log`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSetRecord {
    pub monitoring_id: String,
    pub pull_id: String,
    /// The pull's `created_at` (or, lacking it, when it was fetched): the history's order.
    pub order: String,
    pub previous_pull_id: Option<String>,
    pub computed_at: String,
    /// `Some` when compared; `None` with `not_compared` saying why.
    pub changes: Option<crate::domain::changes::ChangeSet>,
    pub not_compared: Option<&'static str>,
    pub counts: serde_json::Value,
}

/// What the change log reads and writes.
#[async_trait]
pub trait ChangeStore: Send + Sync {
    /// The monitoring's refreshes with stored data, oldest first.
    async fn refreshes(&self, monitoring_id: &str) -> Result<Vec<RefreshEntry>, PortError>;
    /// The pull monitoring was enabled on, if known.
    async fn initial_pull_id(&self, monitoring_id: &str) -> Result<Option<String>, PortError>;
    /// A stored pull, parsed; `None` if not stored.
    async fn stored_pull(&self, pull_id: &str) -> Result<Option<serde_json::Value>, PortError>;
    /// Writes (or rewrites) a refresh's change set with its events, in one write.
    async fn put_change_set(
        &self,
        record: &ChangeSetRecord,
        events: &[crate::domain::business_events::BusinessEvent],
    ) -> Result<(), PortError>;
}
