//! The business events canopy-monitor publishes on its EventBridge bus, one per fact, for the
//! integrator's other systems (a CRM, an agency management system) to route with rules.
//!
//! Every event has source [`SOURCE`], a detail type ([`DetailType`]) and a detail that carries:
//! - `id`: stable for the fact, derived from what the fact is about (never random), so that a
//!   republished copy (the outbox publishes at least once) has the same `id` and consumers can
//!   drop it;
//! - `schema_version`: [`SCHEMA_VERSION`]; the JSON Schemas are in `schemas/events/`;
//! - ids, never personal data: names, contact values, VINs and addresses stay in the table,
//!   behind the Monitoring API. Premiums, statuses, dates and coverage amounts are the business
//!   facts themselves and travel.
//!
//! Events are recorded in the same write as the state change that causes them (the outbox,
//! see [`crate::app::outbox`]); nothing here talks to AWS.

use crate::domain::changes::{Change, ChangeSet, ItemRef};
use crate::domain::crypto::Sha256;
use crate::domain::pull_data::PullSummary;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const SOURCE: &str = "canopy-monitor";
pub const SCHEMA_VERSION: u32 = 1;
/// Most changes listed in one `PolicyChanged` (the rest are counted): keeps an event far
/// below EventBridge's 256 KB entry limit.
pub const MAX_CHANGES_PER_EVENT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetailType {
    PullRefreshed,
    PolicyChanged,
    ReconnectNeeded,
    ReconnectResolved,
    FetchFailed,
    CanopyMonitoringEvent,
}

impl DetailType {
    pub const ALL: [DetailType; 6] = [
        DetailType::PullRefreshed,
        DetailType::PolicyChanged,
        DetailType::ReconnectNeeded,
        DetailType::ReconnectResolved,
        DetailType::FetchFailed,
        DetailType::CanopyMonitoringEvent,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DetailType::PullRefreshed => "PullRefreshed",
            DetailType::PolicyChanged => "PolicyChanged",
            DetailType::ReconnectNeeded => "ReconnectNeeded",
            DetailType::ReconnectResolved => "ReconnectResolved",
            DetailType::FetchFailed => "FetchFailed",
            DetailType::CanopyMonitoringEvent => "CanopyMonitoringEvent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event, as recorded in the outbox and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessEvent {
    pub detail_type: DetailType,
    /// Holds `id` and `schema_version` (see the module docs).
    pub detail: Value,
}

impl BusinessEvent {
    fn new(detail_type: DetailType, id: String, fields: Value) -> Self {
        let mut detail = Map::new();
        detail.insert("id".into(), Value::String(id));
        detail.insert("schema_version".into(), json!(SCHEMA_VERSION));
        if let Value::Object(fields) = fields {
            detail.extend(fields);
        }
        Self {
            detail_type,
            detail: Value::Object(detail),
        }
    }

    pub fn id(&self) -> &str {
        self.detail.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// The detail as the bus receives it (what its entry size counts).
    pub fn detail_json(&self) -> String {
        self.detail.to_string()
    }

    /// The same fact without its lists, for an event too large for the bus (PutEvents takes
    /// less than 256 KB a request): the ids, counts and kinds stay, the lists of changes
    /// (`changes`, `account_changes`) go, `truncated` is `true`, and `change_set` says where
    /// the whole change set is read: `GET /v1/monitorings/{monitoring_id}/changes`, the entry
    /// of `pull_id` from `source`. Same `id`: it is the same fact.
    pub fn shrunk(&self) -> BusinessEvent {
        let mut detail = match &self.detail {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        for list in LIST_FIELDS {
            detail.remove(list);
        }
        let monitoring_id = detail.get("monitoring_id").cloned().unwrap_or(Value::Null);
        let source = match self.detail_type {
            DetailType::CanopyMonitoringEvent => "canopy",
            _ => SOURCE,
        };
        let path = monitoring_id
            .as_str()
            .map(|id| format!("/v1/monitorings/{id}/changes"));
        detail.insert("truncated".into(), Value::Bool(true));
        detail.insert(
            "change_set".into(),
            json!({
                "source": source,
                "monitoring_id": monitoring_id,
                "pull_id": detail.get("pull_id").cloned().unwrap_or(Value::Null),
                "path": path,
            }),
        );
        BusinessEvent {
            detail_type: self.detail_type,
            detail: Value::Object(detail),
        }
    }
}

/// The detail fields that list changes: what [`BusinessEvent::shrunk`] drops.
const LIST_FIELDS: [&str; 2] = ["changes", "account_changes"];

/// A stable event id: 32 hex digits of the SHA-256 of what the fact is about.
pub fn event_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update(&[0]);
    }
    hex::encode(&hash.finish()[..16])
}

/// Which refresh a change set describes, and what it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshContext<'a> {
    pub monitoring_id: &'a str,
    pub pull_id: &'a str,
    /// The stored pull this refresh was compared with; `None` for the first one stored.
    pub previous_pull_id: Option<&'a str>,
    /// The pull's `created_at` (when Canopy made it).
    pub created_at: Option<&'a str>,
    /// When the change set was computed.
    pub at: &'a str,
}

/// What a pull holds, counted.
pub fn pull_counts(summary: &PullSummary) -> Value {
    json!({
        "policies": summary.policies.len(),
        "vehicles": summary.policies.iter().map(|p| p.vehicles).sum::<usize>(),
        "dwellings": summary.policies.iter().map(|p| p.dwellings).sum::<usize>(),
        "drivers": summary.drivers,
        "documents": summary.documents,
        "claims": summary.claims,
    })
}

/// A change as an event lists it: the carrier's policy number is an account identifier, so
/// only the fact that it changed travels.
fn public_change(change: &Change) -> Value {
    let mut v = serde_json::to_value(change).unwrap_or(Value::Null);
    if let Change::PolicyFieldChanged { field, .. } = change {
        if *field == "carrier_policy_number" {
            if let Some(o) = v.as_object_mut() {
                o.remove("before");
                o.remove("after");
            }
        }
    }
    v
}

fn policy_key(policy: &ItemRef) -> &str {
    policy.id.as_deref().unwrap_or("")
}

/// `PullRefreshed` and one `PolicyChanged` per changed policy, for one stored refresh.
/// `changes` is `None` when no comparison was made (the first refresh stored, or a pull too
/// large to compare).
pub fn refresh_events(
    ctx: &RefreshContext,
    summary: &PullSummary,
    changes: Option<&ChangeSet>,
) -> Vec<BusinessEvent> {
    let previous = ctx.previous_pull_id.unwrap_or("");
    let mut events = Vec::new();
    let account_changes: Vec<Value> = changes
        .map(|c| {
            c.changes
                .iter()
                .filter(|c| c.policy().is_none())
                .map(public_change)
                .collect()
        })
        .unwrap_or_default();
    let mut by_policy: Vec<(&ItemRef, Vec<&Change>)> = Vec::new();
    for change in changes.map(|c| c.changes.as_slice()).unwrap_or_default() {
        let Some(policy) = change.policy() else {
            continue;
        };
        match by_policy
            .iter_mut()
            .find(|(p, _)| policy_key(p) == policy_key(policy))
        {
            Some((_, list)) => list.push(change),
            None => by_policy.push((policy, vec![change])),
        }
    }
    events.push(BusinessEvent::new(
        DetailType::PullRefreshed,
        event_id(&["PullRefreshed", ctx.monitoring_id, ctx.pull_id, previous]),
        json!({
            "monitoring_id": ctx.monitoring_id,
            "pull_id": ctx.pull_id,
            "previous_pull_id": ctx.previous_pull_id,
            "pull_created_at": ctx.created_at,
            "occurred_at": ctx.at,
            "counts": pull_counts(summary),
            "compared": changes.is_some(),
            "change_count": changes.map_or(0, |c| c.changes.len()),
            "policies_changed": by_policy.len(),
            "account_changes": account_changes,
        }),
    ));
    for (policy, list) in by_policy {
        let premium_difference = list.iter().find_map(|c| match c {
            Change::PremiumChanged {
                difference_cents, ..
            } => *difference_cents,
            _ => None,
        });
        let mut kinds: Vec<&str> = list.iter().map(|c| c.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let listed: Vec<Value> = list
            .iter()
            .take(MAX_CHANGES_PER_EVENT)
            .map(|c| public_change(c))
            .collect();
        events.push(BusinessEvent::new(
            DetailType::PolicyChanged,
            event_id(&[
                "PolicyChanged",
                ctx.monitoring_id,
                ctx.pull_id,
                previous,
                policy_key(policy),
            ]),
            json!({
                "monitoring_id": ctx.monitoring_id,
                "pull_id": ctx.pull_id,
                "previous_pull_id": ctx.previous_pull_id,
                "occurred_at": ctx.at,
                "policy": policy,
                "change_kinds": kinds,
                "premium_difference_cents": premium_difference,
                "change_count": list.len(),
                "truncated": list.len() > MAX_CHANGES_PER_EVENT,
                "changes": listed,
            }),
        ));
    }
    events
}

/// A reconnect episode opened: once per episode, which the pull that opened it names.
pub fn reconnect_needed(monitoring_id: &str, pull_id: &str, at: &str) -> BusinessEvent {
    BusinessEvent::new(
        DetailType::ReconnectNeeded,
        event_id(&["ReconnectNeeded", monitoring_id, pull_id]),
        json!({"monitoring_id": monitoring_id, "pull_id": pull_id, "occurred_at": at}),
    )
}

/// A reconnect episode closed by the COMPLETE of `pull_id`.
pub fn reconnect_resolved(monitoring_id: &str, pull_id: &str, at: &str) -> BusinessEvent {
    BusinessEvent::new(
        DetailType::ReconnectResolved,
        event_id(&["ReconnectResolved", monitoring_id, pull_id]),
        json!({"monitoring_id": monitoring_id, "pull_id": pull_id, "occurred_at": at}),
    )
}

/// Canopy will never serve this pull (`code`: Canopy's error or status).
pub fn fetch_failed(
    pull_id: &str,
    monitoring_id: Option<&str>,
    code: &str,
    at: &str,
) -> BusinessEvent {
    BusinessEvent::new(
        DetailType::FetchFailed,
        event_id(&["FetchFailed", pull_id]),
        json!({"pull_id": pull_id, "monitoring_id": monitoring_id, "code": code, "occurred_at": at}),
    )
}

/// Canopy's own MONITORING_EVENTS webhook, relayed: which records changed and how (`schema`,
/// `type`), never their `before`/`after` values.
pub fn canopy_monitoring_event(
    dedupe_key: &str,
    monitoring_id: Option<&str>,
    pull_id: &str,
    data_type: Option<&str>,
    changes: &Value,
    at: &str,
) -> BusinessEvent {
    let listed: Vec<Value> = changes
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| json!({"schema": c.get("schema"), "type": c.get("type")}))
                .collect()
        })
        .unwrap_or_default();
    BusinessEvent::new(
        DetailType::CanopyMonitoringEvent,
        event_id(&["CanopyMonitoringEvent", dedupe_key]),
        json!({
            "monitoring_id": monitoring_id,
            "pull_id": pull_id,
            "event_type": data_type,
            "occurred_at": at,
            "changes": listed,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::changes::{ItemKind, MatchedBy};

    fn policy(id: &str) -> ItemRef {
        ItemRef {
            id: Some(id.into()),
            matched_by: MatchedBy::Id,
        }
    }

    fn ctx<'a>(previous: Option<&'a str>) -> RefreshContext<'a> {
        RefreshContext {
            monitoring_id: "m1",
            pull_id: "p2",
            previous_pull_id: previous,
            created_at: Some("2026-01-01T00:00:00Z"),
            at: "2026-01-01T00:01:00Z",
        }
    }

    #[test]
    fn one_policy_changed_per_policy_and_account_changes_in_pull_refreshed() {
        let changes = ChangeSet {
            changes: vec![
                Change::PremiumChanged {
                    policy: policy("a"),
                    before_cents: Some(100),
                    after_cents: Some(150),
                    difference_cents: Some(50),
                },
                Change::PolicyFieldChanged {
                    policy: policy("a"),
                    field: "carrier_policy_number",
                    before: json!("OLD-1"),
                    after: json!("NEW-1"),
                },
                Change::Removed {
                    item: ItemKind::Policy,
                    policy: None,
                    reference: policy("b"),
                },
                Change::ContactChanged {
                    fields: vec!["email"],
                },
            ],
        };
        let events = refresh_events(&ctx(Some("p1")), &PullSummary::default(), Some(&changes));
        let types: Vec<_> = events.iter().map(|e| e.detail_type).collect();
        assert_eq!(
            types,
            [
                DetailType::PullRefreshed,
                DetailType::PolicyChanged,
                DetailType::PolicyChanged
            ]
        );
        let a = &events[1].detail;
        assert_eq!(a["premium_difference_cents"], 50);
        assert_eq!(a["change_count"], 2);
        assert_eq!(
            a["change_kinds"],
            json!(["policy_field_changed", "premium_changed"])
        );
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("OLD-1") && !text.contains("NEW-1"), "{text}");
        assert_eq!(
            events[0].detail["account_changes"][0]["fields"],
            json!(["email"])
        );
        assert_eq!(events[0].detail["policies_changed"], 2);
    }

    #[test]
    fn ids_are_stable_and_name_the_comparison() {
        let changes = ChangeSet::default();
        let first = refresh_events(&ctx(Some("p1")), &PullSummary::default(), Some(&changes));
        let again = refresh_events(&ctx(Some("p1")), &PullSummary::default(), Some(&changes));
        let rebased = refresh_events(&ctx(Some("p0")), &PullSummary::default(), Some(&changes));
        assert_eq!(first[0].id(), again[0].id());
        assert_ne!(first[0].id(), rebased[0].id());
        assert_eq!(first[0].id().len(), 32);
        assert_eq!(
            reconnect_needed("m", "p", "t1").id(),
            reconnect_needed("m", "p", "t2").id()
        );
    }

    #[test]
    fn a_shrunk_event_keeps_its_id_and_points_to_its_change_set() {
        let changes = ChangeSet {
            changes: (0..3)
                .map(|i| Change::PremiumChanged {
                    policy: policy("a"),
                    before_cents: Some(i),
                    after_cents: Some(i + 1),
                    difference_cents: Some(1),
                })
                .collect(),
        };
        let events = refresh_events(&ctx(Some("p1")), &PullSummary::default(), Some(&changes));
        let full = &events[1];
        let small = full.shrunk();
        assert_eq!(small.id(), full.id());
        assert_eq!(small.detail_type, DetailType::PolicyChanged);
        assert!(small.detail.get("changes").is_none());
        assert_eq!(small.detail["truncated"], true);
        assert_eq!(small.detail["change_count"], 3);
        assert_eq!(
            small.detail["change_set"],
            json!({"source": "canopy-monitor", "monitoring_id": "m1", "pull_id": "p2",
                   "path": "/v1/monitorings/m1/changes"})
        );
        assert!(events[0].shrunk().detail.get("account_changes").is_none());
        let relayed = canopy_monitoring_event("k", None, "p", None, &json!([{"schema": "X"}]), "t");
        assert_eq!(relayed.shrunk().detail["change_set"]["source"], "canopy");
        assert_eq!(relayed.shrunk().detail["change_set"]["path"], Value::Null);
    }

    #[test]
    fn relayed_canopy_changes_drop_values() {
        let changes = json!([{"schema": "VEHICLE", "type": "CREATE", "before": null,
                              "after": {"vin": "1FTEW1E45KFA00000"}}]);
        let e = canopy_monitoring_event("k", Some("m"), "p", Some("POLICY_CHANGE"), &changes, "t");
        assert_eq!(
            e.detail["changes"],
            json!([{"schema": "VEHICLE", "type": "CREATE"}])
        );
        assert!(!e.detail.to_string().contains("1FTEW"));
    }
}
