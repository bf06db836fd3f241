//! The pull-fetcher handler: an SQS batch in, one [`PullFetcher::fetch`] per message, the
//! failed ones reported back (`ReportBatchItemFailures`) and delayed with backoff. Successes,
//! skips and permanent failures are acknowledged; nothing is swallowed: every failure is
//! either retried, recorded on the pull, or left for the dead-letter queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsVisibility;
use canopy_monitor::app::budget::{self, Deadline};
use canopy_monitor::app::fetcher::{FetchError, FetchOutcome, PullFetcher};
use canopy_monitor::app::metrics;
use canopy_monitor::domain::retry::RetryPolicy;
use canopy_monitor::domain::work::{parse_message, WorkMessage};
use canopy_monitor::ports::canopy::CanopyApi;
use canopy_monitor::ports::queue::MessageVisibility;
use canopy_monitor::ports::store::{ChangeStore, PullDataStore};
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::{Clock, SystemClock};
use canopy_monitor::runtime::config::FetcherEnv;
use canopy_monitor::runtime::consumer::{handle_batch, BatchBudget, RecordError};
use tracing::Instrument;

/// The consumer: the fetcher, how to delay retries, and the backoff.
pub struct FetchConsumer<S, A, C, V> {
    pub fetcher: PullFetcher<S, A, C>,
    pub visibility: V,
    pub retry: RetryPolicy,
}

pub type AwsFetchConsumer = FetchConsumer<DynamoStore, CanopyClient, SystemClock, SqsVisibility>;

/// Builds the consumer from the environment (see docs/configuration.md).
pub async fn fetcher_from_env(
    aws: &aws_config::SdkConfig,
) -> Result<AwsFetchConsumer, ConfigError> {
    fetcher_from(FetcherEnv::from_env()?, aws).await
}

/// Builds the consumer from explicit settings.
pub async fn fetcher_from(
    env: FetcherEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsFetchConsumer, ConfigError> {
    let canopy = env
        .canopy
        .clients(&aws_sdk_secretsmanager::Client::new(aws))
        .await?;
    Ok(FetchConsumer {
        fetcher: PullFetcher::new(
            DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name)
                .with_pull_data_retention(env.pull_data_retention),
            canopy,
            SystemClock,
            env.fetcher,
        ),
        visibility: SqsVisibility::new(aws_sdk_sqs::Client::new(aws), env.fetch_queue_url),
        retry: env.retry,
    })
}

impl<S: PullDataStore + ChangeStore, A: CanopyApi, C: Clock, V: MessageVisibility>
    FetchConsumer<S, A, C, V>
{
    /// Handles one SQS batch.
    /// Handles one SQS batch; records that cannot finish before `deadline` are not started.
    pub async fn handle(&self, event: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let budget = BatchBudget::of(&budget::FETCHER, deadline);
        handle_batch(
            event,
            &self.visibility,
            &self.retry,
            budget,
            |record| async move { self.process(&record).await },
        )
        .await
    }

    async fn process(&self, record: &SqsMessage) -> Result<(), RecordError<FetchError>> {
        let message = parse_message(record.body.as_deref().unwrap_or_default())?;
        let job = match message {
            WorkMessage::FetchPull(job) => job,
            other => return Err(RecordError::WrongQueue(other.kind())),
        };
        // Every line about this job carries its pull, monitoring and the webhook that asked.
        let span = tracing::info_span!(
            "fetch",
            pull_id = %job.pull_id,
            monitoring_id = job.monitoring_id.as_deref().unwrap_or("-"),
            dedupe_key = %job.event_key,
            trigger = ?job.trigger,
        );
        let started = std::time::Instant::now();
        let result = self.fetcher.fetch(&job).instrument(span.clone()).await;
        let _entered = span.enter();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                metrics::fetch("retry", latency_ms);
                return Err(RecordError::Work(e));
            }
        };
        match &outcome {
            FetchOutcome::Stored { json_bytes, parts } => {
                metrics::fetch("stored", latency_ms);
                metrics::pull_bytes(*json_bytes);
                tracing::info!(json_bytes, parts, "pull stored")
            }
            FetchOutcome::Skipped(reason) => {
                metrics::fetch(&format!("skipped_{}", reason.as_str()), latency_ms);
                tracing::info!(reason = reason.as_str(), "fetch skipped")
            }
            FetchOutcome::FailedPermanently { code } => {
                metrics::fetch("failed_permanently", latency_ms);
                tracing::error!(%code, "Canopy will not serve this pull; recorded on the pull")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_monitor::app::fetcher::FetcherConfig;
    use canopy_monitor::domain::source::{Source, Sources};
    use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger};
    use canopy_monitor::fakes::canopy::ScriptedCanopy;
    use canopy_monitor::fakes::queue::MemoryVisibility;
    use canopy_monitor::fakes::store::MemoryStore;
    use canopy_monitor::ports::canopy::CanopyError;
    use canopy_monitor::ports::FixedClock;
    use serde_json::json;
    use std::time::Duration;

    fn consumer(
        canopy: ScriptedCanopy,
    ) -> (
        FetchConsumer<MemoryStore, ScriptedCanopy, FixedClock, MemoryVisibility>,
        MemoryStore,
        MemoryVisibility,
    ) {
        let store = MemoryStore::default();
        let visibility = MemoryVisibility::default();
        let consumer = FetchConsumer {
            fetcher: PullFetcher::new(
                store.clone(),
                Sources::single(Source::primary("team"), canopy),
                FixedClock::at_unix(1_764_115_200),
                FetcherConfig::default(),
            ),
            visibility: visibility.clone(),
            retry: RetryPolicy::default(),
        };
        (consumer, store, visibility)
    }

    fn record(id: &str, pull_id: &str, trigger: FetchTrigger, receive_count: u32) -> SqsMessage {
        let body = WorkMessage::FetchPull(FetchPullJob {
            source: None,
            pull_id: pull_id.into(),
            monitoring_id: Some("m1".into()),
            initial_pull_id: None,
            trigger,
            event_key: "k".into(),
            requested_at: "t".into(),
        })
        .to_json();
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body);
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m
    }

    fn batch(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
        let mut ids: Vec<String> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn one_get_for_a_refresh_however_many_messages() {
        let canopy = ScriptedCanopy::default();
        let (consumer, store, _) = consumer(canopy.clone());
        let response = consumer
            .handle(
                batch(vec![
                    record("a", "p1", FetchTrigger::Complete, 1),
                    record("b", "p1", FetchTrigger::Complete, 1),
                    record("c", "p1", FetchTrigger::PoliciesAvailable, 1),
                ]),
                Deadline::NONE,
            )
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(canopy.script().pull_calls, 1);
        assert!(store.state().pull_data.contains_key("p1"));
        assert_eq!(
            store.state().refreshes,
            vec![("m1".to_owned(), "p1".to_owned())]
        );
    }

    #[tokio::test]
    async fn retryable_failures_are_reported_and_delayed() {
        let canopy = ScriptedCanopy::default();
        canopy.pull_answers(
            "p1",
            vec![
                Err(CanopyError::RetryLater {
                    reason: "429".into(),
                    retry_after: Some(Duration::from_secs(600)),
                }),
                Ok(json!({"pull_id": "p1"})),
            ],
        );
        let (consumer, store, visibility) = consumer(canopy.clone());
        let response = consumer
            .handle(
                batch(vec![record("a", "p1", FetchTrigger::Complete, 2)]),
                Deadline::NONE,
            )
            .await;
        assert_eq!(failed_ids(&response), vec!["a"]);
        assert_eq!(
            visibility.0.lock().unwrap().clone(),
            vec![("rh-a".to_owned(), Duration::from_secs(600))]
        );
        assert_eq!(
            store.state().pulls["p1"].fetch_lease_id,
            None,
            "lease released"
        );
        // The redelivery succeeds.
        let response = consumer
            .handle(
                batch(vec![record("a", "p1", FetchTrigger::Complete, 3)]),
                Deadline::NONE,
            )
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(canopy.script().pull_calls, 2);
    }

    #[tokio::test]
    async fn permanent_failures_are_recorded_and_acknowledged() {
        let canopy = ScriptedCanopy::default();
        canopy.pull_answers(
            "gone",
            vec![Err(CanopyError::Permanent {
                status: 404,
                code: "NOT_FOUND".into(),
            })],
        );
        let (consumer, store, _) = consumer(canopy.clone());
        let response = consumer
            .handle(
                batch(vec![record("a", "gone", FetchTrigger::Complete, 1)]),
                Deadline::NONE,
            )
            .await;
        assert!(response.batch_item_failures.is_empty());
        let gone = store.state().pulls["gone"].clone();
        assert_eq!(gone.fetch_status.as_deref(), Some("FAILED"));
        assert_eq!(gone.fetch_error.as_deref(), Some("NOT_FOUND"));
        // And it is not tried again.
        consumer
            .handle(
                batch(vec![record("b", "gone", FetchTrigger::Complete, 1)]),
                Deadline::NONE,
            )
            .await;
        assert_eq!(canopy.script().pull_calls, 1);
    }

    #[tokio::test]
    async fn unreadable_and_misrouted_messages_fail_visibly() {
        let (consumer, _, _) = consumer(ScriptedCanopy::default());
        let mut garbage = record("g", "p", FetchTrigger::Complete, 1);
        garbage.body = Some("not json".into());
        let response = consumer.handle(batch(vec![garbage]), Deadline::NONE).await;
        assert_eq!(failed_ids(&response), vec!["g"]);
    }

    #[tokio::test]
    async fn a_storage_failure_is_retried_and_releases_the_lease() {
        let canopy = ScriptedCanopy::default();
        let (consumer, store, _) = consumer(canopy.clone());
        store.fail("store_pull_data");
        let response = consumer
            .handle(
                batch(vec![record("a", "p1", FetchTrigger::Complete, 1)]),
                Deadline::NONE,
            )
            .await;
        assert_eq!(failed_ids(&response), vec!["a"]);
        assert_eq!(store.state().pulls["p1"].fetch_lease_id, None);
        store.heal();
        let response = consumer
            .handle(
                batch(vec![record("a", "p1", FetchTrigger::Complete, 2)]),
                Deadline::NONE,
            )
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert!(store.state().pull_data.contains_key("p1"));
    }
}
