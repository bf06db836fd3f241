//! Rigs for business events: the outbox publisher over a test's own table and bus (its
//! EventBridge calls can be faulted), the tap queue that receives a copy of every published
//! event, and the JSON Schemas in `schemas/events/`.

use crate::TestEnv;
use canopy_monitor::business_events::DetailType;
use canopy_monitor::config::PublisherEnv;
use canopy_monitor::outbox::OutboxConfig;
use canopy_monitor::store::{OutboxStore, PendingOutbox};
use event_publisher::AwsPublisher;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The publisher over `env`, no grace period (a sweep takes every waiting event), quick
/// retries; `interceptor` (faults, a request counter) sits on its DynamoDB and EventBridge
/// clients.
pub fn publisher<I>(env: &TestEnv, interceptor: &I) -> AwsPublisher
where
    I: aws_sdk_dynamodb::config::Intercept + Clone + 'static,
{
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.aws)
            .interceptor(interceptor.clone())
            .build(),
    );
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&env.aws)
            .interceptor(interceptor.clone())
            .build(),
    );
    canopy_monitor::outbox::OutboxPublisher::new(
        canopy_monitor::store::dynamo::DynamoStore::new(ddb, &env.resources.table_name),
        canopy_monitor::bus::eventbridge::EventBridgeBus::new(
            events,
            env.resources.event_bus_name.clone(),
        ),
        canopy_monitor::ports::SystemClock,
        test_outbox_config(),
    )
}

pub fn test_outbox_config() -> OutboxConfig {
    OutboxConfig {
        first_pause: Duration::from_millis(10),
        grace: Duration::ZERO,
        ..OutboxConfig::default()
    }
}

/// The publisher as the function builds it, over `env` (no faults).
pub fn function_publisher(env: &TestEnv) -> AwsPublisher {
    event_publisher::publisher_from(
        PublisherEnv {
            table_name: env.resources.table_name.clone(),
            event_bus_name: env.resources.event_bus_name.clone(),
            outbox: test_outbox_config(),
        },
        &env.aws,
    )
}

/// Every item with events waiting, read through the outbox index.
pub async fn waiting(env: &TestEnv) -> Vec<PendingOutbox> {
    env.store
        .pending("9999-12-31T00:00:00Z", 1000)
        .await
        .expect("outbox index")
}

/// Receives (and deletes) every message on `queue_url` until it stays empty: the EventBridge
/// envelopes the rules delivered.
pub async fn receive_all(env: &TestEnv, queue_url: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&env.aws);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap_or("null")).expect("envelope JSON"));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

/// The JSON Schema of `detail_type`'s detail.
pub fn schema(detail_type: DetailType) -> Value {
    let path = schemas_dir().join(format!("{}.json", detail_type.as_str()));
    serde_json::from_slice(&std::fs::read(&path).expect("schema file")).expect("schema JSON")
}

/// Validates an envelope's detail against its type's schema; the errors, if any.
pub fn schema_errors(envelope: &Value) -> Vec<String> {
    let Some(detail_type) = envelope["detail-type"].as_str().and_then(DetailType::parse) else {
        return vec![format!("unknown detail-type {}", envelope["detail-type"])];
    };
    let validator = jsonschema::validator_for(&schema(detail_type)).expect("a valid schema");
    validator
        .iter_errors(&envelope["detail"])
        .map(|e| format!("{}: {e} at {}", detail_type.as_str(), e.instance_path()))
        .collect()
}

/// The README's rule for premium increases.
pub fn premium_increase_rule() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/eventbridge/premium-increase-rule.json");
    serde_json::from_slice(&std::fs::read(path).expect("rule file")).expect("rule JSON")
}
