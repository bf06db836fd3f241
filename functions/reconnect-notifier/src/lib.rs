//! The reconnect-notifier handler: an SQS batch of reconnect jobs, one
//! [`ReconnectNotifier::notify`] each, failures reported (`ReportBatchItemFailures`) and
//! delayed with backoff; after maxReceiveCount the dead-letter queue holds them.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::secrets;
use canopy_monitor::adapters::sqs::SqsVisibility;
use canopy_monitor::adapters::{ses::SesEmail, sns::SnsSms, webhook::OutboundWebhook};
use canopy_monitor::app::budget::{self, Deadline};
use canopy_monitor::app::notifier::{NotifyError, NotifyOutcome, ReconnectNotifier};
use canopy_monitor::domain::retry::RetryPolicy;
use canopy_monitor::domain::work::{parse_message, WorkMessage};
use canopy_monitor::ports::canopy::CanopyApi;
use canopy_monitor::ports::channel::Channel;
use canopy_monitor::ports::queue::MessageVisibility;
use canopy_monitor::ports::store::EpisodeStore;
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::{Clock, SystemClock};
use canopy_monitor::runtime::config::NotifierEnv;
use canopy_monitor::runtime::consumer::{handle_batch, BatchBudget, RecordError};

pub struct NotifyConsumer<S, A, C, V> {
    pub notifier: ReconnectNotifier<S, A, C>,
    pub visibility: V,
    pub retry: RetryPolicy,
}

pub type AwsNotifyConsumer = NotifyConsumer<DynamoStore, CanopyClient, SystemClock, SqsVisibility>;

pub async fn notifier_from_env(
    aws: &aws_config::SdkConfig,
) -> Result<AwsNotifyConsumer, ConfigError> {
    notifier_from(NotifierEnv::from_env()?, aws).await
}

/// Builds the consumer; each channel is on when its configuration is present.
pub async fn notifier_from(
    env: NotifierEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsNotifyConsumer, ConfigError> {
    let secrets_client = aws_sdk_secretsmanager::Client::new(aws);
    let canopy = env.canopy.clients(&secrets_client).await?;
    let mut channels: Vec<Box<dyn Channel>> = Vec::new();
    if let Some(from) = env.email_from.clone() {
        channels.push(Box::new(SesEmail::new(
            aws_sdk_sesv2::Client::new(aws),
            from,
        )));
    }
    if env.sms_enabled {
        channels.push(Box::new(SnsSms::new(aws_sdk_sns::Client::new(aws))));
    }
    if let (Some(url), Some(secret_id)) =
        (env.webhook_url.clone(), env.webhook_secret_id.as_deref())
    {
        let secret = secrets::read_secret_string(&secrets_client, secret_id).await?;
        let webhook = OutboundWebhook::new(url, secret.trim(), budget::OUTBOUND_WEBHOOK_TIMEOUT)
            .map_err(|detail| ConfigError::Secret {
                secret: secret_id.to_owned(),
                detail,
            })?;
        channels.push(Box::new(webhook));
    }
    if channels.is_empty() {
        tracing::warn!("no notification channel is configured: notices will be recorded as unsent");
    }
    Ok(NotifyConsumer {
        notifier: ReconnectNotifier::new(
            DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name),
            canopy,
            SystemClock,
            channels,
            env.notifier,
        ),
        visibility: SqsVisibility::new(aws_sdk_sqs::Client::new(aws), env.notify_queue_url),
        retry: env.retry,
    })
}

impl<S: EpisodeStore, A: CanopyApi, C: Clock, V: MessageVisibility> NotifyConsumer<S, A, C, V> {
    /// Handles one SQS batch.
    /// Handles one SQS batch; records that cannot finish before `deadline` are not started.
    pub async fn handle(&self, event: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let budget = BatchBudget::of(&budget::NOTIFIER, deadline);
        handle_batch(
            event,
            &self.visibility,
            &self.retry,
            budget,
            |record| async move { self.process(&record).await },
        )
        .await
    }

    async fn process(&self, record: &SqsMessage) -> Result<(), RecordError<NotifyError>> {
        let job = match parse_message(record.body.as_deref().unwrap_or_default())? {
            WorkMessage::NotifyReconnect(job) => job,
            other => return Err(RecordError::WrongQueue(other.kind())),
        };
        match self
            .notifier
            .notify(&job)
            .await
            .map_err(RecordError::Work)?
        {
            NotifyOutcome::Notified(r) => {
                let sent: Vec<&str> = r.sent.iter().map(|c| c.as_str()).collect();
                let failed: Vec<&str> = r.failed.iter().map(|(c, _)| c.as_str()).collect();
                tracing::info!(monitoring_id = %job.monitoring_id, notice = job.notice, ?sent, ?failed,
                    no_contact = r.no_contact, link_source = r.link_source, "reconnect notice handled");
            }
            other => {
                tracing::info!(monitoring_id = %job.monitoring_id, notice = job.notice, outcome = ?other, "nothing to send")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_monitor::app::notifier::NotifierConfig;
    use canopy_monitor::domain::event::ReconnectLink;
    use canopy_monitor::domain::notice::ChannelKind;
    use canopy_monitor::domain::records::MonitoringRecord;
    use canopy_monitor::domain::source::{Source, Sources};
    use canopy_monitor::domain::work::ReconnectJob;
    use canopy_monitor::fakes::canopy::ScriptedCanopy;
    use canopy_monitor::fakes::channel::RecordingChannel;
    use canopy_monitor::fakes::queue::MemoryVisibility;
    use canopy_monitor::fakes::store::MemoryStore;
    use canopy_monitor::ports::canopy::{CanopyError, ReconnectToken};
    use canopy_monitor::ports::channel::ChannelError;
    use canopy_monitor::ports::FixedClock;
    use serde_json::json;

    const STARTED: &str = "2026-11-26T00:00:00.000Z";

    struct Rig {
        consumer: NotifyConsumer<MemoryStore, ScriptedCanopy, FixedClock, MemoryVisibility>,
        store: MemoryStore,
        canopy: ScriptedCanopy,
        email: RecordingChannel,
        visibility: MemoryVisibility,
    }

    /// A notifier with one email channel and a monitoring `m1` whose reconnect is needed.
    fn rig() -> Rig {
        let store = MemoryStore::default();
        store.state().monitorings.insert(
            "m1".into(),
            MonitoringRecord {
                reconnect_needed_since: Some(STARTED.into()),
                ..MonitoringRecord::default()
            },
        );
        let canopy = ScriptedCanopy::default();
        let email = RecordingChannel::new(ChannelKind::Email);
        let visibility = MemoryVisibility::default();
        let consumer = NotifyConsumer {
            notifier: ReconnectNotifier::new(
                store.clone(),
                Sources::single(Source::primary("team"), canopy.clone()),
                FixedClock::at_unix(1_764_115_200),
                vec![Box::new(email.clone())],
                NotifierConfig {
                    token_retry_pause: std::time::Duration::ZERO,
                    ..NotifierConfig::default()
                },
            ),
            visibility: visibility.clone(),
            retry: RetryPolicy::default(),
        };
        Rig {
            consumer,
            store,
            canopy,
            email,
            visibility,
        }
    }

    fn job(notice: u32) -> ReconnectJob {
        ReconnectJob {
            source: None,
            monitoring_id: "m1".into(),
            pull_id: "p2".into(),
            initial_pull_id: Some("p1".into()),
            widget_id: None,
            meta_data: Some(json!({"email": "lois@example.com", "first_name": "Lois"})),
            meta_data_pull_id: None,
            link: Some(ReconnectLink {
                reconnect_url: Some("https://canopy.example/reconnect?t=from-webhook".into()),
                reconnect_token: Some("from-webhook".into()),
            }),
            event_key: "k".into(),
            requested_at: STARTED.into(),
            notice,
            episode: (notice > 0).then(|| STARTED.to_owned()),
        }
    }

    fn batch(jobs: Vec<ReconnectJob>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("msg-{i}"));
                m.receipt_handle = Some(format!("rh-{i}"));
                m.body = Some(WorkMessage::NotifyReconnect(job).to_json());
                m.attributes
                    .insert("ApproximateReceiveCount".into(), "1".into());
                m
            })
            .collect();
        event
    }

    fn fresh_token() -> ReconnectToken {
        ReconnectToken {
            pull_id: Some("p2".into()),
            reconnect_url: "https://canopy.example/reconnect?t=fresh".into(),
            reconnect_token: "fresh".into(),
        }
    }

    #[tokio::test]
    async fn one_notice_per_episode_with_a_fresh_link() {
        let rig = rig();
        rig.canopy.token_answers("m1", vec![Ok(fresh_token())]);
        // The first notice delivered three times (a redelivered or duplicated message).
        let response = rig
            .consumer
            .handle(batch(vec![job(0), job(0), job(0)]), Deadline::NONE)
            .await;
        assert!(response.batch_item_failures.is_empty());
        let sent = rig.email.notices();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].2, "https://canopy.example/reconnect?t=fresh");
        let episode = rig.store.state().episodes[&("m1".to_owned(), STARTED.to_owned())].clone();
        assert_eq!(episode.notices_sent, 1);
        assert!(episode.due_key.is_some(), "a reminder is scheduled");
    }

    #[tokio::test]
    async fn the_webhook_link_is_the_fallback_when_canopy_has_none() {
        let rig = rig();
        rig.canopy.token_answers(
            "m1",
            vec![Err(CanopyError::RetryLater {
                reason: "503".into(),
                retry_after: None,
            })],
        );
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert!(response.batch_item_failures.is_empty());
        let sent = rig.email.notices();
        assert_eq!(sent[0].2, "https://canopy.example/reconnect?t=from-webhook");
        let episode = rig.store.state().episodes[&("m1".to_owned(), STARTED.to_owned())].clone();
        assert_eq!(episode.last_notice.map(|n| n.link_source), Some("webhook"));
    }

    #[tokio::test]
    async fn a_resolved_episode_sends_nothing() {
        let rig = rig();
        rig.store
            .state()
            .monitorings
            .get_mut("m1")
            .expect("monitoring")
            .reconnect_needed_since = None;
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert!(rig.email.notices().is_empty());
        assert_eq!(rig.canopy.script().token_calls, 0);
    }

    #[tokio::test]
    async fn a_retryable_send_failure_is_retried_and_then_sent_once() {
        let rig = rig();
        rig.canopy.token_answers("m1", vec![Ok(fresh_token())]);
        rig.email
            .fail_next(vec![ChannelError::Retryable("Throttling".into())]);
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(rig.visibility.0.lock().unwrap().len(), 1, "delayed");
        assert!(rig.email.notices().is_empty());
        // The claim was released: the redelivery sends.
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(rig.email.notices().len(), 1);
    }

    #[tokio::test]
    async fn a_permanent_send_failure_is_recorded_not_retried() {
        let rig = rig();
        rig.canopy.token_answers("m1", vec![Ok(fresh_token())]);
        rig.email
            .fail_next(vec![ChannelError::Permanent("MessageRejected".into())]);
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert!(response.batch_item_failures.is_empty());
        let episode = rig.store.state().episodes[&("m1".to_owned(), STARTED.to_owned())].clone();
        let notice = episode.last_notice.expect("recorded");
        assert!(notice.sent.is_empty());
        assert_eq!(notice.failed.len(), 1);
        let sends = rig.store.state().sends.clone();
        assert!(sends.values().all(|s| s.status == "FAILED"), "{sends:?}");
    }

    #[tokio::test]
    async fn a_storage_outage_fails_the_record_visibly() {
        let rig = rig();
        rig.store.fail("open_episode");
        let response = rig
            .consumer
            .handle(batch(vec![job(0)]), Deadline::NONE)
            .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert!(rig.email.notices().is_empty());
    }
}
