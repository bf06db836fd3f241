//! The in-memory store for unit tests and benchmarks: the same port contracts, no I/O.
//! Failures can be injected to exercise the error paths.

use crate::domain::business_events::BusinessEvent;
use crate::domain::fetch_claim::{fetch_decision, FetchClaim, FAILED, FETCHED};
use crate::domain::notice::{Episode, NoticeRecord, SendClaim, SendKey};
use crate::domain::plan::CanopyChangeRecord;
use crate::domain::plan::{MonitoringUpdate, PullApplied, PullUpdate};
use crate::domain::pull_data::PreparedPull;
use crate::domain::pull_data::PullSummary;
use crate::domain::records::{MonitoringRecord, PullRecord};
use crate::domain::work::FetchTrigger;
use crate::domain::work::ReconnectJob;
use crate::ports::store::{
    ChangeSetRecord, ChangeStore, ClaimResult, DueReminder, EpisodeStore, EventClaim, IntakeStore,
    PortError, PullDataStore, RefreshEntry, ReminderStore,
};
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
    pub pull_data: HashMap<String, crate::domain::pull_data::PreparedPull>,
    /// (monitoring id, pull id) of each recorded refresh.
    pub refreshes: Vec<(String, String)>,
    /// Number of calls per operation name, to count requests.
    pub calls: HashMap<&'static str, usize>,
    /// Operation names that fail with `Unavailable` from now on.
    pub failing: Vec<&'static str>,
    /// Reconnect episodes by (monitoring id, start).
    pub episodes: HashMap<(String, String), EpisodeRecord>,
    /// Sends by [`SendKey::id`].
    pub sends: HashMap<String, SendRecord>,
    /// Large `meta_data` kept apart, by pull id.
    pub meta_data: HashMap<String, serde_json::Value>,
    /// Change sets by (monitoring id, pull id).
    pub change_sets: HashMap<(String, String), ChangeSetRecord>,
    /// Canopy's MONITORING_EVENTS changes, in order.
    pub canopy_changes: Vec<CanopyChangeRecord>,
    /// Business events recorded by the writes above, in order.
    pub outbox: Vec<BusinessEvent>,
}

/// A stored reconnect episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    pub job: ReconnectJob,
    pub notices_sent: u32,
    pub last_notice: Option<NoticeRecord>,
    /// The reminder index entry: the due time's key, while a reminder is scheduled.
    pub due_key: Option<String>,
    pub resolved_at: Option<String>,
}

/// A stored send claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub lease_id: String,
    pub lease_expires_at: i64,
    /// `SENDING`, `SENT` or `FAILED`.
    pub status: &'static str,
    pub reason: Option<String>,
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
        let stored = state.pulls.get(&update.pull_id).cloned();
        if let Some(stamp) = &update.source {
            let owner = stored.as_ref().and_then(|p| p.source.as_deref());
            if !crate::domain::source::source_allows(owner, stored.is_some(), stamp) {
                return Ok(PullApplied {
                    other_source: true,
                    ..PullApplied::default()
                });
            }
        }
        let mut record = stored.unwrap_or_default();
        let applied = record.apply(update);
        let found = PullApplied {
            other_source: false,
            applied,
            first_seen_at: record.first_seen_at.clone(),
            completed: record.completed_at.is_some(),
        };
        if applied {
            state.pulls.insert(update.pull_id.clone(), record);
        }
        Ok(found)
    }

    async fn apply_monitoring_update(&self, update: &MonitoringUpdate) -> Result<bool, PortError> {
        let mut state = self.enter("apply_monitoring_update")?;
        if let Some(stamp) = &update.source {
            let stored = state.monitorings.get(&update.monitoring_id);
            let owner = stored.and_then(|m| m.source.as_deref());
            if !crate::domain::source::source_allows(owner, stored.is_some(), stamp) {
                return Ok(false);
            }
        }
        let event = state
            .monitorings
            .entry(update.monitoring_id.clone())
            .or_default()
            .apply(update);
        state.outbox.extend(event);
        Ok(true)
    }

    async fn record_canopy_changes(
        &self,
        record: &CanopyChangeRecord,
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let mut state = self.enter("record_canopy_changes")?;
        state.canopy_changes.push(record.clone());
        state.outbox.extend(events.iter().cloned());
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
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let mut state = self.enter("fail_fetch")?;
        state.outbox.extend(events.iter().cloned());
        let record = leased(&mut state, pull_id, lease_id)?;
        record.fetch_status = Some(FAILED.to_owned());
        record.fetch_error = Some(code.to_owned());
        record.fetch_error_at = Some(at.to_owned());
        record.fetch_lease_id = None;
        record.fetch_lease_expires_at = None;
        Ok(())
    }
}

#[async_trait]
impl ChangeStore for MemoryStore {
    async fn refreshes(&self, monitoring_id: &str) -> Result<Vec<RefreshEntry>, PortError> {
        let state = self.enter("refreshes")?;
        let mut entries: Vec<RefreshEntry> = state
            .refreshes
            .iter()
            .filter(|(m, _)| m == monitoring_id)
            .filter_map(|(_, p)| {
                let data = state.pull_data.get(p)?;
                Some(RefreshEntry {
                    pull_id: p.clone(),
                    created_at: data.summary.created_at.clone(),
                    fetched_at: String::new(),
                })
            })
            .collect();
        entries.sort_by(|a, b| (&a.created_at, &a.pull_id).cmp(&(&b.created_at, &b.pull_id)));
        entries.dedup_by(|a, b| a.pull_id == b.pull_id);
        Ok(entries)
    }

    async fn initial_pull_id(&self, monitoring_id: &str) -> Result<Option<String>, PortError> {
        let state = self.enter("initial_pull_id")?;
        Ok(state
            .monitorings
            .get(monitoring_id)
            .and_then(|m| m.initial_pull_id.clone()))
    }

    async fn stored_pull(&self, pull_id: &str) -> Result<Option<serde_json::Value>, PortError> {
        let state = self.enter("stored_pull")?;
        state
            .pull_data
            .get(pull_id)
            .map(|d| crate::domain::pull_data::reassemble(&d.parts, &d.sha256))
            .transpose()
            .map_err(|e| PortError::unavailable("memory", e.to_string()))
    }

    async fn put_change_set(
        &self,
        record: &ChangeSetRecord,
        events: &[BusinessEvent],
    ) -> Result<(), PortError> {
        let mut state = self.enter("put_change_set")?;
        state.change_sets.insert(
            (record.monitoring_id.clone(), record.pull_id.clone()),
            record.clone(),
        );
        state.outbox.extend(events.iter().cloned());
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

#[async_trait]
impl EpisodeStore for MemoryStore {
    async fn open_episode(
        &self,
        job: &ReconnectJob,
        _now: &str,
    ) -> Result<Option<Episode>, PortError> {
        let mut state = self.enter("open_episode")?;
        let Some(monitoring) = state.monitorings.get(&job.monitoring_id).cloned() else {
            return Ok(None);
        };
        let Some(started_at) = monitoring.reconnect_needed_since else {
            return Ok(None);
        };
        let record = state
            .episodes
            .entry((job.monitoring_id.clone(), started_at.clone()))
            .or_insert_with(|| EpisodeRecord {
                job: job.clone(),
                notices_sent: 0,
                last_notice: None,
                due_key: None,
                resolved_at: None,
            });
        Ok(Some(Episode {
            monitoring_id: job.monitoring_id.clone(),
            started_at,
            notices_sent: record.notices_sent,
            latest_data_pull_id: monitoring.latest_data_pull_id,
        }))
    }

    async fn stored_meta_data(
        &self,
        pull_id: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        Ok(self
            .enter("stored_meta_data")?
            .meta_data
            .get(pull_id)
            .cloned())
    }

    async fn pull_summary(&self, pull_ids: &[&str]) -> Result<Option<PullSummary>, PortError> {
        let state = self.enter("pull_summary")?;
        Ok(pull_ids
            .iter()
            .find_map(|id| state.pull_data.get(*id).map(|d| d.summary.clone())))
    }

    async fn claim_send(
        &self,
        key: &SendKey,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<SendClaim, PortError> {
        let mut state = self.enter("claim_send")?;
        match state.sends.get(&key.id()) {
            Some(old) if old.status != "SENDING" => return Ok(SendClaim::Done),
            Some(old) if old.lease_expires_at >= now => {
                return Ok(SendClaim::InFlight {
                    lease_expires_at: old.lease_expires_at,
                })
            }
            _ => {}
        }
        state.sends.insert(
            key.id(),
            SendRecord {
                lease_id: lease_id.to_owned(),
                lease_expires_at,
                status: "SENDING",
                reason: None,
            },
        );
        Ok(SendClaim::Claimed)
    }

    async fn finish_send(
        &self,
        key: &SendKey,
        lease_id: &str,
        failure: Option<&str>,
        _at: &str,
    ) -> Result<(), PortError> {
        let mut state = self.enter("finish_send")?;
        let send = state
            .sends
            .get_mut(&key.id())
            .filter(|s| s.lease_id == lease_id)
            .ok_or_else(|| PortError::unavailable("memory", "send lease lost"))?;
        send.status = if failure.is_some() { "FAILED" } else { "SENT" };
        send.reason = failure.map(str::to_owned);
        Ok(())
    }

    async fn release_send(&self, key: &SendKey, lease_id: &str) -> Result<(), PortError> {
        let mut state = self.enter("release_send")?;
        if state
            .sends
            .get(&key.id())
            .is_some_and(|s| s.lease_id == lease_id && s.status == "SENDING")
        {
            state.sends.remove(&key.id());
        }
        Ok(())
    }

    async fn record_notice(
        &self,
        episode: &Episode,
        record: &NoticeRecord,
        _at: &str,
        next_reminder_at: Option<&str>,
    ) -> Result<(), PortError> {
        let mut state = self.enter("record_notice")?;
        let key = (episode.monitoring_id.clone(), episode.started_at.clone());
        let Some(stored) = state.episodes.get_mut(&key) else {
            return Ok(());
        };
        // Notices only move forward, as in DynamoDB.
        if stored.notices_sent > record.notice {
            return Ok(());
        }
        stored.notices_sent = record.notice + 1;
        stored.last_notice = Some(record.clone());
        stored.due_key = next_reminder_at
            .map(|due| format!("{due}#{}#{}", episode.monitoring_id, episode.started_at));
        Ok(())
    }
}

#[async_trait]
impl ReminderStore for MemoryStore {
    async fn due_reminders(&self, now: &str, limit: i32) -> Result<Vec<DueReminder>, PortError> {
        let state = self.enter("due_reminders")?;
        let bound = format!("{now}~");
        let mut due: Vec<DueReminder> = state
            .episodes
            .iter()
            .filter_map(|((monitoring_id, started_at), e)| {
                let due_key = e.due_key.clone().filter(|k| *k <= bound)?;
                Some(DueReminder {
                    monitoring_id: monitoring_id.clone(),
                    started_at: started_at.clone(),
                    notices_sent: e.notices_sent,
                    due_key,
                    job: ReconnectJob {
                        link: None,
                        event_key: format!(
                            "reminder:{monitoring_id}:{started_at}:{}",
                            e.notices_sent
                        ),
                        requested_at: now.to_owned(),
                        notice: e.notices_sent,
                        episode: Some(started_at.clone()),
                        ..e.job.clone()
                    },
                })
            })
            .collect();
        due.sort_by(|a, b| a.due_key.cmp(&b.due_key));
        due.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(due)
    }

    async fn open_episode_start(&self, monitoring_id: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .enter("open_episode_start")?
            .monitorings
            .get(monitoring_id)
            .and_then(|m| m.reconnect_needed_since.clone()))
    }

    async fn take_reminder(
        &self,
        due: &DueReminder,
        resolved_at: Option<&str>,
    ) -> Result<bool, PortError> {
        let mut state = self.enter("take_reminder")?;
        let key = (due.monitoring_id.clone(), due.started_at.clone());
        match state.episodes.get_mut(&key) {
            Some(e) if e.due_key.as_deref() == Some(due.due_key.as_str()) => {
                e.due_key = None;
                e.resolved_at = resolved_at.map(str::to_owned);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
