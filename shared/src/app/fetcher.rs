//! The pull fetcher: one GET per refreshed pull, stored whole, whatever SQS redelivers.
//!
//! Exactly once per refresh. Before fetching, the fetcher *claims* the fetch on the pull's state
//! item with one conditional update (a lease, like intake's). The claim is refused when:
//! - the pull's data after COMPLETE is already stored (any trigger);
//! - the trigger is the POLICIES_AVAILABLE fallback and the pull already has data, or its
//!   COMPLETE has been recorded (COMPLETE's own message fetches it, documents included);
//! - the pull failed permanently (404, 400);
//!
//! and those refusals acknowledge the message: each is positive evidence that the fetch is done
//! or never will be. Another attempt's unexpired lease is *not* such evidence (that attempt may
//! fail, or be the fallback fetch while this message is COMPLETE's): the message is retried
//! when the lease ends.
//!
//! After the GET the data is written (parts under a fresh version, then the summary that
//! commits that version, then the superseded version's parts are removed), the monitoring is
//! linked, its change set recorded ([`crate::app::change_log`]), and the fetch is marked done. Retryable failures release the lease and go back to
//! the queue with a delay; permanent ones are recorded on the pull and the message is deleted.

use crate::app::change_log::{ChangeRecorder, StoredRefresh, MAX_COMPARED_BYTES};
use crate::domain::business_events::fetch_failed;
use crate::domain::fetch_claim::{FetchClaim, SkipReason};
use crate::domain::pull_data::{prepare, PreparedPull};
use crate::domain::source::{Sources, UnknownSource};
use crate::domain::time_fmt::format_ts;
use crate::domain::work::FetchPullJob;
use crate::ports::canopy::{CanopyApi, CanopyError};
use crate::ports::store::{ChangeStore, PullDataStore};
use crate::ports::{Clock, PortError};
use std::time::Duration;

/// What happened to one fetch job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    Stored {
        json_bytes: usize,
        parts: usize,
    },
    Skipped(SkipReason),
    /// Canopy will never answer this one (recorded on the pull).
    FailedPermanently {
        code: String,
    },
}

/// A fetch that should be tried again.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Canopy(CanopyError),
    #[error(transparent)]
    Store(#[from] PortError),
    #[error("another attempt holds the fetch lease for {0:?}")]
    Leased(Duration),
    /// The job names a source this deployment does not have (removed since it was queued):
    /// retried, then dead-lettered, so it can be redriven once the source is back.
    #[error(transparent)]
    UnknownSource(#[from] UnknownSource),
}

impl crate::domain::retry::RetryHint for FetchError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Canopy(e) => e.retry_after(),
            FetchError::Store(_) => None,
            FetchError::Leased(left) => Some(*left),
            FetchError::UnknownSource(_) => None,
        }
    }
}

/// Fetcher settings.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// How long an attempt owns a fetch: longer than a record's budget (see [`crate::app::budget`]).
    pub lease: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            lease: crate::app::budget::FETCH_LEASE,
        }
    }
}

pub struct PullFetcher<S, A, C> {
    store: S,
    /// Each source's client: a job is fetched with its own source's keys.
    canopy: Sources<A>,
    clock: C,
    config: FetcherConfig,
}

impl<S: PullDataStore + ChangeStore, A: CanopyApi, C: Clock> PullFetcher<S, A, C> {
    pub fn new(store: S, canopy: Sources<A>, clock: C, config: FetcherConfig) -> Self {
        Self {
            store,
            canopy,
            clock,
            config,
        }
    }

    pub async fn fetch(&self, job: &FetchPullJob) -> Result<FetchOutcome, FetchError> {
        let (source, canopy) = self.canopy.get(job.source.as_deref())?;
        let lease_id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now().unix_timestamp();
        let lease_secs = i64::try_from(self.config.lease.as_secs()).unwrap_or(60);
        match self
            .store
            .claim_fetch(&job.pull_id, job.trigger, &lease_id, now, now + lease_secs)
            .await?
        {
            FetchClaim::Skip(reason) => return Ok(FetchOutcome::Skipped(reason)),
            FetchClaim::Leased { expires_at } => {
                return Err(FetchError::Leased(crate::app::budget::until_lease_ends(
                    expires_at, now,
                )));
            }
            FetchClaim::Claimed => {}
        }
        let at = || format_ts(self.clock.now());
        let answer = canopy.get_pull(&job.pull_id).await;
        crate::app::metrics::canopy_answer(source.key_type, answer.as_ref().err());
        match answer {
            Ok(pull) => {
                let prepared = prepare(&job.pull_id, &pull);
                // Only a monitoring's refresh is compared with its predecessor.
                let parsed = (job.monitoring_id.is_some()
                    && prepared.json_bytes <= MAX_COMPARED_BYTES)
                    .then(|| serde_json::from_slice::<serde_json::Value>(pull.as_bytes()).ok())
                    .flatten();
                drop(pull);
                let stored = self
                    .store_all(job, &lease_id, &prepared, parsed.as_ref(), &at())
                    .await;
                if let Err(err) = stored {
                    self.release(job, &lease_id, "store_failed", &at()).await;
                    return Err(err.into());
                }
                Ok(FetchOutcome::Stored {
                    json_bytes: prepared.json_bytes,
                    parts: prepared.parts.len(),
                })
            }
            Err(CanopyError::Permanent { code, .. }) => {
                let at = at();
                let event = fetch_failed(&job.pull_id, job.monitoring_id.as_deref(), &code, &at);
                self.store
                    .fail_fetch(&job.pull_id, &lease_id, &code, &at, &[event])
                    .await?;
                Ok(FetchOutcome::FailedPermanently { code })
            }
            Err(err) => {
                self.release(job, &lease_id, err.code(), &at()).await;
                Err(FetchError::Canopy(err))
            }
        }
    }

    async fn store_all(
        &self,
        job: &FetchPullJob,
        lease_id: &str,
        prepared: &PreparedPull,
        parsed: Option<&serde_json::Value>,
        at: &str,
    ) -> Result<(), PortError> {
        // The lease id is unique per attempt: a fresh version for this attempt's parts.
        self.store
            .store_pull_data(&job.pull_id, lease_id, prepared, at)
            .await?;
        if let Some(monitoring_id) = &job.monitoring_id {
            self.store
                .record_refresh(
                    monitoring_id,
                    &job.pull_id,
                    prepared.summary.created_at.as_deref(),
                    at,
                )
                .await?;
            // Before the fetch is marked done: a failure here retries the whole fetch.
            let recorded = ChangeRecorder::new(&self.store)
                .record(&StoredRefresh {
                    monitoring_id,
                    pull_id: &job.pull_id,
                    summary: &prepared.summary,
                    pull: parsed,
                    at,
                })
                .await?;
            tracing::info!(
                pull_id = %job.pull_id,
                monitoring_id = %monitoring_id,
                changes = recorded.changes,
                previous_pull_id = recorded.previous_pull_id.as_deref().unwrap_or(""),
                recomputed_next = recorded.recomputed_next.as_deref().unwrap_or(""),
                "change set recorded"
            );
        }
        self.store
            .finish_fetch(&job.pull_id, lease_id, job.trigger, at)
            .await
    }

    async fn release(&self, job: &FetchPullJob, lease_id: &str, reason: &str, at: &str) {
        // If this fails too, the lease simply runs out before the message's next receive.
        if let Err(e) = self
            .store
            .release_fetch(&job.pull_id, lease_id, reason, at)
            .await
        {
            tracing::warn!(pull_id = %job.pull_id, error = %e, "could not release the fetch lease");
        }
    }
}
