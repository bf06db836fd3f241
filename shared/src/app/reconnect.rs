//! In-app reconnect: the consumer's browser walks through Canopy's AUTH_STATUS steps inside
//! the integrator's app. The `reconnect-api` function maps routes to these methods and
//! [`ReconnectError`] to statuses.
//!
//! The team's credentials and the pull's `pull_jwt` never reach the browser: a session keeps the
//! JWT server-side and the browser holds only the session id. Canopy tells us each AUTH_STATUS by
//! webhook; intake stores it on the pull (status, `sequence`, the prompt's message and MFA
//! options), and the browser long-polls for the step to show ([`step_of`]).
//!
//! Ownership: the caller's JWT subject must equal the monitoring's owner (the configured
//! `meta_data` key); anything else is "not found", so that a monitoring's existence is not
//! revealed to someone else.

use crate::domain::crypto::SealingKey;
use crate::domain::records::PullRecord;
use crate::domain::time_fmt::format_ts;
use crate::ports::canopy::{CanopyApi, CanopyError, ConnectRequest, WidgetApi};
use crate::ports::store::{
    LimitKey, LimitStore, MonitoringStore, ReconnectSession, SessionStore, Window,
};
use crate::ports::{Clock, PortError};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReconnectConfig {
    /// How long a session lives (Canopy's whitelabel flow takes minutes).
    pub session_ttl: Duration,
    /// The fixed window the per-subject counts below are kept over.
    pub limit_window: Duration,
    /// Sessions a subject may start per window (each is two Canopy calls on the team's keys).
    pub max_starts: u32,
    /// `/token` calls a subject may make per window (each is a Canopy call on the team's keys).
    pub max_tokens: u32,
    /// Calls of each kind (`connect`, `idvoptions`, `idv`) a subject may make per window on one
    /// monitoring, whatever the session: a new session buys no new tries.
    pub max_attempts: u32,
    /// Polls a subject may have waiting at once: one consumer cannot hold the function's
    /// concurrency.
    pub max_concurrent_polls: u32,
    /// The longest a poll waits for the next step.
    pub max_wait: Duration,
    /// How often a waiting poll reads the pull.
    pub poll_every: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(30 * 60),
            limit_window: Duration::from_secs(15 * 60),
            max_starts: 5,
            max_tokens: 5,
            max_attempts: 5,
            max_concurrent_polls: 2,
            max_wait: Duration::from_secs(10),
            poll_every: Duration::from_millis(500),
        }
    }
}

/// A per-subject budget. Each is a parameter of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Sessions started, per subject.
    SessionStarts,
    /// `/token` calls, per subject.
    Tokens,
    /// `connect` calls, per subject and monitoring.
    Connects,
    /// `idvoptions` calls, per subject and monitoring.
    MfaOptions,
    /// `idv` calls, per subject and monitoring.
    MfaCodes,
    /// Polls waiting at once, per subject.
    ConcurrentPolls,
}

impl Limit {
    /// The name answers and keys carry.
    pub fn name(self) -> &'static str {
        match self {
            Limit::SessionStarts => "session_starts",
            Limit::Tokens => "tokens",
            Limit::Connects => "connects",
            Limit::MfaOptions => "mfa_options",
            Limit::MfaCodes => "mfa_codes",
            Limit::ConcurrentPolls => "concurrent_polls",
        }
    }
}

/// The fixed window of `length` holding `now` (Unix seconds): windows start at multiples of
/// the length, so every request of a subject counts against the same item.
pub fn window_at(now: i64, length: Duration) -> Window {
    let length = crate::app::budget::unix_secs(length).max(1);
    let start = now - now.rem_euclid(length);
    Window {
        start,
        end: start + length,
    }
}

/// Seconds a refused caller waits before the window starts again (at least 1).
pub fn retry_after(now: i64, window: Window) -> u64 {
    (window.end - now).max(1).unsigned_abs()
}

/// How long a poll's slot counts as held without a release: longer than any request can
/// last (the function's timeout), so a count nobody took from since is only leaked slots.
pub const POLL_SLOT_HOLD: Duration =
    Duration::from_secs(crate::app::budget::API_FUNCTION_TIMEOUT.as_secs() + 5);

#[derive(Debug, thiserror::Error)]
pub enum ReconnectError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// Unknown, or not the caller's: the same answer either way.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the reconnect session expired; start a new one")]
    Expired,
    /// A per-subject budget is spent: answered 429 with `Retry-After`.
    #[error("limit {} reached; retry in {retry_after} s", limit.name())]
    Limited { limit: Limit, retry_after: u64 },
    /// The session key could not seal or open a value (cannot happen with a 32-byte key).
    #[error("sealing failed")]
    Sealing,
    #[error("Canopy answered {0}")]
    Canopy(#[from] CanopyError),
    #[error(transparent)]
    Storage(#[from] PortError),
}

impl ReconnectError {
    /// Status and `error` code: the one place they are decided.
    pub fn status_and_code(&self) -> (u16, String) {
        match self {
            ReconnectError::Invalid { .. } => (400, "invalid_request".into()),
            ReconnectError::NotFound(_) => (404, "not_found".into()),
            ReconnectError::Expired => (410, "session_expired".into()),
            ReconnectError::Limited { .. } => (429, "too_many_requests".into()),
            ReconnectError::Sealing => (500, "internal".into()),
            // Canopy refused the pull's JWT (only the widget calls carry one, see
            // `canopy::classify_pull_call`): the consumer's session is over, not our keys.
            ReconnectError::Canopy(CanopyError::Permanent { status: 401, .. }) => {
                (410, "session_expired".into())
            }
            ReconnectError::Canopy(CanopyError::Permanent { status, code }) => {
                let status = match code.as_str() {
                    "INVALID_RECONNECT_TOKEN" => 410,
                    "MONITORING_INACTIVE"
                    | "NEWER_PULL_AVAILABLE"
                    | "ALREADY_RECONNECTED"
                    | "PULL_NOT_SUPPORTED"
                    | "UNSUPPORTED_CARRIER"
                    | "INVALID_ACTION" => 409,
                    "UNAUTHORIZED" | "NOT_FOUND" => 410,
                    _ if (400..500).contains(status) => 400,
                    _ => 502,
                };
                (status, code.clone())
            }
            ReconnectError::Canopy(CanopyError::Misconfigured { .. }) => {
                (502, "canopy_misconfigured".into())
            }
            ReconnectError::Canopy(CanopyError::RetryLater { .. }) => {
                (503, "canopy_unavailable".into())
            }
            ReconnectError::Storage(_) => (503, "unavailable".into()),
        }
    }

    /// A message a UI can show to the consumer.
    pub fn message(&self) -> String {
        match self {
            ReconnectError::Canopy(CanopyError::Permanent { status: 401, .. }) => {
                "This reconnect session is no longer valid. Please start again.".to_owned()
            }
            ReconnectError::Limited { limit, retry_after } => {
                let what = match limit {
                    Limit::ConcurrentPolls => "Too many requests at once",
                    _ => "Too many tries",
                };
                format!("{what}. Please try again in {}.", in_words(*retry_after))
            }
            ReconnectError::Canopy(CanopyError::Permanent { code, .. }) => match code.as_str() {
                "INVALID_RECONNECT_TOKEN" => "This reconnect link has expired. Please start again.",
                "MONITORING_INACTIVE" => "Updates for this account are switched off.",
                "NEWER_PULL_AVAILABLE" => {
                    "A newer update of this account is under way. Please start again."
                }
                "ALREADY_RECONNECTED" => "This account is already reconnected. Nothing more to do.",
                "UNSUPPORTED_CARRIER" | "PULL_NOT_SUPPORTED" => {
                    "This insurer cannot be reconnected here."
                }
                "INVALID_ACTION" => {
                    "That step is not expected now. Please follow the current prompt."
                }
                "UNAUTHORIZED" | "NOT_FOUND" => {
                    "This reconnect session is no longer valid. Please start again."
                }
                _ => "The insurer's details were not accepted. Please check them and try again.",
            }
            .to_owned(),
            ReconnectError::Canopy(CanopyError::RetryLater { .. }) => {
                "The service is busy. Please try again in a moment.".to_owned()
            }
            ReconnectError::Canopy(CanopyError::Misconfigured { .. })
            | ReconnectError::Storage(_)
            | ReconnectError::Sealing => {
                "Something went wrong on our side. Please try again later.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// A wait for a person to read: seconds under two minutes, minutes after.
fn in_words(secs: u64) -> String {
    match secs {
        0..=1 => "a second".to_owned(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// The step to show for a pull, by the guide's table. `sequence` is the latest AUTH_STATUS's
/// (0 before any): a poll waits for a higher one.
pub fn step_of(pull: Option<&PullRecord>) -> Value {
    let sequence = pull.and_then(|p| p.auth_sequence).unwrap_or(0);
    let Some(p) = pull else {
        return json!({"step": "enter_credentials", "sequence": 0});
    };
    if p.policies_available_at.is_some() || p.completed_at.is_some() {
        return json!({"step": "data_ready", "sequence": sequence, "complete": p.completed_at.is_some()});
    }
    match p.auth_status.as_deref() {
        Some("SUCCESS") => json!({"step": "authenticated", "sequence": sequence}),
        Some("IDENTITY_VERIFICATION_OPTIONS") => json!({
            "step": "choose_mfa_option",
            "sequence": sequence,
            "options": mfa_choices(p.mfa_options.as_ref()),
        }),
        Some("IDENTITY_VERIFICATION") => json!({
            "step": "enter_code",
            "sequence": sequence,
            "message": p.login_error_message,
        }),
        _ => json!({
            "step": "enter_credentials",
            "sequence": sequence,
            "message": p.login_error_message,
        }),
    }
}

/// MFA options as `[{key, label}]`, from an object `{key: label}` or an array of strings or
/// of `{key|optionKey, label|name}`.
pub fn mfa_choices(options: Option<&Value>) -> Vec<Value> {
    match options {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| json!({"key": k, "label": v.as_str().map_or_else(|| v.to_string(), str::to_owned)}))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(json!({"key": s, "label": s})),
                Value::Object(o) => {
                    let key = o.get("key").or_else(|| o.get("optionKey"))?.as_str()?;
                    let label = o
                        .get("label")
                        .or_else(|| o.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or(key);
                    Some(json!({"key": key, "label": label}))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn invalid(field: &'static str, problem: &str) -> ReconnectError {
    ReconnectError::Invalid {
        field,
        problem: problem.to_owned(),
    }
}

fn required_text(body: &Value, field: &'static str, max: usize) -> Result<String, ReconnectError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(field, &format!("must be 1 to {max} characters"))),
        _ => Err(invalid(field, "is required (a string)")),
    }
}

/// The service, generic over its ports.
pub struct ReconnectService<S, K, C> {
    store: S,
    /// Each source's client: a monitoring is reconnected with its own source's keys.
    canopy: crate::domain::source::Sources<K>,
    clock: C,
    key: SessionKey,
    config: ReconnectConfig,
}

impl<S, K, C> ReconnectService<S, K, C>
where
    S: MonitoringStore + SessionStore + LimitStore,
    K: CanopyApi + WidgetApi,
    C: Clock,
{
    pub fn new(
        store: S,
        canopy: crate::domain::source::Sources<K>,
        clock: C,
        key: SessionKey,
        config: ReconnectConfig,
    ) -> Self {
        Self {
            store,
            canopy,
            clock,
            key,
            config,
        }
    }

    /// Counts one use of `limit` by `subject` (on `monitoring_id`, when given) in the current
    /// window, or refuses with the seconds until the window ends.
    async fn take(
        &self,
        limit: Limit,
        subject: &str,
        monitoring_id: Option<&str>,
        max: u32,
    ) -> Result<(), ReconnectError> {
        let now = self.clock.now().unix_timestamp();
        let window = window_at(now, self.config.limit_window);
        let key = LimitKey {
            subject,
            name: limit.name(),
            monitoring_id,
        };
        if self.store.take_in_window(&key, window, max).await? {
            Ok(())
        } else {
            Err(ReconnectError::Limited {
                limit,
                retry_after: retry_after(now, window),
            })
        }
    }

    /// The monitoring id of a request body, checked as an id (not yet as the caller's).
    fn monitoring_id_of(body: &Value) -> Result<String, ReconnectError> {
        let id = required_text(body, "monitoring_id", 64)?;
        crate::domain::monitoring::validate_id("monitoring_id", &id).map_err(|e| {
            ReconnectError::Invalid {
                field: e.field,
                problem: e.problem,
            }
        })
    }

    /// `id` and its source, if the monitoring is the caller's.
    async fn owned_monitoring(
        &self,
        subject: &str,
        id: String,
    ) -> Result<(String, Option<String>), ReconnectError> {
        match self.store.monitoring(&id).await? {
            Some(m) if m.owner.as_deref() == Some(subject) => Ok((id, m.source)),
            _ => Err(ReconnectError::NotFound("monitoring")),
        }
    }

    /// The client of a monitoring's source. A source no longer configured is Canopy
    /// unreachable for that monitoring: 503, and the operator's alarm.
    fn client(&self, source: Option<&str>) -> Result<&K, ReconnectError> {
        self.canopy.get(source).map(|(_, k)| k).map_err(|unknown| {
            ReconnectError::Canopy(CanopyError::Misconfigured {
                status: 400,
                code: format!("UNKNOWN_SOURCE {}", unknown.0),
            })
        })
    }

    /// The caller's live session.
    async fn owned_session(
        &self,
        subject: &str,
        session_id: &str,
    ) -> Result<ReconnectSession, ReconnectError> {
        if uuid::Uuid::parse_str(session_id).is_err() {
            return Err(ReconnectError::NotFound("session"));
        }
        let now = self.clock.now().unix_timestamp();
        match self.store.session(session_id, now).await? {
            Some(s) if s.owner == subject => Ok(s),
            // Expired sessions read as absent; the browser starts a new one either way.
            Some(_) => Err(ReconnectError::NotFound("session")),
            None => Err(ReconnectError::Expired),
        }
    }

    /// `POST /v1/reconnect/sessions {monitoring_id}`.
    pub async fn start(&self, subject: &str, body: &Value) -> Result<Value, ReconnectError> {
        let id = Self::monitoring_id_of(body)?;
        // Counted before anything is read: the budget bounds the reads and Canopy calls, and
        // a refusal tells nothing about the monitoring.
        self.take(Limit::SessionStarts, subject, None, self.config.max_starts)
            .await?;
        let (monitoring_id, source) = self.owned_monitoring(subject, id).await?;
        let canopy = self.client(source.as_deref())?;
        let token = canopy.reconnect_token(&monitoring_id).await?;
        let mut pull = canopy
            .exchange_reconnect_token(&token.reconnect_token)
            .await?;
        match crate::domain::ids::canonical_id(&pull.pull_id) {
            Some(id) => pull.pull_id = id,
            None => {
                return Err(ReconnectError::Canopy(CanopyError::RetryLater {
                    reason: "reconnectToken answered an unusable pull id".to_owned(),
                    retry_after: None,
                }))
            }
        }
        let now = self.clock.now();
        let session_id = uuid::Uuid::new_v4().to_string();
        let sealed_jwt = self.key.seal(
            &pull.pull_jwt,
            &SealedFor {
                session_id: &session_id,
                owner: subject,
                pull_id: &pull.pull_id,
            },
        )?;
        let session = ReconnectSession {
            session_id,
            owner: subject.to_owned(),
            monitoring_id: monitoring_id.clone(),
            source,
            pull_id: pull.pull_id.clone(),
            sealed_jwt,
            created_at: format_ts(now),
            expires_at: now.unix_timestamp()
                + crate::app::budget::unix_secs(self.config.session_ttl),
        };
        self.store.put_session(&session).await?;
        tracing::info!(monitoring_id = %monitoring_id, pull_id = %session.pull_id, session_id = %session.session_id, "reconnect session started");
        let step = step_of(self.store.pull(&session.pull_id).await?.as_ref());
        Ok(json!({
            "session_id": session.session_id,
            "pull_id": session.pull_id,
            "expires_at": session.expires_at,
            "step": step,
        }))
    }

    /// `POST /v1/reconnect/token {monitoring_id}`: a fresh token for Canopy's SDK.
    pub async fn fresh_token(&self, subject: &str, body: &Value) -> Result<Value, ReconnectError> {
        let id = Self::monitoring_id_of(body)?;
        self.take(Limit::Tokens, subject, None, self.config.max_tokens)
            .await?;
        let (monitoring_id, source) = self.owned_monitoring(subject, id).await?;
        let token = self
            .client(source.as_deref())?
            .reconnect_token(&monitoring_id)
            .await?;
        tracing::info!(monitoring_id = %monitoring_id, "reconnect token handed to its owner");
        Ok(json!({
            "monitoring_id": monitoring_id,
            "pull_id": token.pull_id,
            "reconnect_token": token.reconnect_token,
            "reconnect_url": token.reconnect_url,
        }))
    }

    /// Counts an attempt, then forwards a step to Canopy; answers where to poll from.
    async fn forward<'s, F, Fut>(
        &'s self,
        subject: &str,
        session_id: &str,
        limit: Limit,
        call: F,
    ) -> Result<Value, ReconnectError>
    where
        F: FnOnce(&'s K, String, crate::ports::canopy::PullJwt) -> Fut,
        Fut: std::future::Future<Output = Result<(), CanopyError>>,
    {
        let session = self.owned_session(subject, session_id).await?;
        // Per subject and monitoring, not per session: a new session buys no new tries.
        self.take(
            limit,
            subject,
            Some(&session.monitoring_id),
            self.config.max_attempts,
        )
        .await?;
        // A session sealed under an earlier key (the Canopy keys were rotated) is over.
        let jwt = self
            .key
            .open(&session.sealed_jwt, &SealedFor::session(&session))
            .ok_or(ReconnectError::Expired)?;
        let before = step_of(self.store.pull(&session.pull_id).await?.as_ref());
        let pull_id = session.pull_id.clone();
        let canopy = self.client(session.source.as_deref())?;
        call(canopy, session.pull_id, jwt).await?;
        tracing::info!(session_id, pull_id = %pull_id, kind = limit.name(), "reconnect step forwarded");
        Ok(json!({"accepted": true, "poll_after": before["sequence"]}))
    }

    /// `POST /v1/reconnect/sessions/{id}/connect`: the Components tokens, forwarded.
    pub async fn connect(
        &self,
        subject: &str,
        session_id: &str,
        body: &Value,
    ) -> Result<Value, ReconnectError> {
        let request: ConnectRequest = serde_json::from_value(body.clone()).map_err(|_| {
            invalid(
                "body",
                "expected insurerName, insurerUsername and optionally insurerPassword, insurerThirdField (strings)",
            )
        })?;
        if request.insurer_name.is_empty() || request.insurer_name.len() > 100 {
            return Err(invalid("insurerName", "must be 1 to 100 characters"));
        }
        for (field, value) in [
            ("insurerUsername", Some(&request.insurer_username)),
            ("insurerPassword", request.insurer_password.as_ref()),
        ] {
            if value.is_some_and(|v| !(5..=200).contains(&v.len())) {
                return Err(invalid(
                    field,
                    "must be a Components token of 5 to 200 characters",
                ));
            }
        }
        self.forward(
            subject,
            session_id,
            Limit::Connects,
            |canopy, pull, jwt| async move { canopy.connect(&pull, &jwt, &request).await },
        )
        .await
    }

    /// `POST /v1/reconnect/sessions/{id}/idvoptions {optionKey}`.
    pub async fn choose_option(
        &self,
        subject: &str,
        session_id: &str,
        body: &Value,
    ) -> Result<Value, ReconnectError> {
        let key = required_text(body, "optionKey", 200)?;
        self.forward(
            subject,
            session_id,
            Limit::MfaOptions,
            |canopy, pull, jwt| async move { canopy.idv_options(&pull, &jwt, &key).await },
        )
        .await
    }

    /// `POST /v1/reconnect/sessions/{id}/idv {mfaValue}`.
    pub async fn submit_code(
        &self,
        subject: &str,
        session_id: &str,
        body: &Value,
    ) -> Result<Value, ReconnectError> {
        let code = required_text(body, "mfaValue", 64)?;
        self.forward(
            subject,
            session_id,
            Limit::MfaCodes,
            |canopy, pull, jwt| async move { canopy.idv(&pull, &jwt, &code).await },
        )
        .await
    }

    /// `GET /v1/reconnect/sessions/{id}?after=&wait=`: the step to show, once an AUTH_STATUS
    /// newer than `after` is stored (or the data is ready), or after `wait` seconds (at most
    /// `max_wait`). A subject has at most `max_concurrent_polls` waiting at once.
    pub async fn poll(
        &self,
        subject: &str,
        session_id: &str,
        after: i64,
        wait: Duration,
    ) -> Result<Value, ReconnectError> {
        let key = LimitKey {
            subject,
            name: Limit::ConcurrentPolls.name(),
            monitoring_id: None,
        };
        let now = self.clock.now().unix_timestamp();
        let hold_until = now + crate::app::budget::unix_secs(POLL_SLOT_HOLD);
        if !self
            .store
            .take_slot(&key, self.config.max_concurrent_polls, now, hold_until)
            .await?
        {
            // The slots free up as the polls holding them answer, within `max_wait`.
            return Err(ReconnectError::Limited {
                limit: Limit::ConcurrentPolls,
                retry_after: self.config.max_wait.as_secs().max(1),
            });
        }
        let result = self.wait_for_step(subject, session_id, after, wait).await;
        // Given back on every way out; a poll cut short (the handler's budget) leaves its slot
        // to lapse (`POLL_SLOT_HOLD`).
        if let Err(e) = self.store.release_slot(&key).await {
            tracing::warn!(error = %e, "a poll slot was not given back; it lapses by itself");
        }
        result
    }

    async fn wait_for_step(
        &self,
        subject: &str,
        session_id: &str,
        after: i64,
        wait: Duration,
    ) -> Result<Value, ReconnectError> {
        let session = self.owned_session(subject, session_id).await?;
        let wait = wait.min(self.config.max_wait);
        let started = tokio::time::Instant::now();
        loop {
            let step = step_of(self.store.pull(&session.pull_id).await?.as_ref());
            let newer = step["sequence"].as_i64().unwrap_or(0) > after;
            let done = step["step"] == "data_ready";
            if newer || done || started.elapsed() + self.config.poll_every > wait {
                return Ok(json!({
                    "session_id": session.session_id,
                    "pull_id": session.pull_id,
                    "changed": newer || done,
                    "step": step,
                }));
            }
            tokio::time::sleep(self.config.poll_every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(status: &str, seq: i64) -> PullRecord {
        PullRecord {
            pull_id: "p".into(),
            auth_status: Some(status.into()),
            auth_sequence: Some(seq),
            ..PullRecord::default()
        }
    }

    #[test]
    fn steps_follow_the_guides_table() {
        assert_eq!(step_of(None)["step"], "enter_credentials");
        let mut p = pull("NOT_AUTHENTICATED", 1);
        p.login_error_message = Some("Account locked".into());
        let s = step_of(Some(&p));
        assert_eq!(
            (s["step"].as_str(), s["message"].as_str()),
            (Some("enter_credentials"), Some("Account locked"))
        );
        let mut p = pull("IDENTITY_VERIFICATION_OPTIONS", 2);
        p.mfa_options = Some(json!({"sms": "Text ***0000"}));
        let s = step_of(Some(&p));
        assert_eq!(s["step"], "choose_mfa_option");
        assert_eq!(
            s["options"],
            json!([{"key": "sms", "label": "Text ***0000"}])
        );
        assert_eq!(
            step_of(Some(&pull("IDENTITY_VERIFICATION", 3)))["step"],
            "enter_code"
        );
        assert_eq!(step_of(Some(&pull("SUCCESS", 4)))["step"], "authenticated");
        let mut p = pull("SUCCESS", 4);
        p.policies_available_at = Some("t".into());
        assert_eq!(step_of(Some(&p))["step"], "data_ready");
        assert_eq!(step_of(Some(&p))["sequence"], 4);
    }

    #[test]
    fn mfa_options_take_several_shapes() {
        assert_eq!(
            mfa_choices(Some(
                &json!(["sms", {"optionKey": "email", "name": "Email"}, 3])
            )),
            vec![
                json!({"key": "sms", "label": "sms"}),
                json!({"key": "email", "label": "Email"})
            ]
        );
        assert!(mfa_choices(None).is_empty());
    }

    #[test]
    fn windows_are_fixed_and_a_refusal_waits_for_the_next() {
        let fifteen = Duration::from_secs(900);
        let w = window_at(1_800 + 17, fifteen);
        assert_eq!(
            w,
            Window {
                start: 1_800,
                end: 2_700
            }
        );
        assert_eq!(window_at(2_699, fifteen), w, "the same item to the end");
        assert_eq!(window_at(2_700, fifteen).start, 2_700);
        assert_eq!(retry_after(1_817, w), 883);
        assert_eq!(
            retry_after(2_700, w),
            1,
            "never 0: a client would retry at once"
        );
        let e = ReconnectError::Limited {
            limit: Limit::SessionStarts,
            retry_after: 883,
        };
        assert_eq!(e.status_and_code(), (429, "too_many_requests".to_owned()));
        assert_eq!(
            e.message(),
            "Too many tries. Please try again in 15 minutes."
        );
    }

    #[test]
    fn a_refused_pull_jwt_ends_the_session_and_refused_team_keys_are_ours() {
        let jwt_refused = ReconnectError::Canopy(crate::ports::canopy::classify_pull_call(
            401,
            None,
            br#"{"error":"UNAUTHORIZED"}"#,
        ));
        assert_eq!(
            jwt_refused.status_and_code(),
            (410, "session_expired".to_owned())
        );
        assert!(jwt_refused.message().contains("start again"));
        let keys_refused = ReconnectError::Canopy(crate::ports::canopy::classify(
            401,
            None,
            br#"{"error":"UNAUTHORIZED"}"#,
        ));
        assert_eq!(
            keys_refused.status_and_code(),
            (502, "canopy_misconfigured".to_owned())
        );
    }

    #[test]
    fn canopy_refusals_map_to_ui_statuses() {
        let e = |code: &str| {
            ReconnectError::Canopy(CanopyError::Permanent {
                status: 400,
                code: code.into(),
            })
        };
        assert_eq!(e("INVALID_RECONNECT_TOKEN").status_and_code().0, 410);
        for code in [
            "MONITORING_INACTIVE",
            "NEWER_PULL_AVAILABLE",
            "ALREADY_RECONNECTED",
        ] {
            assert_eq!(e(code).status_and_code(), (409, code.to_owned()));
            assert!(!e(code).message().contains('_'), "a sentence, not a code");
        }
    }
}

/// The sealing scheme and key generation, written first in every sealed value. A value of
/// another version does not open: its session is over and the browser starts a new one.
pub const SEAL_VERSION: &str = "v2";

/// HKDF's salt and info for the session key: the key is for this one use.
const KEY_SALT: &[u8] = b"canopy-monitor/reconnect";
const KEY_INFO: &[u8] = b"pull_jwt sealing key v2";

/// What a sealed JWT is bound to (the AEAD's associated data): the value opens only for the
/// session, owner and pull it was sealed for, so a value copied into another item is useless.
#[derive(Debug, Clone, Copy)]
pub struct SealedFor<'a> {
    pub session_id: &'a str,
    pub owner: &'a str,
    pub pull_id: &'a str,
}

impl<'a> SealedFor<'a> {
    pub fn session(session: &'a ReconnectSession) -> Self {
        Self {
            session_id: &session.session_id,
            owner: &session.owner,
            pull_id: &session.pull_id,
        }
    }

    /// The version, then each field length-prefixed: no two bindings give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.owner.len());
        aad.extend_from_slice(SEAL_VERSION.as_bytes());
        for field in [self.session_id, self.owner, self.pull_id] {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

/// Seals a session's `pull_jwt` for storage (AES-256-GCM, a fresh nonce each time, bound to
/// its session by [`SealedFor`]), so that a table export or backup holds no usable credential.
/// The key is derived (HKDF-SHA256) from the team's Canopy client secret, which the function
/// holds anyway: no extra secret to provision, and rotating the Canopy keys retires every open
/// session (they last 30 minutes).
#[derive(Clone)]
pub struct SessionKey(std::sync::Arc<SealingKey>);

impl SessionKey {
    pub fn derive(
        credentials: &crate::ports::canopy::CanopyCredentials,
    ) -> Result<Self, ReconnectError> {
        let key = SealingKey::derive(credentials.client_secret.as_bytes(), KEY_SALT, KEY_INFO)
            .map_err(|_| ReconnectError::Sealing)?;
        Ok(Self(std::sync::Arc::new(key)))
    }

    /// `v2.` then `base64(nonce || ciphertext)`.
    pub fn seal(
        &self,
        jwt: &crate::ports::canopy::PullJwt,
        sealed_for: &SealedFor<'_>,
    ) -> Result<String, ReconnectError> {
        use base64::Engine;
        let sealed = self
            .0
            .seal(jwt.expose().as_bytes(), &sealed_for.associated_data())
            .map_err(|_| ReconnectError::Sealing)?;
        let text = base64::engine::general_purpose::STANDARD.encode(sealed);
        Ok(format!("{SEAL_VERSION}.{text}"))
    }

    /// The JWT back, or `None` if the text was not sealed with this key and version for this
    /// session, owner and pull.
    pub fn open(
        &self,
        sealed: &str,
        sealed_for: &SealedFor<'_>,
    ) -> Option<crate::ports::canopy::PullJwt> {
        use base64::Engine;
        let (version, text) = sealed.split_once('.')?;
        if version != SEAL_VERSION {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let plain = self.0.open(&raw, &sealed_for.associated_data())?;
        String::from_utf8(plain)
            .ok()
            .map(crate::ports::canopy::PullJwt::new)
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::*;
    use crate::ports::canopy::{CanopyCredentials, PullJwt};

    fn key(secret: &str) -> SessionKey {
        SessionKey::derive(&CanopyCredentials {
            client_id: "id".into(),
            client_secret: secret.into(),
        })
        .unwrap()
    }

    const FOR: SealedFor<'static> = SealedFor {
        session_id: "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        owner: "cust-7",
        pull_id: "pull-1",
    };

    #[test]
    fn sealed_jwts_open_with_their_key_only() {
        let jwt = PullJwt::new("eyJhbGciOi.payload.sig".into());
        let sealed = key("s1").seal(&jwt, &FOR).unwrap();
        assert!(!sealed.contains("payload"));
        assert!(sealed.starts_with("v2."), "{sealed}");
        assert_ne!(
            sealed,
            key("s1").seal(&jwt, &FOR).unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(key("s1").open(&sealed, &FOR), Some(jwt));
        assert_eq!(key("s2").open(&sealed, &FOR), None);
        assert_eq!(key("s1").open("not sealed", &FOR), None);
    }

    #[test]
    fn a_sealed_jwt_opens_only_for_its_session_owner_and_pull() {
        let jwt = PullJwt::new("eyJhbGciOi.payload.sig".into());
        let k = key("s1");
        let sealed = k.seal(&jwt, &FOR).unwrap();
        for moved in [
            SealedFor {
                session_id: "1b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                ..FOR
            },
            SealedFor {
                owner: "cust-8",
                ..FOR
            },
            SealedFor {
                pull_id: "pull-2",
                ..FOR
            },
            // The length prefixes: moving a character from one field to the next is a move.
            SealedFor {
                owner: "cust-",
                pull_id: "7pull-1",
                ..FOR
            },
        ] {
            assert_eq!(k.open(&sealed, &moved), None, "{moved:?}");
        }
        // Another version's value does not open, even with the same bytes after the prefix.
        let (_, text) = sealed.split_once('.').unwrap();
        assert_eq!(k.open(&format!("v1.{text}"), &FOR), None);
        assert_eq!(k.open(text, &FOR), None);
    }
}
