//! What every SQS-triggered function does with a batch: process the records (a few at once),
//! report the failed ones as batch item failures, and delay each failure's next delivery by the
//! retry policy. Successes are acknowledged by omission; nothing is swallowed.

use crate::app::budget::Deadline;
use crate::domain::retry::{RetryHint, RetryPolicy};
use crate::domain::work::MessageError;
use crate::ports::queue::MessageVisibility;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::fmt::Display;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Why one record of a batch failed: its body, its queue, the work itself (`E`), or time.
#[derive(Debug, thiserror::Error)]
pub enum RecordError<E> {
    #[error(transparent)]
    Unreadable(#[from] MessageError),
    #[error("a {0} message does not belong on this queue")]
    WrongQueue(&'static str),
    #[error(transparent)]
    Work(E),
    /// The record ran past its budget (a hung dependency): retried with backoff.
    #[error("the record did not finish within its {0:?} budget")]
    TimedOut(Duration),
    /// Not started: the invocation had too little time left. Back on the queue at once.
    #[error("not started: too little time left in this invocation")]
    NotStarted,
}

impl<E: RetryHint> RetryHint for RecordError<E> {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            RecordError::Work(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// How long each record may take, how many run at once, and when the invocation ends.
#[derive(Debug, Clone, Copy)]
pub struct BatchBudget {
    pub record: Duration,
    /// Records processed at once: enough to overlap round trips to Canopy, few enough to stay
    /// gentle with it (the event source mapping also caps concurrent functions).
    pub concurrency: usize,
    pub deadline: Deadline,
}

impl BatchBudget {
    /// The budget of a function (see [`crate::app::budget`]) for an invocation ending at `deadline`.
    pub fn of(function: &crate::app::budget::ConsumerBudget, deadline: Deadline) -> Self {
        Self {
            record: function.record,
            concurrency: function.concurrency as usize,
            deadline,
        }
    }
}

/// Runs `process` over the batch and folds the results into an [`SqsBatchResponse`].
/// A record starts only if its whole budget fits before the deadline, and is cut off when its
/// budget runs out; either way it is reported as failed, so SQS delivers it again.
pub async fn handle_batch<F, Fut, E, V>(
    event: SqsEvent,
    visibility: &V,
    retry: &RetryPolicy,
    budget: BatchBudget,
    process: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), RecordError<E>>>,
    E: Display + RetryHint,
    V: MessageVisibility,
{
    let process = &process;
    let failures: Vec<BatchItemFailure> = futures::stream::iter(event.records)
        .map(|record| async move {
            let result = if !budget.deadline.allows(budget.record) {
                Err(RecordError::NotStarted)
            } else {
                tokio::time::timeout(budget.record, process(record.clone()))
                    .await
                    .unwrap_or(Err(RecordError::TimedOut(budget.record)))
            };
            (record, result)
        })
        .buffer_unordered(budget.concurrency.max(1))
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
    err: &RecordError<E>,
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
    let delay = match err {
        RecordError::NotStarted => Duration::ZERO,
        _ => retry.delay(receive_count, err.retry_after(), hasher.finish()),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::queue::MemoryVisibility;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;
    impl RetryHint for Never {}

    fn batch(n: usize) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = (0..n)
            .map(|i| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m{i}"));
                m.receipt_handle = Some(format!("rh{i}"));
                m
            })
            .collect();
        event
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_record_is_cut_off_and_retried_with_backoff() {
        let visibility = MemoryVisibility::default();
        let budget = BatchBudget {
            record: Duration::from_secs(30),
            concurrency: 4,
            deadline: Deadline::NONE,
        };
        let response = handle_batch(
            batch(2),
            &visibility,
            &RetryPolicy::default(),
            budget,
            |m| {
                let hang = m.message_id.as_deref() == Some("m0");
                async move {
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), RecordError<Never>>(())
                }
            },
        )
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec!["m0"]);
        let delays = visibility.0.lock().unwrap().clone();
        assert_eq!(delays.len(), 1);
        assert!(
            delays[0].1 >= Duration::from_secs(48),
            "backed off: {delays:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn records_that_cannot_finish_before_the_deadline_are_not_started() {
        let visibility = MemoryVisibility::default();
        let started = std::sync::atomic::AtomicUsize::new(0);
        // Each record takes about its whole 30 s budget; 60 s leave room for one wave of four only.
        let budget = BatchBudget {
            record: Duration::from_secs(30),
            concurrency: 4,
            deadline: Deadline::after(Duration::from_secs(60)),
        };
        let response = handle_batch(
            batch(10),
            &visibility,
            &RetryPolicy::default(),
            budget,
            |_| {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(29)).await;
                    Ok::<(), RecordError<Never>>(())
                }
            },
        )
        .await;
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(response.batch_item_failures.len(), 6);
        let delays = visibility.0.lock().unwrap().clone();
        assert!(
            delays.iter().all(|(_, d)| d.is_zero()),
            "back at once: {delays:?}"
        );
    }
}
