//! The reconciler (`monitoring-sync`): repairs what missed webhooks left behind.
//!
//! Canopy stops retrying a webhook after about 7.2 hours, so an outage longer than that, or a
//! deleted webhook registration, loses events. Once a day the reconciler pages through
//! Canopy's `GET /monitorings` and compares each monitoring with our record:
//! - a monitoring we never heard of is recorded;
//! - a changed status (stopped in Canopy's dashboard) or changed interval / dates is written;
//! - a latest pull that completed while we were not told is recorded as its COMPLETE would
//!   have been (through [`crate::app::intake::apply_event`]), which queues its fetch.
//!
//! Each source (see [`crate::domain::source`]) is listed with its own keys, and what it finds
//! is recorded as that source's. One source's failure (its keys revoked) is logged with its
//! name and does not stop the others; the run then ends in that error.
//!
//! It never triggers a refresh (billed). A monitoring's latest pull is asked of Canopy only
//! when our own state does not already cover it, so a run over a healthy table costs one
//! Canopy call per page and two reads per monitoring. Running it twice in a row, the second
//! run finds nothing to repair.

use crate::app::budget::{Deadline, CANOPY_TIMEOUT};
use crate::app::intake::apply_plan;
use crate::domain::event::parse_event;
use crate::domain::ids::canonical_id;
use crate::domain::monitoring::{drift, CanopyMonitoring, MonitoredPull};
use crate::domain::plan::{plan_event, PlanConfig};
use crate::domain::records::PullRecord;
use crate::domain::source::{Source, Sources};
use crate::domain::time_fmt::format_ts;
use crate::ports::canopy::{CanopyError, MonitoringControl};
use crate::ports::queue::WorkQueue;
use crate::ports::store::{IntakeStore, MonitoringStore, ViewContext};
use crate::ports::{Clock, PortError};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Monitorings per `GET /monitorings` page (Canopy's default and our choice: 100).
    pub page_size: u32,
    pub plan: PlanConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            page_size: 100,
            plan: PlanConfig::default(),
        }
    }
}

/// What a run found and fixed (logged as one line, and returned by the function).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub pages: usize,
    pub monitorings_seen: usize,
    /// Monitorings we had no record of.
    pub created: usize,
    /// Status written (e.g. stopped in Canopy, active here).
    pub status_fixed: usize,
    /// Interval or dates written.
    pub settings_fixed: usize,
    /// Completed pulls we never stored: recorded, and their fetch queued.
    pub fetches_queued: usize,
    /// Monitorings whose latest pull could not be read this time (retried next run).
    pub skipped: usize,
    /// Monitorings Canopy refused to show (404, 400: deleted, or an id it does not take):
    /// passed over, counted, and the pass goes on with the others.
    pub refused: usize,
    /// `false` when the run stopped at its deadline before the last page.
    pub complete: bool,
}

impl SyncReport {
    pub fn repaired(&self) -> usize {
        self.created + self.status_fixed + self.settings_fixed + self.fetches_queued
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("Canopy: {0}")]
    Canopy(#[from] CanopyError),
    #[error(transparent)]
    Storage(#[from] PortError),
    #[error("source {source_name} ({key_type}): {error}")]
    Source {
        source_name: String,
        key_type: &'static str,
        error: Box<SyncError>,
    },
}

/// A pull whose COMPLETE we recorded (its fetch was queued then) or whose data we hold.
pub fn pull_covered(pull: Option<&PullRecord>) -> bool {
    pull.is_some_and(|p| p.completed_at.is_some() || p.fetch_status.is_some())
}

pub struct MonitoringSync<S, Q, K, C> {
    store: S,
    queue: Q,
    canopy: Sources<K>,
    clock: C,
    config: SyncConfig,
}

impl<S, Q, K, C> MonitoringSync<S, Q, K, C>
where
    S: MonitoringStore + IntakeStore,
    Q: WorkQueue,
    K: MonitoringControl,
    C: Clock,
{
    pub fn new(store: S, queue: Q, canopy: Sources<K>, clock: C, config: SyncConfig) -> Self {
        Self {
            store,
            queue,
            canopy,
            clock,
            config,
        }
    }

    /// One pass over all of Canopy's monitorings; stops before `deadline` (the next run
    /// starts from the top again, and repairs are idempotent).
    pub async fn run(&self, deadline: Deadline) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let mut failed = None;
        let mut complete = true;
        for (source, canopy) in self.canopy.iter() {
            match self.pass(source, canopy, deadline, &mut report).await {
                Ok(ended) => complete &= ended,
                Err(error) => {
                    complete = false;
                    tracing::error!(source = %source.name, key_type = %source.key_type, %error,
                    "the pass over this source's monitorings failed");
                    failed.get_or_insert(SyncError::Source {
                        source_name: source.name.clone(),
                        key_type: source.key_type.as_str(),
                        error: Box::new(error),
                    });
                }
            }
        }
        report.complete = complete;
        for (kind, count) in [
            ("created", report.created),
            ("status_fixed", report.status_fixed),
            ("settings_fixed", report.settings_fixed),
            ("fetches_queued", report.fetches_queued),
        ] {
            crate::app::metrics::repairs(kind, count);
        }
        crate::app::metrics::sync_skipped("unreadable", report.skipped);
        crate::app::metrics::sync_skipped("refused", report.refused);
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// One source's pass: whether it went through every page before the deadline.
    async fn pass(
        &self,
        source: &Source,
        client: &K,
        deadline: Deadline,
        report: &mut SyncReport,
    ) -> Result<bool, SyncError> {
        // A monitoring takes at most two Canopy calls and a few writes.
        let per_monitoring = CANOPY_TIMEOUT * 2 + Duration::from_secs(5);
        let mut before: Option<String> = None;
        loop {
            if !deadline.allows(per_monitoring) {
                return Ok(false);
            }
            let page = client
                .list_monitorings(self.config.page_size, before.as_deref())
                .await;
            crate::app::metrics::canopy_answer(source.key_type, page.as_ref().err());
            let page = page?;
            report.pages += 1;
            for monitoring in &page {
                if !deadline.allows(per_monitoring) {
                    return Ok(false);
                }
                report.monitorings_seen += 1;
                self.reconcile(source, client, monitoring, report).await?;
            }
            let full = page.len() >= self.config.page_size as usize;
            match page.last() {
                Some(last) if full => before = Some(last.monitoring_id.clone()),
                _ => return Ok(true),
            }
        }
    }

    async fn reconcile(
        &self,
        source: &Source,
        client: &K,
        canopy: &CanopyMonitoring,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        // Ids become keys: never one we cannot vouch for, and always in the one form.
        let Some(id) = canonical_id(&canopy.monitoring_id) else {
            report.skipped += 1;
            return Ok(());
        };
        let canopy = &CanopyMonitoring {
            monitoring_id: id.clone(),
            latest_pull_id: canopy.latest_pull_id.as_deref().and_then(canonical_id),
            ..canopy.clone()
        };
        let id = &id;
        let local = self.store.monitoring(id).await?;
        let covered = match &canopy.latest_pull_id {
            Some(p) => pull_covered(self.store.pull(p).await?.as_ref()),
            None => true,
        };
        let latest = if covered {
            None
        } else {
            match client.latest_pull(id).await {
                Ok(pull) => pull,
                Err(CanopyError::RetryLater { reason, .. }) => {
                    tracing::warn!(monitoring_id = %id, reason, "latest pull unreadable; next run");
                    report.skipped += 1;
                    None
                }
                // One monitoring Canopy will not show (gone, or refused) must not stop the
                // pass for all the others, every day: passed over and counted. Credentials
                // refused (Misconfigured) fail every call, so they still end the pass.
                Err(CanopyError::Permanent { status, code }) => {
                    tracing::warn!(monitoring_id = %id, status, %code, "Canopy refused the monitoring; passed over");
                    report.refused += 1;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        };
        // The latest pull as listed must be the one the monitoring names, or a newer one.
        let latest = latest.and_then(|p| {
            let pull_id = canonical_id(&p.pull_id)?;
            Some(MonitoredPull { pull_id, ..p })
        });
        let latest_covered = match &latest {
            Some(p) if Some(&p.pull_id) != canopy.latest_pull_id.as_ref() => {
                pull_covered(self.store.pull(&p.pull_id).await?.as_ref())
            }
            _ => covered,
        };
        let d = drift(canopy, local.as_ref(), latest.as_ref(), latest_covered);
        if d.is_empty() {
            return Ok(());
        }
        let at = format_ts(self.clock.now());
        if d.unknown || d.status_changed || d.settings_changed {
            self.store
                .record_canopy_view(
                    canopy,
                    &ViewContext {
                        source: Some(source.name.clone()),
                        ..ViewContext::default()
                    },
                    &at,
                )
                .await?;
            report.created += usize::from(d.unknown);
            report.status_fixed += usize::from(d.status_changed);
            report.settings_fixed += usize::from(d.settings_changed);
        }
        if let Some(pull_id) = &d.missed_pull {
            let initial = local.as_ref().and_then(|m| m.initial_pull_id.clone());
            // The COMPLETE Canopy sent and we never received, as its body would have been.
            let body = json!({
                "event_type": "COMPLETE",
                "pull_id": pull_id,
                "status": "SUCCESS",
                "is_monitored": true,
                "monitoring": {"monitoring_id": id, "initial_pull_id": initial},
                "data": {},
                "source": "monitoring-sync",
            });
            let event = parse_event(body.to_string().as_bytes()).map_err(|e| {
                PortError::unavailable("sync", format!("synthetic COMPLETE did not parse: {e}"))
            })?;
            let stamp = self.canopy.stamp(source);
            let plan = plan_event(&event, Some(&stamp), &at, &self.config.plan);
            if apply_plan(&self.store, &self.queue, plan, &at).await?
                == crate::app::intake::Applied::OtherSource
            {
                tracing::warn!(monitoring_id = %id, source = %source.name,
                    "the monitoring is recorded as another source's; not repaired");
                return Ok(());
            }
            report.fetches_queued += 1;
        }
        tracing::info!(
            monitoring_id = %id,
            created = d.unknown,
            status_fixed = d.status_changed,
            settings_fixed = d.settings_changed,
            missed_pull = d.missed_pull.as_deref().unwrap_or("-"),
            "monitoring repaired"
        );
        Ok(())
    }
}
