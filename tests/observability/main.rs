//! The metrics and logs the functions emit. The metrics recorder (`metrics_cloudwatch_embedded`)
//! and the log subscriber (the Lambda runtime's, in JSON as Lambda's log format sets it) are
//! process-wide, so this binary holds one test: it installs both, drives each outcome through
//! the real handlers (intake, the fetcher, the notifier, the reminder pass, the reconciler, the
//! outbox publisher) against moto and the fake Canopy, then parses the EMF lines and the log
//! lines that were written.

use canopy_monitor::app::budget::Deadline;
use canopy_sim::fixtures::{reconnect_webhook, sample_pull, PullSize};
use canopy_sim::Fault;
use devkit::events::webhook_request;
use integration_tests::fetching::{
    consumer as fetcher, drain_into, enqueue_fetch, fake_canopy, fetch_once,
};
use integration_tests::notifying::{
    consumer as notifier, drain_into as drain_notices, receiver, Channels,
};
use integration_tests::{deliver_to, now, subject, RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// (metric, its dimensions other than `Stack`) -> the values recorded.
type Emitted = BTreeMap<(String, BTreeMap<String, String>), Vec<f64>>;

/// Parses EMF documents: each names its metrics and dimension sets under `_aws`, and carries
/// the values and dimension values as top-level members.
fn parse(text: &str) -> Emitted {
    let mut out = Emitted::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line).expect("each line is one JSON document");
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64(), "{line}");
        for directive in aws["CloudWatchMetrics"].as_array().expect("directives") {
            assert_eq!(
                directive["Namespace"],
                canopy_monitor::app::metrics::NAMESPACE
            );
            let dims: Vec<String> = directive["Dimensions"][0]
                .as_array()
                .expect("one dimension set")
                .iter()
                .map(|d| d.as_str().expect("name").to_owned())
                .collect();
            assert!(dims.contains(&"Stack".to_owned()), "{line}");
            assert_eq!(doc["Stack"], "metrics-test");
            let key_dims: BTreeMap<String, String> = dims
                .iter()
                .filter(|d| *d != "Stack")
                .map(|d| {
                    (
                        d.clone(),
                        doc[d].as_str().expect("dimension value").to_owned(),
                    )
                })
                .collect();
            for metric in directive["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("name").to_owned();
                let values = match &doc[&name] {
                    Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
                    v => vec![v.as_f64().unwrap_or_else(|| panic!("{name}: {v}"))],
                };
                out.entry((name, key_dims.clone()))
                    .or_default()
                    .extend(values);
            }
        }
    }
    out
}

fn total(emitted: &Emitted, name: &str, dims: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = dims
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    emitted
        .get(&(name.to_owned(), want))
        .map_or(0.0, |v| v.iter().sum())
}

/// Where the log subscriber writes: kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The span lambda_runtime's TracingLayer opens around each invocation (its name and field).
fn invocation(request_id: &str) -> tracing::Span {
    tracing::info_span!("Lambda runtime invoke", requestId = request_id)
}

#[tokio::test]
async fn each_outcome_is_counted_in_emf_and_logged_with_its_ids() {
    // As Lambda sets them with LoggingConfig LogFormat JSON.
    std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
    std::env::set_var("AWS_LAMBDA_LOG_LEVEL", "INFO");
    let logs = Captured::default();
    lambda_runtime::tracing::init_default_subscriber_with_writer(logs.clone());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(canopy_monitor::app::metrics::NAMESPACE)
        .with_dimension("Stack", "metrics-test")
        .init()
        .expect("the recorder");
    let env = TestEnv::new("metrics").await;
    let canopy = fake_canopy().await;

    // Webhooks: accepted, duplicate, a wrong signature, a body that is not JSON.
    let pull = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(&pull, PullSize::default()));
    let s = subject("m-metrics", &pull, json!({"email": "lois@example.com"}));
    let reconnect = reconnect_webhook(&s, "https://canopy.example/r?t=x", "rt_x").to_string();
    let first = env
        .deliver(reconnect.as_bytes())
        .instrument(invocation("req-accepted"));
    assert_eq!(first.await.0, StatusCode::OK);
    assert_eq!(env.deliver(reconnect.as_bytes()).await.0, StatusCode::OK);
    let forged = webhook_request(reconnect.as_bytes(), "whsec_not_the_secret", now());
    assert_eq!(
        deliver_to(&env.intake, forged).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(env.deliver(b"not json").await.0, StatusCode::BAD_REQUEST);

    // Fetches: stored, skipped (already fetched), failed permanently (404), and a 401 that
    // is retried.
    let fetch = fetcher(&env, &canopy, Duration::from_secs(5)).await;
    enqueue_fetch(&env, &pull, Some("m-metrics")).await;
    drain_into(&env, &fetch)
        .instrument(invocation("req-fetch"))
        .await;
    enqueue_fetch(&env, &pull, Some("m-metrics")).await;
    enqueue_fetch(&env, &uuid::Uuid::new_v4().to_string(), None).await;
    drain_into(&env, &fetch).await;
    let refused = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(&refused, PullSize::default()));
    canopy.set_faults(&refused, vec![Fault::Unauthorized], true);
    enqueue_fetch(&env, &refused, None).await;
    fetch_once(&env, &fetch).await;

    // Notices: the email goes out, the integrator's webhook answers 400 (failed).
    let hooks = receiver().await;
    hooks.answer_next(&[400]);
    let notify = notifier(
        &env,
        &canopy,
        Channels {
            email: true,
            sms: false,
            webhook: Some(&hooks),
        },
    )
    .await;
    drain_notices(&env, &notify).await;

    // A reminder pass three days on; a reconciler pass that finds an unknown monitoring; the
    // outbox publisher.
    let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.notify_queue_url.clone(),
        env.resources.notify_queue_url.clone(),
    );
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(73);
    canopy_monitor::app::reminders::run_reminders(&env.store, &queue, later, 500, Deadline::NONE)
        .await
        .expect("reminders");
    canopy.add_monitoring(&pull, "P1M");
    integration_tests::monitoring::sync(&env, &canopy, &RequestCounter::default(), 10)
        .run(Deadline::NONE)
        .await
        .expect("sync");
    integration_tests::events_out::function_publisher(&env)
        .sweep(Deadline::NONE)
        .await
        .expect("sweep");

    let mut written = Vec::new();
    collector.flush(&mut written).expect("flush");
    let text = String::from_utf8(written).expect("utf-8");
    let emitted = parse(&text);
    println!("{} EMF lines", text.lines().count());
    for ((name, dims), values) in &emitted {
        println!("{name} {dims:?} = {values:?}");
    }

    let webhooks = |outcome| total(&emitted, "Webhooks", &[("Outcome", outcome)]);
    assert_eq!(webhooks("accepted"), 1.0);
    assert_eq!(webhooks("duplicate"), 1.0);
    assert_eq!(webhooks("rejected_invalid_signature"), 1.0);
    assert_eq!(webhooks("rejected_invalid_body"), 1.0);
    assert_eq!(total(&emitted, "SignatureFailures", &[]), 1.0);
    assert_eq!(
        total(
            &emitted,
            "WebhookTypes",
            &[("EventType", "MONITORING_RECONNECT")]
        ),
        2.0
    );
    assert_eq!(
        emitted[&("IntakeLatency".to_owned(), BTreeMap::new())].len(),
        4,
        "one latency per delivery"
    );

    let fetches = |outcome| total(&emitted, "Fetches", &[("Outcome", outcome)]);
    assert_eq!(fetches("stored"), 1.0);
    assert_eq!(fetches("skipped_already_fetched"), 1.0);
    assert_eq!(fetches("failed_permanently"), 1.0);
    assert_eq!(fetches("retry"), 1.0);
    // By the source's key type: a refused sandbox key must not page as production.
    let canopy_status = |s| {
        total(
            &emitted,
            "CanopyResponses",
            &[("Status", s), ("KeyType", "production")],
        )
    };
    // The stored GET pull, the notifier's fresh reconnect token, the reconciler's page.
    assert_eq!(canopy_status("200"), 3.0);
    assert_eq!(canopy_status("404"), 1.0);
    assert_eq!(canopy_status("401"), 1.0);
    assert_eq!(
        total(&emitted, "CanopyAuthFailures", &[("KeyType", "production")]),
        1.0
    );
    assert_eq!(emitted[&("PullBytes".to_owned(), BTreeMap::new())].len(), 1);
    assert_eq!(
        emitted[&("FetchLatency".to_owned(), BTreeMap::new())].len(),
        4
    );

    let notices = |channel, outcome| {
        total(
            &emitted,
            "Notices",
            &[("Channel", channel), ("Outcome", outcome)],
        )
    };
    assert_eq!(notices("email", "sent"), 1.0);
    assert_eq!(notices("webhook", "failed"), 1.0);
    assert_eq!(total(&emitted, "NoticeFailures", &[]), 1.0);

    assert_eq!(total(&emitted, "RemindersDue", &[]), 1.0);
    assert_eq!(total(&emitted, "RemindersSent", &[]), 1.0);
    assert_eq!(total(&emitted, "Repairs", &[("Kind", "created")]), 1.0);
    assert!(
        total(&emitted, "EventsPublished", &[]) >= 1.0,
        "ReconnectNeeded at least"
    );
    assert_eq!(total(&emitted, "EventsLeft", &[]), 0.0);

    // Logs: JSON lines; a delivery's and a fetch's carry their ids and the request id.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    let request_id = |line: &Value| {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|s| s["requestId"].as_str().map(str::to_owned))
    };
    let accepted = lines
        .iter()
        .find(|l| l["fields"]["message"] == "webhook accepted")
        .expect("the accepted delivery's line");
    for field in [
        "event_type",
        "pull_id",
        "monitoring_id",
        "dedupe_key",
        "outcome",
    ] {
        assert!(accepted["fields"][field].is_string(), "{field}: {accepted}");
    }
    assert_eq!(accepted["fields"]["monitoring_id"], "m-metrics");
    assert_eq!(request_id(accepted).as_deref(), Some("req-accepted"));
    let stored = lines
        .iter()
        .find(|l| l["fields"]["message"] == "pull stored")
        .expect("the stored fetch's line");
    assert_eq!(stored["span"]["pull_id"], pull.as_str(), "{stored}");
    assert_eq!(stored["span"]["monitoring_id"], "m-metrics");
    assert!(stored["span"]["dedupe_key"].is_string());
    assert_eq!(request_id(stored).as_deref(), Some("req-fetch"));
    for secret in ["rt_x", "canopy.example/r", "lois@example.com", "whsec_"] {
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}
