//! The monitoring-api handler: routes to [`MonitoringApi`] methods, errors to statuses.
//! API Gateway authorizes every route with AWS_IAM (SigV4) before a request gets here.

use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::cursor::CursorKey;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::monitoring_api::{flag, Answer, ApiError, MonitoringApi};
use canopy_monitor::domain::gzip::{self, GzipError};
use canopy_monitor::ports::canopy::MonitoringControl;
use canopy_monitor::ports::queue::WorkQueue;
use canopy_monitor::ports::store::{IntakeStore, MonitoringStore};
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::{Clock, SystemClock};
use canopy_monitor::runtime::config::ApiEnv;
use canopy_monitor::runtime::responses::{self, by_method, NoRoute};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};

/// Every route this function serves, as in `openapi/monitoring-api.json` and template.yaml
/// (tests hold the three together).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/monitorings"),
    ("GET", "/v1/monitorings"),
    ("GET", "/v1/monitorings/{monitoring_id}"),
    ("PATCH", "/v1/monitorings/{monitoring_id}"),
    ("DELETE", "/v1/monitorings/{monitoring_id}"),
    ("POST", "/v1/monitorings/{monitoring_id}/refresh"),
    ("GET", "/v1/monitorings/{monitoring_id}/changes"),
    ("GET", "/v1/pulls/{pull_id}"),
    ("POST", "/v1/events/{dedupe_key}/replay"),
];

/// Largest request body read: the API's bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Lambda answers at most 6 MB (6,291,456 bytes) of response payload: the JSON envelope API
/// Gateway reads, with the body escaped into it (or base64-encoded, a third more) and the
/// headers. [`payload_bytes`] sizes that envelope; a margin is kept for what it rounds.
pub const MAX_RESPONSE_BYTES: usize = 6_291_456 - 16 * 1024;

pub type AwsMonitoringApi = MonitoringApi<DynamoStore, SqsWorkQueue, CanopyClient, SystemClock>;

/// Builds the API from the environment (see docs/configuration.md).
pub async fn api_from_env(aws: &aws_config::SdkConfig) -> Result<AwsMonitoringApi, ConfigError> {
    api_from(ApiEnv::from_env()?, aws).await
}

/// Builds the API from explicit settings (the local runner's and the tests' way in).
pub async fn api_from(
    env: ApiEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsMonitoringApi, ConfigError> {
    let sm = aws_sdk_secretsmanager::Client::new(aws);
    let credentials = env.canopy.credentials(&sm).await?;
    // Listing cursors are signed with a key every instance derives from the same secret.
    let cursor_key = CursorKey::derive(credentials.primary().1.client_secret.as_bytes());
    let canopy = env.canopy.clients_with(credentials)?;
    Ok(MonitoringApi::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name)
            .with_cursor_key(cursor_key),
        SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(aws),
            env.fetch_queue_url,
            env.notify_queue_url,
        ),
        canopy,
        SystemClock,
        env.api,
    ))
}

/// A request resolved to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Enable,
    List,
    Get(String),
    Update(String),
    Stop(String),
    Refresh(String),
    Changes(String),
    Pull(String),
    Replay(String),
}

/// Resolves `method` and `path` (percent-decoded segments) to a route.
pub fn route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let segments = responses::segments(path);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |id: &str| id.to_owned();
    match segments.as_slice() {
        ["v1", "monitorings"] => by_method(
            method,
            "GET, POST",
            [(Method::POST, Route::Enable), (Method::GET, Route::List)],
        ),
        ["v1", "monitorings", m] => by_method(
            method,
            "GET, PATCH, DELETE",
            [
                (Method::GET, Route::Get(id(m))),
                (Method::PATCH, Route::Update(id(m))),
                (Method::DELETE, Route::Stop(id(m))),
            ],
        ),
        ["v1", "monitorings", m, "refresh"] => {
            by_method(method, "POST", [(Method::POST, Route::Refresh(id(m)))])
        }
        ["v1", "monitorings", m, "changes"] => {
            by_method(method, "GET", [(Method::GET, Route::Changes(id(m)))])
        }
        ["v1", "pulls", p] => by_method(method, "GET", [(Method::GET, Route::Pull(id(p)))]),
        ["v1", "events", key, "replay"] => {
            by_method(method, "POST", [(Method::POST, Route::Replay(id(key)))])
        }
        _ => Err(NoRoute::NotFound),
    }
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    let params = request.query_string_parameters();
    params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn header_text<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The request's JSON body, or the error that says what is wrong with it.
fn json_body(request: &Request) -> Result<Value, ApiError> {
    let raw = request.body().as_ref();
    if raw.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let invalid = |problem: String| {
        ApiError::Invalid(canopy_monitor::domain::monitoring::Invalid {
            field: "body",
            problem,
        })
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("a JSON object is required".to_owned()));
    }
    serde_json::from_slice(raw).map_err(|e| invalid(format!("not valid JSON ({e})")))
}

/// Handles one API Gateway request. A hung dependency ends in a 503 within
/// [`API_BUDGET`](canopy_monitor::app::budget::API_BUDGET), never a function timeout: an
/// idempotency key left behind runs out with its lease, a refresh guard with its window.
pub async fn handle<S, Q, K, C>(api: &MonitoringApi<S, Q, K, C>, request: Request) -> Response<Body>
where
    S: MonitoringStore + IntakeStore,
    Q: WorkQueue,
    K: MonitoringControl,
    C: Clock,
{
    let budget = canopy_monitor::app::budget::API_BUDGET;
    match tokio::time::timeout(budget, dispatch(api, request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(budget_secs = budget.as_secs(), "request timed out");
            let mut response = error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "timed_out",
                "the request did not finish in time; retry later (with the same Idempotency-Key)",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

async fn dispatch<S, Q, K, C>(api: &MonitoringApi<S, Q, K, C>, request: Request) -> Response<Body>
where
    S: MonitoringStore + IntakeStore,
    Q: WorkQueue,
    K: MonitoringControl,
    C: Clock,
{
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let route = match route(request.method(), &path) {
        Ok(route) => route,
        Err(why) => return responses::no_route(&path, &why),
    };
    let params = query_pairs(&request);
    let idempotency_key = header_text(&request, "idempotency-key");
    if let Some(key) = idempotency_key {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return error_body(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Idempotency-Key: 1 to 255 visible ASCII characters",
            );
        }
    }
    let result = match &route {
        Route::Enable => match json_body(&request) {
            Ok(body) => api.enable(&body, idempotency_key).await,
            Err(e) => Err(e),
        },
        Route::Update(id) => match json_body(&request) {
            Ok(body) => api.update(id, &body).await,
            Err(e) => Err(e),
        },
        Route::Stop(id) => api.stop(id).await,
        Route::Refresh(id) => {
            let force = match only_params(&params, &["force"]).and_then(|()| {
                params
                    .iter()
                    .find(|(k, _)| k == "force")
                    .map_or(Ok(false), |(_, v)| flag("force", v).map_err(ApiError::from))
            }) {
                Ok(force) => force,
                Err(e) => return error_response(&e),
            };
            api.refresh(id, force, idempotency_key).await
        }
        Route::List => api.list(&params).await,
        Route::Get(id) => api.get(id, &params).await,
        Route::Changes(id) => api.changes(id, &params).await,
        Route::Pull(id) => {
            let full = match only_params(&params, &["full"]).and_then(|()| {
                params
                    .iter()
                    .find(|(k, _)| k == "full")
                    .map_or(Ok(false), |(_, v)| flag("full", v).map_err(ApiError::from))
            }) {
                Ok(full) => full,
                Err(e) => return error_response(&e),
            };
            if full {
                let gzip_ok = accepts_gzip(header_text(&request, "accept-encoding"));
                return match api.pull_full(id).await {
                    Ok(stored) => full_pull_response(stored.gzip, gzip_ok),
                    Err(e) => error_response(&e),
                };
            }
            api.pull(id).await
        }
        Route::Replay(key) => api.replay(key).await,
    };
    match result {
        Ok(answer) => json_response(answer),
        Err(e) => error_response(&e),
    }
}

fn only_params(params: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(ApiError::Invalid(
            canopy_monitor::domain::monitoring::Invalid {
                field: "query",
                problem: format!("unknown parameter {k:?}; allowed: {}", allowed.join(", ")),
            },
        )),
    }
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, with a non-zero weight).
pub fn accepts_gzip(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let coding = pieces.next().unwrap_or_default();
            let zero = pieces.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
    })
}

/// The bytes of a string escaped into JSON, quotes included (as serde_json escapes it).
fn json_string_bytes(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The size of the Lambda response payload `response` becomes: API Gateway's JSON envelope
/// (`statusCode`, `headers`, `body`, `isBase64Encoded`, ...), the headers, and the body as
/// lambda_http puts it there: text escaped into a JSON string, binary base64-encoded.
pub fn payload_bytes(response: &Response<Body>) -> usize {
    /// The envelope's fixed text, generously rounded up.
    const ENVELOPE: usize = 256;
    let headers: usize = response
        .headers()
        .iter()
        .map(|(name, value)| {
            json_string_bytes(name.as_str())
                + json_string_bytes(&String::from_utf8_lossy(value.as_bytes()))
                + 2
        })
        .sum();
    let body = match response.body() {
        Body::Empty => 4,
        Body::Text(text) => json_string_bytes(text),
        Body::Binary(bytes) => 2 + bytes.len().div_ceil(3) * 4,
        _ => 0,
    };
    ENVELOPE + headers + body
}

/// Whether `response` fits Lambda's response payload limit.
pub fn fits_lambda(response: &Response<Body>) -> bool {
    payload_bytes(response) <= MAX_RESPONSE_BYTES
}

/// 413 for a pull no response can carry as asked; `accept_encoding` names the way out when
/// the gzip form would fit.
fn too_large(gzip_would_fit: bool) -> Response<Body> {
    let (message, fields) = if gzip_would_fit {
        ("the pull is larger than a Lambda response (6 MB) uncompressed; ask again with Accept-Encoding: gzip", vec![("accept_encoding", json!("gzip"))])
    } else {
        ("the pull is larger than a Lambda response (6 MB) even compressed; read its summary (GET /v1/pulls/{pull_id} without full)", vec![])
    };
    responses::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "response_too_large",
        message,
        &fields,
    )
}

/// The whole stored pull: gzip as stored when the client takes it and the response fits
/// Lambda's payload limit (base64 adds a third), else plain JSON text if that fits (escaped
/// into the envelope), else 413 saying whether asking for gzip would help.
pub fn full_pull_response(gzip: Vec<u8>, gzip_ok: bool) -> Response<Body> {
    let json_header = HeaderValue::from_static("application/json");
    let mut compressed = Response::new(Body::Binary(gzip));
    compressed
        .headers_mut()
        .insert(header::CONTENT_TYPE, json_header.clone());
    compressed
        .headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    compressed
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let gzip_fits = fits_lambda(&compressed);
    if gzip_ok && gzip_fits {
        return compressed;
    }
    let text = match gzip::decompress(compressed.body().as_ref(), MAX_RESPONSE_BYTES) {
        Ok(text) => text,
        Err(GzipError::TooLarge(_)) => return too_large(gzip_fits),
        Err(GzipError::Corrupt) => {
            return error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the stored pull could not be read; retry later",
            )
        }
    };
    // JSON is UTF-8: sent as text it is escaped into the envelope, not base64-encoded.
    let body = match String::from_utf8(text) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, json_header);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if !fits_lambda(&response) {
        return too_large(gzip_fits);
    }
    response
}

/// The one place API errors become responses.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let (status, code) = err.status_and_code();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "request failed");
    } else {
        tracing::info!(error = %err, status = status.as_u16(), "request refused");
    }
    let field = match err {
        ApiError::Invalid(invalid) => vec![("field", json!(invalid.field))],
        // An altered, forged or foreign cursor: the client starts the listing again.
        ApiError::BadCursor(_) => vec![("field", json!("cursor"))],
        _ => vec![],
    };
    let mut response = responses::error(status, &code, &err.message(), &field);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        responses::retry_after(&mut response, 5);
    }
    response
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    responses::error(status, code, message, &[])
}

fn json_response(answer: Answer) -> Response<Body> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let response = responses::json(status, &answer.body);
    if !fits_lambda(&response) {
        tracing::error!(
            bytes = payload_bytes(&response),
            "answer larger than a Lambda response"
        );
        return error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "response_too_large",
            "the answer is larger than a Lambda response (6 MB); ask for a smaller page (limit)",
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a route template.
    pub fn example_path(template: &str) -> String {
        template
            .replace("{monitoring_id}", "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c")
            .replace("{pull_id}", "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61")
            .replace("{dedupe_key}", "v1:abc")
    }

    #[test]
    fn every_declared_route_resolves_and_nothing_else_does() {
        for (method, template) in ROUTES {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert!(
                route(&method, &example_path(template)).is_ok(),
                "{method} {template}"
            );
        }
        assert_eq!(route(&Method::GET, "/v1/other"), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::GET, "/webhooks/canopy"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            route(&Method::PUT, "/v1/monitorings"),
            Err(NoRoute::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(
            route(&Method::GET, "/v1/monitorings/x/refresh"),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route(&Method::GET, "/v1/pulls/a%2Fb"),
            Ok(Route::Pull("a/b".into())),
            "segments are decoded, then validated as ids by the service"
        );
    }

    #[test]
    fn gzip_is_served_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        gzip::compress(text)
    }

    #[test]
    fn full_pulls_go_out_as_stored_or_plain() {
        let pull = br#"{"pull_id":"p","policies":[]}"#;
        let r = full_pull_response(gz(pull), true);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.body().as_ref(), gz(pull).as_slice());
        let r = full_pull_response(gz(pull), false);
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(r.body().as_ref(), pull);
    }

    /// The payload lambda_http hands the runtime for `response`, serialized as for API
    /// Gateway HTTP API: the bytes Lambda's 6 MB limit applies to.
    fn lambda_payload(response: Response<Body>) -> usize {
        let (parts, body) = response.into_parts();
        let mut out = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
        out.status_code = i64::from(parts.status.as_u16());
        out.is_base64_encoded = matches!(body, Body::Binary(_));
        out.body = Some(body);
        out.headers = parts.headers;
        serde_json::to_vec(&out).unwrap().len()
    }

    const LAMBDA_LIMIT: usize = 6_291_456;

    #[test]
    fn payload_bytes_never_undercounts_the_real_payload() {
        let text = "{\"a\":\"x\\ny\",\"b\":[\"\\u0001\",\"é\"]}".repeat(1000);
        let gzipped = full_pull_response(gz(text.as_bytes()), true);
        let plain = full_pull_response(gz(text.as_bytes()), false);
        for r in [
            gzipped,
            plain,
            error_body(StatusCode::NOT_FOUND, "not_found", "x"),
        ] {
            let estimate = payload_bytes(&r);
            let real = lambda_payload(r);
            assert!(
                estimate >= real && estimate - real <= 512,
                "estimate {estimate}, real {real}"
            );
        }
    }

    /// A JSON array of `n` bytes, mostly quotes (escaping doubles them in the envelope).
    fn quote_dense(n: usize) -> Vec<u8> {
        let mut text = b"[".to_vec();
        while text.len() + 4 < n {
            text.extend_from_slice(b"\"\",");
        }
        text.extend_from_slice(b"\"\"]");
        text
    }

    #[test]
    fn a_pull_that_fits_raw_but_not_after_base64_is_served_within_the_limit() {
        // 5 MB of JSON: under the limit raw, 6.7 MB base64-encoded.
        let pull = format!("[{}]", "1,".repeat(2_500_000) + "1").into_bytes();
        assert!(pull.len() < LAMBDA_LIMIT && pull.len().div_ceil(3) * 4 > LAMBDA_LIMIT);
        let r = full_pull_response(gz(&pull), false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body().as_ref(), pull.as_slice());
        let real = lambda_payload(r);
        assert!(
            real <= LAMBDA_LIMIT,
            "a payload of {real} bytes: Lambda fails it (500)"
        );
    }

    #[test]
    fn a_pull_over_the_limit_once_encoded_is_413_naming_gzip() {
        // 5 MB raw, but about 7.5 MB once escaped into the response envelope.
        let pull = quote_dense(5_000_000);
        assert!(pull.len() < LAMBDA_LIMIT);
        let r = full_pull_response(gz(&pull), false);
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        assert_eq!(body["error"], "response_too_large");
        assert_eq!(body["accept_encoding"], "gzip");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("Accept-Encoding: gzip"));
        // Asked with gzip, the same pull is served, within the limit.
        let r = full_pull_response(gz(&pull), true);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(lambda_payload(r) <= LAMBDA_LIMIT);
    }

    #[test]
    fn at_the_boundary_the_last_byte_decides() {
        // Plain text sized so that its payload is exactly the limit, then one byte more.
        let overhead = payload_bytes(&full_pull_response(gz(b"[]"), false)) - 2;
        let fill = |n: usize| format!("[{}]", "1".repeat(n - 2)).into_bytes();
        let exact = fill(MAX_RESPONSE_BYTES - overhead);
        let r = full_pull_response(gz(&exact), false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(payload_bytes(&r), MAX_RESPONSE_BYTES);
        assert!(lambda_payload(r) <= LAMBDA_LIMIT);
        let over = fill(MAX_RESPONSE_BYTES - overhead + 1);
        let r = full_pull_response(gz(&over), false);
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn pulls_beyond_the_response_limit_are_refused_plainly() {
        // Zeros compress ~1000:1, so this stays small in gzip and is 7 MB plain.
        let big = vec![b'0'; 7_000_000];
        let r = full_pull_response(gz(&big), false);
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        assert_eq!(body["error"], "response_too_large");
        // With gzip accepted, the same pull fits.
        assert_eq!(full_pull_response(gz(&big), true).status(), StatusCode::OK);
    }
}
