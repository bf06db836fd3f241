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
//! when the lease ends (DESIGN principle 8).
//!
//! After the GET the data is written (parts under a fresh version, then the summary that
//! commits that version, then the superseded version's parts are removed), the monitoring is
//! linked, its change set recorded ([`crate::change_log`]), and the fetch is marked done. Retryable failures release the lease and go back to
//! the queue with a delay; permanent ones are recorded on the pull and the message is deleted.

use crate::business_events::fetch_failed;
use crate::canopy::{CanopyApi, CanopyError};
use crate::change_log::{ChangeRecorder, StoredRefresh, MAX_COMPARED_BYTES};
use crate::ports::{Clock, PortError};
use crate::pull_data::{prepare, PreparedPull};
use crate::records::PullRecord;
use crate::store::{ChangeStore, PullDataStore};
use crate::time_fmt::format_ts;
use crate::work::{FetchPullJob, FetchTrigger};
use std::time::Duration;

pub const FETCHED: &str = "FETCHED";
pub const FAILED: &str = "FAILED";

/// Why a fetch was not needed: each is positive evidence that it is done or never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    AlreadyFetched,
    CompleteWillFetch,
    FailedPermanently,
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::AlreadyFetched => "already_fetched",
            SkipReason::CompleteWillFetch => "complete_will_fetch",
            SkipReason::FailedPermanently => "failed_permanently",
        }
    }
}

/// The claim rule (module docs) over the stored state.
pub fn fetch_decision(state: Option<&PullRecord>, trigger: FetchTrigger, now: i64) -> FetchClaim {
    let Some(state) = state else {
        return FetchClaim::Claimed;
    };
    if state.fetched_complete_at.is_some() {
        return FetchClaim::Skip(SkipReason::AlreadyFetched);
    }
    if state.fetch_status.as_deref() == Some(FAILED) {
        return FetchClaim::Skip(SkipReason::FailedPermanently);
    }
    if trigger == FetchTrigger::PoliciesAvailable {
        if state.fetched_at.is_some() {
            return FetchClaim::Skip(SkipReason::AlreadyFetched);
        }
        if state.completed_at.is_some() {
            return FetchClaim::Skip(SkipReason::CompleteWillFetch);
        }
    }
    match state.fetch_lease_expires_at {
        Some(expires) if expires >= now => FetchClaim::Leased {
            expires_at: expires,
        },
        _ => FetchClaim::Claimed,
    }
}

/// The result of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchClaim {
    Claimed,
    Skip(SkipReason),
    /// Another attempt holds the lease until `expires_at` (Unix seconds): try after it.
    Leased {
        expires_at: i64,
    },
}

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
}

impl crate::consumer::RetryHint for FetchError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Canopy(e) => e.retry_after(),
            FetchError::Store(_) => None,
            FetchError::Leased(left) => Some(*left),
        }
    }
}

/// Fetcher settings.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// How long an attempt owns a fetch: longer than a record's budget (see [`crate::budget`]).
    pub lease: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            lease: crate::budget::FETCH_LEASE,
        }
    }
}

pub struct PullFetcher<S, A, C> {
    store: S,
    canopy: A,
    clock: C,
    config: FetcherConfig,
}

impl<S: PullDataStore + ChangeStore, A: CanopyApi, C: Clock> PullFetcher<S, A, C> {
    pub fn new(store: S, canopy: A, clock: C, config: FetcherConfig) -> Self {
        Self {
            store,
            canopy,
            clock,
            config,
        }
    }

    pub async fn fetch(&self, job: &FetchPullJob) -> Result<FetchOutcome, FetchError> {
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
                return Err(FetchError::Leased(crate::budget::until_lease_ends(
                    expires_at, now,
                )));
            }
            FetchClaim::Claimed => {}
        }
        let at = || format_ts(self.clock.now());
        let answer = self.canopy.get_pull(&job.pull_id).await;
        crate::metrics::canopy_answer(&match &answer {
            Ok(_) => "200".to_owned(),
            Err(e) => e.status_class(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(f: impl FnOnce(&mut PullRecord)) -> PullRecord {
        let mut r = PullRecord::default();
        f(&mut r);
        r
    }

    #[test]
    fn decisions() {
        use FetchClaim::{Claimed, Leased, Skip};
        use FetchTrigger::*;
        let now = 1000;
        assert_eq!(fetch_decision(None, Complete, now), Claimed);
        let fresh = state(|_| {});
        assert_eq!(
            fetch_decision(Some(&fresh), PoliciesAvailable, now),
            Claimed
        );
        let completed = state(|r| r.completed_at = Some("t".into()));
        assert_eq!(
            fetch_decision(Some(&completed), PoliciesAvailable, now),
            Skip(SkipReason::CompleteWillFetch)
        );
        assert_eq!(fetch_decision(Some(&completed), Complete, now), Claimed);
        let fallback_done = state(|r| r.fetched_at = Some("t".into()));
        assert_eq!(
            fetch_decision(Some(&fallback_done), PoliciesAvailable, now),
            Skip(SkipReason::AlreadyFetched)
        );
        assert_eq!(
            fetch_decision(Some(&fallback_done), Complete, now),
            Claimed,
            "COMPLETE brings documents"
        );
        let done = state(|r| {
            r.fetched_at = Some("t".into());
            r.fetched_complete_at = Some("t".into());
        });
        assert_eq!(
            fetch_decision(Some(&done), Complete, now),
            Skip(SkipReason::AlreadyFetched)
        );
        let failed = state(|r| r.fetch_status = Some(FAILED.into()));
        assert_eq!(
            fetch_decision(Some(&failed), Complete, now),
            Skip(SkipReason::FailedPermanently)
        );
        let leased = state(|r| r.fetch_lease_expires_at = Some(now));
        assert_eq!(
            fetch_decision(Some(&leased), Complete, now),
            Leased { expires_at: now },
            "a lease is no evidence: wait for it"
        );
        let expired = state(|r| r.fetch_lease_expires_at = Some(now - 1));
        assert_eq!(fetch_decision(Some(&expired), Complete, now), Claimed);
    }
}
