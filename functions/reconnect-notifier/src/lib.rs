//! The reconnect-notifier handler: an SQS batch of reconnect jobs, one
//! [`ReconnectNotifier::notify`] each, failures reported (`ReportBatchItemFailures`) and
//! delayed with backoff; after maxReceiveCount the dead-letter queue holds them.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use canopy_monitor::budget::{self, Deadline};
use canopy_monitor::canopy::{http::CanopyClient, CanopyApi};
use canopy_monitor::channel::Channel;
use canopy_monitor::channel::{email::SesEmail, sms::SnsSms, webhook::OutboundWebhook};
use canopy_monitor::config::{ConfigError, NotifierEnv};
use canopy_monitor::consumer::{handle_batch, BatchBudget, RecordError};
use canopy_monitor::notifier::{NotifyError, NotifyOutcome, ReconnectNotifier};
use canopy_monitor::ports::{Clock, SystemClock};
use canopy_monitor::queue::sqs::SqsVisibility;
use canopy_monitor::queue::MessageVisibility;
use canopy_monitor::retry::RetryPolicy;
use canopy_monitor::secrets;
use canopy_monitor::store::dynamo::DynamoStore;
use canopy_monitor::store::EpisodeStore;
use canopy_monitor::work::{parse_message, WorkMessage};

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
    let canopy = secrets::canopy_client(&secrets_client, &env.canopy).await?;
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
