//! The fake's whitelabel reconnect (`/widget/pull/...`), playing Canopy's sandbox logins:
//! - `user_good` (any password): AUTH_STATUS SUCCESS, then the refresh's POLICY_AVAILABLE,
//!   POLICIES_AVAILABLE and COMPLETE webhooks;
//! - `user_mfa`: IDENTITY_VERIFICATION_OPTIONS, then after an option IDENTITY_VERIFICATION; the
//!   code `000000` is wrong (IDENTITY_VERIFICATION again, with a message), any other succeeds;
//! - `user_locked`: NOT_AUTHENTICATED with a message; anything else: NOT_AUTHENTICATED, wrong
//!   credentials.
//!
//! The username travels as the Components token (`insurerUsername`): the fake reads the
//! sandbox login from it. `reconnectToken` takes the team's Basic auth; the pull calls take the
//! `pull-jwt` header and nothing else. Webhooks are signed and sent to the configured target.

use crate::fixtures::{auth_status_webhook, reconnect_webhook, refresh_sequence, Subject};
use crate::{error, gate, lock, send_webhooks, RecordedRequest, SimState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Shared = Arc<Mutex<SimState>>;

/// Where a pull's whitelabel login stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Awaiting {
    #[default]
    Credentials,
    MfaOption,
    MfaCode,
    Done,
}

/// A pull being reconnected.
#[derive(Debug, Clone, Default)]
pub struct SimLogin {
    pub monitoring_id: String,
    pub sequence: i64,
    pub awaiting: Awaiting,
}

pub const MFA_OPTIONS: &[(&str, &str)] = &[
    ("sms_0000", "Text message to (***) ***-0000"),
    ("email_ck", "Email to c***@example.com"),
];

/// Makes monitoring `monitoring_id` need a reconnect: a new pull (NOT_AUTHENTICATED) that the
/// next reconnect token leads to, and the MONITORING_RECONNECT webhook (when a target is set).
pub fn need_reconnect(state: &Shared, monitoring_id: &str) -> Option<(String, Option<Sending>)> {
    let mut s = lock(state);
    let (pull_id, pull, subject) =
        crate::monitoring::next_pull(&s, monitoring_id, "NOT_AUTHENTICATED")?;
    s.pulls.insert(pull_id.clone(), pull);
    s.reconnect_pulls
        .insert(monitoring_id.to_owned(), pull_id.clone());
    s.logins.insert(
        pull_id.clone(),
        SimLogin {
            monitoring_id: monitoring_id.to_owned(),
            ..SimLogin::default()
        },
    );
    let sending = s.webhook.clone().map(|(url, secret)| {
        (
            url,
            secret,
            vec![reconnect_webhook(
                &subject,
                &format!(
                    "https://app.usecanopy.com/c/demo/reconnect?reconnectToken=rt_hook_{pull_id}"
                ),
                &format!("rt_hook_{pull_id}"),
            )],
        )
    });
    Some((pull_id, sending))
}

/// Webhooks to send: target, secret, bodies.
pub type Sending = (String, String, Vec<Value>);

/// Sends in the background, as Canopy does after answering.
pub fn send_later(sending: Option<Sending>) {
    if let Some((url, secret, bodies)) = sending {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Err(e) = send_webhooks(&url, &secret, &bodies).await {
                eprintln!("canopy-sim: webhooks not delivered: {e}");
            }
        });
    }
}

pub(crate) async fn exchange(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let team = lock(&state).team_id.clone();
    let path = "/widget/pull/reconnectToken".to_owned();
    if let Some(r) = gate(&state, &headers, "POST", path, &team, "").await {
        return r;
    }
    let Some(token) = body
        .as_ref()
        .and_then(|Json(b)| b["reconnect_token"].as_str())
    else {
        return error(StatusCode::BAD_REQUEST, "INVALID_RECONNECT_TOKEN");
    };
    let mut s = lock(&state);
    if let Some(code) = s.exchange_refusal.take() {
        return error(StatusCode::BAD_REQUEST, &code);
    }
    let Some((monitoring_id, token_pull)) = s.issued_tokens.get(token).cloned() else {
        return error(StatusCode::BAD_REQUEST, "INVALID_RECONNECT_TOKEN");
    };
    if s.monitorings
        .get(&monitoring_id)
        .is_some_and(|m| m.object["status"] != "ACTIVE")
    {
        return error(StatusCode::BAD_REQUEST, "MONITORING_INACTIVE");
    }
    let Some(pull_id) = s.reconnect_pulls.get(&monitoring_id).cloned() else {
        return error(StatusCode::BAD_REQUEST, "ALREADY_RECONNECTED");
    };
    if token_pull.as_deref() != Some(pull_id.as_str()) {
        return error(StatusCode::BAD_REQUEST, "NEWER_PULL_AVAILABLE");
    }
    let jwt = format!("sim.{}.jwt", uuid::Uuid::new_v4().simple());
    s.pull_jwts.insert(jwt.clone(), pull_id.clone());
    Json(json!({"pull_id": pull_id, "pull_jwt": jwt})).into_response()
}

/// Records the request and checks the `pull-jwt` header against the path's pull. An unknown
/// JWT (never issued, or expired: a test empties `pull_jwts`) answers Canopy's 401
/// UNAUTHORIZED.
fn jwt_gate(
    s: &mut SimState,
    headers: &HeaderMap,
    path: String,
    pull_id: &str,
) -> Option<Response> {
    s.requests.push(RecordedRequest {
        method: "POST".to_owned(),
        path,
    });
    let jwt = headers.get("pull-jwt").and_then(|v| v.to_str().ok());
    match jwt.and_then(|j| s.pull_jwts.get(j)) {
        Some(p) if p == pull_id => None,
        _ => Some(error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED")),
    }
}

fn text_field<'a>(body: &'a Value, field: &str, min: usize, max: usize) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|v| (min..=max).contains(&v.len()))
}

/// The AUTH_STATUS (and, on success, the refresh's webhooks) a login step leads to.
fn advance(s: &mut SimState, pull_id: &str, status: &str, extra: Value) -> Option<Sending> {
    let login = s.logins.get_mut(pull_id)?;
    login.sequence += 1;
    let sequence = login.sequence;
    let monitoring_id = login.monitoring_id.clone();
    let initial = s
        .monitorings
        .get(&monitoring_id)
        .and_then(|m| m.pulls.last().cloned());
    let pull = s.pulls.get_mut(pull_id)?;
    let subject = Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: Some(monitoring_id.clone()),
        initial_pull_id: initial,
        meta_data: pull.get("meta_data").cloned().unwrap_or(Value::Null),
    };
    let mut bodies = vec![auth_status_webhook(&subject, status, sequence, extra)];
    if status == "SUCCESS" {
        pull["status"] = json!("SUCCESS");
        let done = pull.clone();
        bodies.extend(refresh_sequence(&subject, &done));
        s.reconnect_pulls.remove(&monitoring_id);
        if let Some(m) = s.monitorings.get_mut(&monitoring_id) {
            m.pulls.insert(0, pull_id.to_owned());
            m.object["latest_pull_id"] = json!(pull_id);
        }
    } else {
        pull["status"] = json!(status);
    }
    let (url, secret) = s.webhook.clone()?;
    Some((url, secret, bodies))
}

pub(crate) async fn connect(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pull_id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let sending = {
        let mut s = lock(&state);
        let path = format!("/widget/pull/{pull_id}/connect");
        if let Some(r) = jwt_gate(&mut s, &headers, path, &pull_id) {
            return r;
        }
        let (Some(_insurer), Some(username)) = (
            text_field(&body, "insurerName", 1, 100),
            text_field(&body, "insurerUsername", 5, 200),
        ) else {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        };
        if body.get("insurerPassword").is_some()
            && text_field(&body, "insurerPassword", 5, 200).is_none()
        {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        }
        let username = username.to_owned();
        let (status, extra, next) = match username.as_str() {
            "user_good" => ("SUCCESS", json!({}), Awaiting::Done),
            "user_mfa" => (
                "IDENTITY_VERIFICATION_OPTIONS",
                json!({"mfa_options": MFA_OPTIONS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()}),
                Awaiting::MfaOption,
            ),
            "user_locked" => (
                "NOT_AUTHENTICATED",
                json!({"login_error_message": "Your account is locked. Contact your insurer to unlock it."}),
                Awaiting::Credentials,
            ),
            _ => (
                "NOT_AUTHENTICATED",
                json!({"login_error_message": "The username or password is incorrect."}),
                Awaiting::Credentials,
            ),
        };
        match s.logins.get_mut(&pull_id) {
            Some(login) if login.awaiting == Awaiting::Credentials => login.awaiting = next,
            Some(_) => return error(StatusCode::BAD_REQUEST, "INVALID_ACTION"),
            None => return error(StatusCode::NOT_FOUND, "NOT_FOUND"),
        }
        advance(&mut s, &pull_id, status, extra)
    };
    send_later(sending);
    Json(json!({"pull": {"pull_id": pull_id}, "shouldPoll": true})).into_response()
}

pub(crate) async fn idv_options(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pull_id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let sending = {
        let mut s = lock(&state);
        let path = format!("/widget/pull/{pull_id}/idvoptions");
        if let Some(r) = jwt_gate(&mut s, &headers, path, &pull_id) {
            return r;
        }
        let Some(key) = body["optionKey"].as_str() else {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        };
        if !MFA_OPTIONS.iter().any(|(k, _)| *k == key) {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        }
        match s.logins.get_mut(&pull_id) {
            Some(login) if login.awaiting == Awaiting::MfaOption => {
                login.awaiting = Awaiting::MfaCode
            }
            Some(_) => return error(StatusCode::BAD_REQUEST, "INVALID_ACTION"),
            None => return error(StatusCode::NOT_FOUND, "NOT_FOUND"),
        }
        advance(&mut s, &pull_id, "IDENTITY_VERIFICATION", json!({}))
    };
    send_later(sending);
    Json(json!({"pull_id": pull_id})).into_response()
}

pub(crate) async fn idv(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pull_id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let sending = {
        let mut s = lock(&state);
        let path = format!("/widget/pull/{pull_id}/idv");
        if let Some(r) = jwt_gate(&mut s, &headers, path, &pull_id) {
            return r;
        }
        let Some(code) = body["mfaValue"].as_str().map(str::to_owned) else {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        };
        match s.logins.get(&pull_id).map(|l| l.awaiting.clone()) {
            Some(Awaiting::MfaCode) => {}
            Some(_) => return error(StatusCode::BAD_REQUEST, "INVALID_ACTION"),
            None => return error(StatusCode::NOT_FOUND, "NOT_FOUND"),
        }
        if code == "000000" {
            advance(
                &mut s,
                &pull_id,
                "IDENTITY_VERIFICATION",
                json!({"login_error_message": "That code is not right. Please try again."}),
            )
        } else {
            if let Some(login) = s.logins.get_mut(&pull_id) {
                login.awaiting = Awaiting::Done;
            }
            advance(&mut s, &pull_id, "SUCCESS", json!({}))
        }
    };
    send_later(sending);
    Json(json!({"pull_id": pull_id})).into_response()
}
