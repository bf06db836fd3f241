//! The change log: what changed between a monitoring's refreshes, recorded when the fetcher
//! stores one.
//!
//! A refresh is compared with the previous *stored* pull of its monitoring in the order of the
//! pulls' `created_at`, not of their arrival: its predecessor in the refresh history, or, for
//! the first refresh, the pull monitoring was enabled on. When an older refresh is stored
//! after a newer one (a fetch that failed and was redriven), the newer refresh's change set is
//! computed again against it, so the history always compares neighbours.
//!
//! Each change set is written with its business events (`PullRefreshed`, one `PolicyChanged`
//! per changed policy) in one write: the outbox ([`crate::app::outbox`]).
//!
//! Comparing needs both pulls parsed, several times their JSON in memory; pulls larger than
//! [`MAX_COMPARED_BYTES`] are stored and announced but not compared.

use crate::domain::business_events::{pull_counts, refresh_events, RefreshContext};
use crate::domain::changes::diff;
use crate::domain::pull_data::{summarise, PullSummary};
use crate::ports::store::{ChangeSetRecord, ChangeStore, RefreshEntry};
use crate::ports::PortError;
use serde_json::Value;

/// Largest pull JSON compared: two parsed pulls of this size take about 150 MB.
pub const MAX_COMPARED_BYTES: usize = 8 * 1024 * 1024;

/// No earlier pull of the monitoring is stored (its first refresh, or the pull it was enabled
/// on was never fetched).
pub const NOT_COMPARED_NO_PREVIOUS: &str = "no_previous_pull";
pub const NOT_COMPARED_TOO_LARGE: &str = "too_large";

/// The refresh just stored: its pull parsed, unless too large to compare.
pub struct StoredRefresh<'a> {
    pub monitoring_id: &'a str,
    pub pull_id: &'a str,
    pub summary: &'a PullSummary,
    /// `None` when larger than [`MAX_COMPARED_BYTES`].
    pub pull: Option<&'a Value>,
    pub at: &'a str,
}

/// What recording a refresh wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Changes found against the previous stored pull (none if not compared).
    pub changes: usize,
    pub previous_pull_id: Option<String>,
    /// A newer refresh whose change set was computed again against this one.
    pub recomputed_next: Option<String>,
}

fn order(entry: &RefreshEntry) -> &str {
    entry.created_at.as_deref().unwrap_or(&entry.fetched_at)
}

/// The refreshes before and after `pull_id` in the history (oldest first).
pub fn neighbours<'a>(
    history: &'a [RefreshEntry],
    pull_id: &str,
) -> (Option<&'a RefreshEntry>, Option<&'a RefreshEntry>) {
    let Some(i) = history.iter().position(|e| e.pull_id == pull_id) else {
        return (history.last(), None);
    };
    let before = i.checked_sub(1).and_then(|j| history.get(j));
    (before, history.get(i + 1))
}

pub struct ChangeRecorder<'s, S: ?Sized> {
    store: &'s S,
}

impl<'s, S: ChangeStore + ?Sized> ChangeRecorder<'s, S> {
    pub fn new(store: &'s S) -> Self {
        Self { store }
    }

    /// Records the change set of `refresh`, which `record_refresh` has already entered in the
    /// monitoring's history, and recomputes the next refresh's if it was stored first.
    pub async fn record(&self, refresh: &StoredRefresh<'_>) -> Result<Recorded, PortError> {
        let history = self.store.refreshes(refresh.monitoring_id).await?;
        let (before, after) = neighbours(&history, refresh.pull_id);
        let previous_pull_id = match before {
            Some(e) => Some(e.pull_id.clone()),
            None => self
                .store
                .initial_pull_id(refresh.monitoring_id)
                .await?
                .filter(|p| p != refresh.pull_id),
        };
        let own_order = history
            .iter()
            .find(|e| e.pull_id == refresh.pull_id)
            .map(|e| order(e).to_owned())
            .or_else(|| refresh.summary.created_at.clone())
            .unwrap_or_else(|| refresh.at.to_owned());
        let previous = match &previous_pull_id {
            Some(id) if refresh.pull.is_some() => self.store.stored_pull(id).await?,
            _ => None,
        };
        // Only a stored pull is compared with (and named as the previous one).
        let previous_pull_id =
            previous_pull_id.filter(|_| previous.is_some() || refresh.pull.is_none());
        let changes = self
            .write(
                refresh.monitoring_id,
                refresh.pull_id,
                &own_order,
                refresh.summary,
                previous_pull_id.as_deref().zip(previous.as_ref()),
                refresh.pull,
                refresh.at,
            )
            .await?;
        drop(previous);
        let mut recorded = Recorded {
            changes,
            previous_pull_id,
            recomputed_next: None,
        };
        // An older refresh stored late: the next one now compares with it.
        if let (Some(next), Some(current)) = (after, refresh.pull) {
            if let Some(next_pull) = self.store.stored_pull(&next.pull_id).await? {
                let summary = summarise(&next.pull_id, &next_pull);
                self.write(
                    refresh.monitoring_id,
                    &next.pull_id,
                    order(next),
                    &summary,
                    Some((refresh.pull_id, current)),
                    Some(&next_pull),
                    refresh.at,
                )
                .await?;
                recorded.recomputed_next = Some(next.pull_id.clone());
            }
        }
        Ok(recorded)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        monitoring_id: &str,
        pull_id: &str,
        order: &str,
        summary: &PullSummary,
        previous: Option<(&str, &Value)>,
        current: Option<&Value>,
        at: &str,
    ) -> Result<usize, PortError> {
        let (changes, not_compared) = match (previous, current) {
            (Some((_, before)), Some(after)) => (Some(diff(before, after)), None),
            (_, None) => (None, Some(NOT_COMPARED_TOO_LARGE)),
            (None, Some(_)) => (None, Some(NOT_COMPARED_NO_PREVIOUS)),
        };
        let ctx = RefreshContext {
            monitoring_id,
            pull_id,
            previous_pull_id: previous.map(|(id, _)| id),
            created_at: summary.created_at.as_deref(),
            at,
        };
        let events = refresh_events(&ctx, summary, changes.as_ref());
        let count = changes.as_ref().map_or(0, |c| c.changes.len());
        let record = ChangeSetRecord {
            monitoring_id: monitoring_id.to_owned(),
            pull_id: pull_id.to_owned(),
            order: order.to_owned(),
            previous_pull_id: previous.map(|(id, _)| id.to_owned()),
            computed_at: at.to_owned(),
            changes,
            not_compared,
            counts: pull_counts(summary),
        };
        self.store.put_change_set(&record, &events).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pull_data::{prepare, PullJson};
    use crate::fakes::store::MemoryStore;
    use crate::ports::store::PullDataStore;
    use serde_json::json;

    fn pull(id: &str, created: &str, premium: i64) -> Value {
        json!({"pull_id": id, "created_at": created, "policies": [
            {"policy_id": "pol-1", "carrier_policy_number": "A-1", "policy_type": "AUTO",
             "total_premium_cents": premium}
        ]})
    }

    /// Stores `p` as a refresh of monitoring `m` and records its change set, as the fetcher does.
    async fn store_refresh(store: &MemoryStore, p: &Value) -> Recorded {
        let id = p["pull_id"].as_str().unwrap();
        let prepared = prepare(id, &PullJson::from_value(p));
        store
            .store_pull_data(id, "v", &prepared, "t")
            .await
            .unwrap();
        store
            .record_refresh("m", id, p["created_at"].as_str(), "t")
            .await
            .unwrap();
        ChangeRecorder::new(store)
            .record(&StoredRefresh {
                monitoring_id: "m",
                pull_id: id,
                summary: &prepared.summary,
                pull: Some(p),
                at: "t",
            })
            .await
            .unwrap()
    }

    fn premium_difference(store: &MemoryStore, pull: &str) -> (Option<String>, Option<i64>) {
        let state = store.state();
        let record = &state.change_sets[&("m".to_owned(), pull.to_owned())];
        let difference = record.changes.as_ref().and_then(|c| {
            c.changes.iter().find_map(|c| match c {
                crate::domain::changes::Change::PremiumChanged {
                    difference_cents, ..
                } => *difference_cents,
                _ => None,
            })
        });
        (record.previous_pull_id.clone(), difference)
    }

    #[tokio::test]
    async fn a_refresh_stored_late_is_compared_with_its_predecessor_and_corrects_the_next() {
        let store = MemoryStore::default();
        let (p1, p2, p3) = (
            pull("p1", "2026-01-01T00:00:00Z", 1000),
            pull("p2", "2026-02-01T00:00:00Z", 1100),
            pull("p3", "2026-03-01T00:00:00Z", 1250),
        );
        let first = store_refresh(&store, &p1).await;
        assert_eq!(first.previous_pull_id, None);
        store_refresh(&store, &p3).await;
        assert_eq!(
            premium_difference(&store, "p3"),
            (Some("p1".into()), Some(250))
        );
        // p2's fetch failed and was redriven after p3 was stored.
        let late = store_refresh(&store, &p2).await;
        assert_eq!(late.recomputed_next.as_deref(), Some("p3"));
        assert_eq!(
            premium_difference(&store, "p2"),
            (Some("p1".into()), Some(100))
        );
        assert_eq!(
            premium_difference(&store, "p3"),
            (Some("p2".into()), Some(150))
        );
        let refreshed: Vec<_> = store
            .state()
            .outbox
            .iter()
            .filter(|e| e.detail_type == crate::domain::business_events::DetailType::PolicyChanged)
            .map(|e| e.detail["previous_pull_id"].clone())
            .collect();
        assert_eq!(
            refreshed,
            [json!("p1"), json!("p1"), json!("p2")],
            "p3 vs p1, p2 vs p1, p3 vs p2"
        );
    }

    fn entry(pull: &str, created: &str) -> RefreshEntry {
        RefreshEntry {
            pull_id: pull.into(),
            created_at: Some(created.into()),
            fetched_at: "f".into(),
        }
    }

    #[test]
    fn neighbours_follow_the_history_order() {
        let h = [entry("a", "1"), entry("b", "2"), entry("c", "3")];
        let (b, a) = neighbours(&h, "b");
        assert_eq!(
            (b.unwrap().pull_id.as_str(), a.unwrap().pull_id.as_str()),
            ("a", "c")
        );
        let (b, a) = neighbours(&h, "a");
        assert!(b.is_none());
        assert_eq!(a.unwrap().pull_id, "b");
        let (b, a) = neighbours(&h, "c");
        assert_eq!(b.unwrap().pull_id, "b");
        assert!(a.is_none());
    }
}
