//! What every SQS-triggered function does with a batch: process the records (a few at once),
//! report the failed ones as batch item failures, and delay each failure's next delivery by the
//! retry policy. Successes are acknowledged by omission; nothing is swallowed.

use crate::ports::MessageVisibility;
use crate::retry::RetryPolicy;
use crate::work::MessageError;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::fmt::Display;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Records of one batch processed at once: enough to overlap round trips to Canopy, few
/// enough to stay gentle with it (the event source mapping also caps concurrent functions).
pub const CONCURRENCY: usize = 4;

/// An error that may name the least delay before a retry (e.g. a 429's `Retry-After`).
pub trait RetryHint {
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Why one record of a batch failed: its body, its queue, or the work itself (`E`).
#[derive(Debug, thiserror::Error)]
pub enum RecordError<E> {
    #[error(transparent)]
    Unreadable(#[from] MessageError),
    #[error("a {0} message does not belong on this queue")]
    WrongQueue(&'static str),
    #[error(transparent)]
    Work(E),
}

impl<E: RetryHint> RetryHint for RecordError<E> {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            RecordError::Work(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Runs `process` over the batch and folds the results into an [`SqsBatchResponse`].
pub async fn handle_batch<F, Fut, E, V>(
    event: SqsEvent,
    visibility: &V,
    retry: &RetryPolicy,
    process: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = (SqsMessage, Result<(), E>)>,
    E: Display + RetryHint,
    V: MessageVisibility,
{
    let failures: Vec<BatchItemFailure> = futures::stream::iter(event.records)
        .map(process)
        .buffer_unordered(CONCURRENCY)
        .filter_map(|(record, result)| async move {
            let err = result.err()?;
            Some(schedule_retry(&record, &err, visibility, retry).await)
        })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn schedule_retry<E: Display + RetryHint, V: MessageVisibility>(
    record: &SqsMessage,
    err: &E,
    visibility: &V,
    retry: &RetryPolicy,
) -> BatchItemFailure {
    let message_id = record.message_id.clone().unwrap_or_default();
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(1);
    let mut hasher = DefaultHasher::new();
    message_id.hash(&mut hasher);
    let delay = retry.delay(receive_count, err.retry_after(), hasher.finish());
    tracing::warn!(%message_id, receive_count, delay_secs = delay.as_secs(), error = %err, "message failed; will retry");
    if let Some(receipt) = record.receipt_handle.as_deref() {
        if let Err(e) = visibility.retry_after(receipt, delay).await {
            // The queue's own visibility timeout then decides when it returns.
            tracing::warn!(%message_id, error = %e, "could not delay the retry");
        }
    }
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}
