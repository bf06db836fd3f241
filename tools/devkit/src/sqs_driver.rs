//! Feeds an SQS queue to a function the way Lambda's event source mapping does: receive a
//! batch, hand it over as an `SqsEvent`, delete what succeeded, leave the reported failures
//! (whose visibility the function may have changed) to come back later.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use std::collections::HashSet;

/// Receives up to `max` messages, waiting up to `wait_secs` for the first.
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    wait_secs: i32,
) -> Result<SqsEvent, String> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| {
            format!(
                "receive from {queue_url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    let mut event = SqsEvent::default();
    event.records = out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            record.event_source = Some("aws:sqs".to_owned());
            record
        })
        .collect();
    Ok(event)
}

/// Deletes the messages of `batch` that `response` does not report as failed.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &SqsEvent,
    response: &SqsBatchResponse,
) -> Result<usize, String> {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let mut deleted = 0;
    for record in &batch.records {
        let id = record.message_id.as_deref().unwrap_or_default();
        if failed.contains(id) {
            continue;
        }
        if let Some(receipt) = &record.receipt_handle {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "delete from {queue_url}: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// One receive-handle-settle round; `None` when the queue had nothing.
pub async fn poll_once<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait_secs: i32,
    handler: &F,
) -> Result<Option<usize>, String>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let batch = receive_batch(sqs, queue_url, 10, wait_secs).await?;
    if batch.records.is_empty() {
        return Ok(None);
    }
    let records = batch.records.len();
    let response = handler(batch.clone()).await;
    settle(sqs, queue_url, &batch, &response).await?;
    Ok(Some(records))
}

/// Messages still in the queue: visible, in flight (a retry's visibility delay) or delayed.
pub async fn pending_messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<usize, String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| {
            format!(
                "attributes of {queue_url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .attributes
        .unwrap_or_default();
    Ok(attrs.values().filter_map(|v| v.parse::<usize>().ok()).sum())
}

/// How long [`drain`] waits for messages that will come back (retries after a lease).
pub const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);

/// Feeds the queue to `handler` until it stays empty for three polls and no message is in
/// flight or delayed (a retry waiting out a lease comes back); returns the batches.
pub async fn drain<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: F,
) -> Result<usize, String>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let started = std::time::Instant::now();
    let (mut batches, mut empty_rounds) = (0, 0);
    while empty_rounds < 3 {
        match poll_once(sqs, queue_url, 0, &handler).await? {
            None => {
                empty_rounds += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if empty_rounds == 3
                    && started.elapsed() < DRAIN_PATIENCE
                    && pending_messages(sqs, queue_url).await? > 0
                {
                    empty_rounds = 0;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
            Some(_) => {
                empty_rounds = 0;
                batches += 1;
                if batches >= 500 {
                    return Err(format!("{queue_url} never drained"));
                }
            }
        }
    }
    Ok(batches)
}

/// Polls the queue into `handler` forever, in the background (the local runner's consumers).
pub fn spawn_poller<F, Fut>(sqs: aws_sdk_sqs::Client, queue_url: String, handler: F)
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = SqsBatchResponse> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(e) = poll_once(&sqs, &queue_url, 1, &handler).await {
                tracing::warn!(queue = %queue_url, error = %e, "queue poll failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    });
}
