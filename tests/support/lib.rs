//! Test support: a fresh set of resources per test on the moto server that `scripts/test.sh`
//! starts, intake wired to it, signed deliveries, and readers for what landed.

pub mod counting;
pub mod events_out;
pub mod faults;
pub mod logs;
pub mod monitoring;
pub mod reconnect;
pub mod rigs;

use aws_sdk_dynamodb::types::AttributeValue;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::intake::{Intake, IntakeConfig};
use canopy_monitor::domain::plan::PlanConfig;
use canopy_monitor::domain::work::{parse_message, WorkMessage};
use canopy_monitor::ports::SystemClock;
use devkit::events::{events_dir, read_event, resign, to_lambda_request, webhook_request};
use devkit::resources::{provision, Resources};
use devkit::{local_aws_config, LOCAL_SIGNING_SECRET};
use lambda_http::http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

pub use counting::RequestCounter;

/// The moto endpoint the test command started.
pub fn endpoint() -> String {
    std::env::var("CANOPY_MONITOR_TEST_ENDPOINT").expect(
        "CANOPY_MONITOR_TEST_ENDPOINT is not set: run the integration tests through scripts/test.sh, \
         which starts the moto server they need",
    )
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub type TestIntake = Intake<DynamoStore, SqsWorkQueue, SystemClock>;

/// One test's own table, queues and secret on the shared moto server.
pub struct TestEnv {
    pub aws: aws_config::SdkConfig,
    pub resources: Resources,
    pub store: DynamoStore,
    pub counter: RequestCounter,
    pub intake: TestIntake,
}

/// Intake settings for tests: the POLICIES_AVAILABLE fallback is not delayed, so its message
/// can be read back at once.
pub fn test_intake_config() -> IntakeConfig {
    IntakeConfig {
        plan: PlanConfig {
            fetch_fallback_delay: Duration::ZERO,
            ..PlanConfig::default()
        },
        ..IntakeConfig::default()
    }
}

impl TestEnv {
    pub async fn new(name: &str) -> Self {
        Self::with_config(name, test_intake_config()).await
    }

    pub async fn with_config(name: &str, config: IntakeConfig) -> Self {
        let aws = local_aws_config(&endpoint());
        let prefix = format!(
            "t-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let resources = provision(&aws, &prefix, LOCAL_SIGNING_SECRET, &serde_json::json!({"client_id": canopy_sim::CLIENT_ID, "client_secret": canopy_sim::CLIENT_SECRET}))
            .await
            .expect("provision test resources");
        let counter = RequestCounter::default();
        let intake = Self::intake_with(&aws, &resources, &counter, config.clone(), None, None);
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &resources.table_name);
        Self {
            aws,
            resources,
            store,
            counter,
            intake,
        }
    }

    /// Builds intake over this env's resources, with optional overrides to inject failures.
    pub fn intake_with(
        aws: &aws_config::SdkConfig,
        resources: &Resources,
        counter: &RequestCounter,
        config: IntakeConfig,
        table_override: Option<&str>,
        fetch_queue_override: Option<&str>,
    ) -> TestIntake {
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(aws)
                .interceptor(counter.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(aws)
                .interceptor(counter.clone())
                .build(),
        );
        Intake::new(
            DynamoStore::new(ddb, table_override.unwrap_or(&resources.table_name)),
            SqsWorkQueue::new(
                sqs,
                fetch_queue_override
                    .unwrap_or(&resources.fetch_queue_url)
                    .to_owned(),
                resources.notify_queue_url.clone(),
            ),
            SystemClock,
            crate::rigs::local_signing_secrets(),
            config,
        )
    }

    /// Delivers `body` signed now, through the Lambda handler; returns status and JSON body.
    pub async fn deliver(&self, body: &[u8]) -> (StatusCode, Value) {
        deliver_to(
            &self.intake,
            webhook_request(body, LOCAL_SIGNING_SECRET, now()),
        )
        .await
    }

    /// Delivers a sample event file from `events/`, freshly signed.
    pub async fn deliver_file(&self, name: &str) -> (StatusCode, Value) {
        deliver_to(&self.intake, signed_sample(name)).await
    }

    pub async fn scan(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.store
            .client()
            .scan()
            .table_name(self.store.table())
            .consistent_read(true)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default()
    }

    /// Event records (dedupe log) in the table.
    pub async fn event_records(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.scan()
            .await
            .into_iter()
            .filter(|i| {
                i.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("EVENT#"))
            })
            .collect()
    }

    /// Takes every message off a queue (for assertions at the end of a test).
    pub async fn drain(&self, queue_url: &str) -> Vec<WorkMessage> {
        drain_queue(&self.aws, queue_url).await
    }
}

/// The pull `pull_id` of monitoring `monitoring_id` (initial pull `<monitoring>-initial`), with
/// the developer's `meta`: whom the fake Canopy's webhooks are about.
pub fn subject(monitoring_id: &str, pull_id: &str, meta: Value) -> canopy_sim::fixtures::Subject {
    canopy_sim::fixtures::Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: Some(monitoring_id.to_owned()),
        initial_pull_id: Some(format!("{monitoring_id}-initial")),
        meta_data: meta,
    }
}

/// A sample event from `events/`, re-signed now with the local secret.
pub fn signed_sample(name: &str) -> Value {
    let mut event = read_event(&events_dir().join(name)).expect("sample event");
    resign(&mut event, LOCAL_SIGNING_SECRET, now());
    event
}

/// Runs an API Gateway v2 event through the intake handler.
pub async fn deliver_to(intake: &TestIntake, event: Value) -> (StatusCode, Value) {
    let request = to_lambda_request(event).expect("API Gateway v2 event");
    let response =
        devkit::aws_limits::api_gateway_response(webhook_intake::handle(intake, request).await)
            .await;
    let status = response.status();
    let body = serde_json::from_slice(response.body().as_ref()).expect("JSON response body");
    (status, body)
}

/// Receives until the queue is empty; each message is parsed as a work message.
pub async fn drain_queue(aws: &aws_config::SdkConfig, queue_url: &str) -> Vec<WorkMessage> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut out = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return out;
        }
        for m in received {
            out.push(parse_message(m.body.as_deref().unwrap_or_default()).expect("work message"));
            if let Some(receipt) = m.receipt_handle {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// Reads a string attribute of an item.
pub fn attr<'a>(item: &'a HashMap<String, AttributeValue>, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The fake Canopy and a pull-fetcher consumer wired to a [`TestEnv`].
pub mod fetching {
    use super::*;
    use canopy_monitor::domain::retry::RetryPolicy;
    use canopy_monitor::runtime::config::{CanopyEnv, FetcherEnv, SourceSpec};
    use canopy_sim::fixtures::TEAM_ID;
    use canopy_sim::FakeCanopy;
    use devkit::sqs_driver::drain;
    use pull_fetcher::AwsFetchConsumer;

    /// The fetch lease in tests.
    pub const TEST_FETCH_LEASE: Duration = Duration::from_secs(2);

    pub async fn fake_canopy() -> FakeCanopy {
        FakeCanopy::start(([127, 0, 0, 1], 0).into(), TEAM_ID)
            .await
            .expect("fake Canopy")
    }

    /// A fetcher over `env` talking to `canopy`, retrying at once (no backoff) so tests run fast.
    pub async fn consumer(
        env: &TestEnv,
        canopy: &FakeCanopy,
        timeout: Duration,
    ) -> AwsFetchConsumer {
        let fetcher_env = FetcherEnv {
            table_name: env.resources.table_name.clone(),
            fetch_queue_url: env.resources.fetch_queue_url.clone(),
            canopy: CanopyEnv {
                base_url: canopy.base_url(),
                sources: vec![SourceSpec::primary(
                    TEAM_ID,
                    &env.resources.canopy_api_secret_id,
                )],
                timeout,
            },
            retry: RetryPolicy {
                base: Duration::ZERO,
                cap: Duration::ZERO,
            },
            pull_data_retention: None,
            // A short lease: a message that finds another attempt's lease comes back soon.
            fetcher: canopy_monitor::app::fetcher::FetcherConfig {
                lease: TEST_FETCH_LEASE,
            },
        };
        pull_fetcher::fetcher_from(fetcher_env, &env.aws)
            .await
            .expect("fetcher")
    }

    /// Feeds the fetch queue to `consumer` like Lambda's event source mapping until it stays
    /// empty; returns the number of batches handled.
    pub async fn drain_into(env: &TestEnv, consumer: &AwsFetchConsumer) -> usize {
        let sqs = aws_sdk_sqs::Client::new(&env.aws);
        drain(&sqs, &env.resources.fetch_queue_url, |batch| {
            consumer.handle(batch, canopy_monitor::app::budget::Deadline::NONE)
        })
        .await
        .expect("drain the fetch queue")
    }

    /// One receive-handle-settle round of the fetch queue (a single Lambda invocation).
    pub async fn fetch_once(env: &TestEnv, consumer: &AwsFetchConsumer) -> Option<usize> {
        let sqs = aws_sdk_sqs::Client::new(&env.aws);
        devkit::sqs_driver::poll_once(&sqs, &env.resources.fetch_queue_url, 1, &|batch| {
            consumer.handle(batch, canopy_monitor::app::budget::Deadline::NONE)
        })
        .await
        .expect("one fetch batch")
    }

    /// Sends a fetch job straight onto the fetch queue.
    pub async fn enqueue_fetch(env: &TestEnv, pull_id: &str, monitoring_id: Option<&str>) {
        use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger, Outgoing, WorkMessage};
        use canopy_monitor::ports::queue::WorkQueue;
        let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(&env.aws),
            env.resources.fetch_queue_url.clone(),
            env.resources.notify_queue_url.clone(),
        );
        queue
            .enqueue(&Outgoing {
                message: WorkMessage::FetchPull(FetchPullJob {
                    pull_id: pull_id.to_owned(),
                    source: None,
                    monitoring_id: monitoring_id.map(str::to_owned),
                    initial_pull_id: None,
                    trigger: FetchTrigger::Complete,
                    event_key: "test".to_owned(),
                    requested_at: "2026-11-26T00:00:00.000Z".to_owned(),
                }),
                delay: Duration::ZERO,
            })
            .await
            .expect("enqueue");
    }

    /// Messages waiting in a queue (visible, delayed and in flight).
    pub async fn queue_depth(env: &TestEnv, url: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = aws_sdk_sqs::Client::new(&env.aws)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::All)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesDelayed,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

/// The notifier wired to a [`TestEnv`], the fake Canopy and a local webhook receiver.
pub mod notifying {
    use super::*;
    use canopy_monitor::app::notifier::NotifierConfig;
    use canopy_monitor::domain::retry::RetryPolicy;
    use canopy_monitor::runtime::config::{CanopyEnv, NotifierEnv, SourceSpec};
    use canopy_sim::fixtures::TEAM_ID;
    use canopy_sim::FakeCanopy;
    use devkit::receiver::WebhookReceiver;
    use devkit::sqs_driver::drain;
    use reconnect_notifier::AwsNotifyConsumer;

    pub struct Channels<'a> {
        pub email: bool,
        pub sms: bool,
        pub webhook: Option<&'a WebhookReceiver>,
    }

    pub const ALL_CHANNELS: fn(&WebhookReceiver) -> Channels<'_> = |r| Channels {
        email: true,
        sms: true,
        webhook: Some(r),
    };

    pub async fn receiver() -> WebhookReceiver {
        WebhookReceiver::start(devkit::resources::LOCAL_OUTBOUND_WEBHOOK_SECRET)
            .await
            .expect("receiver")
    }

    pub async fn consumer(
        env: &TestEnv,
        canopy: &FakeCanopy,
        channels: Channels<'_>,
    ) -> AwsNotifyConsumer {
        let notifier_env = NotifierEnv {
            table_name: env.resources.table_name.clone(),
            notify_queue_url: env.resources.notify_queue_url.clone(),
            canopy: CanopyEnv {
                base_url: canopy.base_url(),
                sources: vec![SourceSpec::primary(
                    TEAM_ID,
                    &env.resources.canopy_api_secret_id,
                )],
                timeout: Duration::from_secs(2),
            },
            retry: RetryPolicy {
                base: Duration::ZERO,
                cap: Duration::ZERO,
            },
            email_from: channels.email.then(|| env.resources.email_from.clone()),
            sms_enabled: channels.sms,
            webhook_url: channels.webhook.map(|r| r.url.clone()),
            webhook_secret_id: channels
                .webhook
                .map(|_| env.resources.outbound_webhook_secret_id.clone()),
            notifier: NotifierConfig {
                token_retry_pause: Duration::from_millis(10),
                // A short lease: a copy that finds another attempt's send claim comes back soon.
                send_lease: Duration::from_secs(2),
                ..NotifierConfig::default()
            },
        };
        reconnect_notifier::notifier_from(notifier_env, &env.aws)
            .await
            .expect("notifier")
    }

    /// A notifier that sends email only.
    pub async fn email_consumer(env: &TestEnv, canopy: &FakeCanopy) -> AwsNotifyConsumer {
        let channels = Channels {
            email: true,
            sms: false,
            webhook: None,
        };
        consumer(env, canopy, channels).await
    }

    /// Feeds the notify queue to `consumer` until it stays empty; returns the batches handled.
    pub async fn drain_into(env: &TestEnv, consumer: &AwsNotifyConsumer) -> usize {
        let sqs = aws_sdk_sqs::Client::new(&env.aws);
        drain(&sqs, &env.resources.notify_queue_url, |batch| {
            consumer.handle(batch, canopy_monitor::app::budget::Deadline::NONE)
        })
        .await
        .expect("drain the notify queue")
    }

    /// One receive-handle-settle round of the notify queue (a single Lambda invocation).
    pub async fn drain_once(env: &TestEnv, consumer: &AwsNotifyConsumer) -> Option<usize> {
        let sqs = aws_sdk_sqs::Client::new(&env.aws);
        devkit::sqs_driver::poll_once(&sqs, &env.resources.notify_queue_url, 1, &|batch| {
            consumer.handle(batch, canopy_monitor::app::budget::Deadline::NONE)
        })
        .await
        .expect("one notify batch")
    }

    /// Emails and SMS moto accepted for `email` / `phone` (moto is shared by all tests).
    pub async fn sent_to(email: &str, phone: &str) -> (Vec<(String, String)>, Vec<String>) {
        let (emails, sms) = devkit::receiver::moto_sent(&endpoint())
            .await
            .expect("moto state");
        (
            emails
                .into_iter()
                .filter(|(to, _, _)| to == email)
                .map(|(_, s, b)| (s, b))
                .collect(),
            sms.into_iter()
                .filter(|(to, _)| to == phone)
                .map(|(_, m)| m)
                .collect(),
        )
    }
}
