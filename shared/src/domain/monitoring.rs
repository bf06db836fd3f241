//! Monitoring control: the requests of the Monitoring API, validated before anything is sent to
//! Canopy, Canopy's monitoring object, and the decisions about them as pure functions (the
//! refresh guard, the owner of a monitoring, what the reconciler repairs).

use crate::domain::records::{MonitoringRecord, ACTIVE, STOPPED};
use crate::domain::time_fmt::{format_ts, parse_ts};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Canopy refuses intervals shorter than this.
pub const MIN_INTERVAL_DAYS: u64 = 30;

/// Why a request was refused before reaching Canopy; `field` names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        field,
        problem: problem.into(),
    }
}

/// An ISO-8601 duration as Canopy takes it (`P1M`, `P30D`, `P1Y6M`, `P5W`): years, months,
/// weeks and days only. Its shortest possible length (a month counts 30 days, as Canopy's own
/// `P1M` example implies; a year 365) must be at least [`MIN_INTERVAL_DAYS`].
pub fn validate_interval(text: &str) -> Result<String, Invalid> {
    let bad = |why: &str| {
        invalid(
            "interval",
            format!("{why} (ISO-8601 duration such as P1M, P30D or P1Y)"),
        )
    };
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| bad("must start with P"))?;
    if rest.is_empty() {
        return Err(bad("has no amount"));
    }
    if rest.contains('T') {
        return Err(bad("takes days, weeks, months or years, not hours"));
    }
    let mut days: u64 = 0;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (order, unit_days) = match c {
            'Y' => (1, 365),
            'M' => (2, 30),
            'W' => (3, 7),
            'D' => (4, 1),
            _ => return Err(bad(&format!("unknown unit {c:?}"))),
        };
        if order <= last_unit || number.is_empty() {
            return Err(bad(
                "units must be numbers followed by Y, M, W, D in that order",
            ));
        }
        last_unit = order;
        let amount: u64 = number.parse().map_err(|_| bad("amount too large"))?;
        days = days.saturating_add(amount.saturating_mul(unit_days));
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad("ends with a number without a unit"));
    }
    if days < MIN_INTERVAL_DAYS {
        return Err(invalid(
            "interval",
            format!("must be at least {MIN_INTERVAL_DAYS} days (Canopy's minimum)"),
        ));
    }
    Ok(text.to_owned())
}

/// An RFC 3339 date-time, normalised to Canopy's `2000-12-31T00:00:00.000Z`.
pub fn validate_date(field: &'static str, text: &str) -> Result<String, Invalid> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(format_ts)
        .map_err(|_| {
            invalid(
                field,
                "must be an RFC 3339 date-time, e.g. 2027-01-31T00:00:00Z",
            )
        })
}

/// SHA-256 (hex) of `parts` joined by a separator no part contains: what identifies a
/// request for its idempotency key, or a listing for its cursor.
pub fn fingerprint(parts: &[&str]) -> String {
    crate::domain::crypto::sha256_hex(parts.join("\u{1f}").as_bytes())
}

/// The one id rule ([`crate::domain::ids::canonical_id`]) as a field error: anything else is
/// refused before it becomes a key or a URL segment.
pub fn validate_id(field: &'static str, text: &str) -> Result<String, Invalid> {
    crate::domain::ids::canonical_id(text)
        .ok_or_else(|| invalid(field, crate::domain::ids::ID_RULE))
}

fn string_field(body: &Value, field: &'static str) -> Result<Option<String>, Invalid> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn object(body: &Value, allowed: &[&str]) -> Result<(), Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("body", "must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Invalid {
            field: "body",
            problem: format!("unknown field {unknown:?}; allowed: {}", allowed.join(", ")),
        });
    }
    Ok(())
}

/// `POST /v1/monitorings`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnableRequest {
    pub pull_id: String,
    pub interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_pull_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_after_date: Option<String>,
    /// Ours, never sent to Canopy: the source whose keys enable it, for a pull not yet known
    /// here (a known pull's own source wins; see [`crate::domain::source`]).
    #[serde(skip)]
    pub source: Option<String>,
}

impl EnableRequest {
    pub fn parse(body: &Value) -> Result<Self, Invalid> {
        object(
            body,
            &[
                "pull_id",
                "interval",
                "next_pull_date",
                "stop_after_date",
                "source",
            ],
        )?;
        let pull_id =
            string_field(body, "pull_id")?.ok_or_else(|| invalid("pull_id", "is required"))?;
        let interval =
            string_field(body, "interval")?.ok_or_else(|| invalid("interval", "is required"))?;
        Ok(Self {
            pull_id: validate_id("pull_id", &pull_id)?,
            interval: validate_interval(&interval)?,
            next_pull_date: string_field(body, "next_pull_date")?
                .map(|d| validate_date("next_pull_date", &d))
                .transpose()?,
            stop_after_date: string_field(body, "stop_after_date")?
                .map(|d| validate_date("stop_after_date", &d))
                .transpose()?,
            source: string_field(body, "source")?
                .map(|s| {
                    if crate::domain::source::valid_name(&s) {
                        Ok(s)
                    } else {
                        Err(invalid(
                            "source",
                            "must be a source name: a-z, 0-9 and -, at most 32",
                        ))
                    }
                })
                .transpose()?,
        })
    }
}

/// `PATCH /v1/monitorings/{id}`, validated: at least one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PatchRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_pull_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_after_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl PatchRequest {
    pub fn parse(body: &Value) -> Result<Self, Invalid> {
        object(
            body,
            &["interval", "next_pull_date", "stop_after_date", "status"],
        )?;
        let patch = Self {
            interval: string_field(body, "interval")?
                .map(|i| validate_interval(&i))
                .transpose()?,
            next_pull_date: string_field(body, "next_pull_date")?
                .map(|d| validate_date("next_pull_date", &d))
                .transpose()?,
            stop_after_date: string_field(body, "stop_after_date")?
                .map(|d| validate_date("stop_after_date", &d))
                .transpose()?,
            status: match string_field(body, "status")? {
                None => None,
                Some(s) if s == ACTIVE || s == STOPPED => Some(s),
                Some(_) => return Err(invalid("status", "must be ACTIVE or STOPPED")),
            },
        };
        if patch == Self::default() {
            return Err(invalid(
                "body",
                "name at least one of interval, next_pull_date, stop_after_date, status",
            ));
        }
        Ok(patch)
    }
}

/// Canopy's Monitoring object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
pub struct CanopyMonitoring {
    pub monitoring_id: String,
    #[serde(default)]
    pub latest_pull_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub next_pull_date: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub stop_after_date: Option<String>,
}

/// A pull as `GET /monitorings/{id}?with_pulls=true` lists it (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
pub struct MonitoredPull {
    pub pull_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Settings of the refresh guard. A refresh is billed like a pull.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// No refresh while the last completed one is younger than this (unless forced).
    pub min_interval: time::Duration,
    /// A requested refresh counts as in flight until it completes, asks for a reconnect, or
    /// this long has passed (Canopy's refreshes take minutes; its webhooks may be lost).
    pub in_flight_window: time::Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval: time::Duration::hours(24),
            in_flight_window: time::Duration::hours(2),
        }
    }
}

/// Why a refresh is refused by our guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRefusal {
    NotActive,
    InFlight {
        requested_at: String,
    },
    TooSoon {
        last_refresh_at: String,
        allowed_from: String,
    },
}

/// The times a refresh claim compares, as stored strings (their order is time order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshCutoffs {
    /// Requests made before this are no longer in flight.
    pub in_flight_since: String,
    /// Completed refreshes before this are old enough.
    pub completed_before: String,
}

impl RefreshPolicy {
    pub fn cutoffs(&self, now: OffsetDateTime) -> RefreshCutoffs {
        RefreshCutoffs {
            in_flight_since: format_ts(now - self.in_flight_window),
            completed_before: format_ts(now - self.min_interval),
        }
    }
}

/// Whether a refresh may be requested now. The DynamoDB claim encodes the same rule as a
/// condition, so two concurrent requests cannot both pass.
pub fn refresh_decision(
    record: &MonitoringRecord,
    policy: &RefreshPolicy,
    now: OffsetDateTime,
    force: bool,
) -> Result<(), RefreshRefusal> {
    if record.status.as_deref() == Some(STOPPED) {
        return Err(RefreshRefusal::NotActive);
    }
    if force {
        return Ok(());
    }
    let cut = policy.cutoffs(now);
    if let Some(requested) = &record.refresh_requested_at {
        let answered = [&record.last_refresh_at, &record.reconnect_needed_since]
            .into_iter()
            .flatten()
            .any(|at| at >= requested);
        if !answered && *requested >= cut.in_flight_since {
            return Err(RefreshRefusal::InFlight {
                requested_at: requested.clone(),
            });
        }
    }
    if let Some(last) = &record.last_refresh_at {
        if *last >= cut.completed_before {
            let allowed = parse_ts(last).map(|t| format_ts(t + policy.min_interval));
            return Err(RefreshRefusal::TooSoon {
                last_refresh_at: last.clone(),
                allowed_from: allowed.unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// What the reconciler must repair for one of Canopy's monitorings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// We had no record of it.
    pub unknown: bool,
    /// Canopy says STOPPED, we said ACTIVE (or the reverse).
    pub status_changed: bool,
    /// Interval or dates differ.
    pub settings_changed: bool,
    /// Its latest pull completed and we never recorded that COMPLETE nor stored its data.
    pub missed_pull: Option<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Compares Canopy's view of a monitoring (and its latest pull) with ours.
pub fn drift(
    canopy: &CanopyMonitoring,
    local: Option<&MonitoringRecord>,
    latest_pull: Option<&MonitoredPull>,
    latest_pull_covered: bool,
) -> Drift {
    let mut d = Drift {
        unknown: local.is_none(),
        ..Drift::default()
    };
    if let Some(local) = local {
        d.status_changed = canopy.status.is_some() && canopy.status != local.status;
        d.settings_changed = canopy.interval != local.interval
            || norm(&canopy.next_pull_date) != norm(&local.next_pull_date)
            || norm(&canopy.stop_after_date) != norm(&local.stop_after_date);
    }
    if let Some(pull) = latest_pull {
        if pull.status.as_deref() == Some("SUCCESS") && !latest_pull_covered {
            d.missed_pull = Some(pull.pull_id.clone());
        }
    }
    d
}

/// Dates compare by instant, whatever their written form.
fn norm(date: &Option<String>) -> Option<String> {
    date.as_deref().map(|d| {
        OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339)
            .map(format_ts)
            .unwrap_or_else(|_| d.to_owned())
    })
}

/// Canopy's dates in our stored form (for records written from Canopy's answers).
pub fn stored_date(date: &Option<String>) -> Option<String> {
    norm(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intervals_follow_canopy() {
        for ok in ["P1M", "P30D", "P1Y", "P5W", "P1Y6M", "P2M15D", "P60D"] {
            assert_eq!(validate_interval(ok).as_deref(), Ok(ok), "{ok}");
        }
        for short in ["P29D", "P4W", "P1D"] {
            let err = validate_interval(short).unwrap_err();
            assert!(err.problem.contains("at least 30 days"), "{short}: {err}");
        }
        for bad in [
            "", "P", "1M", "PT720H", "P1X", "P1D1M", "PM", "P30", "-P1M", "P1.5M",
        ] {
            assert!(validate_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enable_requests_are_checked_field_by_field() {
        let id = "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61";
        let ok = EnableRequest::parse(&json!({"pull_id": id, "interval": "P1M",
            "stop_after_date": "2027-01-31T00:00:00+01:00"}))
        .unwrap();
        assert_eq!(
            ok.stop_after_date.as_deref(),
            Some("2027-01-30T23:00:00.000Z")
        );
        let field = |body: Value| EnableRequest::parse(&body).unwrap_err().field;
        assert_eq!(field(json!({"interval": "P1M"})), "pull_id");
        assert_eq!(
            field(json!({"pull_id": "../x", "interval": "P1M"})),
            "pull_id"
        );
        assert_eq!(field(json!({"pull_id": id})), "interval");
        assert_eq!(field(json!({"pull_id": id, "interval": "P1D"})), "interval");
        assert_eq!(field(json!({"pull_id": id, "interval": 30})), "interval");
        assert_eq!(
            field(json!({"pull_id": id, "interval": "P1M", "next_pull_date": "soon"})),
            "next_pull_date"
        );
        assert_eq!(
            field(json!({"pull_id": id, "interval": "P1M", "extra": 1})),
            "body"
        );
        assert_eq!(field(json!([1])), "body");
    }

    #[test]
    fn patches_need_a_field_and_a_known_status() {
        assert!(PatchRequest::parse(&json!({})).is_err());
        assert_eq!(
            PatchRequest::parse(&json!({"status": "PAUSED"}))
                .unwrap_err()
                .field,
            "status"
        );
        assert_eq!(
            PatchRequest::parse(&json!({"status": "STOPPED"}))
                .unwrap()
                .status
                .as_deref(),
            Some("STOPPED")
        );
    }

    fn at(s: &str) -> OffsetDateTime {
        parse_ts(s).unwrap()
    }

    #[test]
    fn the_refresh_guard_refuses_in_flight_and_recent_refreshes() {
        let policy = RefreshPolicy::default();
        let now = at("2026-06-10T12:00:00.000Z");
        let mut m = MonitoringRecord {
            status: Some(ACTIVE.into()),
            ..MonitoringRecord::default()
        };
        assert_eq!(refresh_decision(&m, &policy, now, false), Ok(()));

        m.refresh_requested_at = Some("2026-06-10T11:30:00.000Z".into());
        assert!(matches!(
            refresh_decision(&m, &policy, now, false),
            Err(RefreshRefusal::InFlight { .. })
        ));
        assert_eq!(refresh_decision(&m, &policy, now, true), Ok(()), "force");
        // A request older than the window is no longer in flight.
        assert_eq!(
            refresh_decision(&m, &policy, now + time::Duration::hours(3), false),
            Ok(())
        );
        // Its COMPLETE arrived: not in flight, but too recent.
        m.last_refresh_at = Some("2026-06-10T11:40:00.000Z".into());
        assert_eq!(
            refresh_decision(&m, &policy, now, false),
            Err(RefreshRefusal::TooSoon {
                last_refresh_at: "2026-06-10T11:40:00.000Z".into(),
                allowed_from: "2026-06-11T11:40:00.000Z".into()
            })
        );
        assert_eq!(
            refresh_decision(&m, &policy, now + time::Duration::hours(24), false),
            Ok(())
        );
        // A reconnect answered the request: not in flight either.
        let mut r = MonitoringRecord {
            refresh_requested_at: Some("2026-06-10T11:30:00.000Z".into()),
            reconnect_needed_since: Some("2026-06-10T11:35:00.000Z".into()),
            ..MonitoringRecord::default()
        };
        assert_eq!(refresh_decision(&r, &policy, now, false), Ok(()));
        r.status = Some(STOPPED.into());
        assert_eq!(
            refresh_decision(&r, &policy, now, true),
            Err(RefreshRefusal::NotActive)
        );
    }

    #[test]
    fn drift_names_each_repair() {
        let canopy = CanopyMonitoring {
            monitoring_id: "m".into(),
            latest_pull_id: Some("p2".into()),
            status: Some(STOPPED.into()),
            interval: Some("P1M".into()),
            next_pull_date: Some("2026-07-01T00:00:00.000Z".into()),
            stop_after_date: None,
        };
        let done = MonitoredPull {
            pull_id: "p2".into(),
            status: Some("SUCCESS".into()),
            created_at: None,
        };
        let d = drift(&canopy, None, Some(&done), false);
        assert!(d.unknown);
        assert_eq!(d.missed_pull.as_deref(), Some("p2"));

        let local = MonitoringRecord {
            monitoring_id: "m".into(),
            status: Some(ACTIVE.into()),
            interval: Some("P1M".into()),
            next_pull_date: Some("2026-07-01T00:00:00Z".into()),
            ..MonitoringRecord::default()
        };
        let d = drift(&canopy, Some(&local), Some(&done), true);
        assert_eq!(
            d,
            Drift {
                status_changed: true,
                ..Drift::default()
            },
            "same instant written differently is no drift; a covered pull is no drift"
        );
        let pulling = MonitoredPull {
            status: Some("PULLING_DATA".into()),
            ..done
        };
        assert_eq!(
            drift(&canopy, Some(&local), Some(&pulling), false).missed_pull,
            None
        );
    }
}
