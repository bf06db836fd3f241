//! The in-app reconnect in the local run: reconnect-api served at `/v1/reconnect/...` behind a
//! stand-in for API Gateway's JWT authorizer (HS256 with the documented local key, claims put
//! where API Gateway puts them), and the demo page at `/demo/reconnect`.

use crate::consumers::CanopyTarget;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use canopy_monitor::runtime::config::ReconnectEnv;
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use devkit::resources::Resources;
use devkit::LOCAL_SIGNING_SECRET;
use monitoring_api::AwsMonitoringApi;
use reconnect_api::AwsReconnectApi;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The demo page: static HTML and plain JS, no build step.
pub const DEMO_PAGE: &str = include_str!("../demo/reconnect.html");
/// The consumer the demo page signs in as.
pub const DEMO_SUBJECT: &str = "cust-demo";

pub struct ReconnectState {
    pub api: AwsReconnectApi,
    pub monitoring: Arc<AwsMonitoringApi>,
    pub store: canopy_monitor::adapters::dynamo::DynamoStore,
    pub fake: Option<canopy_sim::FakeCanopy>,
    pub webhook_url: String,
}

pub async fn build(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
    monitoring: Arc<AwsMonitoringApi>,
    webhook_url: &str,
) -> Result<ReconnectState, String> {
    let env = ReconnectEnv {
        table_name: resources.table_name.clone(),
        canopy: canopy.env(resources),
        subject_claim: "sub".to_owned(),
        reconnect: canopy_monitor::app::reconnect::ReconnectConfig::default(),
    };
    let api = reconnect_api::api_from(env, aws)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ReconnectState {
        api,
        monitoring,
        store: canopy_monitor::adapters::dynamo::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            &resources.table_name,
        ),
        fake: canopy.fake.clone(),
        webhook_url: webhook_url.to_owned(),
    })
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What API Gateway's JWT authorizer does: 401 without a valid Bearer token, else the claims in
/// `requestContext.authorizer.jwt.claims`.
pub async fn invoke(
    State(state): State<Arc<ReconnectState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claims = match token.map(|t| devkit::jwt::verify(t, now())) {
        Some(Ok(claims)) => claims,
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "Unauthorized"})),
            )
                .into_response()
        }
    };
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut event = devkit::events::http_event(method.as_str(), target, &headers, &body);
    event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    let request = match devkit::events::to_lambda_request(event) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let response =
        devkit::aws_limits::api_gateway_response(reconnect_api::handle(&state.api, request).await)
            .await;
    let (parts, body) = response.into_parts();
    tracing::info!(method = %method, path = %uri.path(), status = parts.status.as_u16(), "reconnect-api request");
    Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

pub async fn page() -> Html<&'static str> {
    Html(DEMO_PAGE)
}

/// `POST /demo/session` (local only): a monitoring of the demo consumer that needs a
/// reconnect, and a token signed in as them.
pub async fn demo_session(State(state): State<Arc<ReconnectState>>) -> Response {
    match prepare(&state).await {
        Ok(monitoring_id) => Json(json!({
            "subject": DEMO_SUBJECT,
            "monitoring_id": monitoring_id,
            "token": devkit::jwt::mint(DEMO_SUBJECT, now(), 3600),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "demo_unavailable", "message": e})),
        )
            .into_response(),
    }
}

/// A pull of the demo consumer, completed and monitored, whose refresh then needs them.
async fn prepare(state: &ReconnectState) -> Result<String, String> {
    let fake = state
        .fake
        .as_ref()
        .ok_or("the demo page needs the bundled fake Canopy (a real team is configured)")?;
    fake.set_webhook(&state.webhook_url, LOCAL_SIGNING_SECRET);
    let pull_id = uuid::Uuid::new_v4().to_string();
    let meta = json!({"customer_id": DEMO_SUBJECT, "first_name": "Clark", "email": "clark.kent@example.com"});
    let mut pull = sample_pull(&pull_id, PullSize::default());
    pull["meta_data"] = meta.clone();
    fake.add_pull(pull.clone());
    let subject = Subject {
        pull_id: pull_id.clone(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: meta,
    };
    let complete: Vec<Value> = refresh_sequence(&subject, &pull)
        .pop()
        .into_iter()
        .collect();
    canopy_sim::send_webhooks(&state.webhook_url, LOCAL_SIGNING_SECRET, &complete).await?;
    let enabled = state
        .monitoring
        .enable(&json!({"pull_id": pull_id, "interval": "P1M"}), None)
        .await
        .map_err(|e| e.to_string())?;
    let monitoring_id = enabled.body["monitoring"]["monitoring_id"]
        .as_str()
        .ok_or("no monitoring id")?
        .to_owned();
    fake.need_reconnect(&monitoring_id)
        .ok_or("the fake Canopy does not know the monitoring")?;
    for _ in 0..100 {
        let m = state
            .store
            .get_monitoring(&monitoring_id)
            .await
            .map_err(|e| e.to_string())?;
        if m.is_some_and(|m| m.reconnect_needed_since.is_some()) {
            return Ok(monitoring_id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the MONITORING_RECONNECT webhook did not arrive".to_owned())
}
