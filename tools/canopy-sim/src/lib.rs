#![recursion_limit = "256"]
//! A fake Canopy Connect that follows the API spec: it serves pulls it knows and the
//! Monitoring calls the functions use, checks HTTP Basic auth, records every request, and
//! misbehaves on demand per pull or monitoring (500, 429 with Retry-After, slow answers,
//! malformed JSON, 404). It also sends signed webhooks, like Canopy's sender.

pub mod fixtures;
pub mod monitoring;
pub mod widget;

pub use monitoring::{SimChange, SimMonitoring};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use canopy_monitor::domain::signature::{sign, SIGNATURE_HEADER};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The API prefix, as in Canopy's base URL.
pub const API_PREFIX: &str = "/api/v1.0.0";
pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret";

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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
}

#[derive(Debug, Default)]
pub struct SimState {
    pub team_id: String,
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
    /// Where refreshes send their webhooks, and the signing secret.
    pub webhook: Option<(String, String)>,
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

/// A running fake; clones share its state.
#[derive(Debug, Clone)]
pub struct FakeCanopy {
    pub addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
}

impl FakeCanopy {
    /// Starts on `addr` (port 0 for any free one) for team `team_id`.
    pub async fn start(addr: SocketAddr, team_id: &str) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(SimState {
            team_id: team_id.to_owned(),
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

    pub fn add_pull(&self, pull: Value) {
        let id = pull["pull_id"].as_str().unwrap_or_default().to_owned();
        self.state().pulls.insert(id, pull);
    }

    /// Queues faults for requests about `id` (a pull or monitoring id).
    pub fn set_faults(&self, id: &str, faults: Vec<Fault>, sticky: bool) {
        self.state()
            .faults
            .insert(id.to_owned(), (faults.into(), sticky));
    }

    /// Makes `monitoring_id` need a reconnect (see [`widget::need_reconnect`]); returns the
    /// pull to reconnect. Its MONITORING_RECONNECT goes to the webhook target, if set.
    pub fn need_reconnect(&self, monitoring_id: &str) -> Option<String> {
        let (pull_id, sending) = widget::need_reconnect(&self.state, monitoring_id)?;
        widget::send_later(sending);
        Some(pull_id)
    }

    /// The next refresh of `monitoring_id` makes these changes and reports them as
    /// MONITORING_EVENTS.
    pub fn set_refresh_changes(&self, monitoring_id: &str, changes: Vec<SimChange>) {
        self.state()
            .refresh_changes
            .insert(monitoring_id.to_owned(), changes);
    }

    /// Refreshes send their webhooks to `url`, signed with `secret`.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        self.state().webhook = Some((url.to_owned(), secret.to_owned()));
    }

    /// A monitoring of `pull_id` made on Canopy's side only (as the dashboard or a lost
    /// answer would leave it); returns its id.
    pub fn add_monitoring(&self, pull_id: &str, interval: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut s = self.state();
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
        .route("/_sim/webhook", post(monitoring::admin_webhook))
        .with_state(state)
}

pub(crate) fn lock(state: &Arc<Mutex<SimState>>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// Records the request, checks auth and team, and applies a pending fault for `id`.
pub(crate) async fn gate(
    state: &Arc<Mutex<SimState>>,
    headers: &HeaderMap,
    method: &str,
    path: String,
    team: &str,
    id: &str,
) -> Option<Response> {
    let fault = {
        let mut s = lock(state);
        s.requests.push(RecordedRequest {
            method: method.to_owned(),
            path,
        });
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(expected.as_str())
        {
            return Some(error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
        }
        if team != s.team_id {
            return Some(error(StatusCode::FORBIDDEN, "FORBIDDEN"));
        }
        match s.faults.get_mut(id) {
            Some((queue, sticky)) if *sticky && queue.len() == 1 => queue.front().cloned(),
            Some((queue, _)) => queue.pop_front(),
            None => None,
        }
    };
    match fault? {
        Fault::ServerError => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")),
        Fault::TooManyRequests { retry_after_secs } => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                Json(json!({"error": "TOO_MANY_REQUESTS"})),
            )
                .into_response(),
        ),
        Fault::Slow { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            None
        }
        Fault::MalformedJson => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"success\": tru",
            )
                .into_response(),
        ),
        Fault::NotFound => Some(error(StatusCode::NOT_FOUND, "NOT_FOUND")),
        Fault::Unauthorized => Some(error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED")),
    }
}

async fn get_pull(
    State(state): State<Arc<Mutex<SimState>>>,
    headers: HeaderMap,
    Path((team, pull)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/pulls/{pull}");
    if let Some(r) = gate(&state, &headers, "GET", path, &team, &pull).await {
        return r;
    }
    match lock(&state).pulls.get(&pull) {
        Some(p) => Json(json!({"success": true, "pull": p})).into_response(),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND"),
    }
}

async fn reconnect_token(
    State(state): State<Arc<Mutex<SimState>>>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}/reconnectToken");
    if let Some(r) = gate(&state, &headers, "GET", path, &team, &id).await {
        return r;
    }
    let mut s = lock(&state);
    s.tokens_issued += 1;
    let token = format!("rt_fresh_{}", s.tokens_issued);
    // The pull awaiting a reconnect, else the monitoring's latest.
    let pull_id = s.reconnect_pulls.get(&id).cloned().or_else(|| {
        s.monitorings
            .get(&id)
            .and_then(|m| m.object["latest_pull_id"].as_str().map(str::to_owned))
    });
    s.issued_tokens
        .insert(token.clone(), (id.clone(), pull_id.clone()));
    Json(json!({
        "pull_id": pull_id,
        "reconnect_url": format!("https://app.usecanopy.com/c/demo/reconnect?reconnectToken={token}"),
        "reconnect_token": token
    }))
    .into_response()
}

async fn admin_add_pull(
    State(state): State<Arc<Mutex<SimState>>>,
    Json(pull): Json<Value>,
) -> Response {
    let Some(id) = pull["pull_id"].as_str().map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "pull_id missing");
    };
    lock(&state).pulls.insert(id, pull);
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
