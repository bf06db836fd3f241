//! Rigs for the Monitoring API and the reconciler: each over a test's own resources, with
//! their DynamoDB and SQS calls counted, and Canopy played by the fake.

use crate::{RequestCounter, TestEnv};
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::monitoring_api::{ApiConfig, MonitoringApi};
use canopy_monitor::app::sync::{MonitoringSync, SyncConfig};
use canopy_monitor::ports::SystemClock;
use canopy_sim::FakeCanopy;
use devkit::events::{apigw_event, to_lambda_request};
use lambda_http::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::time::Duration;

pub type TestApi = MonitoringApi<DynamoStore, SqsWorkQueue, CanopyClient, SystemClock>;
pub type TestSync = MonitoringSync<DynamoStore, SqsWorkQueue, CanopyClient, SystemClock>;

/// The customer-id key the tests' `meta_data` uses (the default owner key).
pub const OWNER_KEY: &str = canopy_monitor::domain::plan::DEFAULT_OWNER_KEY;

fn counted(env: &TestEnv, counter: &RequestCounter) -> (DynamoStore, SqsWorkQueue) {
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&env.aws)
            .interceptor(counter.clone())
            .build(),
    );
    (
        DynamoStore::new(ddb, &env.resources.table_name),
        SqsWorkQueue::new(
            sqs,
            env.resources.fetch_queue_url.clone(),
            env.resources.notify_queue_url.clone(),
        ),
    )
}

/// The Monitoring API over `env`, calling `canopy`; its AWS requests are counted in `counter`.
pub fn api(
    env: &TestEnv,
    canopy: &FakeCanopy,
    counter: &RequestCounter,
    config: ApiConfig,
) -> TestApi {
    let (store, queue) = counted(env, counter);
    MonitoringApi::new(
        store,
        queue,
        crate::rigs::canopy_client(canopy, Duration::from_secs(5)),
        SystemClock,
        config,
    )
}

/// The reconciler over `env`, calling `canopy`, `page_size` monitorings per page.
pub fn sync(
    env: &TestEnv,
    canopy: &FakeCanopy,
    counter: &RequestCounter,
    page_size: u32,
) -> TestSync {
    let (store, queue) = counted(env, counter);
    MonitoringSync::new(
        store,
        queue,
        crate::rigs::canopy_client(canopy, Duration::from_secs(5)),
        SystemClock,
        SyncConfig {
            page_size,
            ..SyncConfig::default()
        },
    )
}

/// An answer of the API: status, headers, body (JSON, or `Null` when it is not JSON text).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

/// Calls the API through the function's handler, as API Gateway would.
pub async fn call(
    api: &TestApi,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(body.map(|_| ("content-type".to_owned(), "application/json".to_owned())))
        .collect();
    let raw = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = to_lambda_request(apigw_event(method, path, &headers, &raw)).expect("event");
    let response =
        devkit::aws_limits::api_gateway_response(monitoring_api::handle(api, request).await).await;
    let bytes = response.body().as_ref().to_vec();
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes,
    }
}

/// Enables monitoring of `pull_id` (P1M) through the API; the new monitoring's id.
pub async fn enable(api: &TestApi, pull_id: &str) -> String {
    let enabled = call(
        api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&serde_json::json!({"pull_id": pull_id, "interval": "P1M"})),
    )
    .await;
    assert_eq!(enabled.status, StatusCode::CREATED, "{}", enabled.json);
    enabled.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("monitoring id")
        .to_owned()
}
