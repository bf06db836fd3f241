//! In-memory adapters for unit tests and benchmarks: the same port contracts, no I/O.
//! Failures can be injected to exercise the error paths.

use crate::plan::{MonitoringUpdate, PullUpdate};
use crate::ports::{ClaimResult, Clock, EventClaim, IntakeStore, PortError, WorkQueue};
use crate::records::{MonitoringRecord, PullRecord};
use crate::work::Outgoing;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;

/// A stored event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub lease_id: String,
    pub completed: bool,
    pub outcome: Option<String>,
    pub lease_expires_at: i64,
    pub expires_at: i64,
    pub event_type: String,
}

#[derive(Debug, Default)]
pub struct MemoryState {
    pub events: HashMap<String, EventRecord>,
    pub pulls: HashMap<String, PullRecord>,
    pub monitorings: HashMap<String, MonitoringRecord>,
    /// Number of calls per operation name, to count requests.
    pub calls: HashMap<&'static str, usize>,
    /// Operation names that fail with `Unavailable` from now on.
    pub failing: Vec<&'static str>,
}

/// An [`IntakeStore`] in a mutex; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(pub Arc<Mutex<MemoryState>>);

impl MemoryStore {
    pub fn state(&self) -> MutexGuard<'_, MemoryState> {
        // A poisoned lock only happens after a test already panicked.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, operation: &'static str) {
        self.state().failing.push(operation);
    }

    pub fn heal(&self) {
        self.state().failing.clear();
    }

    fn enter(&self, operation: &'static str) -> Result<MutexGuard<'_, MemoryState>, PortError> {
        let mut state = self.state();
        *state.calls.entry(operation).or_default() += 1;
        if state.failing.contains(&operation) {
            return Err(PortError::unavailable(
                "memory",
                format!("{operation} fails"),
            ));
        }
        Ok(state)
    }
}

#[async_trait]
impl IntakeStore for MemoryStore {
    async fn claim_event(&self, claim: &EventClaim) -> Result<ClaimResult, PortError> {
        let mut state = self.enter("claim_event")?;
        if let Some(existing) = state.events.get(&claim.dedupe_key) {
            let expired = existing.expires_at < claim.now;
            let abandoned = !existing.completed && existing.lease_expires_at < claim.now;
            if !expired && !abandoned {
                return Ok(if existing.completed {
                    ClaimResult::Completed
                } else {
                    ClaimResult::InProgress
                });
            }
        }
        state.events.insert(
            claim.dedupe_key.clone(),
            EventRecord {
                lease_id: claim.lease_id.clone(),
                completed: false,
                outcome: None,
                lease_expires_at: claim.lease_expires_at,
                expires_at: claim.expires_at,
                event_type: claim.event_type.clone(),
            },
        );
        Ok(ClaimResult::Claimed)
    }

    async fn complete_event(
        &self,
        dedupe_key: &str,
        lease_id: &str,
        outcome: &str,
        _at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("complete_event")?;
        match state.events.get_mut(dedupe_key) {
            Some(record) if record.lease_id == lease_id => {
                record.completed = true;
                record.outcome = Some(outcome.to_owned());
                Ok(())
            }
            _ => Err(PortError::unavailable("memory", "lease lost")),
        }
    }

    async fn release_event(&self, dedupe_key: &str, lease_id: &str) -> Result<(), PortError> {
        let mut state = self.enter("release_event")?;
        if state
            .events
            .get(dedupe_key)
            .is_some_and(|r| r.lease_id == lease_id && !r.completed)
        {
            state.events.remove(dedupe_key);
        }
        Ok(())
    }

    async fn apply_pull_update(&self, update: &PullUpdate) -> Result<bool, PortError> {
        let mut state = self.enter("apply_pull_update")?;
        let mut record = state
            .pulls
            .get(&update.pull_id)
            .cloned()
            .unwrap_or_default();
        let applied = record.apply(update);
        if applied {
            state.pulls.insert(update.pull_id.clone(), record);
        }
        Ok(applied)
    }

    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<(), PortError> {
        let mut state = self.enter("apply_monitoring_update")?;
        state
            .monitorings
            .entry(update.monitoring_id.clone())
            .or_default()
            .apply(update);
        Ok(())
    }
}

/// A [`WorkQueue`] that keeps what was sent.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    pub sent: Arc<Mutex<Vec<Outgoing>>>,
    pub failing: Arc<Mutex<bool>>,
}

impl MemoryQueue {
    pub fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = failing;
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn enqueue(&self, work: &Outgoing) -> Result<(), PortError> {
        if *self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(PortError::unavailable("memory-queue", "send fails"));
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(work.clone());
        Ok(())
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Clone)]
pub struct FixedClock(pub Arc<Mutex<OffsetDateTime>>);

impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(Arc::new(Mutex::new(
            OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )))
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
