//! What changed between two refreshes of a monitoring: [`diff`] compares two pulls (Canopy's
//! Pull objects) and returns a typed [`ChangeSet`].
//!
//! Items are matched by their stable ids first (`policy_id`, `vehicle_id`, ...). Canopy may
//! issue new ids on a later pull, so an item left unmatched falls back to a natural key: a
//! policy's carrier number and type, a vehicle's VIN, a driver's name and birth date, a
//! dwelling's address, a named insured's name, a coverage's name within its scope. Every
//! reference says how it was matched. Arrays are compared as sets: reordering changes nothing.
//!
//! Changes carry ids and field names, not personal values, except where the value is the
//! business fact itself (a status, a date, a premium, a limit). The holder's contact fields
//! are reported by name only.

use serde::Serialize;
use serde_json::{Map, Value};

/// How an item of the current pull was matched with the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Id,
    NaturalKey,
    /// Added or removed: nothing to match.
    Unmatched,
}

/// An item, by the id it has in the pull where it is (the current one unless removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRef {
    pub id: Option<String>,
    pub matched_by: MatchedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Policy,
    Vehicle,
    Driver,
    Dwelling,
    NamedInsured,
}

/// Where a coverage sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum CoverageScope {
    Policy,
    Vehicle { vehicle: ItemRef },
    Dwelling { dwelling: ItemRef },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A policy, vehicle, dwelling or named insured appeared (under `policy`), or a driver.
    Added {
        item: ItemKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        policy: Option<ItemRef>,
        reference: ItemRef,
    },
    Removed {
        item: ItemKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        policy: Option<ItemRef>,
        reference: ItemRef,
    },
    /// Status, effective / expiry / renewal / canceled date, carrier policy number.
    PolicyFieldChanged {
        policy: ItemRef,
        field: &'static str,
        before: Value,
        after: Value,
    },
    PremiumChanged {
        policy: ItemRef,
        before_cents: Option<i64>,
        after_cents: Option<i64>,
        /// `after - before`, when both are known.
        difference_cents: Option<i64>,
    },
    CoverageAdded {
        policy: ItemRef,
        scope: CoverageScope,
        coverage: String,
    },
    CoverageRemoved {
        policy: ItemRef,
        scope: CoverageScope,
        coverage: String,
    },
    /// A limit, deductible or premium of a coverage.
    CoverageChanged {
        policy: ItemRef,
        scope: CoverageScope,
        coverage: String,
        field: String,
        before: Value,
        after: Value,
    },
    /// The holder's contact fields that changed, by name only.
    ContactChanged { fields: Vec<&'static str> },
}

impl Change {
    /// The policy this change belongs to; `None` for the account's own changes (drivers,
    /// contact fields).
    pub fn policy(&self) -> Option<&ItemRef> {
        match self {
            Change::Added {
                item: ItemKind::Policy,
                reference,
                ..
            }
            | Change::Removed {
                item: ItemKind::Policy,
                reference,
                ..
            } => Some(reference),
            Change::Added { policy, .. } | Change::Removed { policy, .. } => policy.as_ref(),
            Change::PolicyFieldChanged { policy, .. }
            | Change::PremiumChanged { policy, .. }
            | Change::CoverageAdded { policy, .. }
            | Change::CoverageRemoved { policy, .. }
            | Change::CoverageChanged { policy, .. } => Some(policy),
            Change::ContactChanged { .. } => None,
        }
    }

    /// The `kind` tag this change serialises with.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Added { .. } => "added",
            Change::Removed { .. } => "removed",
            Change::PolicyFieldChanged { .. } => "policy_field_changed",
            Change::PremiumChanged { .. } => "premium_changed",
            Change::CoverageAdded { .. } => "coverage_added",
            Change::CoverageRemoved { .. } => "coverage_removed",
            Change::CoverageChanged { .. } => "coverage_changed",
            Change::ContactChanged { .. } => "contact_changed",
        }
    }
}

/// The changes from one refresh to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

const POLICY_FIELDS: &[&str] = &[
    "status",
    "effective_date",
    "expiry_date",
    "renewal_date",
    "canceled_date",
    "carrier_policy_number",
];
const CONTACT_FIELDS: &[&str] = &[
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "account_email",
    "phone",
    "mobile_phone",
    "home_phone",
    "work_phone",
];
/// Coverage fields whose change is reported (limits, deductibles, premium).
fn is_coverage_amount(field: &str) -> bool {
    field.ends_with("_limit_cents")
        || field.ends_with("_limit_percent")
        || field.ends_with("_limit_months")
        || field.ends_with("_unlimited")
        || field.starts_with("deductible")
        || field == "premium_cents"
        || field == "is_declined"
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

fn natural_key(kind: Kind, v: &Value) -> Option<String> {
    match kind {
        Kind::Policy => Some(format!(
            "{}|{}",
            text(v, "carrier_policy_number")?,
            text(v, "policy_type").unwrap_or_default()
        )),
        Kind::Vehicle => text(v, "vin").or_else(|| text(v, "hin")),
        Kind::Driver => Some(format!(
            "{}|{}|{}",
            text(v, "first_name")?,
            text(v, "last_name")?,
            text(v, "date_of_birth_str")?
        )),
        Kind::Dwelling => {
            let a = v.get("address")?;
            text(a, "full_address").or_else(|| {
                Some(format!(
                    "{}|{}|{}|{}",
                    text(a, "number")?,
                    text(a, "street")?,
                    text(a, "zip").unwrap_or_default(),
                    text(a, "sec_unit_num").unwrap_or_default()
                ))
            })
        }
        Kind::NamedInsured => text(v, "full_name").or_else(|| {
            Some(format!(
                "{}|{}",
                text(v, "first_name")?,
                text(v, "last_name")?
            ))
        }),
        Kind::Coverage => text(v, "name").or_else(|| text(v, "friendly_name")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policy,
    Vehicle,
    Driver,
    Dwelling,
    NamedInsured,
    Coverage,
}

fn id_field(kind: Kind, v: &Value) -> Option<String> {
    let keys: &[&str] = match kind {
        Kind::Policy => &["policy_id"],
        Kind::Vehicle => &["vehicle_id"],
        Kind::Driver => &["driver_id"],
        Kind::Dwelling => &["dwelling_id"],
        Kind::NamedInsured => &["named_insured_id"],
        Kind::Coverage => &["vehicle_coverage_id", "dwelling_coverage_id", "coverage_id"],
    };
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Pairs of (previous, current) items, and the unmatched ones on each side.
struct Matching<'a> {
    pairs: Vec<(&'a Value, &'a Value, MatchedBy)>,
    removed: Vec<&'a Value>,
    added: Vec<&'a Value>,
}

/// Matches in linear time: the previous items are indexed by id, then (for what is left) by
/// natural key.
fn match_items<'a>(kind: Kind, before: &'a [Value], after: &'a [Value]) -> Matching<'a> {
    use std::collections::HashMap;
    let mut used = vec![false; before.len()];
    let mut pairs = Vec::new();
    let mut pending = Vec::new();
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, b) in before.iter().enumerate() {
        if let Some(id) = id_field(kind, b) {
            by_id.entry(id).or_default().push(i);
        }
    }
    for cur in after {
        let found =
            id_field(kind, cur).and_then(|id| by_id.get(&id)?.iter().copied().find(|i| !used[*i]));
        match found {
            Some(i) => {
                used[i] = true;
                pairs.push((&before[i], cur, MatchedBy::Id));
            }
            None => pending.push(cur),
        }
    }
    let mut added = Vec::new();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    if !pending.is_empty() {
        for (i, b) in before.iter().enumerate() {
            if !used[i] {
                if let Some(k) = natural_key(kind, b) {
                    by_key.entry(k).or_default().push(i);
                }
            }
        }
    }
    for cur in pending {
        let candidates: Vec<usize> = natural_key(kind, cur)
            .and_then(|k| by_key.get(&k))
            .map(|c| c.iter().copied().filter(|i| !used[*i]).collect())
            .unwrap_or_default();
        // Only an unambiguous natural key matches.
        if let [i] = candidates.as_slice() {
            used[*i] = true;
            pairs.push((&before[*i], cur, MatchedBy::NaturalKey));
        } else {
            added.push(cur);
        }
    }
    let removed = before
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(b, _)| b)
        .collect();
    Matching {
        pairs,
        removed,
        added,
    }
}

fn reference(kind: Kind, v: &Value, matched_by: MatchedBy) -> ItemRef {
    ItemRef {
        id: id_field(kind, v),
        matched_by,
    }
}

fn item_kind(kind: Kind) -> ItemKind {
    match kind {
        Kind::Policy => ItemKind::Policy,
        Kind::Vehicle => ItemKind::Vehicle,
        Kind::Driver => ItemKind::Driver,
        Kind::Dwelling => ItemKind::Dwelling,
        Kind::NamedInsured | Kind::Coverage => ItemKind::NamedInsured,
    }
}

fn added_removed(kind: Kind, m: &Matching, policy: Option<&ItemRef>, out: &mut Vec<Change>) {
    for v in &m.added {
        out.push(Change::Added {
            item: item_kind(kind),
            policy: policy.cloned(),
            reference: reference(kind, v, MatchedBy::Unmatched),
        });
    }
    for v in &m.removed {
        out.push(Change::Removed {
            item: item_kind(kind),
            policy: policy.cloned(),
            reference: reference(kind, v, MatchedBy::Unmatched),
        });
    }
}

fn coverage_name(v: &Value) -> String {
    v.get("name")
        .or_else(|| v.get("friendly_name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_owned()
}

fn diff_coverages(
    policy: &ItemRef,
    scope: &CoverageScope,
    before: &[Value],
    after: &[Value],
    out: &mut Vec<Change>,
) {
    let m = match_items(Kind::Coverage, before, after);
    for v in &m.added {
        out.push(Change::CoverageAdded {
            policy: policy.clone(),
            scope: scope.clone(),
            coverage: coverage_name(v),
        });
    }
    for v in &m.removed {
        out.push(Change::CoverageRemoved {
            policy: policy.clone(),
            scope: scope.clone(),
            coverage: coverage_name(v),
        });
    }
    for (b, a, _) in &m.pairs {
        let empty = Map::new();
        let (bo, ao) = (
            b.as_object().unwrap_or(&empty),
            a.as_object().unwrap_or(&empty),
        );
        let mut fields: Vec<&String> = bo.keys().chain(ao.keys()).collect();
        fields.sort();
        fields.dedup();
        for field in fields.into_iter().filter(|f| is_coverage_amount(f)) {
            let (bv, av) = (
                bo.get(field).unwrap_or(&Value::Null),
                ao.get(field).unwrap_or(&Value::Null),
            );
            if bv != av {
                out.push(Change::CoverageChanged {
                    policy: policy.clone(),
                    scope: scope.clone(),
                    coverage: coverage_name(a),
                    field: field.clone(),
                    before: bv.clone(),
                    after: av.clone(),
                });
            }
        }
    }
}

fn diff_policy(before: &Value, after: &Value, policy: &ItemRef, out: &mut Vec<Change>) {
    for field in POLICY_FIELDS {
        let (b, a) = (
            before.get(*field).unwrap_or(&Value::Null),
            after.get(*field).unwrap_or(&Value::Null),
        );
        if b != a {
            out.push(Change::PolicyFieldChanged {
                policy: policy.clone(),
                field,
                before: b.clone(),
                after: a.clone(),
            });
        }
    }
    let premium = |v: &Value| v.get("total_premium_cents").and_then(Value::as_i64);
    let (b, a) = (premium(before), premium(after));
    if b != a {
        out.push(Change::PremiumChanged {
            policy: policy.clone(),
            before_cents: b,
            after_cents: a,
            difference_cents: b.zip(a).map(|(b, a)| a - b),
        });
    }
    diff_coverages(
        policy,
        &CoverageScope::Policy,
        array(before, "coverages"),
        array(after, "coverages"),
        out,
    );
    for (kind, key) in [
        (Kind::Vehicle, "vehicles"),
        (Kind::Dwelling, "dwellings"),
        (Kind::NamedInsured, "named_insureds"),
    ] {
        let m = match_items(kind, array(before, key), array(after, key));
        added_removed(kind, &m, Some(policy), out);
        for (b, a, how) in &m.pairs {
            let item = reference(kind, a, *how);
            let scope = match kind {
                Kind::Vehicle => CoverageScope::Vehicle { vehicle: item },
                Kind::Dwelling => CoverageScope::Dwelling { dwelling: item },
                _ => continue,
            };
            diff_coverages(
                policy,
                &scope,
                array(b, "coverages"),
                array(a, "coverages"),
                out,
            );
        }
    }
}

/// The changes from `previous` to `current` (Canopy Pull objects).
pub fn diff(previous: &Value, current: &Value) -> ChangeSet {
    let mut out = Vec::new();
    let policies = match_items(
        Kind::Policy,
        array(previous, "policies"),
        array(current, "policies"),
    );
    added_removed(Kind::Policy, &policies, None, &mut out);
    for (b, a, how) in &policies.pairs {
        let policy = reference(Kind::Policy, a, *how);
        diff_policy(b, a, &policy, &mut out);
    }
    let drivers = match_items(
        Kind::Driver,
        array(previous, "drivers"),
        array(current, "drivers"),
    );
    added_removed(Kind::Driver, &drivers, None, &mut out);
    let fields: Vec<&'static str> = CONTACT_FIELDS
        .iter()
        .copied()
        .filter(|f| {
            let norm = |v: &Value| v.get(*f).filter(|x| !x.is_null() && *x != "").cloned();
            norm(previous) != norm(current)
        })
        .collect();
    if !fields.is_empty() {
        out.push(Change::ContactChanged { fields });
    }
    ChangeSet { changes: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pull in the spec's example shape: an auto policy (a vehicle with two coverages, a
    /// named insured), a home policy (a dwelling with a coverage), one driver.
    fn pull() -> Value {
        json!({
            "pull_id": "p1", "first_name": "Clark", "last_name": "Kent", "email": "ck@example.com",
            "mobile_phone": "8885550000",
            "policies": [
                {"policy_id": "pol-auto", "policy_type": "AUTO", "carrier_policy_number": "AU-1",
                 "status": "ACTIVE", "effective_date": "2026-01-01T00:00:00.000Z",
                 "expiry_date": "2026-07-01T00:00:00.000Z", "total_premium_cents": 51400,
                 "vehicles": [{"vehicle_id": "veh-1", "vin": "1HGCM82633A004352", "year": 2019,
                     "coverages": [
                         {"vehicle_coverage_id": "vc-1", "name": "BODILY_INJURY", "per_person_limit_cents": 5000000,
                          "per_incident_limit_cents": 10000000, "premium_cents": 20000},
                         {"vehicle_coverage_id": "vc-2", "name": "COLLISION", "deductible_cents": 50000, "premium_cents": 15000}]}],
                 "named_insureds": [{"named_insured_id": "ni-1", "full_name": "Clark Joseph Kent"}]},
                {"policy_id": "pol-home", "policy_type": "HOMEOWNERS", "carrier_policy_number": "HO-9",
                 "status": "ACTIVE", "total_premium_cents": 98700,
                 "dwellings": [{"dwelling_id": "dw-1",
                     "address": {"full_address": "344 Clinton Street, Apartment 3D, Brooklyn, NY, 11231"},
                     "coverages": [{"dwelling_coverage_id": "dc-1", "name": "DWELLING", "per_incident_limit_cents": 30000000, "premium_cents": 60000}]}]}
            ],
            "drivers": [{"driver_id": "dr-1", "first_name": "Clark", "last_name": "Kent", "date_of_birth_str": "05/03/1987"}]
        })
    }

    fn kinds(set: &ChangeSet) -> Vec<String> {
        set.changes
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn identical_and_reordered_pulls_have_no_changes() {
        assert!(diff(&pull(), &pull()).is_empty());
        let mut reordered = pull();
        reordered["policies"].as_array_mut().unwrap().reverse();
        reordered["policies"][1]["vehicles"][0]["coverages"]
            .as_array_mut()
            .unwrap()
            .reverse();
        assert!(
            diff(&pull(), &reordered).is_empty(),
            "{:?}",
            diff(&pull(), &reordered)
        );
    }

    #[test]
    fn a_cancelled_policy_and_a_premium_rise() {
        let mut after = pull();
        after["policies"][0]["status"] = json!("CANCELLED");
        after["policies"][0]["total_premium_cents"] = json!(62100);
        let set = diff(&pull(), &after);
        assert_eq!(kinds(&set), ["policy_field_changed", "premium_changed"]);
        assert!(
            matches!(&set.changes[0], Change::PolicyFieldChanged { field: "status", after, .. } if after == "CANCELLED")
        );
        assert!(matches!(
            &set.changes[1],
            Change::PremiumChanged {
                before_cents: Some(51400),
                after_cents: Some(62100),
                difference_cents: Some(10700),
                ..
            }
        ));
    }

    #[test]
    fn a_renewal_moves_the_dates() {
        let mut after = pull();
        after["policies"][0]["effective_date"] = json!("2026-07-01T00:00:00.000Z");
        after["policies"][0]["expiry_date"] = json!("2027-01-01T00:00:00.000Z");
        let fields: Vec<&str> = diff(&pull(), &after)
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::PolicyFieldChanged { field, .. } => Some(*field),
                _ => None,
            })
            .collect();
        assert_eq!(fields, ["effective_date", "expiry_date"]);
    }

    #[test]
    fn coverages_added_removed_and_changed_at_each_level() {
        let mut after = pull();
        let auto = &mut after["policies"][0]["vehicles"][0]["coverages"];
        auto.as_array_mut().unwrap().remove(1); // COLLISION dropped
        auto[0]["per_person_limit_cents"] = json!(10000000);
        after["policies"][1]["dwellings"][0]["coverages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"dwelling_coverage_id": "dc-2", "name": "PERSONAL_PROPERTY", "premium_cents": 9000}));
        after["policies"][1]["dwellings"][0]["coverages"][0]["deductible_cents"] = json!(100000);
        let set = diff(&pull(), &after);
        assert_eq!(
            kinds(&set),
            [
                "coverage_removed",
                "coverage_changed",
                "coverage_added",
                "coverage_changed"
            ],
            "{set:?}"
        );
        let value = serde_json::to_value(&set.changes[1]).unwrap();
        assert_eq!(value["scope"]["level"], "vehicle");
        assert_eq!(value["field"], "per_person_limit_cents");
        assert_eq!(value["coverage"], "BODILY_INJURY");
    }

    #[test]
    fn items_added_and_removed() {
        let mut after = pull();
        after["policies"][0]["vehicles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"vehicle_id": "veh-2", "vin": "5YJ3E1EA7KF317000", "coverages": []}));
        after["drivers"].as_array_mut().unwrap().push(
            json!({"driver_id": "dr-2", "first_name": "Lois", "last_name": "Lane", "date_of_birth_str": "01/02/1988"}),
        );
        after["policies"][0]["named_insureds"] = json!([]);
        after["policies"].as_array_mut().unwrap().remove(1);
        let set = diff(&pull(), &after);
        let summary: Vec<(String, String)> = set
            .changes
            .iter()
            .map(|c| {
                let v = serde_json::to_value(c).unwrap();
                (
                    v["kind"].as_str().unwrap().to_owned(),
                    v["item"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("removed".to_owned(), "policy".to_owned()),
                ("added".to_owned(), "vehicle".to_owned()),
                ("removed".to_owned(), "named_insured".to_owned()),
                ("added".to_owned(), "driver".to_owned()),
            ]
        );
    }

    #[test]
    fn new_ids_fall_back_to_natural_keys() {
        let mut after = pull();
        after["policies"][0]["policy_id"] = json!("pol-auto-NEW");
        after["policies"][0]["vehicles"][0]["vehicle_id"] = json!("veh-NEW");
        after["policies"][0]["vehicles"][0]["coverages"][0]["vehicle_coverage_id"] =
            json!("vc-NEW");
        after["policies"][0]["total_premium_cents"] = json!(50000);
        after["drivers"][0]["driver_id"] = json!("dr-NEW");
        after["policies"][1]["dwellings"][0]["dwelling_id"] = json!("dw-NEW");
        let set = diff(&pull(), &after);
        assert_eq!(
            kinds(&set),
            ["premium_changed"],
            "matched, not added and removed: {set:?}"
        );
        let value = serde_json::to_value(&set.changes[0]).unwrap();
        assert_eq!(
            value["policy"],
            json!({"id": "pol-auto-NEW", "matched_by": "natural_key"})
        );
    }

    #[test]
    fn contact_changes_name_fields_not_values() {
        let mut after = pull();
        after["email"] = json!("clark@dailyplanet.com");
        after["mobile_phone"] = json!(null);
        let set = diff(&pull(), &after);
        assert_eq!(
            set.changes,
            [Change::ContactChanged {
                fields: vec!["email", "mobile_phone"]
            }]
        );
        assert!(!serde_json::to_string(&set).unwrap().contains("dailyplanet"));
    }

    #[test]
    fn a_swapped_pair_gives_the_inverse_change() {
        let mut after = pull();
        after["policies"][0]["total_premium_cents"] = json!(60000);
        after["policies"][0]["vehicles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"vehicle_id": "veh-2", "vin": "5YJ3E1EA7KF317000"}));
        let forward = diff(&pull(), &after);
        let backward = diff(&after, &pull());
        assert_eq!(kinds(&forward), ["premium_changed", "added"]);
        assert_eq!(kinds(&backward), ["premium_changed", "removed"]);
        assert!(matches!(
            forward.changes[0],
            Change::PremiumChanged {
                difference_cents: Some(8600),
                ..
            }
        ));
        assert!(matches!(
            backward.changes[0],
            Change::PremiumChanged {
                difference_cents: Some(-8600),
                ..
            }
        ));
    }
}
