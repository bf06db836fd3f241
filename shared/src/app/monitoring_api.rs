//! The Monitoring API service: enable, change, stop and refresh monitoring through Canopy, and
//! read what is stored. The `monitoring-api` function maps routes to these methods and
//! [`ApiError`] to statuses; every decision is here or in [`crate::domain::monitoring`].
//!
//! Idempotency, the Stripe way: a request with an `Idempotency-Key` claims the key with one
//! conditional write (fingerprinted by route and body); a retry with the same key replays the
//! stored answer, the same key with another request is refused (422), and a retry while the
//! first is running gets 409. A request that failed in a way worth retrying (5xx) releases the
//! key. An enable without a key still holds a short lock on its pull, so that two concurrent
//! enables of one pull make one Canopy call.

use crate::app::budget::unix_secs;
use crate::app::replay::{replay_stored_event, ReplayError};
use crate::domain::monitoring::fingerprint;
use crate::domain::monitoring::{
    refresh_decision, validate_id, EnableRequest, Invalid, PatchRequest, RefreshPolicy,
    RefreshRefusal,
};
use crate::domain::plan::{owner_of, PlanConfig};
use crate::domain::records::{MonitoringRecord, ACTIVE, STOPPED};
use crate::domain::source::{Source, Sources};
use crate::domain::time_fmt::format_ts;
use crate::ports::canopy::{CanopyError, MonitoringControl};
use crate::ports::queue::WorkQueue;
use crate::ports::store::{
    BadCursor, IntakeStore, MonitoringQuery, MonitoringStore, RefreshClaim, RequestClaim,
    RequestClaimResult, StoredGzip, StoredResponse, ViewContext,
};
use crate::ports::{Clock, PortError};
use serde_json::{json, Value};
use std::time::Duration;

/// Settings of the Monitoring API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub refresh: RefreshPolicy,
    /// The `meta_data` key naming a monitoring's owner (as intake's [`PlanConfig::owner_key`]).
    pub plan: PlanConfig,
    /// How long an idempotency key's answer is kept.
    pub idempotency_retention: Duration,
    /// How long a request owns its key; longer than the function timeout.
    pub idempotency_lease: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            refresh: RefreshPolicy::default(),
            plan: PlanConfig::default(),
            idempotency_retention: Duration::from_secs(24 * 3600),
            idempotency_lease: crate::app::budget::API_IDEMPOTENCY_LEASE,
        }
    }
}

pub const DEFAULT_PAGE: usize = 25;
pub const MAX_PAGE: usize = 100;

/// Why a request was not served; the handler maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("bodies are at most {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0} not found")]
    NotFound(String),
    #[error("Canopy answered {0}")]
    Canopy(#[from] CanopyError),
    #[error("refresh refused: {0:?}")]
    RefreshRefused(RefreshRefusal),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this key (or for this pull) is still being processed; retry later")]
    RequestInProgress,
    #[error(transparent)]
    BadCursor(#[from] BadCursor),
    #[error("event {0} cannot be replayed: {1}")]
    NotReplayable(String, &'static str),
    #[error(transparent)]
    Storage(#[from] PortError),
    #[error("source {name:?} is not configured in this deployment (configured: {configured})")]
    UnknownSource { name: String, configured: String },
    #[error("{0}")]
    SourceMismatch(String),
}

impl ApiError {
    /// The HTTP status and `error` code of this error: the one place they are decided.
    pub fn status_and_code(&self) -> (u16, String) {
        match self {
            ApiError::Invalid(_) => (400, "invalid_request".into()),
            ApiError::PayloadTooLarge(_) => (413, "payload_too_large".into()),
            ApiError::NotFound(_) => (404, "not_found".into()),
            ApiError::Canopy(CanopyError::Permanent { status, code }) => {
                let status = match code.as_str() {
                    "CURRENTLY_REFRESHING" | "MONITORING_INACTIVE" => 409,
                    _ if (400..500).contains(status) => *status,
                    _ => 502,
                };
                (status, code.clone())
            }
            ApiError::Canopy(CanopyError::Misconfigured { .. }) => {
                (502, "canopy_misconfigured".into())
            }
            ApiError::Canopy(CanopyError::RetryLater { .. }) => (503, "canopy_unavailable".into()),
            ApiError::RefreshRefused(RefreshRefusal::NotActive) => {
                (409, "MONITORING_INACTIVE".into())
            }
            ApiError::RefreshRefused(RefreshRefusal::InFlight { .. }) => {
                (409, "refresh_in_flight".into())
            }
            ApiError::RefreshRefused(RefreshRefusal::TooSoon { .. }) => {
                (409, "refresh_too_soon".into())
            }
            ApiError::IdempotencyKeyReused => (422, "idempotency_key_reused".into()),
            ApiError::RequestInProgress => (409, "request_in_progress".into()),
            ApiError::BadCursor(_) => (400, "invalid_cursor".into()),
            ApiError::NotReplayable(..) => (409, "not_replayable".into()),
            ApiError::UnknownSource { .. } => (400, "unknown_source".into()),
            ApiError::SourceMismatch(_) => (400, "source_mismatch".into()),
            ApiError::Storage(PortError::Unavailable { .. }) => (503, "unavailable".into()),
            ApiError::Storage(PortError::Misconfigured { .. }) => (500, "misconfigured".into()),
        }
    }

    /// A message for the caller: what was wrong and what to do; no server internals.
    pub fn message(&self) -> String {
        match self {
            ApiError::Canopy(CanopyError::Permanent { code, .. }) => {
                format!("Canopy refused the request: {code}")
            }
            ApiError::Canopy(CanopyError::Misconfigured { .. }) => {
                "Canopy rejected canopy-monitor's API credentials; an operator must fix them".into()
            }
            ApiError::Canopy(CanopyError::RetryLater { .. }) => {
                "Canopy is unavailable; retry later".into()
            }
            ApiError::RefreshRefused(RefreshRefusal::NotActive) => {
                "the monitoring is stopped; enable it before refreshing".into()
            }
            ApiError::RefreshRefused(RefreshRefusal::InFlight { requested_at }) => format!(
                "a refresh requested at {requested_at} has not completed; a refresh is billed like a pull (force=true overrides)"
            ),
            ApiError::RefreshRefused(RefreshRefusal::TooSoon {
                last_refresh_at,
                allowed_from,
            }) => format!(
                "the last refresh completed at {last_refresh_at}; the next is allowed from {allowed_from} (force=true overrides)"
            ),
            ApiError::Storage(_) => "temporarily unable to read or write state; retry later".into(),
            other => other.to_string(),
        }
    }

    /// Whether the answer is final for an idempotency key (stored and replayed) or the
    /// request may be retried with it (the key is released).
    fn is_final(&self) -> bool {
        self.status_and_code().0 < 500 && !matches!(self, ApiError::RequestInProgress)
    }
}

/// How a request is kept to one run.
enum RequestKey {
    /// The caller's `Idempotency-Key`: its answer is kept and replayed.
    Remember(String),
    /// A lock held while the request runs (concurrent enables of one pull), then released.
    Lock(String),
}

/// An answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

/// A monitoring as the API shows it (internal ordering fields left out).
pub fn monitoring_json(m: &MonitoringRecord) -> Value {
    json!({
        "monitoring_id": m.monitoring_id,
        "status": m.status,
        "interval": m.interval,
        "next_pull_date": m.next_pull_date,
        "stop_after_date": m.stop_after_date,
        "owner": m.owner,
        "source": m.source,
        "initial_pull_id": m.initial_pull_id,
        "latest_pull_id": m.latest_pull_id,
        "last_refresh_at": m.last_refresh_at,
        "reconnect": m.reconnect_needed_since.as_ref().map(|since| json!({
            "needed_since": since,
            "pull_id": m.reconnect_pull_id,
        })),
        "refresh_requested": m.refresh_requested_at.as_ref().map(|at| json!({
            "requested_at": at,
            "pull_id": m.refresh_pull_id,
        })),
        "latest_data": m.latest_data_pull_id.as_ref().map(|p| json!({
            "pull_id": p,
            "created_at": m.latest_data_created_at,
            "fetched_at": m.latest_data_fetched_at,
        })),
        "last_event": m.last_event_type.as_ref().map(|t| json!({
            "event_type": t,
            "pull_id": m.last_event_pull_id,
            "at": m.last_event_at,
        })),
        "enabled_at": m.enabled_at,
        "stopped_at": m.stopped_at,
        "synced_at": m.synced_at,
        "first_seen_at": m.first_seen_at,
    })
}

/// `GET /v1/monitorings` query parameters, validated.
pub fn monitoring_query(params: &[(String, String)]) -> Result<MonitoringQuery, Invalid> {
    let mut q = MonitoringQuery {
        limit: DEFAULT_PAGE,
        ..MonitoringQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "status" => {
                if value != ACTIVE && value != STOPPED {
                    return Err(bad("status", "must be ACTIVE or STOPPED"));
                }
                q.status = Some(value.clone());
            }
            "reconnect_needed" => q.reconnect_needed = Some(flag("reconnect_needed", value)?),
            "owner" => {
                if value.is_empty() || value.len() > 512 {
                    return Err(bad("owner", "must be 1 to 512 characters"));
                }
                q.owner = Some(value.clone());
            }
            "limit" => q.limit = page_size("limit", value)?,
            "cursor" => q.cursor = Some(value.clone()),
            other => {
                return Err(Invalid {
                    field: "query",
                    problem: format!(
                        "unknown parameter {other:?}; allowed: status, reconnect_needed, owner, limit, cursor"
                    ),
                })
            }
        }
    }
    Ok(q)
}

fn bad(field: &'static str, problem: &str) -> Invalid {
    Invalid {
        field,
        problem: problem.to_owned(),
    }
}

/// `true` / `false`.
pub fn flag(field: &'static str, value: &str) -> Result<bool, Invalid> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(field, "must be true or false")),
    }
}

/// A paged read's only query parameters: its page size and cursor, under these names.
fn page_params<'a>(
    params: &'a [(String, String)],
    limit_name: &'static str,
    cursor_name: &'static str,
) -> Result<(usize, Option<&'a str>), ApiError> {
    let (mut limit, mut cursor) = (DEFAULT_PAGE, None);
    for (name, value) in params {
        match name.as_str() {
            n if n == limit_name => limit = page_size(limit_name, value)?,
            n if n == cursor_name => cursor = Some(value.as_str()),
            other => {
                return Err(ApiError::Invalid(Invalid {
                    field: "query",
                    problem: format!(
                        "unknown parameter {other:?}; allowed: {limit_name}, {cursor_name}"
                    ),
                }))
            }
        }
    }
    Ok((limit, cursor))
}

/// 1 to [`MAX_PAGE`].
pub fn page_size(field: &'static str, value: &str) -> Result<usize, Invalid> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(bad(field, "must be a number from 1 to 100")),
    }
}

/// A webhook event's dedupe key as intake makes it (`v1:` and 64 hex digits).
pub fn validate_dedupe_key(key: &str) -> Result<String, Invalid> {
    let ok = key.split_once(':').is_some_and(|(v, hash)| {
        v.len() >= 2
            && v.starts_with('v')
            && v[1..].bytes().all(|b| b.is_ascii_digit())
            && hash.len() == 64
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(key.to_owned())
    } else {
        Err(bad(
            "dedupe_key",
            "must be an event's dedupe key, such as v1:<64 hex digits>",
        ))
    }
}

/// Canopy's answer, if the monitoring it names can become a key (and is the one asked about):
/// outside ids are checked before they are stored.
fn checked(
    mut view: crate::ports::canopy::CanopyMonitoring,
    asked: Option<&str>,
) -> Result<crate::ports::canopy::CanopyMonitoring, ApiError> {
    let id = crate::domain::ids::canonical_id(&view.monitoring_id);
    let usable = id
        .as_deref()
        .is_some_and(|id| asked.is_none_or(|asked| asked == id));
    if let (true, Some(id)) = (usable, id) {
        view.monitoring_id = id;
        view.latest_pull_id = view
            .latest_pull_id
            .as_deref()
            .and_then(crate::domain::ids::canonical_id);
        Ok(view)
    } else {
        Err(ApiError::Canopy(CanopyError::RetryLater {
            reason: "Canopy's answer named an unusable monitoring id".to_owned(),
            retry_after: None,
        }))
    }
}

/// Whether a Canopy call surely did nothing (so a refresh guard may be given back). A timeout
/// or 5xx may hide a refresh that started: it stays in flight rather than risk a second bill.
fn surely_not_applied(err: &CanopyError) -> bool {
    match err {
        CanopyError::Permanent { .. } | CanopyError::Misconfigured { .. } => true,
        retry @ CanopyError::RetryLater { .. } => retry.is_throttled(),
    }
}

/// The service, generic over its ports.
pub struct MonitoringApi<S, Q, K, C> {
    store: S,
    queue: Q,
    /// Each source's client: a monitoring is managed with its own source's keys.
    canopy: Sources<K>,
    clock: C,
    config: ApiConfig,
}

impl<S, Q, K, C> MonitoringApi<S, Q, K, C>
where
    S: MonitoringStore + IntakeStore,
    Q: WorkQueue,
    K: MonitoringControl,
    C: Clock,
{
    pub fn new(store: S, queue: Q, canopy: Sources<K>, clock: C, config: ApiConfig) -> Self {
        Self {
            store,
            queue,
            canopy,
            clock,
            config,
        }
    }

    /// The source named by a record or a caller (`None`: the primary); 400 when unknown.
    fn source(&self, name: Option<&str>) -> Result<(&Source, &K), ApiError> {
        self.canopy
            .get(name)
            .map_err(|unknown| ApiError::UnknownSource {
                name: unknown.0,
                configured: self.canopy.names().join(", "),
            })
    }

    /// Whose keys enable monitoring of a pull: the known pull's own source, else the
    /// request's, else the only one. With several sources a pull we have not heard of needs
    /// `source`: guessing would bill (or refuse) the wrong team.
    fn enable_source(
        &self,
        request: &EnableRequest,
        pull: Option<&crate::domain::records::PullRecord>,
    ) -> Result<String, ApiError> {
        let known = pull.map(|p| {
            p.source
                .clone()
                .unwrap_or_else(|| self.canopy.primary().0.name.clone())
        });
        match (known, &request.source) {
            (Some(known), Some(asked)) if &known != asked => Err(ApiError::SourceMismatch(format!(
                "pull {} came from source {known:?}, not {asked:?}",
                request.pull_id
            ))),
            (Some(known), _) => Ok(known),
            (None, Some(asked)) => Ok(asked.clone()),
            (None, None) if self.canopy.len() == 1 => Ok(self.canopy.primary().0.name.clone()),
            (None, None) => Err(ApiError::Invalid(Invalid {
                field: "source",
                problem: format!(
                    "is required: pull {} has not been seen here, and this deployment has several sources ({})",
                    request.pull_id,
                    self.canopy.names().join(", ")
                ),
            })),
        }
    }

    /// The source of a monitoring we know; one we do not know is the only source's, and
    /// with several sources it is not found (the reconciler records it within a day).
    async fn monitoring_source(&self, id: &str) -> Result<(&Source, &K), ApiError> {
        match self.store.monitoring(id).await? {
            Some(record) => self.source(record.source.as_deref()),
            None if self.canopy.len() == 1 => Ok(self.canopy.primary()),
            None => Err(ApiError::NotFound(format!(
                "monitoring {id} (not yet recorded here, so its source is unknown)"
            ))),
        }
    }

    fn now(&self) -> String {
        format_ts(self.clock.now())
    }

    /// Runs `work` once per key (module docs): a [`RequestKey::Remember`] key replays its
    /// stored answer and refuses reuse; a [`RequestKey::Lock`] is released afterwards.
    async fn once<F, Fut>(
        &self,
        key: Option<RequestKey>,
        fingerprint: &str,
        work: F,
    ) -> Result<Answer, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Answer, ApiError>>,
    {
        let (key, lock_only) = match key {
            None => return work().await,
            Some(RequestKey::Remember(key)) => (key, false),
            Some(RequestKey::Lock(key)) => (key, true),
        };
        let now = self.clock.now().unix_timestamp();
        let lease_id = uuid::Uuid::new_v4().to_string();
        let claim = RequestClaim {
            key: key.clone(),
            fingerprint: fingerprint.to_owned(),
            lease_id: lease_id.clone(),
            now,
            lease_expires_at: now + unix_secs(self.config.idempotency_lease),
            expires_at: now + unix_secs(self.config.idempotency_retention),
        };
        match self.store.claim_request(&claim).await? {
            RequestClaimResult::Claimed => {}
            RequestClaimResult::Completed {
                fingerprint: stored,
                response,
            } => {
                if stored != fingerprint {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
                return Ok(answer(response.status, body));
            }
            RequestClaimResult::InProgress {
                fingerprint: stored,
            } => {
                if stored != fingerprint && !lock_only {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                return Err(ApiError::RequestInProgress);
            }
        }
        let result = work().await;
        let keep = match &result {
            Ok(a) => Some(a.clone()),
            Err(e) if e.is_final() => {
                let (status, code) = e.status_and_code();
                Some(answer(
                    status,
                    json!({"error": code, "message": e.message()}),
                ))
            }
            Err(_) => None,
        };
        match keep {
            Some(a) if !lock_only => {
                let response = StoredResponse {
                    status: a.status,
                    body: a.body.to_string(),
                };
                if let Err(e) = self
                    .store
                    .complete_request(&key, &lease_id, &response)
                    .await
                {
                    // The answer stands; a retry with the key runs the request again once
                    // the lease expires.
                    tracing::warn!(error = %e, "could not keep the idempotent answer");
                }
            }
            _ => {
                if let Err(e) = self.store.release_request(&key, &lease_id).await {
                    tracing::warn!(error = %e, "could not release the idempotency key");
                }
            }
        }
        result
    }

    /// `POST /v1/monitorings`: 201 with the new monitoring, or 200 with the active one.
    pub async fn enable(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let request = EnableRequest::parse(body)?;
        if let Some(name) = &request.source {
            self.source(Some(name))?;
        }
        let fingerprint = fingerprint(&[
            "enable",
            &serde_json::to_string(&request).unwrap_or_default(),
            request.source.as_deref().unwrap_or(""),
        ]);
        let key = match idempotency_key {
            Some(k) => RequestKey::Remember(format!("enable#{k}")),
            None => RequestKey::Lock(format!("enable-pull#{}", request.pull_id)),
        };
        self.once(Some(key), &fingerprint, || self.enable_now(&request))
            .await
    }

    async fn enable_now(&self, request: &EnableRequest) -> Result<Answer, ApiError> {
        let pull = self.store.pull(&request.pull_id).await?;
        if let Some(existing) = self.active_monitoring_of(pull.as_ref()).await? {
            return Ok(answer(
                200,
                json!({"monitoring": monitoring_json(&existing), "created": false}),
            ));
        }
        let source = self.enable_source(request, pull.as_ref())?;
        let (_, canopy) = self.source(Some(&source))?;
        let view = checked(canopy.enable_monitoring(request).await?, None)?;
        // The pull item holds small meta_data inline; large values are read from their parts.
        let meta = match &pull {
            Some(p) if p.meta_data.is_some() => p.meta_data.clone(),
            Some(_) => self.store.pull_meta_data(&request.pull_id).await?,
            None => None,
        };
        let owner = owner_of(meta.as_ref(), &self.config.plan.owner_key);
        let context = ViewContext {
            enabled_pull_id: Some(request.pull_id.clone()),
            owner,
            source: Some(source),
        };
        let record = self
            .store
            .record_canopy_view(&view, &context, &self.now())
            .await?;
        tracing::info!(monitoring_id = %record.monitoring_id, pull_id = %request.pull_id, "monitoring enabled");
        Ok(answer(
            201,
            json!({"monitoring": monitoring_json(&record), "created": true}),
        ))
    }

    /// The pull's monitoring, if we know it and it is active.
    async fn active_monitoring_of(
        &self,
        pull: Option<&crate::domain::records::PullRecord>,
    ) -> Result<Option<MonitoringRecord>, ApiError> {
        let Some(monitoring_id) = pull.and_then(|p| p.monitoring_id.clone()) else {
            return Ok(None);
        };
        Ok(self
            .store
            .monitoring(&monitoring_id)
            .await?
            .filter(|m| m.status.as_deref() == Some(ACTIVE)))
    }

    /// `PATCH /v1/monitorings/{id}`.
    pub async fn update(&self, monitoring_id: &str, body: &Value) -> Result<Answer, ApiError> {
        let id = validate_id("monitoring_id", monitoring_id)?;
        let patch = PatchRequest::parse(body)?;
        let (source, canopy) = self.monitoring_source(&id).await?;
        let view = checked(canopy.update_monitoring(&id, &patch).await?, Some(&id))?;
        let record = self
            .store
            .record_canopy_view(&view, &source_context(source), &self.now())
            .await?;
        Ok(answer(200, json!({"monitoring": monitoring_json(&record)})))
    }

    /// `DELETE /v1/monitorings/{id}`: stops monitoring (Canopy keeps the record, as we do).
    pub async fn stop(&self, monitoring_id: &str) -> Result<Answer, ApiError> {
        let id = validate_id("monitoring_id", monitoring_id)?;
        let (source, canopy) = self.monitoring_source(&id).await?;
        let view = checked(canopy.stop_monitoring(&id).await?, Some(&id))?;
        let record = self
            .store
            .record_canopy_view(&view, &source_context(source), &self.now())
            .await?;
        tracing::info!(monitoring_id = %id, "monitoring stopped");
        Ok(answer(200, json!({"monitoring": monitoring_json(&record)})))
    }

    /// `POST /v1/monitorings/{id}/refresh[?force=true]`: 202 with the refresh's pull id.
    pub async fn refresh(
        &self,
        monitoring_id: &str,
        force: bool,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let id = validate_id("monitoring_id", monitoring_id)?;
        let fingerprint = fingerprint(&["refresh", &id, &force.to_string()]);
        let key = idempotency_key.map(|k| RequestKey::Remember(format!("refresh#{k}")));
        self.once(key, &fingerprint, || self.refresh_now(&id, force))
            .await
    }

    async fn refresh_now(&self, id: &str, force: bool) -> Result<Answer, ApiError> {
        let record = self
            .store
            .monitoring(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("monitoring {id}")))?;
        let now = self.clock.now();
        // Refused here without a write; the claim below settles races between requests.
        refresh_decision(&record, &self.config.refresh, now, force)
            .map_err(ApiError::RefreshRefused)?;
        let (_, canopy) = self.source(record.source.as_deref())?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let requested_at = format_ts(now);
        let cutoffs = self.config.refresh.cutoffs(now);
        let claim = self
            .store
            .claim_refresh(id, &request_id, &requested_at, (!force).then_some(&cutoffs))
            .await?;
        if let RefreshClaim::Refused(old) = claim {
            let old = old.ok_or_else(|| ApiError::NotFound(format!("monitoring {id}")))?;
            let refusal = refresh_decision(&old, &self.config.refresh, now, force)
                .err()
                .unwrap_or(RefreshRefusal::InFlight {
                    requested_at: old.refresh_requested_at.clone().unwrap_or_default(),
                });
            return Err(ApiError::RefreshRefused(refusal));
        }
        match canopy.refresh_monitoring(id).await {
            Ok(pull_id) => {
                self.store.finish_refresh(id, &request_id, &pull_id).await?;
                tracing::info!(monitoring_id = %id, pull_id = %pull_id, force, "refresh requested");
                Ok(answer(
                    202,
                    json!({"monitoring_id": id, "pull_id": pull_id, "requested_at": requested_at}),
                ))
            }
            Err(err) => {
                if surely_not_applied(&err) {
                    self.store.release_refresh(id, &request_id).await?;
                }
                Err(err.into())
            }
        }
    }

    /// `GET /v1/monitorings`.
    pub async fn list(&self, params: &[(String, String)]) -> Result<Answer, ApiError> {
        let query = monitoring_query(params)?;
        let page = self.store.list_monitorings(&query).await??;
        Ok(answer(
            200,
            json!({
                "monitorings": page.items.iter().map(monitoring_json).collect::<Vec<_>>(),
                "next_cursor": page.next_cursor,
            }),
        ))
    }

    /// `GET /v1/monitorings/{id}[?history_limit=&history_cursor=]`.
    pub async fn get(
        &self,
        monitoring_id: &str,
        params: &[(String, String)],
    ) -> Result<Answer, ApiError> {
        let id = validate_id("monitoring_id", monitoring_id)?;
        let (limit, cursor) = page_params(params, "history_limit", "history_cursor")?;
        let record = self
            .store
            .monitoring(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("monitoring {id}")))?;
        let latest = match &record.latest_data_pull_id {
            Some(pull_id) => self.store.pull_summary(pull_id).await?,
            None => None,
        };
        let history = self.store.refresh_history(&id, limit, cursor).await??;
        Ok(answer(
            200,
            json!({
                "monitoring": monitoring_json(&record),
                "latest_pull": latest.map(|(summary, fetched_at)| json!({"summary": summary, "fetched_at": fetched_at})),
                "refreshes": {"items": history.items, "next_cursor": history.next_cursor},
            }),
        ))
    }

    /// `GET /v1/monitorings/{id}/changes[?limit=&cursor=]`: what changed between refreshes,
    /// newest first: our change sets (`source: canopy-monitor`) and Canopy's own
    /// MONITORING_EVENTS (`source: canopy`).
    pub async fn changes(
        &self,
        monitoring_id: &str,
        params: &[(String, String)],
    ) -> Result<Answer, ApiError> {
        let id = validate_id("monitoring_id", monitoring_id)?;
        let (limit, cursor) = page_params(params, "limit", "cursor")?;
        if self.store.monitoring(&id).await?.is_none() {
            return Err(ApiError::NotFound(format!("monitoring {id}")));
        }
        let page = self.store.change_history(&id, limit, cursor).await??;
        Ok(answer(
            200,
            json!({"monitoring_id": id, "items": page.items, "next_cursor": page.next_cursor}),
        ))
    }

    /// `GET /v1/pulls/{id}`: what we know of the pull and its stored summary.
    pub async fn pull(&self, pull_id: &str) -> Result<Answer, ApiError> {
        let id = validate_id("pull_id", pull_id)?;
        let state = self.store.pull(&id).await?;
        let stored = self.store.pull_summary(&id).await?;
        if state.is_none() && stored.is_none() {
            return Err(ApiError::NotFound(format!("pull {id}")));
        }
        Ok(answer(
            200,
            json!({
                "pull_id": id,
                "state": state.map(|p| json!({
                    "status": p.status,
                    "monitoring_id": p.monitoring_id,
                    "initial_pull_id": p.initial_pull_id,
                    "last_event_type": p.last_event_type,
                    "completed_at": p.completed_at,
                    "fetch_status": p.fetch_status,
                    "fetched_at": p.fetched_at,
                    "fetch_error": p.fetch_error,
                })),
                "summary": stored.as_ref().map(|(s, _)| s),
                "fetched_at": stored.map(|(_, at)| at),
            }),
        ))
    }

    /// `GET /v1/pulls/{id}?full=true`: the stored pull as its gzip stream.
    pub async fn pull_full(&self, pull_id: &str) -> Result<StoredGzip, ApiError> {
        let id = validate_id("pull_id", pull_id)?;
        self.store
            .pull_gzip(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("stored data of pull {id}")))
    }

    /// `POST /v1/events/{dedupe_key}/replay`: the stored event through the same plan again.
    pub async fn replay(&self, dedupe_key: &str) -> Result<Answer, ApiError> {
        let key = validate_dedupe_key(dedupe_key)?;
        let replayed = replay_stored_event(
            &self.store,
            &self.queue,
            &key,
            &self.now(),
            &self.config.plan,
        )
        .await
        .map_err(|e| match e {
            ReplayError::NotFound(key) => ApiError::NotFound(format!("event {key}")),
            ReplayError::NotReplayable(key, why) => ApiError::NotReplayable(key, why),
            ReplayError::Store(e) => ApiError::from(e),
        })?;
        Ok(answer(200, json!(replayed)))
    }
}

/// The context of a view recorded after a call made with `source`'s keys.
fn source_context(source: &Source) -> ViewContext {
    ViewContext {
        source: Some(source.name.clone()),
        ..ViewContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_parameters_are_validated() {
        let q = monitoring_query(&params(&[
            ("status", "ACTIVE"),
            ("reconnect_needed", "true"),
            ("owner", "c-1"),
            ("limit", "10"),
        ]))
        .unwrap();
        assert_eq!(q.limit, 10);
        assert_eq!(q.reconnect_needed, Some(true));
        for (k, v, field) in [
            ("status", "PAUSED", "status"),
            ("reconnect_needed", "yes", "reconnect_needed"),
            ("limit", "0", "limit"),
            ("limit", "101", "limit"),
            ("owner", "", "owner"),
            ("sort", "x", "query"),
        ] {
            assert_eq!(
                monitoring_query(&params(&[(k, v)])).unwrap_err().field,
                field
            );
        }
        assert_eq!(monitoring_query(&[]).unwrap().limit, DEFAULT_PAGE);
    }

    #[test]
    fn dedupe_keys_are_checked() {
        let key = format!("v1:{}", "a".repeat(64));
        assert!(validate_dedupe_key(&key).is_ok());
        for bad in [
            "v1:abc",
            "x1:aaaa",
            "../../etc",
            "v1:",
            &format!("v1:{}", "g".repeat(64)),
        ] {
            assert!(validate_dedupe_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canopys_monitoring_ids_are_checked_before_they_become_keys() {
        let view = |id: &str| crate::ports::canopy::CanopyMonitoring {
            monitoring_id: id.to_owned(),
            ..Default::default()
        };
        let id = "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c";
        assert!(checked(view(id), None).is_ok());
        assert!(checked(view(&id.to_uppercase()), Some(id)).is_ok());
        assert!(checked(view("../../x"), None).is_err());
        assert!(checked(view(""), None).is_err());
        assert!(
            checked(view("a7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c"), Some(id)).is_err(),
            "another monitoring than asked"
        );
    }

    #[test]
    fn canopy_errors_keep_their_code() {
        let e = ApiError::Canopy(CanopyError::Permanent {
            status: 400,
            code: "PULL_TOO_OLD".into(),
        });
        assert_eq!(e.status_and_code(), (400, "PULL_TOO_OLD".into()));
        let e = ApiError::Canopy(CanopyError::Permanent {
            status: 400,
            code: "CURRENTLY_REFRESHING".into(),
        });
        assert_eq!(e.status_and_code().0, 409);
        assert!(!surely_not_applied(&CanopyError::RetryLater {
            reason: "timeout".into(),
            retry_after: None
        }));
        assert!(surely_not_applied(&CanopyError::RetryLater {
            reason: "429 TOO_MANY".into(),
            retry_after: None
        }));
    }
}
