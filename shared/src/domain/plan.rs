//! What a webhook changes: pure decisions from an event to the state updates and the work it
//! causes. The adapters turn an [`EventPlan`] into DynamoDB updates and SQS messages; the
//! in-memory store applies the same plan to structs, so both follow these rules.
//!
//! Ordering. Canopy does not order deliveries. Each pull keeps a `progress rank` (how far the
//! pull has got); an event that carries progress is applied only if its rank is not lower than
//! the stored one, and an AUTH_STATUS of the same rank only if its `sequence` is not lower.
//! Equal values are allowed so that a retried, partially applied event applies again. An event
//! refused by this rule is *stale*: its pull's status fields are left alone.
//!
//! Order guards fields, never work. A stale event still updates its
//! monitoring and queues the work it asks for (a fetch, a notice); the consumers skip work only
//! on positive evidence that it is covered (the fetcher's claim rule, the notifier's episode).
//!
//! Refreshes of one monitoring are ordered by when their pull was *first seen* (the pull item's
//! `first_seen_at`): a refresh's deliveries span hours at most (Canopy stops retrying after
//! about 7.2 h) while refreshes are weeks apart (intervals are at least 30 days), so the first
//! sight of a pull orders refreshes even when single deliveries arrive late. The monitoring keeps
//! `latest_pull_seen_at` (of its latest completed refresh) and `reconnect_pull_seen_at` (of the
//! pull that opened the open reconnect episode):
//! - a COMPLETE moves `latest_pull_id` only forward, and closes the episode only if its pull is
//!   the reconnect's pull or a later one;
//! - a MONITORING_RECONNECT opens an episode unless that pull, or a later refresh, has
//!   completed already: the positive evidence that the consumer has reconnected.

use crate::domain::event::{EventType, WebhookEvent};
use crate::domain::work::{
    inline_meta_data, FetchPullJob, FetchTrigger, Outgoing, ReconnectJob, WorkMessage,
};
use serde_json::Value;
use std::time::Duration;

/// The default [`PlanConfig::owner_key`].
pub const DEFAULT_OWNER_KEY: &str = "customer_id";

/// Settings the plan depends on.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// How long a POLICIES_AVAILABLE waits before its fallback fetch. Long enough for COMPLETE
    /// (which brings documents) to arrive and fetch first; the fetcher then skips the fallback.
    /// SQS allows at most 900 s.
    pub fetch_fallback_delay: Duration,
    /// The `meta_data` key that holds the integrator's customer id: a monitoring's owner.
    pub owner_key: String,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            fetch_fallback_delay: Duration::from_secs(900),
            owner_key: DEFAULT_OWNER_KEY.to_owned(),
        }
    }
}

/// A milestone of a pull, each recorded once with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    PoliciesAvailable,
    Completed,
    Failed,
}

/// The guarded part of a pull update: how far the pull has got.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub rank: u8,
    pub status: Option<String>,
    pub auth_status: Option<String>,
    /// AUTH_STATUS `sequence`; when present, equal ranks are ordered by it.
    pub sequence: Option<i64>,
    pub error_type: Option<String>,
    pub milestone: Option<Milestone>,
    /// What an AUTH_STATUS asks the consumer (set, or cleared, by every AUTH_STATUS).
    pub auth_prompt: Option<AuthPrompt>,
}

/// The prompt details of an AUTH_STATUS: Canopy's message after a failed login, and the MFA
/// options to choose from. Nothing secret.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthPrompt {
    pub login_error_message: Option<String>,
    pub mfa_options: Option<Value>,
}

/// Changes to the pull item.
#[derive(Debug, Clone, PartialEq)]
pub struct PullUpdate {
    pub pull_id: String,
    /// The source whose secret verified the event (see [`crate::domain::source`]); `None`
    /// leaves the stored one and checks nothing (a replay of a recorded event).
    pub source: Option<crate::domain::source::SourceStamp>,
    pub widget_id: Option<String>,
    pub team_id: Option<String>,
    pub account_identifier: Option<String>,
    pub monitoring_id: Option<String>,
    pub initial_pull_id: Option<String>,
    pub meta_data: Option<Value>,
    pub event_type: String,
    pub at: String,
    /// `None` for events that say nothing about progress (MONITORING_EVENTS, DATA_UPDATED,
    /// unknown types): those are applied unconditionally.
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitoringChange {
    /// An event of a monitored pull: remember the ids and when we last heard.
    Seen,
    /// MONITORING_RECONNECT: a reconnect episode is open from now (if not already).
    ReconnectNeeded,
    /// COMPLETE of a monitored pull: the latest data, and any open episode is over.
    Refreshed,
}

/// Changes to the monitoring item.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoringUpdate {
    pub monitoring_id: String,
    /// As [`PullUpdate::source`].
    pub source: Option<crate::domain::source::SourceStamp>,
    pub initial_pull_id: Option<String>,
    pub pull_id: String,
    pub event_type: String,
    pub at: String,
    pub change: MonitoringChange,
    /// When the event's pull was first seen: orders refreshes (module docs). The plan sets
    /// `at`; [`settle_monitoring_update`] replaces it with the stored value.
    pub pull_seen_at: String,
    /// The owner named by the event's `meta_data` (see [`owner_of`]).
    pub owner: Option<String>,
}

/// What applying a pull update found on the pull item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullApplied {
    /// `false` when the ordering rule refused the status fields (a stale event).
    pub applied: bool,
    /// The pull belongs to another source: nothing was written
    /// ([`crate::domain::source::source_allows`]).
    pub other_source: bool,
    pub first_seen_at: Option<String>,
    /// A COMPLETE of this pull is recorded.
    pub completed: bool,
}

/// Completes a monitoring update with what the pull item says: the pull's first sight, and
/// the evidence that a reconnect of this pull is over (its COMPLETE is recorded already).
pub fn settle_monitoring_update(
    mut update: MonitoringUpdate,
    pull: &PullApplied,
) -> MonitoringUpdate {
    if let Some(seen) = &pull.first_seen_at {
        update.pull_seen_at.clone_from(seen);
    }
    if update.change == MonitoringChange::ReconnectNeeded && pull.completed {
        update.change = MonitoringChange::Seen;
    }
    update
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventPlan {
    pub pull: PullUpdate,
    pub monitoring: Option<MonitoringUpdate>,
    pub work: Vec<Outgoing>,
    /// Canopy's own change list (MONITORING_EVENTS of a monitoring), kept beside ours; its
    /// `pull_seen_at` is settled like the monitoring update's.
    pub canopy_changes: Option<CanopyChangeRecord>,
}

/// How far a pull has got, by event type; `None` for events that do not say.
/// ERROR ranks below COMPLETE because an INTERNAL_ERROR pull may still complete.
pub fn progress_rank(event_type: &EventType) -> Option<u8> {
    Some(match event_type {
        EventType::MonitoringReconnect => 1,
        EventType::AuthStatus => 2,
        EventType::PolicyAvailable => 3,
        EventType::PoliciesAvailable => 4,
        EventType::Error => 5,
        EventType::Complete => 6,
        _ => return None,
    })
}

/// Whether an update of `incoming` progress may overwrite `stored` (the rule in the module docs).
pub fn progress_applies(stored: Option<(u8, Option<i64>)>, incoming: &Progress) -> bool {
    let Some((rank, stored_seq)) = stored else {
        return true;
    };
    if incoming.rank != rank {
        return incoming.rank > rank;
    }
    match (stored_seq, incoming.sequence) {
        (Some(stored), Some(seq)) => seq >= stored,
        _ => true,
    }
}

/// Decides what `event` of `source`, received at `at`, changes and which work it queues.
pub fn plan_event(
    event: &WebhookEvent,
    source: Option<&crate::domain::source::SourceStamp>,
    at: &str,
    config: &PlanConfig,
) -> EventPlan {
    let stamp = source.cloned();
    let source = source.map(|s| s.name.clone());
    let monitoring_id = event.monitoring_id().map(str::to_owned);
    let initial_pull_id = event
        .monitoring
        .as_ref()
        .and_then(|m| m.initial_pull_id.clone());

    let progress = progress_rank(&event.event_type).map(|rank| Progress {
        rank,
        status: event.status.clone(),
        auth_status: event.auth_status.clone(),
        sequence: match event.event_type {
            EventType::AuthStatus => event.sequence,
            _ => None,
        },
        error_type: match event.event_type {
            EventType::Error => event.data_type.clone(),
            _ => None,
        },
        auth_prompt: match event.event_type {
            EventType::AuthStatus => Some(AuthPrompt {
                login_error_message: event.login_error_message.clone(),
                mfa_options: event.mfa_options.clone(),
            }),
            _ => None,
        },
        milestone: match event.event_type {
            EventType::PoliciesAvailable => Some(Milestone::PoliciesAvailable),
            EventType::Complete => Some(Milestone::Completed),
            EventType::Error => Some(Milestone::Failed),
            _ => None,
        },
    });

    let pull = PullUpdate {
        pull_id: event.pull_id.clone(),
        source: stamp.clone(),
        widget_id: event.widget_id.clone(),
        team_id: event.team_id.clone(),
        account_identifier: event.account_identifier.clone(),
        monitoring_id: monitoring_id.clone(),
        initial_pull_id: initial_pull_id.clone(),
        meta_data: event.meta_data.clone(),
        event_type: event.event_type.to_string(),
        at: at.to_owned(),
        progress,
    };

    let monitoring = monitoring_id.as_ref().map(|id| MonitoringUpdate {
        monitoring_id: id.clone(),
        source: stamp.clone(),
        initial_pull_id: initial_pull_id.clone(),
        pull_id: event.pull_id.clone(),
        event_type: event.event_type.to_string(),
        at: at.to_owned(),
        change: match event.event_type {
            EventType::MonitoringReconnect => MonitoringChange::ReconnectNeeded,
            EventType::Complete => MonitoringChange::Refreshed,
            _ => MonitoringChange::Seen,
        },
        pull_seen_at: at.to_owned(),
        owner: owner_of(event.meta_data.as_ref(), &config.owner_key),
    });

    let fetch = |trigger, delay| Outgoing {
        message: WorkMessage::FetchPull(FetchPullJob {
            pull_id: event.pull_id.clone(),
            source: source.clone(),
            monitoring_id: monitoring_id.clone(),
            initial_pull_id: initial_pull_id.clone(),
            trigger,
            event_key: event.dedupe_key.clone(),
            requested_at: at.to_owned(),
        }),
        delay,
    };
    let work = match (&event.event_type, &monitoring_id) {
        (EventType::Complete, _) => vec![fetch(FetchTrigger::Complete, Duration::ZERO)],
        (EventType::PoliciesAvailable, _) => vec![fetch(
            FetchTrigger::PoliciesAvailable,
            config.fetch_fallback_delay,
        )],
        (EventType::MonitoringReconnect, Some(monitoring_id)) => vec![Outgoing {
            message: WorkMessage::NotifyReconnect(ReconnectJob {
                monitoring_id: monitoring_id.clone(),
                source: source.clone(),
                pull_id: event.pull_id.clone(),
                initial_pull_id,
                widget_id: event.widget_id.clone(),
                meta_data: inline_meta_data(event.meta_data.as_ref()),
                meta_data_pull_id: event
                    .meta_data
                    .as_ref()
                    .filter(|_| inline_meta_data(event.meta_data.as_ref()).is_none())
                    .map(|_| event.pull_id.clone()),
                link: event.reconnect.clone(),
                event_key: event.dedupe_key.clone(),
                requested_at: at.to_owned(),
                notice: 0,
                episode: None,
            }),
            delay: Duration::ZERO,
        }],
        _ => Vec::new(),
    };

    let canopy_changes = match (&monitoring_id, &event.monitoring_changes) {
        (Some(monitoring_id), Some(changes)) => Some(CanopyChangeRecord {
            monitoring_id: monitoring_id.clone(),
            pull_id: event.pull_id.clone(),
            pull_seen_at: at.to_owned(),
            dedupe_key: event.dedupe_key.clone(),
            data_type: event.data_type.clone(),
            changes: changes.clone(),
            received_at: at.to_owned(),
        }),
        _ => None,
    };

    EventPlan {
        pull,
        monitoring,
        work,
        canopy_changes,
    }
}

/// Canopy's own MONITORING_EVENTS webhook, kept next to our change sets.
#[derive(Debug, Clone, PartialEq)]
pub struct CanopyChangeRecord {
    pub monitoring_id: String,
    pub pull_id: String,
    /// When the pull was first seen: orders it within the monitoring's history.
    pub pull_seen_at: String,
    pub dedupe_key: String,
    pub data_type: Option<String>,
    /// `data.changes` as Canopy sent it.
    pub changes: serde_json::Value,
    pub received_at: String,
}

/// The owner of a monitoring: the value under `key` in the consumer's `meta_data` (a string
/// or a number), which is how an integrator maps Canopy's events to its own customers.
pub fn owner_of(meta_data: Option<&Value>, key: &str) -> Option<String> {
    let value = meta_data?.as_object()?.get(key)?;
    let owner = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    // Owners become index keys: bounded, and never empty.
    (!owner.is_empty() && owner.len() <= 512).then_some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_come_from_the_configured_key() {
        let meta = json!({"customer_id": "c-42", "n": 7, "o": {"x": 1}, "e": " "});
        assert_eq!(
            owner_of(Some(&meta), "customer_id").as_deref(),
            Some("c-42")
        );
        assert_eq!(owner_of(Some(&meta), "n").as_deref(), Some("7"));
        assert_eq!(owner_of(Some(&meta), "o"), None);
        assert_eq!(owner_of(Some(&meta), "e"), None);
        assert_eq!(owner_of(None, "customer_id"), None);
    }

    use crate::domain::event::parse_event;
    use crate::domain::work::QueueKind;
    use serde_json::json;

    const AT: &str = "2026-11-26T00:00:00.000Z";

    fn plan(v: Value) -> EventPlan {
        plan_event(
            &parse_event(v.to_string().as_bytes()).unwrap(),
            Some(&crate::domain::source::SourceStamp {
                name: "sandbox".into(),
                adopts_unnamed: false,
            }),
            AT,
            &PlanConfig::default(),
        )
    }

    fn monitored(event_type: &str) -> Value {
        json!({"event_type": event_type, "pull_id": "p2", "status": "SUCCESS", "is_monitored": true,
               "monitoring": {"monitoring_id": "m1", "initial_pull_id": "p1"},
               "data": {"reconnect_url": "https://r", "reconnect_token": "tok"}})
    }

    #[test]
    fn the_source_is_on_the_pull_the_monitoring_and_every_message() {
        for event_type in ["COMPLETE", "POLICIES_AVAILABLE", "MONITORING_RECONNECT"] {
            let p = plan(monitored(event_type));
            assert_eq!(p.pull.source.unwrap().name, "sandbox");
            assert_eq!(p.monitoring.unwrap().source.unwrap().name, "sandbox");
            assert!(!p.work.is_empty());
            for out in &p.work {
                let source = match &out.message {
                    WorkMessage::FetchPull(job) => job.source.as_deref(),
                    WorkMessage::NotifyReconnect(job) => job.source.as_deref(),
                };
                assert_eq!(source, Some("sandbox"), "{event_type}");
            }
        }
    }

    #[test]
    fn a_normal_refresh_queues_one_immediate_fetch_and_one_fallback() {
        let policy = plan(monitored("POLICY_AVAILABLE"));
        let policies = plan(monitored("POLICIES_AVAILABLE"));
        let complete = plan(monitored("COMPLETE"));
        assert!(
            policy.work.is_empty(),
            "the deprecated per-policy event fetches nothing"
        );
        assert_eq!(policies.work.len(), 1);
        assert_eq!(policies.work[0].delay, Duration::from_secs(900));
        assert_eq!(complete.work.len(), 1);
        assert_eq!(complete.work[0].delay, Duration::ZERO);
        match &complete.work[0].message {
            WorkMessage::FetchPull(job) => {
                assert_eq!(job.trigger, FetchTrigger::Complete);
                assert_eq!(job.monitoring_id.as_deref(), Some("m1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            complete.monitoring.unwrap().change,
            MonitoringChange::Refreshed
        );
        assert_eq!(
            complete.pull.progress.unwrap().milestone,
            Some(Milestone::Completed)
        );
    }

    #[test]
    fn a_reconnect_opens_an_episode_and_queues_a_notification() {
        let p = plan(monitored("MONITORING_RECONNECT"));
        assert_eq!(
            p.monitoring.as_ref().unwrap().change,
            MonitoringChange::ReconnectNeeded
        );
        assert_eq!(p.work.len(), 1);
        assert_eq!(p.work[0].message.queue(), QueueKind::Notify);
        match &p.work[0].message {
            WorkMessage::NotifyReconnect(job) => {
                assert_eq!(job.monitoring_id, "m1");
                assert_eq!(
                    job.link.as_ref().unwrap().reconnect_token.as_deref(),
                    Some("tok")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn events_without_work() {
        for t in [
            "AUTH_STATUS",
            "ERROR",
            "MONITORING_EVENTS",
            "DATA_UPDATED",
            "BRAND_NEW",
        ] {
            assert!(plan(monitored(t)).work.is_empty(), "{t} queues nothing");
        }
        let unknown = plan(json!({"event_type": "BRAND_NEW", "pull_id": "p"}));
        assert!(unknown.pull.progress.is_none());
        assert!(unknown.monitoring.is_none());
        // A reconnect without a monitoring id cannot be notified; it is still recorded.
        let orphan = plan(json!({"event_type": "MONITORING_RECONNECT", "pull_id": "p"}));
        assert!(orphan.work.is_empty());
        assert_eq!(orphan.pull.progress.unwrap().rank, 1);
    }

    #[test]
    fn a_completed_pull_is_evidence_that_its_reconnect_is_over() {
        let update = plan(monitored("MONITORING_RECONNECT")).monitoring.unwrap();
        let seen = PullApplied {
            other_source: false,
            applied: false,
            first_seen_at: Some("2026-11-01T00:00:00.000Z".into()),
            completed: false,
        };
        let open = settle_monitoring_update(update.clone(), &seen);
        assert_eq!(
            open.change,
            MonitoringChange::ReconnectNeeded,
            "stale is no evidence"
        );
        assert_eq!(open.pull_seen_at, "2026-11-01T00:00:00.000Z");
        let done = PullApplied {
            other_source: false,
            completed: true,
            ..seen
        };
        assert_eq!(
            settle_monitoring_update(update, &done).change,
            MonitoringChange::Seen
        );
    }

    #[test]
    fn progress_moves_forward_only() {
        let p = |rank, sequence| Progress {
            rank,
            status: None,
            auth_status: None,
            sequence,
            error_type: None,
            milestone: None,
            auth_prompt: None,
        };
        assert!(progress_applies(None, &p(1, None)));
        assert!(progress_applies(Some((3, None)), &p(4, None)));
        assert!(
            progress_applies(Some((3, None)), &p(3, None)),
            "repeats apply"
        );
        assert!(
            !progress_applies(Some((6, None)), &p(4, None)),
            "late POLICIES_AVAILABLE"
        );
        assert!(
            !progress_applies(Some((6, None)), &p(2, Some(9))),
            "AUTH_STATUS after COMPLETE"
        );
        assert!(progress_applies(Some((2, Some(3))), &p(2, Some(4))));
        assert!(
            progress_applies(Some((2, Some(3))), &p(2, Some(3))),
            "a retry re-applies"
        );
        assert!(
            !progress_applies(Some((2, Some(3))), &p(2, Some(2))),
            "late AUTH_STATUS"
        );
        assert!(progress_applies(Some((2, None)), &p(2, Some(1))));
    }

    #[test]
    fn auth_status_carries_sequence_and_error_carries_type() {
        let auth = plan(
            json!({"event_type": "AUTH_STATUS", "pull_id": "p", "sequence": 7,
                               "data": {"auth_status": "IDENTITY_VERIFICATION"}}),
        );
        let progress = auth.pull.progress.unwrap();
        assert_eq!(progress.sequence, Some(7));
        assert_eq!(
            progress.auth_status.as_deref(),
            Some("IDENTITY_VERIFICATION")
        );
        let err = plan(
            json!({"event_type": "ERROR", "pull_id": "p", "data": {"type": "PROVIDER_ERROR"}}),
        );
        let progress = err.pull.progress.unwrap();
        assert_eq!(progress.error_type.as_deref(), Some("PROVIDER_ERROR"));
        assert_eq!(progress.milestone, Some(Milestone::Failed));
    }
}
