//! The fake's Monitoring API, with state: enable, patch, stop, refresh (which then sends the
//! refresh's webhooks), list with paging, and a monitoring with its pulls. Bodies are
//! validated as the spec says: required fields, the interval pattern and its 30-day minimum,
//! UUID path ids; errors are Canopy's codes. A monitoring belongs to its pull's source;
//! listings show the caller's source's only; a refresh's pull and webhooks are the
//! monitoring's source's.

use crate::fixtures::{refresh_sequence, Subject};
use crate::webhooks::{deliver, deliveries, Delivery};
use crate::{error, gate, lock, SimState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A monitoring as the fake keeps it.
#[derive(Debug, Clone)]
pub struct SimMonitoring {
    /// Canopy's Monitoring object.
    pub object: Value,
    /// Its pulls, newest first (the first is the one it was enabled on, at the end).
    pub pulls: Vec<String>,
    pub refreshing: bool,
}

/// What the next refresh of a monitoring changes, as a carrier would (and then Canopy reports
/// as MONITORING_EVENTS, one per webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimChange {
    /// The first policy is cancelled (CANCELED).
    CancelPolicy,
    /// The first policy's premium rises (ENDORSEMENT).
    RaisePremium { cents: i64 },
    /// The first vehicle's first coverage is dropped (ENDORSEMENT).
    DropCoverage,
    /// A vehicle is added to the first policy with vehicles (ENDORSEMENT).
    AddVehicle,
    /// The first policy renews: dates move a year on (RENEWAL).
    Renew,
}

/// Applies `change` to `pull`; returns the monitoring event Canopy would send for it.
pub fn apply_change(pull: &mut Value, change: &SimChange) -> Option<Value> {
    let policy = pull["policies"].get_mut(0)?;
    let policy_id = policy["policy_id"].clone();
    let (kind, changes) = match change {
        SimChange::CancelPolicy => {
            let before = policy["status"].clone();
            policy["status"] = json!("CANCELLED");
            (
                "CANCELED",
                json!([{"schema": "POLICY", "type": "UPDATE",
                "before": {"policy_id": policy_id, "status": before},
                "after": {"policy_id": policy_id, "status": "CANCELLED"}}]),
            )
        }
        SimChange::RaisePremium { cents } => {
            let before = policy["total_premium_cents"].as_i64().unwrap_or(0);
            policy["total_premium_cents"] = json!(before + cents);
            (
                "ENDORSEMENT",
                json!([{"schema": "POLICY", "type": "UPDATE",
                "before": {"policy_id": policy_id, "total_premium_cents": before},
                "after": {"policy_id": policy_id, "total_premium_cents": before + cents}}]),
            )
        }
        SimChange::Renew => {
            let shift = |v: &Value| {
                v.as_str()
                    .and_then(|d| {
                        d.get(..4)?
                            .parse::<i32>()
                            .ok()
                            .map(|y| format!("{}{}", y + 1, &d[4..]))
                    })
                    .map_or(Value::Null, Value::String)
            };
            let (eff, exp) = (
                policy["effective_date"].clone(),
                policy["expiry_date"].clone(),
            );
            policy["effective_date"] = shift(&eff);
            policy["expiry_date"] = shift(&exp);
            (
                "RENEWAL",
                json!([{"schema": "POLICY", "type": "UPDATE",
                "before": {"policy_id": policy_id, "effective_date": eff, "expiry_date": exp},
                "after": {"policy_id": policy_id, "effective_date": policy["effective_date"], "expiry_date": policy["expiry_date"]}}]),
            )
        }
        SimChange::DropCoverage => {
            let vehicle = policy["vehicles"].get_mut(0)?;
            let vehicle_id = vehicle["vehicle_id"].clone();
            let coverages = vehicle["coverages"].as_array_mut()?;
            if coverages.is_empty() {
                return None;
            }
            let dropped = coverages.remove(0);
            (
                "ENDORSEMENT",
                json!([{"schema": "VEHICLECOVERAGE", "type": "DELETE",
                "before": {"vehicle_coverage_id": dropped["vehicle_coverage_id"], "vehicle_id": vehicle_id, "policy_id": policy_id},
                "after": null}]),
            )
        }
        SimChange::AddVehicle => {
            let vehicle_id = uuid::Uuid::new_v4().to_string();
            policy["vehicles"].as_array_mut()?.push(json!({
                "vehicle_id": vehicle_id, "year": 2024, "make": "TESLA", "model": "MODEL 3",
                "vin": format!("5YJ3E1EA{}", &vehicle_id.replace('-', "")[..9].to_uppercase()), "coverages": []}));
            (
                "ENDORSEMENT",
                json!([{"schema": "VEHICLE", "type": "CREATE", "before": null,
                "after": {"vehicle_id": vehicle_id, "policy_id": policy_id}}]),
            )
        }
    };
    Some(json!({"type": kind, "changes": changes, "documents": []}))
}

type Shared = Arc<Mutex<SimState>>;

fn now_text() -> String {
    canopy_monitor::domain::time_fmt::format_ts(time::OffsetDateTime::now_utc())
}

/// Canopy's interval rule: the spec's ISO-8601 pattern, days / months / years (weeks too),
/// at least 30 days.
fn interval_days(text: &str) -> Option<u64> {
    canopy_monitor::domain::monitoring::validate_interval(text)
        .ok()
        .map(|_| 30)
        .or_else(|| {
            // Valid syntax but too short: tell the two apart for the error code.
            let rest = text.strip_prefix('P')?;
            (!rest.is_empty()
                && !rest.contains('T')
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || "YMWD".contains(c)))
            .then_some(0)
        })
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

fn is_date(text: &str) -> bool {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

fn date_field(body: &Value, field: &str) -> Result<Option<Value>, ()> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Value::Null)),
        Some(Value::String(s)) if is_date(s) => Ok(Some(json!(s))),
        Some(_) => Err(()),
    }
}

pub(crate) async fn enable(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(team): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let pull_id = body["pull_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/teams/{team}/monitorings");
    // The resource is the pull: keys of another type or team cannot monitor it.
    if let Err(r) = gate(
        &state,
        &headers,
        "POST",
        path,
        Some(team.as_str()),
        &pull_id,
    )
    .await
    {
        return r;
    }
    let interval = body["interval"].as_str().unwrap_or_default();
    if !is_uuid(&pull_id) || interval_days(interval).unwrap_or(0) < 30 {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    }
    let (Ok(next), Ok(stop)) = (
        date_field(&body, "next_pull_date"),
        date_field(&body, "stop_after_date"),
    ) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    };
    let mut s = lock(&state);
    let Some(pull) = s.pulls.get(&pull_id) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if pull["status"] != "SUCCESS" {
        return error(StatusCode::BAD_REQUEST, "PULL_NOT_SUCCESS");
    }
    if pull.get("_sim_too_old") == Some(&json!(true)) {
        return error(StatusCode::BAD_REQUEST, "PULL_TOO_OLD");
    }
    // Canopy keeps one monitoring per account: enabling again answers the active one.
    if let Some(existing) = s
        .monitorings
        .values()
        .find(|m| m.object["status"] == "ACTIVE" && m.pulls.contains(&pull_id))
    {
        return Json(json!({"success": true, "monitoring": existing.object})).into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    let source = s.owner(&pull_id).unwrap_or(0);
    s.owners.insert(id.clone(), source);
    let object = json!({
        "monitoring_id": id, "latest_pull_id": pull_id, "status": "ACTIVE", "interval": interval,
        "next_pull_date": next.unwrap_or(json!("2027-01-01T00:00:00.000Z")),
        "stop_after_date": stop.unwrap_or(Value::Null),
    });
    s.monitoring_order.push(id.clone());
    s.monitorings.insert(
        id,
        SimMonitoring {
            object: object.clone(),
            pulls: vec![pull_id],
            refreshing: false,
        },
    );
    Json(json!({"success": true, "monitoring": object})).into_response()
}

/// Checks the path id: the error answer, if any.
fn refuse_id(s: &SimState, id: &str) -> Option<Response> {
    if !is_uuid(id) {
        return Some(error(StatusCode::BAD_REQUEST, "INVALID_MONITORING_ID"));
    }
    if !s.monitorings.contains_key(id) {
        return Some(error(StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    None
}

pub(crate) async fn patch(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}");
    if let Err(r) = gate(&state, &headers, "PATCH", path, Some(team.as_str()), &id).await {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or(json!({}));
    let mut s = lock(&state);
    if let Some(r) = refuse_id(&s, &id) {
        return r;
    }
    if let Some(interval) = body.get("interval") {
        match interval.as_str().and_then(interval_days) {
            None => return error(StatusCode::BAD_REQUEST, "INVALID_INTERVAL"),
            Some(days) if days < 30 => return error(StatusCode::BAD_REQUEST, "INTERVAL_TOO_SHORT"),
            Some(_) => {}
        }
    }
    let Ok(stop) = date_field(&body, "stop_after_date") else {
        return error(StatusCode::BAD_REQUEST, "INVALID_STOP_AFTER");
    };
    let Ok(next) = date_field(&body, "next_pull_date") else {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    };
    if let Some(status) = body.get("status") {
        if status != "ACTIVE" && status != "STOPPED" {
            return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
        }
    }
    let Some(m) = s.monitorings.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    for (field, value) in [
        ("interval", body.get("interval").cloned()),
        ("status", body.get("status").cloned()),
        ("next_pull_date", next),
        ("stop_after_date", stop),
    ] {
        if let Some(v) = value {
            m.object[field] = v;
        }
    }
    Json(json!({"success": true, "monitoring": m.object})).into_response()
}

pub(crate) async fn stop(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}");
    if let Err(r) = gate(&state, &headers, "DELETE", path, Some(team.as_str()), &id).await {
        return r;
    }
    let mut s = lock(&state);
    if let Some(r) = refuse_id(&s, &id) {
        return r;
    }
    let Some(m) = s.monitorings.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    m.object["status"] = json!("STOPPED");
    m.object["next_pull_date"] = Value::Null;
    Json(json!({"success": true, "monitoring": m.object})).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    before: Option<String>,
    pull_id: Option<String>,
    account_identifier: Option<String>,
    status: Option<String>,
}

pub(crate) async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(team): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let path = format!("/teams/{team}/monitorings");
    let caller = match gate(&state, &headers, "GET", path, Some(team.as_str()), "").await {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    if q.pull_id.is_some() && q.account_identifier.is_some() {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    }
    if q.before.as_deref().is_some_and(|b| !is_uuid(b)) {
        return error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    }
    let s = lock(&state);
    // The caller's source's, newest first; `before` continues after the named monitoring.
    let matching: Vec<&SimMonitoring> = s
        .monitoring_order
        .iter()
        .rev()
        .filter(|id| s.owner(id) == Some(caller))
        .filter_map(|id| s.monitorings.get(id))
        .filter(|m| q.status.as_ref().is_none_or(|st| m.object["status"] == *st))
        .filter(|m| {
            q.pull_id
                .as_ref()
                .is_none_or(|p| m.pulls.iter().any(|x| x == p))
        })
        .collect();
    let start = match &q.before {
        Some(b) => matching
            .iter()
            .position(|m| m.object["monitoring_id"] == *b)
            .map_or(matching.len(), |i| i + 1),
        None => 0,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page: Vec<&Value> = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| &m.object)
        .collect();
    Json(json!({"monitorings_count": matching.len(), "monitorings": page})).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct GetQuery {
    with_pulls: Option<bool>,
    limit: Option<usize>,
}

pub(crate) async fn get(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}");
    if let Err(r) = gate(&state, &headers, "GET", path, Some(team.as_str()), &id).await {
        return r;
    }
    let s = lock(&state);
    if let Some(r) = refuse_id(&s, &id) {
        return r;
    }
    let Some(m) = s.monitorings.get(&id) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    let mut answer = json!({"monitoring": m.object});
    if q.with_pulls == Some(true) {
        let pulls: Vec<Value> = m
            .pulls
            .iter()
            .take(q.limit.unwrap_or(100))
            .filter_map(|p| s.pulls.get(p))
            .map(|p| {
                json!({"pull_id": p["pull_id"], "widget_id": p.get("widget_id"),
                    "created_at": p["created_at"], "status": p["status"],
                    "monitoring_status": m.object["status"]})
            })
            .collect();
        answer["pulls"] = json!(pulls);
    }
    Json(answer).into_response()
}

pub(crate) async fn refresh(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/teams/{team}/monitorings/{id}/refresh");
    if let Err(r) = gate(&state, &headers, "POST", path, Some(team.as_str()), &id).await {
        return r;
    }
    let started = {
        let mut s = lock(&state);
        if let Some(r) = refuse_id(&s, &id) {
            return r;
        }
        let Some(m) = s.monitorings.get(&id) else {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND");
        };
        if m.object["status"] != "ACTIVE" {
            return error(StatusCode::BAD_REQUEST, "MONITORING_INACTIVE");
        }
        if m.refreshing {
            return error(StatusCode::BAD_REQUEST, "CURRENTLY_REFRESHING");
        }
        s.refreshes += 1;
        start_refresh(&mut s, &id, true)
    };
    let Some((pull_id, sending)) = started else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if !sending.is_empty() {
        let state = state.clone();
        let id = id.clone();
        tokio::spawn(async move {
            // Canopy's refresh takes a while; the answer comes first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            deliver(&sending).await;
            if let Some(m) = lock(&state).monitorings.get_mut(&id) {
                m.refreshing = false;
            }
        });
    }
    Json(json!({"pull_id": pull_id})).into_response()
}

/// A new pull of monitoring `id`: a copy of its latest, with a new id, created now, of
/// `status`; and whom its webhooks are about. Refreshes and reconnects start with one.
pub fn next_pull(s: &SimState, id: &str, status: &str) -> Option<(String, Value, Subject)> {
    let m = s.monitorings.get(id)?;
    let initial = m.pulls.last()?.clone();
    let mut pull = s.pulls.get(m.pulls.first()?)?.clone();
    let pull_id = uuid::Uuid::new_v4().to_string();
    pull["pull_id"] = json!(pull_id);
    pull["created_at"] = json!(now_text());
    pull["status"] = json!(status);
    let subject = Subject {
        pull_id: pull_id.clone(),
        monitoring_id: Some(id.to_owned()),
        initial_pull_id: Some(initial),
        meta_data: pull.get("meta_data").cloned().unwrap_or(Value::Null),
    };
    Some((pull_id, pull, subject))
}

/// Makes the refresh's new pull (the monitoring's source's) and decides what is sent: its
/// webhooks, to the source's registrations if `send` (when none is to be sent, the refresh
/// completes at once, its webhooks lost). Returns the new pull's id and the deliveries.
pub fn start_refresh(s: &mut SimState, id: &str, send: bool) -> Option<(String, Vec<Delivery>)> {
    let (pull_id, mut pull, subject) = next_pull(s, id, "SUCCESS")?;
    let events: Vec<Value> = s
        .refresh_changes
        .remove(id)
        .unwrap_or_default()
        .iter()
        .filter_map(|change| apply_change(&mut pull, change))
        .collect();
    let mut bodies = refresh_sequence(&subject, &pull);
    // Canopy compares the refresh with the previous pull and reports each event once it is in.
    bodies.extend(
        events
            .into_iter()
            .map(|e| crate::fixtures::monitoring_events_webhook(&subject, e)),
    );
    let source = s.owner(id).unwrap_or(0);
    s.insert_pull(pull_id.clone(), pull, source);
    let sending = if send {
        deliveries(s, source, &bodies)
    } else {
        Vec::new()
    };
    let m = s.monitorings.get_mut(id)?;
    m.pulls.insert(0, pull_id.clone());
    m.object["latest_pull_id"] = json!(pull_id);
    if !sending.is_empty() {
        m.refreshing = true;
    }
    Some((pull_id, sending))
}
