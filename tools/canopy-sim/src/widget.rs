//! The fake's whitelabel reconnect (`/widget/pull/...`), playing Canopy's sandbox logins:
//! - `user_good` (any password): AUTH_STATUS SUCCESS, then the refresh's POLICY_AVAILABLE,
//!   POLICIES_AVAILABLE and COMPLETE webhooks;
//! - `user_mfa`: IDENTITY_VERIFICATION_OPTIONS, then after an option IDENTITY_VERIFICATION; the
//!   code `000000` is wrong (IDENTITY_VERIFICATION again, with a message), any other succeeds;
//! - `user_locked`: NOT_AUTHENTICATED with a message; anything else: NOT_AUTHENTICATED, wrong
//!   credentials.
//!
//! The username travels as the Components token (`insurerUsername`): the fake reads the
//! sandbox login from it. `reconnectToken` takes the team's credentials (checked against the
//! token's source like any team call); the pull calls take the `pull-jwt` header and nothing
//! else. Webhooks are signed and sent to the registrations of the monitoring's source.

use crate::fixtures::{auth_status_webhook, reconnect_webhook, refresh_sequence, Subject};
use crate::webhooks::{deliveries, Delivery};
use crate::{error, gate, lock, sources, RecordedRequest, SimState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

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

/// Makes monitoring `monitoring_id` need a reconnect: a new pull (NOT_AUTHENTICATED, the
/// monitoring's source's) that the next reconnect token leads to, and the MONITORING_RECONNECT
/// webhook for the source's registrations (none when it has none).
pub fn need_reconnect(state: &Shared, monitoring_id: &str) -> Option<(String, Vec<Delivery>)> {
    let mut s = lock(state);
    let (pull_id, pull, subject) =
        crate::monitoring::next_pull(&s, monitoring_id, "NOT_AUTHENTICATED")?;
    let source = s.owner(monitoring_id).unwrap_or(0);
    s.insert_pull(pull_id.clone(), pull, source);
    s.reconnect_pulls
        .insert(monitoring_id.to_owned(), pull_id.clone());
    s.logins.insert(
        pull_id.clone(),
        SimLogin {
            monitoring_id: monitoring_id.to_owned(),
            ..SimLogin::default()
        },
    );
    let body = reconnect_webhook(
        &subject,
        &format!("https://app.usecanopy.com/c/demo/reconnect?reconnectToken=rt_hook_{pull_id}"),
        &format!("rt_hook_{pull_id}"),
    );
    let sending = deliveries(&s, source, &[body]);
    Some((pull_id, sending))
}

pub(crate) async fn exchange(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let token = body
        .as_ref()
        .and_then(|Json(b)| b["reconnect_token"].as_str())
        .unwrap_or_default();
    let path = "/widget/pull/reconnectToken".to_owned();
    // No team in the path: the token's source is the resource (its key type and team).
    if let Err(r) = gate(&state, &headers, "POST", path, None, token).await {
        return r;
    }
    if token.is_empty() {
        return error(StatusCode::BAD_REQUEST, "INVALID_RECONNECT_TOKEN");
    }
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
    let source = s.owner(&pull_id).or_else(|| s.owner(token)).unwrap_or(0);
    s.owners.insert(jwt.clone(), source);
    s.pull_jwts.insert(jwt.clone(), pull_id.clone());
    Json(json!({"pull_id": pull_id, "pull_jwt": jwt})).into_response()
}

/// Records the request and checks the `pull-jwt` header against the path's pull (team keys
/// are not needed, but a client id presented is logged). An unknown JWT (never issued, or
/// expired: a test empties `pull_jwts`) answers Canopy's 401 UNAUTHORIZED.
fn jwt_gate(
    s: &mut SimState,
    headers: &HeaderMap,
    path: String,
    pull_id: &str,
) -> Option<Response> {
    let jwt = headers.get("pull-jwt").and_then(|v| v.to_str().ok());
    let valid = jwt
        .and_then(|j| s.pull_jwts.get(j))
        .is_some_and(|p| p == pull_id);
    s.requests.push(RecordedRequest {
        method: "POST".to_owned(),
        path,
        client_id: sources::presented(headers).0,
        refused: (!valid).then(|| "UNAUTHORIZED".to_owned()),
    });
    (!valid).then(|| error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"))
}

fn text_field<'a>(body: &'a Value, field: &str, min: usize, max: usize) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|v| (min..=max).contains(&v.len()))
}

/// The AUTH_STATUS (and, on success, the refresh's webhooks) a login step leads to, for the
/// registrations of the pull's source.
fn advance(s: &mut SimState, pull_id: &str, status: &str, extra: Value) -> Option<Vec<Delivery>> {
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
    let source = s
        .owner(pull_id)
        .or_else(|| s.owner(&monitoring_id))
        .unwrap_or(0);
    Some(deliveries(s, source, &bodies))
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
    crate::webhooks::send_later(sending.unwrap_or_default());
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
    crate::webhooks::send_later(sending.unwrap_or_default());
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
    crate::webhooks::send_later(sending.unwrap_or_default());
    Json(json!({"pull_id": pull_id})).into_response()
}
