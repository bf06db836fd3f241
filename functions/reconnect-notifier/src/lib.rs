//! The reconnect-notifier handler: an SQS batch of reconnect jobs, one
//! [`ReconnectNotifier::notify`] each, failures reported (`ReportBatchItemFailures`) and
//! delayed with backoff; after maxReceiveCount the dead-letter queue holds them.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use canopy_monitor::adapters::channels::{OutboundWebhook, SesEmail, SnsSms};
use canopy_monitor::adapters::{dynamo::DynamoStore, secrets, sqs::SqsVisibility};
use canopy_monitor::canopy::{CanopyApi, CanopyClient};
use canopy_monitor::config::{ConfigError, NotifierEnv};
use canopy_monitor::notifier::{
    Channel, EpisodeStore, NotifyError, NotifyOutcome, ReconnectNotifier,
};
use canopy_monitor::ports::{Clock, MessageVisibility, SystemClock};
use canopy_monitor::retry::RetryPolicy;
use canopy_monitor::work::{parse_message, MessageError, WorkMessage};
use futures::StreamExt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

const CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Unreadable(#[from] MessageError),
    #[error("a {0} message does not belong on the notify queue")]
    WrongQueue(&'static str),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

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
    let credentials =
        secrets::load_canopy_credentials(&secrets_client, &env.canopy.api_secret_id).await?;
    let canopy = CanopyClient::new(
        &env.canopy.base_url,
        &env.canopy.team_id,
        credentials,
        env.canopy.timeout,
    )
    .map_err(|e| ConfigError::Invalid {
        name: "CANOPY_BASE_URL",
        detail: e.to_string(),
    })?;
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
        let webhook = OutboundWebhook::new(url, secret.trim(), Duration::from_secs(10)).map_err(
            |detail| ConfigError::Secret {
                secret: secret_id.to_owned(),
                detail,
            },
        )?;
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
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let failures: Vec<BatchItemFailure> = futures::stream::iter(event.records)
            .map(|record| self.handle_record(record))
            .buffer_unordered(CONCURRENCY)
            .filter_map(|failure| async move { failure })
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    async fn handle_record(&self, record: SqsMessage) -> Option<BatchItemFailure> {
        let message_id = record.message_id.clone().unwrap_or_default();
        let err = match self.process(&record).await {
            Ok(()) => return None,
            Err(err) => err,
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1);
        let retry_after = match &err {
            RecordError::Notify(e) => e.retry_after(),
            _ => None,
        };
        let mut hasher = DefaultHasher::new();
        message_id.hash(&mut hasher);
        let delay = self
            .retry
            .delay(receive_count, retry_after, hasher.finish());
        tracing::warn!(%message_id, receive_count, delay_secs = delay.as_secs(), error = %err, "notice failed; will retry");
        if let Some(receipt) = record.receipt_handle.as_deref() {
            if let Err(e) = self.visibility.retry_after(receipt, delay).await {
                tracing::warn!(%message_id, error = %e, "could not delay the retry");
            }
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        Some(failure)
    }

    async fn process(&self, record: &SqsMessage) -> Result<(), RecordError> {
        let job = match parse_message(record.body.as_deref().unwrap_or_default())? {
            WorkMessage::NotifyReconnect(job) => job,
            other => return Err(RecordError::WrongQueue(other.kind())),
        };
        match self.notifier.notify(&job).await? {
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
