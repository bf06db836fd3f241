//! Webhook intake: verify, parse, dedupe, record, queue. The Lambda handler only maps HTTP to
//! [`Intake::receive`] and its result to a response.
//!
//! Exactly-once effects on at-least-once delivery, the Powertools way:
//! 1. *claim* the event with one conditional write keyed by its dedupe key: it succeeds when no
//!    record exists, or the record's TTL has passed, or an earlier attempt's lease expired
//!    (it crashed); otherwise the old record says whether the event is done or in flight;
//! 2. apply the state updates (idempotent: a re-applied update writes the same values);
//! 3. send the work messages;
//! 4. mark the record complete.
//!
//! If 2-4 fail the claim is released and the caller answers 5xx, so Canopy's retry is processed
//! afresh instead of being taken for a duplicate. A concurrent duplicate waits for the in-flight
//! attempt (polling the claim) and answers 200 once it completed; if that attempt is still
//! running after `claim_wait`, it answers 503 so Canopy tries again later.

use crate::domain::business_events::canopy_monitoring_event;
use crate::domain::event::{body_for_storage, parse_event, ParseError, WebhookEvent};
use crate::domain::plan::{plan_event, settle_monitoring_update, EventPlan, PlanConfig};
use crate::domain::retry::RetryPolicy;
use crate::domain::signature::{self, SignatureError, SigningSecrets};
use crate::domain::source::{Source, SourceStamp, Sources};
use crate::domain::time_fmt::format_ts;
use crate::ports::queue::WorkQueue;
use crate::ports::signing::{FixedSigningKeys, SigningKeys};
use crate::ports::store::{ClaimResult, EventClaim, IntakeStore, PortError};
use crate::ports::Clock;
use std::time::Duration;

/// Intake's settings.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    /// How long an attempt owns a claim. Longer than the function timeout, so a live attempt
    /// never loses its claim; shorter than Canopy's first retry (60 s + 1 s).
    pub lease: Duration,
    /// How long event records are kept. Canopy retries for about 7.2 hours.
    pub retention: Duration,
    /// How long a concurrent duplicate waits for the attempt in flight.
    pub claim_wait: Duration,
    /// Everything of one delivery; past it the caller answers 503 (see [`crate::app::budget`]).
    pub budget: Duration,
    pub plan: PlanConfig,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            tolerance_secs: signature::DEFAULT_TOLERANCE_SECS,
            max_body_bytes: 1024 * 1024,
            lease: crate::app::budget::INTAKE_LEASE,
            retention: Duration::from_secs(7 * 24 * 3600),
            claim_wait: Duration::from_secs(5),
            budget: crate::app::budget::INTAKE_BUDGET,
            plan: PlanConfig::default(),
        }
    }
}

/// What happened to an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// First delivery; state applied and `queued` messages sent.
    Accepted { queued: usize },
    /// First delivery, but older than the pull's recorded status: the status fields are left
    /// alone; the monitoring is updated and the work queued all the same.
    Stale { queued: usize },
    /// A redelivery (or a concurrent duplicate) of an event already processed.
    Duplicate,
}

impl IntakeOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            IntakeOutcome::Accepted { .. } => "accepted",
            IntakeOutcome::Stale { .. } => "stale",
            IntakeOutcome::Duplicate => "duplicate",
        }
    }
}

/// Why a delivery was not accepted; each maps to one HTTP status in the handler.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(transparent)]
    Unauthorized(#[from] SignatureError),
    #[error(transparent)]
    BadRequest(#[from] ParseError),
    #[error("an identical delivery is still being processed; retry later")]
    InFlight,
    #[error("the delivery could not be recorded within {0:?}; retry later")]
    TimedOut(Duration),
    /// Signed with one source's secret, about a pull or monitoring of another source.
    #[error("the pull or monitoring belongs to another source than the secret that signed it")]
    OtherSource,
    #[error(transparent)]
    Storage(#[from] PortError),
}

/// The intake service, generic over its ports.
pub struct Intake<S, Q, C> {
    store: S,
    queue: Q,
    clock: C,
    /// Each source's signing secrets: the one that verifies a delivery names its source.
    keys: Box<dyn SigningKeys>,
    config: IntakeConfig,
}

impl<S: IntakeStore, Q: WorkQueue, C: Clock> Intake<S, Q, C> {
    pub fn new(
        store: S,
        queue: Q,
        clock: C,
        secrets: Sources<SigningSecrets>,
        config: IntakeConfig,
    ) -> Self {
        let keys = Box::new(FixedSigningKeys(std::sync::Arc::new(secrets)));
        Self::with_keys(store, queue, clock, keys, config)
    }

    /// Intake whose signing secrets may change while it runs (see [`SigningKeys`]).
    pub fn with_keys(
        store: S,
        queue: Q,
        clock: C,
        keys: Box<dyn SigningKeys>,
        config: IntakeConfig,
    ) -> Self {
        Self {
            store,
            queue,
            clock,
            keys,
            config,
        }
    }

    /// The sources whose secret signed the delivery. A delivery no secret verifies gets one
    /// more try after the secrets are read again: it may be the first signed with a new one.
    async fn verify(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Source>, SignatureError> {
        let now = self.clock.now().unix_timestamp();
        let tolerance = self.config.tolerance_secs;
        let keys = self.keys.current().await;
        match signature::verify_sources(signature, body, &keys, now, tolerance) {
            Ok(verified) => Ok(verified.into_iter().cloned().collect()),
            Err(SignatureError::NoMatch) => {
                let fresh = self.keys.reload().await.ok_or(SignatureError::NoMatch)?;
                let verified = signature::verify_sources(signature, body, &fresh, now, tolerance)?;
                Ok(verified.into_iter().cloned().collect())
            }
            Err(other) => Err(other),
        }
    }

    /// Handles one delivery: `signature` is the `canopy-signature` header, `body` the raw bytes.
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(WebhookEvent, IntakeOutcome), IntakeError> {
        if body.len() > self.config.max_body_bytes {
            return Err(IntakeError::PayloadTooLarge {
                limit: self.config.max_body_bytes,
            });
        }
        let verified = self.verify(signature, body).await?;
        let event = parse_event(body)?;
        let candidates: Vec<&Source> = verified.iter().collect();
        let source = signature::source_of(&candidates, event.team_id.as_deref())?;
        let keys = self.keys.current().await;
        let stamp = keys.stamp(source);
        // Every line about this delivery carries what it is about (never its body).
        let span = tracing::info_span!(
            "delivery",
            event_type = %event.event_type,
            pull_id = %event.pull_id,
            monitoring_id = event.monitoring_id().unwrap_or("-"),
            dedupe_key = %event.dedupe_key,
            source = %source.name,
        );
        // A hung dependency must end in a 503 that Canopy retries, not a function timeout. A
        // claim left behind expires with its lease, before Canopy's first retry.
        let outcome = tokio::time::timeout(
            self.config.budget,
            tracing::Instrument::instrument(self.record(&event, &stamp, body), span),
        )
        .await
        .map_err(|_| IntakeError::TimedOut(self.config.budget))??;
        Ok((event, outcome))
    }

    async fn record(
        &self,
        event: &WebhookEvent,
        source: &SourceStamp,
        body: &[u8],
    ) -> Result<IntakeOutcome, IntakeError> {
        let lease_id = uuid::Uuid::new_v4().to_string();
        let stored_body = body_for_storage(event, body).into_owned();
        let started = tokio::time::Instant::now();
        // Another attempt holds the delivery: wait for it, briefly, then answer 503 for Canopy
        // to retry.
        let backoff = RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(800),
        };
        let mut retries = 0;
        loop {
            let now = self.clock.now();
            let claim = EventClaim {
                dedupe_key: event.dedupe_key.clone(),
                source: Some(source.name.clone()),
                event_type: event.event_type.to_string(),
                pull_id: event.pull_id.clone(),
                monitoring_id: event.monitoring_id().map(str::to_owned),
                lease_id: lease_id.clone(),
                received_at: format_ts(now),
                now: now.unix_timestamp(),
                lease_expires_at: now.unix_timestamp()
                    + crate::app::budget::unix_secs(self.config.lease),
                expires_at: now.unix_timestamp()
                    + crate::app::budget::unix_secs(self.config.retention),
                body: stored_body.clone(),
            };
            match self.store.claim_event(&claim).await? {
                ClaimResult::Claimed => break,
                ClaimResult::Completed => return Ok(IntakeOutcome::Duplicate),
                ClaimResult::InProgress => {
                    retries += 1;
                    let pause = backoff.backoff(retries);
                    if started.elapsed() + pause > self.config.claim_wait {
                        return Err(IntakeError::InFlight);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }

        match self.process(event, source, &lease_id).await {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                // Release so the retry is not mistaken for a duplicate. If the release fails
                // too, the lease runs out before Canopy's first retry, with the same effect.
                if let Err(release) = self.store.release_event(&event.dedupe_key, &lease_id).await {
                    tracing::warn!(error = %release, "could not release the event claim");
                }
                Err(err)
            }
        }
    }

    async fn process(
        &self,
        event: &WebhookEvent,
        source: &SourceStamp,
        lease_id: &str,
    ) -> Result<IntakeOutcome, IntakeError> {
        let at = format_ts(self.clock.now());
        let plan = plan_event(event, Some(source), &at, &self.config.plan);
        let outcome = match apply_plan(&self.store, &self.queue, plan, &at).await? {
            Applied::Done {
                state_applied: true,
                queued,
            } => IntakeOutcome::Accepted { queued },
            Applied::Done { queued, .. } => IntakeOutcome::Stale { queued },
            Applied::OtherSource => {
                tracing::warn!(
                    "the delivery names a pull or monitoring of another source; refused"
                );
                return Err(IntakeError::OtherSource);
            }
        };
        self.store
            .complete_event(&event.dedupe_key, lease_id, outcome.as_str(), &at)
            .await?;
        Ok(outcome)
    }
}

/// Applies what an event changes and queues its work: intake's step 2-3, and the whole of an
/// operator's replay ([`crate::app::replay`], which adjusts the plan first) and of the
/// reconciler's repair of a missed COMPLETE. Idempotent: applying a plan twice writes the same
/// values and queues work the consumers dedupe. Returns whether the pull's status fields
/// applied, and how much was queued.
pub async fn apply_plan<S: IntakeStore + ?Sized, Q: WorkQueue + ?Sized>(
    store: &S,
    queue: &Q,
    plan: EventPlan,
    at: &str,
) -> Result<Applied, PortError> {
    let pull = store.apply_pull_update(&plan.pull).await?;
    if pull.other_source {
        return Ok(Applied::OtherSource);
    }
    // Order guards the pull's fields, never the monitoring or the work (module docs).
    if let Some(monitoring) = plan.monitoring {
        let monitoring = settle_monitoring_update(monitoring, &pull);
        if !store.apply_monitoring_update(&monitoring).await? {
            return Ok(Applied::OtherSource);
        }
    }
    if let Some(mut changes) = plan.canopy_changes {
        if let Some(seen) = &pull.first_seen_at {
            changes.pull_seen_at.clone_from(seen);
        }
        let relayed = canopy_monitoring_event(
            &changes.dedupe_key,
            Some(&changes.monitoring_id),
            &changes.pull_id,
            changes.data_type.as_deref(),
            &changes.changes,
            at,
        );
        store.record_canopy_changes(&changes, &[relayed]).await?;
    }
    for work in &plan.work {
        queue.enqueue(work).await?;
    }
    Ok(Applied::Done {
        state_applied: pull.applied,
        queued: plan.work.len(),
    })
}

/// What [`apply_plan`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied (the pull's status fields unless `state_applied` is false: a stale event) and
    /// `queued` messages sent.
    Done { state_applied: bool, queued: usize },
    /// The pull or the monitoring belongs to another source than the event's: nothing of
    /// the monitoring and no work ([`crate::domain::source::source_allows`]).
    OtherSource,
}
