//! Rigs for the in-app reconnect: intake served over HTTP (the fake Canopy delivers its
//! AUTH_STATUS and refresh webhooks there, signed, as Canopy would), and reconnect-api called
//! through its handler with the JWT claims API Gateway's authorizer would put in the request.

use crate::{TestEnv, TestIntake};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::app::reconnect::{ReconnectConfig, ReconnectService};
use canopy_monitor::ports::SystemClock;
use canopy_sim::FakeCanopy;
use devkit::events::{apigw_event, to_lambda_request};
use lambda_http::http::StatusCode;
use reconnect_api::ReconnectApi;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub type TestReconnectApi = ReconnectApi<DynamoStore, CanopyClient, SystemClock>;

async fn invoke(
    State(intake): State<Arc<TestIntake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = devkit::events::http_event(method.as_str(), uri.path(), &headers, &body);
    let request = match to_lambda_request(event) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e).into_response(),
    };
    let response =
        devkit::aws_limits::api_gateway_response(webhook_intake::handle(&intake, request).await)
            .await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

/// Serves `env`'s intake on a free local port; returns the webhook URL.
pub async fn serve_intake(env: &TestEnv) -> String {
    let intake = TestEnv::intake_with(
        &env.aws,
        &env.resources,
        &env.counter,
        crate::test_intake_config(),
        None,
        None,
    );
    serve(Arc::new(intake)).await
}

/// Serves `intake` on a free local port; returns the webhook URL.
pub async fn serve(intake: Arc<TestIntake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(invoke).with_state(intake);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/webhooks/canopy")
}

/// reconnect-api over `env`, calling `canopy`.
pub fn api(env: &TestEnv, canopy: &FakeCanopy, config: ReconnectConfig) -> TestReconnectApi {
    ReconnectApi {
        service: ReconnectService::new(
            env.store.clone(),
            crate::rigs::canopy_client(canopy, Duration::from_secs(5)),
            SystemClock,
            canopy_monitor::app::reconnect::SessionKey::derive(
                &canopy_monitor::ports::canopy::CanopyCredentials {
                    client_id: canopy_sim::CLIENT_ID.to_owned(),
                    client_secret: canopy_sim::CLIENT_SECRET.to_owned(),
                },
            )
            .expect("session key"),
            config,
        ),
        subject_claim: "sub".to_owned(),
    }
}

/// Settings for tests: quick polls, and the default limits counted over a window no test
/// run crosses the end of (windows start at multiples of their length since 1970: the next
/// 100-year boundary is in 2069), so a count never starts again in the middle of a test.
pub fn test_config() -> ReconnectConfig {
    ReconnectConfig {
        poll_every: Duration::from_millis(50),
        max_wait: Duration::from_secs(8),
        limit_window: Duration::from_secs(100 * 365 * 86_400),
        ..ReconnectConfig::default()
    }
}

/// Calls reconnect-api as `subject` (the JWT's `sub`, as API Gateway passes it).
pub async fn call(
    api: &TestReconnectApi,
    subject: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let (status, json, text, _) = call_with_headers(api, subject, method, path, body).await;
    (status, json, text)
}

/// [`call`], with the answer's headers.
pub async fn call_with_headers(
    api: &TestReconnectApi,
    subject: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String, HeaderMap) {
    let raw = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let mut event = apigw_event(method, path, &headers, &raw);
    event["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": {"sub": subject}, "scopes": null}});
    let request = to_lambda_request(event).expect("event");
    let response =
        devkit::aws_limits::api_gateway_response(reconnect_api::handle(api, request).await).await;
    let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    (
        response.status(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        response.headers().clone(),
    )
}
