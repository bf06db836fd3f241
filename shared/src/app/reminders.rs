//! The reminder scheduler: finds episodes whose reminder is due (a Query on a sparse index)
//! and queues a reminder notice for each one still open; closes the ones already resolved.
//!
//! Order: enqueue, then take the reminder off the index. A crash in between leaves it due, so a
//! later run enqueues it again; the notifier drops the duplicate (same notice number).
//!
//! Each reminder is handled on its own: one that fails is logged and counted, stays due (its
//! index entry is not taken), and the pass goes on, so one bad item never blocks the others.

use crate::app::budget::Deadline;
use crate::domain::time_fmt::format_ts;
use crate::domain::work::{Outgoing, WorkMessage};
use crate::ports::queue::WorkQueue;
use crate::ports::store::{DueReminder, PortError, ReminderStore};
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
    crate::app::budget::AWS_OPERATION_TIMEOUT.saturating_mul(3);

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
    crate::app::metrics::reminders(run.due, run.queued);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::MonitoringRecord;
    use crate::domain::work::ReconnectJob;
    use crate::fakes::queue::MemoryQueue;
    use crate::fakes::store::{EpisodeRecord, MemoryStore};

    const NOW: &str = "2026-11-30T00:00:00.000Z";

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
            .expect("time")
    }

    /// An episode of `monitoring` started at `started`, with one notice sent and a reminder
    /// due at `due`; the monitoring's open episode is `open`.
    fn episode(
        store: &MemoryStore,
        monitoring: &str,
        started: &str,
        due: &str,
        open: Option<&str>,
    ) {
        let mut state = store.state();
        state.monitorings.insert(
            monitoring.into(),
            MonitoringRecord {
                reconnect_needed_since: open.map(str::to_owned),
                ..MonitoringRecord::default()
            },
        );
        state.episodes.insert(
            (monitoring.into(), started.into()),
            EpisodeRecord {
                job: ReconnectJob {
                    monitoring_id: monitoring.into(),
                    source: None,
                    pull_id: format!("p-{monitoring}"),
                    initial_pull_id: None,
                    widget_id: None,
                    meta_data: None,
                    meta_data_pull_id: None,
                    link: None,
                    event_key: "k".into(),
                    requested_at: started.into(),
                    notice: 0,
                    episode: None,
                },
                notices_sent: 1,
                last_notice: None,
                due_key: Some(format!("{due}#{monitoring}#{started}")),
                resolved_at: None,
            },
        );
    }

    fn queued(queue: &MemoryQueue) -> Vec<ReconnectJob> {
        queue
            .sent()
            .into_iter()
            .filter_map(|o| match o.message {
                WorkMessage::NotifyReconnect(job) => Some(job),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn due_reminders_of_open_episodes_are_queued_once() {
        let store = MemoryStore::default();
        let queue = MemoryQueue::default();
        let started = "2026-11-26T00:00:00.000Z";
        episode(
            &store,
            "m1",
            started,
            "2026-11-29T00:00:00.000Z",
            Some(started),
        );
        episode(
            &store,
            "m-later",
            started,
            "2026-12-02T00:00:00.000Z",
            Some(started),
        );
        let run = run_reminders(&store, &queue, now(), 500, Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(
            (run.due, run.queued, run.resolved, run.failed),
            (1, 1, 0, 0)
        );
        let jobs = queued(&queue);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].monitoring_id, "m1");
        assert_eq!(
            (jobs[0].notice, jobs[0].episode.as_deref()),
            (1, Some(started))
        );
        // Taken off the due list: the next pass queues nothing.
        let again = run_reminders(&store, &queue, now(), 500, Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(again.due, 0);
        assert_eq!(queued(&queue).len(), 1);
    }

    #[tokio::test]
    async fn reminders_of_resolved_or_replaced_episodes_are_closed_not_sent() {
        let store = MemoryStore::default();
        let queue = MemoryQueue::default();
        let old = "2026-11-20T00:00:00.000Z";
        episode(&store, "m-resolved", old, "2026-11-29T00:00:00.000Z", None);
        episode(
            &store,
            "m-new",
            old,
            "2026-11-29T00:00:00.000Z",
            Some("2026-11-28T00:00:00.000Z"),
        );
        let run = run_reminders(&store, &queue, now(), 500, Deadline::NONE)
            .await
            .unwrap();
        assert_eq!((run.due, run.queued, run.resolved), (2, 0, 2));
        assert!(queue.sent().is_empty());
        let state = store.state();
        let resolved = &state.episodes[&("m-resolved".to_owned(), old.to_owned())];
        assert_eq!(resolved.resolved_at.as_deref(), Some(NOW));
        assert_eq!(resolved.due_key, None);
    }

    #[tokio::test]
    async fn a_failed_reminder_stays_due_and_the_others_go_on() {
        let store = MemoryStore::default();
        let queue = MemoryQueue::default();
        let started = "2026-11-26T00:00:00.000Z";
        episode(
            &store,
            "m1",
            started,
            "2026-11-29T00:00:00.000Z",
            Some(started),
        );
        episode(
            &store,
            "m2",
            started,
            "2026-11-29T01:00:00.000Z",
            Some(started),
        );
        queue.set_failing(true);
        let run = run_reminders(&store, &queue, now(), 500, Deadline::NONE)
            .await
            .unwrap();
        assert_eq!((run.due, run.queued, run.failed), (2, 0, 2));
        queue.set_failing(false);
        let run = run_reminders(&store, &queue, now(), 500, Deadline::NONE)
            .await
            .unwrap();
        assert_eq!((run.due, run.queued, run.failed), (2, 2, 0));
    }

    #[tokio::test]
    async fn no_reminder_is_started_that_could_not_finish_before_the_deadline() {
        let store = MemoryStore::default();
        let queue = MemoryQueue::default();
        let started = "2026-11-26T00:00:00.000Z";
        episode(
            &store,
            "m1",
            started,
            "2026-11-29T00:00:00.000Z",
            Some(started),
        );
        let ending = Deadline::after(REMINDER_BUDGET / 2);
        let run = run_reminders(&store, &queue, now(), 500, ending)
            .await
            .unwrap();
        assert_eq!((run.due, run.queued, run.deferred), (1, 0, 1));
        assert!(queue.sent().is_empty());
    }
}
