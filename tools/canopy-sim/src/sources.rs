//! The teams and key pairs the fake serves: its *sources*. Canopy keeps sandbox and production
//! apart: keys of one type cannot reach the other type's pulls, monitorings or webhook
//! registrations (`400 {"error":"INCORRECT_API_KEY_TYPE"}`), and one team's keys cannot reach
//! another team (`403`). So every pull, monitoring, reconnect token and pull JWT belongs to one
//! source ([`SimState::owners`]), and the gate checks the caller's keys against it. That lets a
//! test prove a multi-team deployment sends each call with the right keys.

use crate::{SimState, CLIENT_ID, CLIENT_SECRET, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;

/// `SimSource::key_type` of production keys.
pub const PRODUCTION: &str = "production";
/// `SimSource::key_type` of sandbox keys.
pub const SANDBOX: &str = "sandbox";

/// One team and one of its key pairs, as Canopy issues them (per team and key type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSource {
    /// How tests and admin calls name it (`?source=` on `POST /_sim/pulls`).
    pub name: String,
    pub team_id: String,
    /// [`PRODUCTION`] or [`SANDBOX`].
    pub key_type: String,
    pub client_id: String,
    pub client_secret: String,
}

impl SimSource {
    /// Production keys ([`CLIENT_ID`] / [`CLIENT_SECRET`]) of `team_id`, named "production":
    /// what the fake served before it had several sources.
    pub fn production(team_id: impl Into<String>) -> Self {
        Self {
            name: PRODUCTION.to_owned(),
            team_id: team_id.into(),
            key_type: PRODUCTION.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
        }
    }

    /// Sandbox keys ([`SANDBOX_CLIENT_ID`] / [`SANDBOX_CLIENT_SECRET`]) of `team_id`, named
    /// "sandbox".
    pub fn sandbox(team_id: impl Into<String>) -> Self {
        Self {
            name: SANDBOX.to_owned(),
            team_id: team_id.into(),
            key_type: SANDBOX.to_owned(),
            client_id: SANDBOX_CLIENT_ID.to_owned(),
            client_secret: SANDBOX_CLIENT_SECRET.to_owned(),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        self.key_type == SANDBOX
    }
}

/// The credentials a request presents: HTTP Basic (the spec's scheme) if the header decodes,
/// else the `x-canopy-client-id` / `x-canopy-client-secret` headers the docs also accept.
/// Returns the client id and secret; either may be missing.
pub(crate) fn presented(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_owned())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    if let Some((id, secret)) = basic {
        return (Some(id), Some(secret));
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (text("x-canopy-client-id"), text("x-canopy-client-secret"))
}

/// Who is calling: the client id presented (for the request log) and the source whose key
/// pair matches, if any.
pub(crate) fn identify(s: &SimState, headers: &HeaderMap) -> (Option<String>, Option<usize>) {
    let (id, secret) = presented(headers);
    let caller = match (&id, &secret) {
        (Some(id), Some(secret)) => s
            .sources
            .iter()
            .position(|src| src.client_id == *id && src.client_secret == *secret),
        _ => None,
    };
    (id, caller)
}

/// Canopy's checks, in its order: keys known (401), keys of the resource's type (400
/// INCORRECT_API_KEY_TYPE), keys of the path's and the resource's team (403).
///
/// `team` is the path's team (None for routes without one, such as the reconnect-token
/// exchange). `id` names the resource (a pull, monitoring or reconnect token); one the fake
/// does not know, or "" for team-level calls, makes the caller's own source the resource's.
/// Returns the caller's source, or the status and error code to answer.
pub(crate) fn check(
    s: &SimState,
    caller: Option<usize>,
    team: Option<&str>,
    id: &str,
) -> Result<usize, (StatusCode, &'static str)> {
    let Some((index, me)) = caller.and_then(|i| s.sources.get(i).map(|src| (i, src))) else {
        return Err((StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    };
    let owner = s.owner(id).and_then(|i| s.sources.get(i));
    if owner.is_some_and(|o| o.key_type != me.key_type) {
        return Err((StatusCode::BAD_REQUEST, "INCORRECT_API_KEY_TYPE"));
    }
    let same_team =
        team.is_none_or(|t| t == me.team_id) && owner.is_none_or(|o| o.team_id == me.team_id);
    if !same_team {
        return Err((StatusCode::FORBIDDEN, "FORBIDDEN"));
    }
    Ok(index)
}
