//! The metrics canopy-monitor emits, in one place: names, dimensions and units
//! (docs/operations.md, "Metrics"). They go through the `metrics` facade; a function's main installs
//! `metrics_cloudwatch_embedded`'s recorder ([`crate::runtime::observability`]), which prints them as
//! CloudWatch Embedded Metric Format lines after each invocation. Without a recorder (unit
//! tests, the local tools) every call here is a no-op.
//!
//! One namespace, [`NAMESPACE`], and few dimensions: each combination of dimension values is a
//! custom metric CloudWatch bills monthly. Every metric also carries the `Stack` dimension,
//! set once at start-up. Values are ids of kinds (outcomes, event types, channels, status
//! classes), never ids of pulls or people.

pub const NAMESPACE: &str = "CanopyMonitor";

/// A webhook's outcome: `accepted`, `duplicate`, `stale`, or `rejected_<reason>` (the error code
/// of the answer: `invalid_signature`, `invalid_body`, `payload_too_large`, `in_flight`,
/// `timed_out`, `unavailable`, `misconfigured`).
pub fn webhook(outcome: &str, event_type: Option<&str>, latency_ms: f64) {
    metrics::counter!("Webhooks", "Outcome" => outcome.to_owned()).increment(1);
    if let Some(t) = event_type {
        metrics::counter!("WebhookTypes", "EventType" => t.to_owned()).increment(1);
    }
    if outcome == "rejected_invalid_signature" {
        metrics::counter!("SignatureFailures").increment(1);
    }
    metrics::histogram!("IntakeLatency").record(latency_ms);
}

/// A fetch job's outcome: `stored`, `skipped_<reason>`, `failed_<code>` (permanent), `retry`.
pub fn fetch(outcome: &str, latency_ms: f64) {
    metrics::counter!("Fetches", "Outcome" => outcome.to_owned()).increment(1);
    metrics::histogram!("FetchLatency").record(latency_ms);
}

/// What Canopy answered a call made with a source's keys (a GET pull, a reconnect token, a
/// reconciler's page), as a status class (`200`, `401`, `403`, `404`, `429`, `5xx`,
/// `transport`), by the source's key type. 401, 403 and `INCORRECT_API_KEY_TYPE` also count
/// as `CanopyAuthFailures` of that key type: its keys are wrong or revoked, and a sandbox key
/// must not page as if production were down (one alarm per key type).
pub fn canopy_answer(
    key_type: crate::domain::source::KeyType,
    error: Option<&crate::ports::canopy::CanopyError>,
) {
    let status = error.map_or_else(|| "200".to_owned(), |e| e.status_class());
    let key_type = key_type.as_str();
    metrics::counter!("CanopyResponses", "Status" => status, "KeyType" => key_type).increment(1);
    if matches!(
        error,
        Some(crate::ports::canopy::CanopyError::Misconfigured { .. })
    ) {
        metrics::counter!("CanopyAuthFailures", "KeyType" => key_type).increment(1);
    }
}

/// A source left out at start or at a secrets reload: its secret could not be read.
pub fn source_unavailable(key_type: crate::domain::source::KeyType) {
    metrics::counter!("SourcesUnavailable", "KeyType" => key_type.as_str()).increment(1);
}

/// The size of a stored pull's JSON.
pub fn pull_bytes(bytes: usize) {
    metrics::histogram!("PullBytes").record(bytes as f64);
}

/// A reconnect notice on one channel (`email`, `sms`, `webhook`): `sent`, `failed`, `skipped`.
pub fn notice(channel: &str, outcome: &str) {
    metrics::counter!("Notices", "Channel" => channel.to_owned(), "Outcome" => outcome.to_owned())
        .increment(1);
    if outcome == "failed" {
        metrics::counter!("NoticeFailures").increment(1);
    }
}

/// One reminder pass: reminders that were due, and those queued.
pub fn reminders(due: usize, sent: usize) {
    metrics::counter!("RemindersDue").increment(due as u64);
    metrics::counter!("RemindersSent").increment(sent as u64);
}

/// Repairs of one reconciler pass, by kind (`created`, `status_fixed`, `settings_fixed`,
/// `fetches_queued`).
pub fn repairs(kind: &str, count: usize) {
    metrics::counter!("Repairs", "Kind" => kind.to_owned()).increment(count as u64);
}

/// Monitorings the reconciler passed over: `unreadable` (Canopy unavailable, retried next
/// run) or `refused` (Canopy answered 4xx for it).
pub fn sync_skipped(reason: &str, count: usize) {
    metrics::counter!("SyncSkipped", "Reason" => reason.to_owned()).increment(count as u64);
}

/// Business events published from the outbox, and those left waiting (the bus refused them).
pub fn events(published: usize, left: usize) {
    metrics::counter!("EventsPublished").increment(published as u64);
    metrics::counter!("EventsLeft").increment(left as u64);
}

/// Outbox items parked: the bus refused their events on every sweep (see [`crate::app::outbox`]).
pub fn events_parked(items: usize) {
    metrics::counter!("EventsParked").increment(items as u64);
}
