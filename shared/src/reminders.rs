//! The reminder scheduler: finds episodes whose reminder is due (a Query on a sparse index)
//! and queues a reminder notice for each one still open; closes the ones already resolved.
//!
//! Order: enqueue, then take the reminder off the index. A crash in between leaves it due, so a
//! later run enqueues it again; the notifier drops the duplicate (same notice number).
//!
//! Each reminder is handled on its own: one that fails is logged and counted, stays due (its
//! index entry is not taken), and the pass goes on, so one bad item never blocks the others.

use crate::budget::Deadline;
use crate::queue::WorkQueue;
use crate::store::{DueReminder, PortError, ReminderStore};
use crate::time_fmt::format_ts;
use crate::work::{Outgoing, WorkMessage};
use std::time::Duration;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReminderRun {
    pub due: usize,
    pub queued: usize,
    pub resolved: usize,
    /// Reminders that failed this time; they stay due for the next run.
    pub failed: usize,
    /// Reminders not started because the invocation was ending; they stay due.
    pub deferred: usize,
}

/// The most one reminder can take: three AWS calls at their operation timeout.
pub const REMINDER_BUDGET: std::time::Duration =
    crate::budget::AWS_OPERATION_TIMEOUT.saturating_mul(3);

/// What became of one due reminder.
enum Handled {
    Queued,
    Resolved,
    /// Another run took it first.
    Taken,
}

/// Runs the scheduler once at `now`, handling at most `limit` due reminders, and starting none
/// that could not finish before `deadline`.
pub async fn run_reminders<S: ReminderStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    now: time::OffsetDateTime,
    limit: i32,
    deadline: Deadline,
) -> Result<ReminderRun, PortError> {
    let at = format_ts(now);
    let due = store.due_reminders(&at, limit).await?;
    let mut run = ReminderRun {
        due: due.len(),
        ..ReminderRun::default()
    };
    for reminder in due {
        if !deadline.allows(REMINDER_BUDGET) {
            run.deferred += 1;
            continue;
        }
        match handle_one(store, queue, &reminder, &at).await {
            Ok(Handled::Queued) => {
                run.queued += 1;
                tracing::info!(monitoring_id = %reminder.monitoring_id, notice = reminder.notices_sent, "reminder queued");
            }
            Ok(Handled::Resolved) => run.resolved += 1,
            Ok(Handled::Taken) => {}
            Err(e) => {
                run.failed += 1;
                tracing::error!(monitoring_id = %reminder.monitoring_id, notice = reminder.notices_sent, error = %e,
                    "reminder failed; it stays due for the next run");
            }
        }
    }
    Ok(run)
}

async fn handle_one<S: ReminderStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    reminder: &DueReminder,
    at: &str,
) -> Result<Handled, PortError> {
    let open = store.open_episode_start(&reminder.monitoring_id).await?;
    if open.as_deref() != Some(reminder.started_at.as_str()) {
        return Ok(if store.take_reminder(reminder, Some(at)).await? {
            Handled::Resolved
        } else {
            Handled::Taken
        });
    }
    queue
        .enqueue(&Outgoing {
            message: WorkMessage::NotifyReconnect(reminder.job.clone()),
            delay: Duration::ZERO,
        })
        .await?;
    Ok(if store.take_reminder(reminder, None).await? {
        Handled::Queued
    } else {
        Handled::Taken
    })
}
