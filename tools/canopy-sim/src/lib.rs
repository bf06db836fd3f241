#![recursion_limit = "256"]
//! A fake Canopy Connect that follows the API spec: it serves pulls it knows and the
//! Monitoring calls the functions use, the whitelabel reconnect, and the Webhooks API; checks
//! credentials; records every request; and misbehaves on demand per pull or monitoring (500,
//! 429 with Retry-After, slow answers, malformed JSON, 404). It also sends signed webhooks,
//! like Canopy's sender.
//!
//! It serves one or more *sources* ([`SimSource`]): a team and one of its key pairs
//! (production or sandbox). Every pull, monitoring, reconnect token and pull JWT belongs to one
//! source, and calls are checked as Canopy checks them: unknown keys 401 UNAUTHORIZED, keys of
//! the other type 400 INCORRECT_API_KEY_TYPE, another team's 403 FORBIDDEN. Webhooks about a
//! pull or monitoring go to its source's registrations ([`SimWebhook`]), each signed with that
//! registration's secret. The request log ([`RecordedRequest`]) says which client id each call
//! presented and whether the gate refused it, so a test can prove every call used the right
//! keys. [`FakeCanopy::start`] serves the single production source older tests expect.

pub mod fixtures;
pub mod monitoring;
pub mod sources;
pub mod webhooks;
pub mod widget;

pub use monitoring::{SimChange, SimMonitoring};
pub use sources::SimSource;
pub use webhooks::SimWebhook;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use canopy_monitor::domain::signature::{sign, SIGNATURE_HEADER};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The API prefix, as in Canopy's base URL.
pub const API_PREFIX: &str = "/api/v1.0.0";
/// The production source's key pair ([`SimSource::production`]).
pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret";
/// The sandbox source's key pair ([`SimSource::sandbox`]).
pub const SANDBOX_CLIENT_ID: &str = "sim-sandbox-client-id";
pub const SANDBOX_CLIENT_SECRET: &str = "sim-sandbox-client-secret";

/// A way to misbehave, consumed one per request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    ServerError,
    TooManyRequests {
        retry_after_secs: u64,
    },
    Slow {
        millis: u64,
    },
    MalformedJson,
    NotFound,
    /// 401 UNAUTHORIZED, as Canopy answers keys that are wrong or revoked.
    Unauthorized,
}

/// One call to the API, as the gate saw it (admin calls under `/_sim` are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The path under [`API_PREFIX`], without the query.
    pub path: String,
    /// The client id the caller presented (HTTP Basic or `x-canopy-client-id`), whether or
    /// not it is known; None if none.
    pub client_id: Option<String>,
    /// The error code when the gate refused the call on its credentials: UNAUTHORIZED (unknown
    /// keys, or a bad `pull-jwt` on the widget calls), INCORRECT_API_KEY_TYPE, FORBIDDEN.
    /// None when the call got past the gate (an injected [`Fault`] does not count).
    pub refused: Option<String>,
}

#[derive(Debug, Default)]
pub struct SimState {
    /// The teams and key pairs served; the first is the default owner of what tests add.
    pub sources: Vec<SimSource>,
    /// Which source (index into `sources`) each pull, monitoring, reconnect token and pull JWT
    /// belongs to. See [`SimState::owner`].
    pub owners: HashMap<String, usize>,
    pub pulls: HashMap<String, Value>,
    /// Faults per pull id or monitoring id; with `sticky`, the last one repeats forever.
    pub faults: HashMap<String, (VecDeque<Fault>, bool)>,
    pub requests: Vec<RecordedRequest>,
    pub monitorings: HashMap<String, SimMonitoring>,
    /// Monitoring ids in creation order (listings are newest first).
    pub monitoring_order: Vec<String>,
    pub tokens_issued: u64,
    /// Refreshes started (each billed like a pull by the real Canopy).
    pub refreshes: u64,
    /// Webhook registrations of every source, oldest first (deliveries go in this order).
    pub webhooks: Vec<SimWebhook>,
    /// The pull awaiting a reconnect, per monitoring.
    pub reconnect_pulls: HashMap<String, String>,
    /// Reconnect tokens handed out: monitoring and the pull they lead to.
    pub issued_tokens: HashMap<String, (String, Option<String>)>,
    /// `pull_jwt` -> pull.
    pub pull_jwts: HashMap<String, String>,
    /// Whitelabel logins in progress, per pull.
    pub logins: HashMap<String, widget::SimLogin>,
    /// What the next refresh of a monitoring changes.
    pub refresh_changes: HashMap<String, Vec<monitoring::SimChange>>,
    /// When set, the next reconnect-token exchange is refused with this code (a token that
    /// expired or was overtaken between our two calls).
    pub exchange_refusal: Option<String>,
}

impl SimState {
    /// The index of the source named `name`.
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }

    /// The source `id` (a pull, monitoring, reconnect token or pull JWT) belongs to. A pull or
    /// monitoring put straight into `pulls` / `monitorings` (not through the fake's methods)
    /// belongs to the first source, as everything did before there were several; an id the
    /// fake does not know (or "") belongs to none.
    pub fn owner(&self, id: &str) -> Option<usize> {
        if id.is_empty() {
            return None;
        }
        self.owners.get(id).copied().or_else(|| {
            (self.pulls.contains_key(id) || self.monitorings.contains_key(id)).then_some(0)
        })
    }

    /// Stores `pull` as source `source`'s.
    pub fn insert_pull(&mut self, pull_id: String, pull: Value, source: usize) {
        self.owners.insert(pull_id.clone(), source);
        self.pulls.insert(pull_id, pull);
    }
}

/// A running fake; clones share its state.
#[derive(Debug, Clone)]
pub struct FakeCanopy {
    pub addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
}

impl FakeCanopy {
    /// Starts on `addr` (port 0 for any free one) for team `team_id`, with the production keys
    /// [`CLIENT_ID`] / [`CLIENT_SECRET`] only.
    pub async fn start(addr: SocketAddr, team_id: &str) -> std::io::Result<Self> {
        Self::start_with_sources(addr, vec![SimSource::production(team_id)]).await
    }

    /// Starts on `addr` serving `sources`; the first is where [`FakeCanopy::add_pull`],
    /// [`FakeCanopy::set_webhook`] and `POST /_sim/pulls` put things. Refuses (InvalidInput) an
    /// empty list, or two sources with one name or one client id (callers are told apart by
    /// their client id).
    pub async fn start_with_sources(
        addr: SocketAddr,
        sources: Vec<SimSource>,
    ) -> std::io::Result<Self> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
        if sources.is_empty() {
            return Err(invalid("canopy-sim needs at least one source".to_owned()));
        }
        for (i, a) in sources.iter().enumerate() {
            if sources[..i]
                .iter()
                .any(|b| b.name == a.name || b.client_id == a.client_id)
            {
                return Err(invalid(format!(
                    "canopy-sim: source {:?} repeats a name or client id",
                    a.name
                )));
            }
        }
        let state = Arc::new(Mutex::new(SimState {
            sources,
            ..SimState::default()
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state })
    }

    /// The base URL to configure as `CANOPY_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sources served, in order.
    pub fn sources(&self) -> Vec<SimSource> {
        self.state().sources.clone()
    }

    /// Adds a pull of the first source.
    pub fn add_pull(&self, pull: Value) {
        let id = pull["pull_id"].as_str().unwrap_or_default().to_owned();
        self.state().insert_pull(id, pull, 0);
    }

    /// Adds a pull of the source named `source_name`.
    ///
    /// # Panics
    /// If there is no such source (a mistake in the test).
    pub fn add_pull_to(&self, source_name: &str, pull: Value) {
        let id = pull["pull_id"].as_str().unwrap_or_default().to_owned();
        let source = self.state().source_index(source_name);
        let Some(source) = source else {
            panic!("canopy-sim: no source named {source_name:?}");
        };
        self.state().insert_pull(id, pull, source);
    }

    /// Queues faults for requests about `id` (a pull or monitoring id).
    pub fn set_faults(&self, id: &str, faults: Vec<Fault>, sticky: bool) {
        self.state()
            .faults
            .insert(id.to_owned(), (faults.into(), sticky));
    }

    /// Makes `monitoring_id` need a reconnect (see [`widget::need_reconnect`]); returns the
    /// pull to reconnect. Its MONITORING_RECONNECT goes to the webhook registrations of the
    /// monitoring's source.
    pub fn need_reconnect(&self, monitoring_id: &str) -> Option<String> {
        let (pull_id, deliveries) = widget::need_reconnect(&self.state, monitoring_id)?;
        webhooks::send_later(deliveries);
        Some(pull_id)
    }

    /// The next refresh of `monitoring_id` makes these changes and reports them as
    /// MONITORING_EVENTS.
    pub fn set_refresh_changes(&self, monitoring_id: &str, changes: Vec<SimChange>) {
        self.state()
            .refresh_changes
            .insert(monitoring_id.to_owned(), changes);
    }

    /// The first source's webhooks go to `url`, signed with `secret` (for every event type):
    /// replaces the registration an earlier call made; those made through the API stay.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        let mut s = self.state();
        if let Some(name) = s.sources.first().map(|src| src.name.clone()) {
            webhooks::set_sim_webhook(&mut s, &name, url, secret);
        }
    }

    /// [`FakeCanopy::set_webhook`] for the source named `source_name`.
    ///
    /// # Panics
    /// If there is no such source (a mistake in the test).
    pub fn set_webhook_for(&self, source_name: &str, url: &str, secret: &str) {
        if !webhooks::set_sim_webhook(&mut self.state(), source_name, url, secret) {
            panic!("canopy-sim: no source named {source_name:?}");
        }
    }

    /// The webhook registrations of the source named `source_name` (API-made and admin-made),
    /// oldest first, with their signing secrets.
    pub fn webhooks(&self, source_name: &str) -> Vec<SimWebhook> {
        self.state()
            .webhooks
            .iter()
            .filter(|w| w.source == source_name)
            .cloned()
            .collect()
    }

    /// A monitoring of `pull_id` made on Canopy's side only (as the dashboard or a lost
    /// answer would leave it); it belongs to the pull's source. Returns its id.
    pub fn add_monitoring(&self, pull_id: &str, interval: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut s = self.state();
        let source = s.owner(pull_id).unwrap_or(0);
        s.owners.insert(id.clone(), source);
        s.monitoring_order.push(id.clone());
        s.monitorings.insert(
            id.clone(),
            SimMonitoring {
                object: json!({"monitoring_id": id, "latest_pull_id": pull_id, "status": "ACTIVE",
                    "interval": interval, "next_pull_date": "2027-01-01T00:00:00.000Z", "stop_after_date": null}),
                pulls: vec![pull_id.to_owned()],
                refreshing: false,
            },
        );
        id
    }

    /// Changes a monitoring on Canopy's side only (as Canopy's dashboard would).
    pub fn set_monitoring_field(&self, monitoring_id: &str, field: &str, value: Value) {
        if let Some(m) = self.state().monitorings.get_mut(monitoring_id) {
            m.object[field] = value;
        }
    }

    /// Completes a refresh whose webhooks are lost; returns the new pull's id.
    pub fn refresh_silently(&self, monitoring_id: &str) -> Option<String> {
        monitoring::start_refresh(&mut self.state(), monitoring_id, false).map(|(pull, _)| pull)
    }

    /// Requests whose path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    /// Every API request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }
}

fn router(state: Arc<Mutex<SimState>>) -> Router {
    let api = Router::new()
        .route("/teams/{team}/pulls/{pull}", get(get_pull))
        .route(
            "/teams/{team}/monitorings",
            post(monitoring::enable).get(monitoring::list),
        )
        .route(
            "/teams/{team}/monitorings/{id}",
            get(monitoring::get)
                .delete(monitoring::stop)
                .patch(monitoring::patch),
        )
        .route(
            "/teams/{team}/monitorings/{id}/refresh",
            post(monitoring::refresh),
        )
        .route(
            "/teams/{team}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/teams/{team}/webhooks/{id}",
            axum::routing::patch(webhooks::update).delete(webhooks::remove),
        )
        .route("/widget/pull/reconnectToken", post(widget::exchange))
        .route("/widget/pull/{pull}/connect", post(widget::connect))
        .route("/widget/pull/{pull}/idvoptions", post(widget::idv_options))
        .route("/widget/pull/{pull}/idv", post(widget::idv))
        .route(
            "/teams/{team}/monitorings/{id}/reconnectToken",
            get(reconnect_token),
        );
    Router::new()
        .nest(API_PREFIX, api)
        .route("/_sim/pulls", post(admin_add_pull))
        .route("/_sim/faults/{id}", post(admin_faults))
        .route("/_sim/requests", get(admin_requests))
        .route("/_sim/webhook", post(webhooks::admin_webhook))
        .with_state(state)
}

pub(crate) fn lock(state: &Arc<Mutex<SimState>>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// Records the request; checks the caller's keys, their type and team against the path's
/// `team` and the source owning `id` (see [`sources::check`]); then applies a pending fault
/// for `id`. Returns the caller's source (index into [`SimState::sources`]), or the answer
/// to give instead of serving the call.
// `Response` is exactly clippy's 128-byte threshold; it is the natural short-circuit here.
#[allow(clippy::result_large_err)]
pub(crate) async fn gate(
    state: &Arc<Mutex<SimState>>,
    headers: &HeaderMap,
    method: &str,
    path: String,
    team: Option<&str>,
    id: &str,
) -> Result<usize, Response> {
    let (caller, fault) = {
        let mut s = lock(state);
        let (client_id, caller) = sources::identify(&s, headers);
        let verdict = sources::check(&s, caller, team, id);
        s.requests.push(RecordedRequest {
            method: method.to_owned(),
            path,
            client_id,
            refused: verdict.as_ref().err().map(|(_, code)| (*code).to_owned()),
        });
        let caller = verdict.map_err(|(status, code)| error(status, code))?;
        let fault = match s.faults.get_mut(id) {
            Some((queue, sticky)) if *sticky && queue.len() == 1 => queue.front().cloned(),
            Some((queue, _)) => queue.pop_front(),
            None => None,
        };
        (caller, fault)
    };
    let Some(fault) = fault else {
        return Ok(caller);
    };
    let refusal = match fault {
        Fault::Slow { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            return Ok(caller);
        }
        Fault::ServerError => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        Fault::TooManyRequests { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            Json(json!({"error": "TOO_MANY_REQUESTS"})),
        )
            .into_response(),
        Fault::MalformedJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"success\": tru",
        )
            .into_response(),
        Fault::NotFound => error(StatusCode::NOT_FOUND, "NOT_FOUND"),
        Fault::Unauthorized => error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
    };
    Err(refusal)
}

async fn get_pull(
    State(state): State<Arc<Mutex<SimState>>>,
    headers: HeaderMap,
    Path((team, pull)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/pulls/{pull}");
    if let Err(r) = gate(&state, &headers, "GET", path, Some(team.as_str()), &pull).await {
        return r;
    }
    match lock(&state).pulls.get(&pull) {
        Some(p) => Json(json!({"success": true, "pull": p})).into_response(),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND"),
    }
}

/// A fresh reconnect token for monitoring `id`; it belongs to the monitoring's source (or,
/// for a monitoring the fake does not know, the caller's).
async fn reconnect_token(
    State(state): State<Arc<Mutex<SimState>>>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}/reconnectToken");
    let caller = match gate(&state, &headers, "GET", path, Some(team.as_str()), &id).await {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let mut s = lock(&state);
    s.tokens_issued += 1;
    let token = format!("rt_fresh_{}", s.tokens_issued);
    // The pull awaiting a reconnect, else the monitoring's latest.
    let pull_id = s.reconnect_pulls.get(&id).cloned().or_else(|| {
        s.monitorings
            .get(&id)
            .and_then(|m| m.object["latest_pull_id"].as_str().map(str::to_owned))
    });
    let source = s.owner(&id).unwrap_or(caller);
    s.owners.insert(token.clone(), source);
    s.issued_tokens
        .insert(token.clone(), (id.clone(), pull_id.clone()));
    Json(json!({
        "pull_id": pull_id,
        "reconnect_url": format!("https://app.usecanopy.com/c/demo/reconnect?reconnectToken={token}"),
        "reconnect_token": token
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct AddPullQuery {
    /// The owning source's name; the first source when absent.
    source: Option<String>,
}

/// Admin: `POST /_sim/pulls[?source=NAME]` with the pull's JSON.
async fn admin_add_pull(
    State(state): State<Arc<Mutex<SimState>>>,
    Query(query): Query<AddPullQuery>,
    Json(pull): Json<Value>,
) -> Response {
    let Some(id) = pull["pull_id"].as_str().map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "pull_id missing");
    };
    let mut s = lock(&state);
    let source = match &query.source {
        Some(name) => match s.source_index(name) {
            Some(i) => i,
            None => return error(StatusCode::BAD_REQUEST, "unknown source"),
        },
        None => 0,
    };
    s.insert_pull(id, pull, source);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(serde::Deserialize)]
struct FaultRequest {
    faults: Vec<Fault>,
    #[serde(default)]
    sticky: bool,
}

async fn admin_faults(
    State(state): State<Arc<Mutex<SimState>>>,
    Path(id): Path<String>,
    Json(req): Json<FaultRequest>,
) -> Response {
    lock(&state)
        .faults
        .insert(id, (req.faults.into(), req.sticky));
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_requests(State(state): State<Arc<Mutex<SimState>>>) -> Response {
    Json(json!({"requests": lock(&state).requests})).into_response()
}

/// Delivers each body to `url`, signed now with `secret`, like Canopy's webhook sender.
/// Returns each answer's status and text.
pub async fn send_webhooks(
    url: &str,
    secret: &str,
    bodies: &[Value],
) -> Result<Vec<(u16, String)>, String> {
    let client = reqwest::Client::new();
    let mut answers = Vec::with_capacity(bodies.len());
    for body in bodies {
        let raw = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        answers.push(send_signed(&client, url, secret, &raw).await?);
    }
    Ok(answers)
}

/// Delivers one raw body to `url`, signed now with `secret`; returns the status and text.
pub async fn send_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    raw: &[u8],
) -> Result<(u16, String), String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sign(raw, secret, now))
        .body(raw.to_vec())
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}
