//! Rigs for business events: the outbox publisher over a test's own table and bus (its
//! EventBridge calls can be faulted), the tap queue that receives a copy of every published
//! event, and the JSON Schemas in `schemas/events/`.

use crate::TestEnv;
use canopy_monitor::app::outbox::OutboxConfig;
use canopy_monitor::domain::business_events::DetailType;
use canopy_monitor::ports::store::{OutboxStore, PendingOutbox};
use canopy_monitor::runtime::config::PublisherEnv;
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
    publisher_with(env, interceptor, test_outbox_config())
}

/// [`publisher`] with its own outbox settings.
pub fn publisher_with<I>(env: &TestEnv, interceptor: &I, config: OutboxConfig) -> AwsPublisher
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
    canopy_monitor::app::outbox::OutboxPublisher::new(
        canopy_monitor::adapters::dynamo::DynamoStore::new(ddb, &env.resources.table_name),
        canopy_monitor::adapters::eventbridge::EventBridgeBus::new(
            events,
            env.resources.event_bus_name.clone(),
        ),
        canopy_monitor::ports::SystemClock,
        config,
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

/// Every item with events waiting (or a pending mark), read through every shard of the
/// outbox index, page by page.
pub async fn waiting(env: &TestEnv) -> Vec<PendingOutbox> {
    let mut all = Vec::new();
    for shard in 0..canopy_monitor::domain::shard::SHARDS {
        let mut after = None;
        loop {
            let page = env
                .store
                .pending(shard, "9999-12-31T00:00:00Z", 100, after.as_ref())
                .await
                .expect("outbox index");
            all.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    all
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

/// AWS's limits of one PutEvents request, which moto does not enforce: at most 10 entries,
/// and entries totalling at most 256 KB, each entry sized by the formula of the EventBridge
/// guide ("Calculating PutEvents event entry size": Time 14 bytes if present; Source,
/// DetailType, Detail and each Resources entry as UTF-8 bytes). Computed here from the wire
/// body, independently of the code under test.
pub const PUT_EVENTS_MAX_ENTRIES: usize = 10;
pub const PUT_EVENTS_MAX_BYTES: usize = 256 * 1024;

/// The entry sizes of a PutEvents request body (JSON 1.1).
pub fn put_events_entry_sizes(body: &str) -> Vec<usize> {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text_len = |v: &Value| v.as_str().map_or(0, str::len);
    body["Entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let time = if e.get("Time").is_some() { 14 } else { 0 };
                    let resources: usize = e["Resources"]
                        .as_array()
                        .map(|r| r.iter().map(text_len).sum())
                        .unwrap_or(0);
                    time + text_len(&e["Source"])
                        + text_len(&e["DetailType"])
                        + text_len(&e["Detail"])
                        + resources
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An interceptor on the EventBridge client that answers a PutEvents over AWS's limits with
/// `ValidationException` (HTTP 400), as AWS does; a request within them goes on to `faults`
/// (a test's own rules). Counts what it refused.
#[derive(Debug, Clone, Default)]
pub struct PutEventsLimits {
    pub faults: crate::faults::FaultInjector,
    /// Holds the one-time answer of a request over the limits.
    over: crate::faults::FaultInjector,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl PutEventsLimits {
    /// Requests refused for being over the limits.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_sdk_dynamodb::config::Intercept for PutEventsLimits {
    fn name(&self) -> &'static str {
        "PutEventsLimits"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let is_put_events = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with("PutEvents"));
        if is_put_events {
            let body = request
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let sizes = put_events_entry_sizes(&body);
            if sizes.len() > PUT_EVENTS_MAX_ENTRIES
                || sizes.iter().sum::<usize>() > PUT_EVENTS_MAX_BYTES
            {
                self.refused
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.over.add(crate::faults::Rule {
                    operation: "AWSEvents.PutEvents".to_owned(),
                    body_contains: None,
                    times: Some(1),
                    fault: crate::faults::Fault::json_1_1(400, "ValidationException"),
                });
                return self
                    .over
                    .modify_before_transmit(context, runtime_components, cfg);
            }
        }
        self.faults
            .modify_before_transmit(context, runtime_components, cfg)
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        // Whichever injector marked the request replaces its answer (the mark is shared).
        self.over
            .modify_before_deserialization(context, runtime_components, cfg)?;
        self.faults
            .modify_before_deserialization(context, runtime_components, cfg)
    }
}
