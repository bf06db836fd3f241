//! Consumers and stores built over AWS clients that carry a [`FaultInjector`], for the tests
//! that make DynamoDB, SES or SNS fail on purpose. Faulty clients do not retry, so a fault is
//! seen exactly as injected.

use crate::faults::FaultInjector;
use crate::TestEnv;
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsVisibility;
use canopy_monitor::adapters::{ses::SesEmail, sns::SnsSms};
use canopy_monitor::app::fetcher::{FetcherConfig, PullFetcher};
use canopy_monitor::app::notifier::{NotifierConfig, ReconnectNotifier};
use canopy_monitor::domain::retry::RetryPolicy;
use canopy_monitor::domain::source::{Source, Sources};
use canopy_monitor::ports::canopy::CanopyCredentials;
use canopy_monitor::ports::channel::Channel;
use canopy_monitor::ports::SystemClock;
use canopy_sim::fixtures::TEAM_ID;
use canopy_sim::FakeCanopy;
use pull_fetcher::{AwsFetchConsumer, FetchConsumer};
use reconnect_notifier::{AwsNotifyConsumer, NotifyConsumer};
use std::time::Duration;

/// No backoff between retries in tests.
pub const NO_BACKOFF: RetryPolicy = RetryPolicy {
    base: Duration::ZERO,
    cap: Duration::ZERO,
};

fn no_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(1)
}

/// A DynamoDB client of `env` whose requests go through `faults`.
pub fn dynamodb(env: &TestEnv, faults: &FaultInjector) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.aws)
            .interceptor(faults.clone())
            .retry_config(no_retries())
            .build(),
    )
}

/// The table of `env` through `faults`.
pub fn store(env: &TestEnv, faults: &FaultInjector) -> DynamoStore {
    DynamoStore::new(dynamodb(env, faults), &env.resources.table_name)
}

/// The one source of a single-source deployment, with its client of the fake.
pub fn canopy_client(canopy: &FakeCanopy, timeout: Duration) -> Sources<CanopyClient> {
    Sources::single(
        Source::primary(TEAM_ID),
        CanopyClient::new(
            &canopy.base_url(),
            TEAM_ID,
            CanopyCredentials {
                client_id: canopy_sim::CLIENT_ID.to_owned(),
                client_secret: canopy_sim::CLIENT_SECRET.to_owned(),
            },
            timeout,
        )
        .expect("Canopy client"),
    )
}

/// The one source's signing secret (the local one).
pub fn local_signing_secrets() -> Sources<canopy_monitor::domain::signature::SigningSecrets> {
    Sources::single(
        Source::primary(TEAM_ID),
        canopy_monitor::domain::signature::SigningSecrets::new(vec![
            devkit::LOCAL_SIGNING_SECRET.to_owned()
        ])
        .expect("secret"),
    )
}

/// A fetcher whose DynamoDB calls go through `faults`.
pub fn fetcher(env: &TestEnv, canopy: &FakeCanopy, faults: &FaultInjector) -> AwsFetchConsumer {
    FetchConsumer {
        fetcher: PullFetcher::new(
            store(env, faults),
            canopy_client(canopy, Duration::from_secs(5)),
            SystemClock,
            FetcherConfig {
                lease: Duration::from_secs(2),
            },
        ),
        visibility: SqsVisibility::new(
            aws_sdk_sqs::Client::new(&env.aws),
            env.resources.fetch_queue_url.clone(),
        ),
        retry: NO_BACKOFF,
    }
}

/// A notifier sending email and SMS, whose DynamoDB calls go through `ddb_faults` and whose
/// SES and SNS calls go through `send_faults`.
pub fn notifier(
    env: &TestEnv,
    canopy: &FakeCanopy,
    ddb_faults: &FaultInjector,
    send_faults: &FaultInjector,
) -> AwsNotifyConsumer {
    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&env.aws)
            .interceptor(send_faults.clone())
            .retry_config(no_retries())
            .build(),
    );
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(&env.aws)
            .interceptor(send_faults.clone())
            .retry_config(no_retries())
            .build(),
    );
    let channels: Vec<Box<dyn Channel>> = vec![
        Box::new(SesEmail::new(ses, env.resources.email_from.clone())),
        Box::new(SnsSms::new(sns)),
    ];
    NotifyConsumer {
        notifier: ReconnectNotifier::new(
            store(env, ddb_faults),
            canopy_client(canopy, Duration::from_secs(2)),
            SystemClock,
            channels,
            NotifierConfig {
                token_retry_pause: Duration::from_millis(10),
                send_lease: Duration::from_secs(2),
                ..NotifierConfig::default()
            },
        ),
        visibility: SqsVisibility::new(
            aws_sdk_sqs::Client::new(&env.aws),
            env.resources.notify_queue_url.clone(),
        ),
        retry: NO_BACKOFF,
    }
}

/// Intake whose DynamoDB and SQS calls go through `faults`.
pub fn intake(env: &TestEnv, faults: &FaultInjector) -> crate::TestIntake {
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&env.aws)
            .interceptor(faults.clone())
            .retry_config(no_retries())
            .build(),
    );
    canopy_monitor::app::intake::Intake::new(
        store(env, faults),
        canopy_monitor::adapters::sqs::SqsWorkQueue::new(
            sqs,
            env.resources.fetch_queue_url.clone(),
            env.resources.notify_queue_url.clone(),
        ),
        SystemClock,
        local_signing_secrets(),
        crate::test_intake_config(),
    )
}
