//! Pulls and webhook bodies in the shapes of Canopy's API spec, with values of our own.

use serde_json::{json, Value};

pub const TEAM_ID: &str = "394661bc-6361-46f0-8b11-4106d6146cb4";
/// The team of the second (sandbox) source of the local run and the sources tests.
pub const SANDBOX_TEAM_ID: &str = "8d2f6a41-0c3e-4b7a-9e15-3a6c2b9d7f08";
pub const WIDGET_ID: &str = "d2bb6d56-15ff-4760-a27c-362f9bce645a";

/// How big a generated pull is.
#[derive(Debug, Clone, Copy)]
pub struct PullSize {
    pub vehicles: usize,
    pub documents: usize,
}

impl Default for PullSize {
    fn default() -> Self {
        Self {
            vehicles: 2,
            documents: 3,
        }
    }
}

fn address(n: usize) -> Value {
    json!({
        "address_id": format!("addr-{n:06}"), "full_address": format!("{n} Clinton Street, Brooklyn, NY, 11231"),
        "country": null, "address_nature": "PHYSICAL", "number": n.to_string(), "street": "Clinton", "type": "St",
        "city": "Brooklyn", "state": "NY", "zip": "11231"
    })
}

fn vehicle(pull_id: &str, n: usize) -> Value {
    json!({
        "vehicle_id": format!("{pull_id}-veh-{n:06}"), "year": 2010 + (n % 15) as i64, "make": "CHEVROLET",
        "model": "Camaro", "series": "ZL1", "series2": null, "type": "PASSENGER CAR", "annual_mileage": 12000,
        "vin": format!("1G1FK1R62J{n:07}"), "is_removed": false, "lien_holder": null,
        "garaging_address": address(n),
        "coverages": [
            {"vehicle_coverage_id": format!("{pull_id}-vc-{n:06}-1"), "name": "COLLISION", "friendly_name": "Collision",
             "premium_cents": 16439, "per_person_limit_cents": null, "per_incident_limit_cents": null, "deductible_cents": 50000},
            {"vehicle_coverage_id": format!("{pull_id}-vc-{n:06}-2"), "name": "BODILY_INJURY_LIABILITY", "friendly_name": "Bodily Injury",
             "premium_cents": 23110, "per_person_limit_cents": 10000000, "per_incident_limit_cents": 30000000, "deductible_cents": null}
        ]
    })
}

fn document(pull_id: &str, policy_id: &str, n: usize) -> Value {
    json!({
        "document_id": format!("{pull_id}-doc-{n:06}"), "title": format!("12-13-2025 - AUTO AU{n:06} - Declarations"),
        "date_added": "2025-12-13T06:00:00.000Z", "document_type": "DECLARATIONS", "policy_id": policy_id,
        "mime_type": "application/pdf"
    })
}

/// A successful PULLING_DATA pull: an auto policy with `size.vehicles` vehicles, a home policy
/// with one dwelling, one driver, `size.documents` documents and a claim.
pub fn sample_pull(pull_id: &str, size: PullSize) -> Value {
    let auto_id = format!("{pull_id}-pol-auto");
    let home_id = format!("{pull_id}-pol-home");
    json!({
        "pull_id": pull_id, "status": "SUCCESS", "first_name": "Clark", "middle_name": "Joseph", "last_name": "Kent",
        "email": null, "account_email": "clark.kent@example.com", "phone": "8885550000", "mobile_phone": "8885550000",
        "home_phone": "", "work_phone": "", "work_phone_extension": "", "insurance_provider_name": "statefarm",
        "insurance_provider_friendly_name": "State Farm", "team_id": TEAM_ID, "widget_id": WIDGET_ID,
        "meta_data": {"user_id": "crm-1042"}, "is_archived": false, "created_at": "2026-11-26T00:00:00.000Z",
        "public_alias": "demo", "public_url": "https://app.usecanopy.com/c/demo", "no_policies": false,
        "no_drivers": false, "no_documents": size.documents == 0, "no_claims": false, "no_loss_events": true,
        "type": "PULLING_DATA", "account_identifier": "acct-7d9f2c",
        "policies": [
            {"policy_id": auto_id, "name": "AUTO AU192837", "description": "Effective 12/13/2025 - 12/13/2026",
             "carrier_policy_number": "AU192837", "policy_type": "AUTO", "effective_date": "2025-12-13T06:00:00.000Z",
             "expiry_date": "2026-12-13T06:00:00.000Z", "renewal_date": null, "canceled_date": null,
             "total_premium_cents": 175300, "carrier_name": "State Farm", "status": "ACTIVE",
             "vehicles": (0..size.vehicles).map(|n| vehicle(pull_id, n)).collect::<Vec<_>>(), "dwellings": [],
             "named_insureds": [{"first_name": "Clark", "last_name": "Kent"}]},
            {"policy_id": home_id, "name": "HOME HO132483", "carrier_policy_number": "HO132483",
             "policy_type": "HOMEOWNERS", "total_premium_cents": 98700, "status": "ACTIVE", "vehicles": [],
             "dwellings": [{"dwelling_id": format!("{pull_id}-dwelling"), "replacement_cost_cents": 50000000,
                            "address": address(0), "coverages": [{"dwelling_coverage_id": format!("{pull_id}-dc-1"),
                            "name": "DWELLING", "premium_cents": 140675, "per_incident_limit_cents": 28838000}]}]}
        ],
        "drivers": [{"driver_id": format!("{pull_id}-drv-1"), "first_name": "Clark", "last_name": "Kent",
                     "drivers_license_state": "DC", "gender": "MALE", "relationship_to_insured": "INSURED"}],
        "documents": (0..size.documents).map(|n| document(pull_id, &auto_id, n)).collect::<Vec<_>>(),
        "addresses": [address(0)],
        "claims": [{"claim_id": format!("{pull_id}-claim-1"), "policy_id": home_id, "carrier_claim_identifier": "HO-12345",
                    "date_occurred": "2025-11-13T06:00:00.000Z", "type": "WIND_AND_HAIL_DAMAGE", "status": "OPEN",
                    "payout_cents": 0}],
        "driving_records": [], "loss_events": [], "agents": [], "answers": []
    })
}

/// Who a webhook is about.
#[derive(Debug, Clone)]
pub struct Subject {
    pub pull_id: String,
    pub monitoring_id: Option<String>,
    pub initial_pull_id: Option<String>,
    pub meta_data: Value,
}

/// A webhook body about `subject`. Its `team_id` is [`TEAM_ID`]; the fake's sender replaces it
/// with the team of the source that owns the pull ([`crate::webhooks::deliveries`]).
fn body(subject: &Subject, event_type: &str, status: &str, data: Value) -> Value {
    let mut b = json!({
        "widget_id": WIDGET_ID, "team_id": TEAM_ID, "pull_id": subject.pull_id, "status": status,
        "meta_data": subject.meta_data, "event_type": event_type, "account_identifier": "acct-7d9f2c",
        "is_monitored": subject.monitoring_id.is_some(), "data": data
    });
    if let Some(m) = &subject.monitoring_id {
        b["monitoring"] = json!({"monitoring_id": m, "initial_pull_id": subject.initial_pull_id});
    }
    b
}

/// The webhooks of a refresh: one POLICY_AVAILABLE per policy, POLICIES_AVAILABLE, COMPLETE.
pub fn refresh_sequence(subject: &Subject, pull: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = pull
        .get("policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            body(
                subject,
                "POLICY_AVAILABLE",
                "PULLING_DATA",
                json!({"policy_id": p.get("policy_id"), "policy_type": p.get("policy_type")}),
            )
        })
        .collect();
    out.push(body(
        subject,
        "POLICIES_AVAILABLE",
        "PULLING_DATA",
        json!({}),
    ));
    out.push(body(subject, "COMPLETE", "SUCCESS", json!({})));
    out
}

/// An AUTH_STATUS of `auth_status` with its `sequence`; `extra` adds to `data`
/// (`login_error_message`, `mfa_options`).
pub fn auth_status_webhook(
    subject: &Subject,
    auth_status: &str,
    sequence: i64,
    extra: Value,
) -> Value {
    let mut data = json!({"auth_status": auth_status});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let mut b = body(subject, "AUTH_STATUS", auth_status, data);
    b["sequence"] = json!(sequence);
    b
}

/// A MONITORING_EVENTS webhook: one monitoring event (`type`, `changes`, `documents`).
pub fn monitoring_events_webhook(subject: &Subject, event: Value) -> Value {
    body(subject, "MONITORING_EVENTS", "SUCCESS", event)
}

/// A MONITORING_RECONNECT with the given link.
pub fn reconnect_webhook(subject: &Subject, reconnect_url: &str, reconnect_token: &str) -> Value {
    body(
        subject,
        "MONITORING_RECONNECT",
        "NOT_AUTHENTICATED",
        json!({
            "auth_status": "NOT_AUTHENTICATED", "reconnect_url": reconnect_url, "reconnect_token": reconnect_token
        }),
    )
}
