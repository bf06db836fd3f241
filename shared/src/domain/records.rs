//! The state records as they are stored and read back: one item per pull and one per
//! monitoring. The DynamoDB adapter maps them with `serde_dynamo`; the in-memory store applies
//! updates with the functions here, the same rules the DynamoDB update expressions encode.

use crate::domain::business_events::{reconnect_needed, reconnect_resolved, BusinessEvent};
use crate::domain::plan::{
    progress_applies, Milestone, MonitoringChange, MonitoringUpdate, PullUpdate,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A monitoring's status as Canopy reports it: monitored, or no longer.
pub const ACTIVE: &str = "ACTIVE";
pub const STOPPED: &str = "STOPPED";

/// What we know of a pull from its webhooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PullRecord {
    pub pull_id: String,
    /// The source whose keys serve it (see [`crate::domain::source`]); absent on pulls
    /// recorded before sources existed: the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_rank: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_sequence: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The latest AUTH_STATUS's prompt details (see [`crate::domain::plan::AuthPrompt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies_available_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<String>,
    // What the fetcher did (see `fetcher`).
    /// `FETCHED` or `FAILED` (permanently); absent before the first fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
    /// Set when the fetch followed COMPLETE, so its data includes documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_complete_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_lease_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_lease_expires_at: Option<i64>,
}

/// What we know of a monitoring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitoringRecord {
    pub monitoring_id: String,
    /// As [`PullRecord::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_pull_id: Option<String>,
    /// The pull of the last successful refresh (COMPLETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<String>,
    /// Set while a reconnect episode is open: since when the consumer must log in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_needed_since: Option<String>,
    /// The pull that asked for the reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<String>,
    /// The newest pull whose data is stored (by the pull's `created_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_data_pull_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_data_created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_data_fetched_at: Option<String>,
    /// When `latest_pull_id` was first seen (orders refreshes, see [`crate::domain::plan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_pull_seen_at: Option<String>,
    /// When the pull that opened the open episode was first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_pull_seen_at: Option<String>,
    // What the Monitoring API and the reconciler know (see `monitoring`).
    /// `ACTIVE` or `STOPPED`. Its own attribute name: the status index must not hold pulls.
    #[serde(
        default,
        rename = "monitoring_status",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_pull_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after_date: Option<String>,
    /// The integrator's customer id, from the configured `meta_data` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// When Canopy's view was last written here (API call or reconciler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<String>,
    /// The last refresh asked through the API: when, by which request, and its new pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_requested_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_pull_id: Option<String>,
}

fn set_some<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        field.clone_from(value);
    }
}

impl PullRecord {
    /// Applies `update` under the ordering rule; `false` (and no change) when it is stale.
    pub fn apply(&mut self, update: &PullUpdate) -> bool {
        if let Some(progress) = &update.progress {
            let stored = self.status_rank.map(|rank| (rank, self.auth_sequence));
            if !progress_applies(stored, progress) {
                return false;
            }
            self.status_rank = Some(progress.rank);
            set_some(&mut self.status, &progress.status);
            set_some(&mut self.auth_status, &progress.auth_status);
            set_some(&mut self.auth_sequence, &progress.sequence);
            set_some(&mut self.error_type, &progress.error_type);
            if let Some(prompt) = &progress.auth_prompt {
                self.login_error_message
                    .clone_from(&prompt.login_error_message);
                self.mfa_options.clone_from(&prompt.mfa_options);
            }
            let at = Some(update.at.clone());
            match progress.milestone {
                Some(Milestone::PoliciesAvailable) => {
                    self.policies_available_at = self.policies_available_at.clone().or(at)
                }
                Some(Milestone::Completed) => self.completed_at = self.completed_at.clone().or(at),
                Some(Milestone::Failed) => self.failed_at = self.failed_at.clone().or(at),
                None => {}
            }
        }
        self.pull_id.clone_from(&update.pull_id);
        set_some(&mut self.widget_id, &update.widget_id);
        set_some(&mut self.team_id, &update.team_id);
        set_some(
            &mut self.source,
            &update.source.as_ref().map(|s| s.name.clone()),
        );
        set_some(&mut self.account_identifier, &update.account_identifier);
        set_some(&mut self.monitoring_id, &update.monitoring_id);
        set_some(&mut self.initial_pull_id, &update.initial_pull_id);
        set_some(&mut self.meta_data, &update.meta_data);
        self.last_event_type = Some(update.event_type.clone());
        self.last_event_at = Some(update.at.clone());
        if self.first_seen_at.is_none() {
            self.first_seen_at = Some(update.at.clone());
        }
        true
    }
}

/// Whether a refresh first seen at `seen` is not older than the one recorded at `recorded`.
pub fn not_older(recorded: Option<&str>, seen: &str) -> bool {
    recorded.is_none_or(|r| r <= seen)
}

impl MonitoringRecord {
    /// Applies `update` under the refresh order of [`crate::domain::plan`]; returns the business event
    /// it causes: `ReconnectNeeded` when it opens a reconnect episode, `ReconnectResolved` when
    /// it closes one.
    pub fn apply(&mut self, update: &MonitoringUpdate) -> Option<BusinessEvent> {
        self.monitoring_id.clone_from(&update.monitoring_id);
        set_some(&mut self.initial_pull_id, &update.initial_pull_id);
        set_some(&mut self.owner, &update.owner);
        set_some(
            &mut self.source,
            &update.source.as_ref().map(|s| s.name.clone()),
        );
        // An event of a monitored pull: the monitoring is active unless we were told otherwise.
        if self.status.is_none() {
            self.status = Some(ACTIVE.to_owned());
        }
        self.last_event_type = Some(update.event_type.clone());
        self.last_event_pull_id = Some(update.pull_id.clone());
        self.last_event_at = Some(update.at.clone());
        if self.first_seen_at.is_none() {
            self.first_seen_at = Some(update.at.clone());
        }
        match update.change {
            MonitoringChange::Seen => None,
            MonitoringChange::ReconnectNeeded => {
                // This pull or a later one completed: the consumer has reconnected.
                let covered = self
                    .latest_pull_seen_at
                    .as_deref()
                    .is_some_and(|latest| latest >= update.pull_seen_at.as_str());
                if !covered && self.reconnect_needed_since.is_none() {
                    self.reconnect_needed_since = Some(update.at.clone());
                    self.reconnect_pull_id = Some(update.pull_id.clone());
                    self.reconnect_pull_seen_at = Some(update.pull_seen_at.clone());
                    return Some(reconnect_needed(
                        &update.monitoring_id,
                        &update.pull_id,
                        &update.at,
                    ));
                }
                None
            }
            MonitoringChange::Refreshed => {
                let seen = update.pull_seen_at.as_str();
                if not_older(self.latest_pull_seen_at.as_deref(), seen) {
                    self.latest_pull_id = Some(update.pull_id.clone());
                    self.latest_pull_seen_at = Some(seen.to_owned());
                    self.last_refresh_at = Some(update.at.clone());
                }
                if self.reconnect_needed_since.is_some()
                    && not_older(self.reconnect_pull_seen_at.as_deref(), seen)
                {
                    self.reconnect_needed_since = None;
                    self.reconnect_pull_id = None;
                    self.reconnect_pull_seen_at = None;
                    return Some(reconnect_resolved(
                        &update.monitoring_id,
                        &update.pull_id,
                        &update.at,
                    ));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(pull: &str, change: MonitoringChange, seen: &str) -> MonitoringUpdate {
        MonitoringUpdate {
            source: None,
            monitoring_id: "m".into(),
            initial_pull_id: None,
            pull_id: pull.into(),
            event_type: "X".into(),
            at: format!("at-{seen}"),
            change,
            pull_seen_at: seen.into(),
            owner: None,
        }
    }

    #[test]
    fn a_late_complete_of_an_older_refresh_neither_rewinds_nor_closes() {
        use MonitoringChange::*;
        let mut m = MonitoringRecord::default();
        m.apply(&update("p3", Refreshed, "3"));
        m.apply(&update("p4", ReconnectNeeded, "4"));
        m.apply(&update("p2", Refreshed, "2"));
        assert_eq!(m.latest_pull_id.as_deref(), Some("p3"), "no rewind");
        assert!(
            m.reconnect_needed_since.is_some(),
            "an older COMPLETE closes nothing"
        );
        m.apply(&update("p4", Refreshed, "4"));
        assert_eq!(m.latest_pull_id.as_deref(), Some("p4"));
        assert!(
            m.reconnect_needed_since.is_none(),
            "the reconnect's own COMPLETE closes it"
        );
    }

    #[test]
    fn a_reconnect_after_its_refresh_completed_opens_nothing() {
        use MonitoringChange::*;
        let mut m = MonitoringRecord::default();
        m.apply(&update("p5", Refreshed, "5"));
        m.apply(&update("p4", ReconnectNeeded, "4"));
        assert!(
            m.reconnect_needed_since.is_none(),
            "a later refresh completed"
        );
        m.apply(&update("p6", ReconnectNeeded, "6"));
        assert_eq!(m.reconnect_pull_id.as_deref(), Some("p6"));
    }
}
