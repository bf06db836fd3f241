//! The reconnect-api handler: routes to [`ReconnectService`], errors to statuses. Called by
//! the consumer's browser; API Gateway's JWT authorizer has checked the token and put its
//! claims in the request context before a request gets here.

use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::{limits, sessions, DynamoStore};
use canopy_monitor::app::reconnect::{ReconnectError, ReconnectService, SessionKey};
use canopy_monitor::ports::canopy::{CanopyApi, WidgetApi};
use canopy_monitor::ports::store::{LimitStore, MonitoringStore, SessionStore};
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::{Clock, SystemClock};
use canopy_monitor::runtime::config::ReconnectEnv;
use canopy_monitor::runtime::responses::{self, by_method, NoRoute};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};
use std::time::Duration;

/// Every route this function serves, as template.yaml wires them (a test holds the two
/// together).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/reconnect/sessions"),
    ("POST", "/v1/reconnect/token"),
    ("GET", "/v1/reconnect/sessions/{session_id}"),
    ("POST", "/v1/reconnect/sessions/{session_id}/connect"),
    ("POST", "/v1/reconnect/sessions/{session_id}/idvoptions"),
    ("POST", "/v1/reconnect/sessions/{session_id}/idv"),
];

/// The partition key prefixes of every item this function writes (sessions, per-subject
/// budgets): template.yaml allows its writes on these alone (`dynamodb:LeadingKeys`; a test
/// holds the two together).
pub const WRITTEN_KEY_PREFIXES: &[&str] = &[sessions::SESSION_PK_PREFIX, limits::LIMIT_PK_PREFIX];

/// The longest `wait` a poll may ask for; the service waits at most its `max_wait` (10 s by
/// default) whatever is asked.
pub const MAX_WAIT_PARAM: i64 = 20;

/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub type AwsReconnectService = ReconnectService<DynamoStore, CanopyClient, SystemClock>;

/// The service and the claim that names the caller.
pub struct ReconnectApi<S, K, C> {
    pub service: ReconnectService<S, K, C>,
    pub subject_claim: String,
}

pub type AwsReconnectApi = ReconnectApi<DynamoStore, CanopyClient, SystemClock>;

/// Builds the API from the environment (see docs/configuration.md).
pub async fn api_from_env(aws: &aws_config::SdkConfig) -> Result<AwsReconnectApi, ConfigError> {
    api_from(ReconnectEnv::from_env()?, aws).await
}

/// Builds the API from explicit settings (the local runner's and the tests' way in).
pub async fn api_from(
    env: ReconnectEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsReconnectApi, ConfigError> {
    let credentials = env
        .canopy
        .credentials(&aws_sdk_secretsmanager::Client::new(aws))
        .await?;
    // Sessions are sealed with a key derived from the primary source's credentials.
    let key = SessionKey::derive(credentials.primary().1).map_err(|e| ConfigError::Invalid {
        name: "CANOPY_API_SECRET_ID",
        detail: e.to_string(),
    })?;
    let canopy = env.canopy.clients_with(credentials)?;
    Ok(ReconnectApi {
        service: ReconnectService::new(
            DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name),
            canopy,
            SystemClock,
            key,
            env.reconnect,
        ),
        subject_claim: env.subject_claim,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Start,
    Token,
    Poll(String),
    Connect(String),
    ChooseOption(String),
    SubmitCode(String),
}

/// Resolves a request to a route.
pub fn route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let segments = responses::segments(path);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let post = |route| by_method(method, "POST", [(Method::POST, route)]);
    match segments.as_slice() {
        ["v1", "reconnect", "sessions"] => post(Route::Start),
        ["v1", "reconnect", "token"] => post(Route::Token),
        ["v1", "reconnect", "sessions", id] => by_method(
            method,
            "GET",
            [(Method::GET, Route::Poll((*id).to_owned()))],
        ),
        ["v1", "reconnect", "sessions", id, "connect"] => post(Route::Connect((*id).to_owned())),
        ["v1", "reconnect", "sessions", id, "idvoptions"] => {
            post(Route::ChooseOption((*id).to_owned()))
        }
        ["v1", "reconnect", "sessions", id, "idv"] => post(Route::SubmitCode((*id).to_owned())),
        _ => Err(NoRoute::NotFound),
    }
}

/// The caller's subject: the configured claim of the JWT API Gateway verified.
pub fn subject(request: &Request, claim: &str) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get(claim)
            .filter(|s| !s.is_empty())
            .cloned(),
        _ => None,
    }
}

fn body_json(request: &Request) -> Result<Value, ReconnectError> {
    let raw = request.body().as_ref();
    let invalid = |problem: &str| ReconnectError::Invalid {
        field: "body",
        problem: problem.to_owned(),
    };
    if raw.len() > MAX_BODY_BYTES {
        return Err(invalid("too large"));
    }
    serde_json::from_slice(raw).map_err(|_| invalid("a JSON object is required"))
}

fn query_number(request: &Request, name: &'static str, max: i64) -> Result<i64, ReconnectError> {
    let params = request.query_string_parameters();
    match params.first(name) {
        None => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or(ReconnectError::Invalid {
                field: name,
                problem: format!("must be a number from 0 to {max}"),
            }),
    }
}

/// Handles one API Gateway request; a hung dependency ends in a 503 within
/// [`RECONNECT_BUDGET`](canopy_monitor::app::budget::RECONNECT_BUDGET), never a function timeout.
pub async fn handle<S, K, C>(api: &ReconnectApi<S, K, C>, request: Request) -> Response<Body>
where
    S: MonitoringStore + SessionStore + LimitStore,
    K: CanopyApi + WidgetApi,
    C: Clock,
{
    let budget = canopy_monitor::app::budget::RECONNECT_BUDGET;
    match tokio::time::timeout(budget, dispatch(api, request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(
                budget_secs = budget.as_secs(),
                "reconnect request timed out"
            );
            let mut response = responses::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timed_out",
                "The service is busy. Please try again in a moment.",
                &[],
            );
            responses::retry_after(&mut response, 5);
            no_store(response)
        }
    }
}

async fn dispatch<S, K, C>(api: &ReconnectApi<S, K, C>, request: Request) -> Response<Body>
where
    S: MonitoringStore + SessionStore + LimitStore,
    K: CanopyApi + WidgetApi,
    C: Clock,
{
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let route = match route(request.method(), &path) {
        Ok(r) => r,
        Err(why) => return no_store(responses::no_route(&path, &why)),
    };
    // API Gateway's authorizer refuses requests without a valid JWT; a missing claim here is
    // a misconfigured claim name or a route left without the authorizer.
    let Some(subject) = subject(&request, &api.subject_claim) else {
        tracing::warn!(claim = %api.subject_claim, "request without the subject claim");
        return respond(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "unauthorized", "message": "sign in again"}),
        );
    };
    let s = &api.service;
    let result = match route {
        Route::Start => match body_json(&request) {
            Ok(body) => s
                .start(&subject, &body)
                .await
                .map(|v| (StatusCode::CREATED, v)),
            Err(e) => Err(e),
        },
        Route::Token => match body_json(&request) {
            Ok(body) => s
                .fresh_token(&subject, &body)
                .await
                .map(|v| (StatusCode::OK, v)),
            Err(e) => Err(e),
        },
        Route::Connect(id) => match body_json(&request) {
            Ok(body) => s
                .connect(&subject, &id, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v)),
            Err(e) => Err(e),
        },
        Route::ChooseOption(id) => match body_json(&request) {
            Ok(body) => s
                .choose_option(&subject, &id, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v)),
            Err(e) => Err(e),
        },
        Route::SubmitCode(id) => match body_json(&request) {
            Ok(body) => s
                .submit_code(&subject, &id, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v)),
            Err(e) => Err(e),
        },
        Route::Poll(id) => {
            match (
                query_number(&request, "after", i64::MAX / 2),
                query_number(&request, "wait", MAX_WAIT_PARAM),
            ) {
                (Ok(after), Ok(wait)) => s
                    .poll(
                        &subject,
                        &id,
                        after,
                        Duration::from_secs(wait.unsigned_abs()),
                    )
                    .await
                    .map(|v| (StatusCode::OK, v)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
    };
    match result {
        Ok((status, body)) => respond(status, &body),
        Err(e) => error_response(&e),
    }
}

/// The one place reconnect errors become responses.
pub fn error_response(err: &ReconnectError) -> Response<Body> {
    let (status, code) = err.status_and_code();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "reconnect request failed");
    } else {
        tracing::info!(error = %err, status = status.as_u16(), "reconnect request refused");
    }
    let fields = match err {
        ReconnectError::Invalid { field, .. } => vec![("field", json!(field))],
        ReconnectError::Limited { limit, retry_after } => vec![
            ("limit", json!(limit.name())),
            ("retry_after", json!(retry_after)),
        ],
        _ => vec![],
    };
    let mut response = responses::error(status, &code, &err.message(), &fields);
    match err {
        ReconnectError::Limited { retry_after, .. } => {
            responses::retry_after(&mut response, *retry_after)
        }
        _ if status == StatusCode::SERVICE_UNAVAILABLE => responses::retry_after(&mut response, 5),
        _ => {}
    }
    no_store(response)
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    no_store(responses::json(status, body))
}

/// Answers name a consumer's session: never cached.
fn no_store(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_route_resolves() {
        for (method, template) in ROUTES {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let path = template.replace("{session_id}", "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e");
            assert!(route(&method, &path).is_ok(), "{method} {template}");
        }
        assert_eq!(
            route(&Method::GET, "/v1/reconnect/sessions"),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&Method::POST, "/v1/reconnect/sessions/x/other"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            route(&Method::GET, "/v1/monitorings"),
            Err(NoRoute::NotFound)
        );
    }

    #[test]
    fn a_spent_budget_answers_429_with_retry_after_and_names_the_limit() {
        let response = error_response(&ReconnectError::Limited {
            limit: canopy_monitor::app::reconnect::Limit::Tokens,
            retry_after: 42,
        });
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["error"], "too_many_requests");
        assert_eq!(body["limit"], "tokens");
        assert_eq!(body["retry_after"], 42);
    }
}
