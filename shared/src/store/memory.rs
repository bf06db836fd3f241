//! The in-memory store for unit tests and benchmarks: the same port contracts, no I/O.
//! Failures can be injected to exercise the error paths.

use crate::fetcher::{fetch_decision, FetchClaim, FAILED, FETCHED};
use crate::plan::{MonitoringUpdate, PullApplied, PullUpdate};
use crate::pull_data::PreparedPull;
use crate::records::{MonitoringRecord, PullRecord};
use crate::store::{ClaimResult, EventClaim, IntakeStore, PortError, PullDataStore};
use crate::work::FetchTrigger;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Stored pull data by pull id.
    pub pull_data: HashMap<String, crate::pull_data::PreparedPull>,
    /// (monitoring id, pull id) of each recorded refresh.
    pub refreshes: Vec<(String, String)>,
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

    async fn apply_pull_update(&self, update: &PullUpdate) -> Result<PullApplied, PortError> {
        let mut state = self.enter("apply_pull_update")?;
        let mut record = state
            .pulls
            .get(&update.pull_id)
            .cloned()
            .unwrap_or_default();
        let applied = record.apply(update);
        let found = PullApplied {
            applied,
            first_seen_at: record.first_seen_at.clone(),
            completed: record.completed_at.is_some(),
        };
        if applied {
            state.pulls.insert(update.pull_id.clone(), record);
        }
        Ok(found)
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

#[async_trait]
impl PullDataStore for MemoryStore {
    async fn claim_fetch(
        &self,
        pull_id: &str,
        trigger: FetchTrigger,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<FetchClaim, PortError> {
        let mut state = self.enter("claim_fetch")?;
        let record = state.pulls.entry(pull_id.to_owned()).or_default();
        let decision = fetch_decision(Some(record), trigger, now);
        if decision != FetchClaim::Claimed {
            return Ok(decision);
        }
        record.pull_id = pull_id.to_owned();
        record.fetch_lease_id = Some(lease_id.to_owned());
        record.fetch_lease_expires_at = Some(lease_expires_at);
        Ok(FetchClaim::Claimed)
    }

    async fn store_pull_data(
        &self,
        pull_id: &str,
        _version: &str,
        data: &PreparedPull,
        _at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("store_pull_data")?;
        state.pull_data.insert(pull_id.to_owned(), data.clone());
        Ok(())
    }

    async fn record_refresh(
        &self,
        monitoring_id: &str,
        pull_id: &str,
        _created_at: Option<&str>,
        _fetched_at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("record_refresh")?;
        state
            .refreshes
            .push((monitoring_id.to_owned(), pull_id.to_owned()));
        Ok(())
    }

    async fn finish_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        trigger: FetchTrigger,
        at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("finish_fetch")?;
        let record = leased(&mut state, pull_id, lease_id)?;
        record.fetch_status = Some(FETCHED.to_owned());
        record.fetched_at = Some(at.to_owned());
        if trigger == FetchTrigger::Complete {
            record.fetched_complete_at = Some(at.to_owned());
        }
        record.fetch_lease_id = None;
        record.fetch_lease_expires_at = None;
        record.fetch_error = None;
        Ok(())
    }

    async fn release_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("release_fetch")?;
        let record = leased(&mut state, pull_id, lease_id)?;
        record.fetch_lease_id = None;
        record.fetch_lease_expires_at = None;
        record.fetch_error = Some(reason.to_owned());
        record.fetch_error_at = Some(at.to_owned());
        Ok(())
    }

    async fn fail_fetch(
        &self,
        pull_id: &str,
        lease_id: &str,
        code: &str,
        at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("fail_fetch")?;
        let record = leased(&mut state, pull_id, lease_id)?;
        record.fetch_status = Some(FAILED.to_owned());
        record.fetch_error = Some(code.to_owned());
        record.fetch_error_at = Some(at.to_owned());
        record.fetch_lease_id = None;
        record.fetch_lease_expires_at = None;
        Ok(())
    }
}

fn leased<'a>(
    state: &'a mut MemoryState,
    pull_id: &str,
    lease_id: &str,
) -> Result<&'a mut PullRecord, PortError> {
    state
        .pulls
        .get_mut(pull_id)
        .filter(|r| r.fetch_lease_id.as_deref() == Some(lease_id))
        .ok_or_else(|| PortError::unavailable("memory", "fetch lease lost"))
}
