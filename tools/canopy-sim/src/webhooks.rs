//! Canopy's Webhooks API (`/teams/{teamId}/webhooks[/{webhookId}]`) and the fake's sender.
//!
//! Canopy registers webhooks per team and key type, so here per source: the caller's keys
//! decide which registrations a call lists, makes, changes or deletes. Each registration has
//! its own signing secret. An event about a pull or monitoring goes to every active
//! registration of the source that owns it, signed with that registration's secret, with the
//! body's `team_id` set to that source's team.
//!
//! Event-type filter: the spec lets a registration choose among five types only
//! ([`EVENT_TYPES`]); it says nothing of the others (ERROR, MONITORING_RECONNECT,
//! MONITORING_EVENTS, DATA_UPDATED...), which a registration cannot name yet must receive for
//! Monitoring to work. So the filter applies to the five; every other event goes to every
//! active registration; and an empty or absent list (the spec is silent) means all types.
//!
//! Errors are the spec's: 400 INVALID_URL / INVALID_EVENT_TYPE on create; 400
//! INVALID_WEBHOOK_ID / INVALID_IS_ACTIVE / INVALID_EVENT_TYPE / NOT_FOUND on update (the spec
//! answers an unknown id with 400, not 404); 400 INVALID_WEBHOOK_ID on delete, and (our choice,
//! the spec lists no other code) 400 NOT_FOUND for an id this source does not have.

use crate::{error, gate, lock, send_webhooks, SimState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Shared = Arc<Mutex<SimState>>;

/// The event types a registration may name (the spec's `eventTypes` enum).
pub const EVENT_TYPES: &[&str] = &[
    "COMPLETE",
    "POLICIES_AVAILABLE",
    "POLICY_AVAILABLE",
    "AUTH_STATUS",
    "VALIDATION_COMPLETE",
];

/// A webhook registration as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimWebhook {
    pub webhook_id: String,
    /// The name of the source (team and key type) it belongs to.
    pub source: String,
    pub url: String,
    /// The types it asked for, among [`EVENT_TYPES`]; empty means all.
    pub event_types: Vec<String>,
    /// What its deliveries are signed with (tests read it to verify them).
    pub signing_secret: String,
    /// Inactive registrations receive nothing (`PATCH {isActive: false}`).
    pub is_active: bool,
    /// Made by [`crate::FakeCanopy::set_webhook`] / `POST /_sim/webhook` rather than the API:
    /// the next such call for the same source replaces it, as the single target once did.
    pub set_by_sim: bool,
}

impl SimWebhook {
    /// Whether an event of `event_type` is delivered to it (see the module doc).
    pub fn wants(&self, event_type: &str) -> bool {
        self.is_active
            && (self.event_types.is_empty()
                || !EVENT_TYPES.contains(&event_type)
                || self.event_types.iter().any(|t| t == event_type))
    }

    /// The spec's listing item.
    fn to_api(&self, is_sandbox: bool) -> Value {
        json!({
            "webhook_id": self.webhook_id, "signing_secret": self.signing_secret, "url": self.url,
            "is_sandbox": is_sandbox, "is_active": self.is_active, "event_types": self.event_types,
        })
    }
}

/// Webhooks for one registration: where, signed with what, and the bodies in order.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    pub secret: String,
    pub bodies: Vec<Value>,
}

/// What the registrations of source `source` receive of `bodies` (each body's `team_id` set to
/// the source's team). Empty when none wants any (the events are then lost, as at Canopy).
pub fn deliveries(s: &SimState, source: usize, bodies: &[Value]) -> Vec<Delivery> {
    let Some(src) = s.sources.get(source) else {
        return Vec::new();
    };
    let bodies: Vec<Value> = bodies
        .iter()
        .cloned()
        .map(|mut b| {
            if let Some(object) = b.as_object_mut() {
                object.insert("team_id".to_owned(), json!(src.team_id));
            }
            b
        })
        .collect();
    s.webhooks
        .iter()
        .filter(|w| w.source == src.name)
        .filter_map(|w| {
            let wanted: Vec<Value> = bodies
                .iter()
                .filter(|b| w.wants(b["event_type"].as_str().unwrap_or_default()))
                .cloned()
                .collect();
            (!wanted.is_empty()).then(|| Delivery {
                url: w.url.clone(),
                secret: w.signing_secret.clone(),
                bodies: wanted,
            })
        })
        .collect()
}

/// Sends each delivery's bodies in order, signed now. Failures are printed, not retried.
pub async fn deliver(deliveries: &[Delivery]) {
    for d in deliveries {
        if let Err(e) = send_webhooks(&d.url, &d.secret, &d.bodies).await {
            eprintln!("canopy-sim: webhooks not delivered: {e}");
        }
    }
}

/// Sends in the background, shortly after the answer, as Canopy does.
pub fn send_later(deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        deliver(&deliveries).await;
    });
}

/// Replaces source `source`'s admin-made registration ([`SimWebhook::set_by_sim`]) with one to
/// `url`, signed with `secret`, for every event type. False when there is no such source.
pub(crate) fn set_sim_webhook(s: &mut SimState, source: &str, url: &str, secret: &str) -> bool {
    if s.source_index(source).is_none() {
        return false;
    }
    s.webhooks.retain(|w| !(w.set_by_sim && w.source == source));
    s.webhooks.push(SimWebhook {
        webhook_id: uuid::Uuid::new_v4().to_string(),
        source: source.to_owned(),
        url: url.to_owned(),
        event_types: Vec::new(),
        signing_secret: secret.to_owned(),
        is_active: true,
        set_by_sim: true,
    });
    true
}

/// `hookUrl`: an absolute http(s) URL (http too, so tests can point at local receivers).
fn valid_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `eventTypes`: absent or null is None; else an array of [`EVENT_TYPES`] (duplicates
/// dropped), or Err.
fn event_types(value: Option<&Value>) -> Result<Option<Vec<String>>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut types: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let t = item
                    .as_str()
                    .filter(|t| EVENT_TYPES.contains(t))
                    .ok_or(())?;
                if !types.iter().any(|x| x == t) {
                    types.push(t.to_owned());
                }
            }
            Ok(Some(types))
        }
        Some(_) => Err(()),
    }
}

/// `GET /teams/{teamId}/webhooks`: the caller's source's registrations.
pub(crate) async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(team): Path<String>,
) -> Response {
    let path = format!("/teams/{team}/webhooks");
    let caller = match gate(&state, &headers, "GET", path, Some(team.as_str()), "").await {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let s = lock(&state);
    let Some(src) = s.sources.get(caller) else {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    };
    let webhooks: Vec<Value> = s
        .webhooks
        .iter()
        .filter(|w| w.source == src.name)
        .map(|w| w.to_api(src.is_sandbox()))
        .collect();
    Json(json!({"webhooks": webhooks})).into_response()
}

/// `POST /teams/{teamId}/webhooks {hookUrl, eventTypes}`: a registration for the caller's
/// source, with a fresh signing secret; answers `{webhook_id, signing_secret}`.
pub(crate) async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(team): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let path = format!("/teams/{team}/webhooks");
    let caller = match gate(&state, &headers, "POST", path, Some(team.as_str()), "").await {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let Some(url) = body
        .get("hookUrl")
        .and_then(Value::as_str)
        .filter(|u| valid_url(u))
    else {
        return error(StatusCode::BAD_REQUEST, "INVALID_URL");
    };
    let Ok(types) = event_types(body.get("eventTypes")) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_EVENT_TYPE");
    };
    let mut s = lock(&state);
    let Some(source) = s.sources.get(caller).map(|src| src.name.clone()) else {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    };
    let webhook = SimWebhook {
        webhook_id: uuid::Uuid::new_v4().to_string(),
        source,
        url: url.to_owned(),
        event_types: types.unwrap_or_default(),
        // 64 characters, like the spec's example secret.
        signing_secret: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        is_active: true,
        set_by_sim: false,
    };
    let answer =
        json!({"webhook_id": webhook.webhook_id, "signing_secret": webhook.signing_secret});
    s.webhooks.push(webhook);
    Json(answer).into_response()
}

/// The caller's registration `webhook_id`, as an index into `s.webhooks`; or the error code
/// to answer with 400.
fn find(s: &SimState, caller: usize, webhook_id: &str) -> Result<usize, &'static str> {
    if uuid::Uuid::parse_str(webhook_id).is_err() {
        return Err("INVALID_WEBHOOK_ID");
    }
    let source = s.sources.get(caller).map(|src| src.name.as_str());
    s.webhooks
        .iter()
        .position(|w| w.webhook_id == webhook_id && Some(w.source.as_str()) == source)
        .ok_or("NOT_FOUND")
}

/// `PATCH /teams/{teamId}/webhooks/{webhookId} {isActive, eventTypes}` (the spec's only
/// fields; others, such as a new URL, are ignored): answers `{success: true}`.
pub(crate) async fn update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, webhook_id)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let path = format!("/teams/{team}/webhooks/{webhook_id}");
    let caller = match gate(
        &state,
        &headers,
        "PATCH",
        path,
        Some(team.as_str()),
        &webhook_id,
    )
    .await
    {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    if uuid::Uuid::parse_str(&webhook_id).is_err() {
        return error(StatusCode::BAD_REQUEST, "INVALID_WEBHOOK_ID");
    }
    let is_active = match body.get("isActive") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return error(StatusCode::BAD_REQUEST, "INVALID_IS_ACTIVE"),
    };
    let Ok(types) = event_types(body.get("eventTypes")) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_EVENT_TYPE");
    };
    let mut s = lock(&state);
    let index = match find(&s, caller, &webhook_id) {
        Ok(index) => index,
        Err(code) => return error(StatusCode::BAD_REQUEST, code),
    };
    let Some(w) = s.webhooks.get_mut(index) else {
        return error(StatusCode::BAD_REQUEST, "NOT_FOUND");
    };
    if let Some(active) = is_active {
        w.is_active = active;
    }
    if let Some(types) = types {
        w.event_types = types;
    }
    Json(json!({"success": true})).into_response()
}

/// `DELETE /teams/{teamId}/webhooks/{webhookId}`: answers `{success: true}`.
pub(crate) async fn remove(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, webhook_id)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/webhooks/{webhook_id}");
    let caller = match gate(
        &state,
        &headers,
        "DELETE",
        path,
        Some(team.as_str()),
        &webhook_id,
    )
    .await
    {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let mut s = lock(&state);
    let index = match find(&s, caller, &webhook_id) {
        Ok(index) => index,
        Err(code) => return error(StatusCode::BAD_REQUEST, code),
    };
    s.webhooks.remove(index);
    Json(json!({"success": true})).into_response()
}

/// Admin: `POST /_sim/webhook {"url": ..., "secret": ..., "source": ...}` (source optional,
/// default the first): replaces that source's admin-made registration, as
/// [`crate::FakeCanopy::set_webhook_for`] does.
pub(crate) async fn admin_webhook(
    State(state): State<Shared>,
    Json(body): Json<HashMap<String, String>>,
) -> Response {
    let (Some(url), Some(secret)) = (body.get("url"), body.get("secret")) else {
        return error(StatusCode::BAD_REQUEST, "url and secret required");
    };
    let mut s = lock(&state);
    let source = match body.get("source") {
        Some(name) => name.clone(),
        None => match s.sources.first() {
            Some(src) => src.name.clone(),
            None => return error(StatusCode::BAD_REQUEST, "no source"),
        },
    };
    if set_sim_webhook(&mut s, &source, url, secret) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::BAD_REQUEST, "unknown source")
    }
}
