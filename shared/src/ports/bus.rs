//! The event-bus port: where business events ([`crate::domain::business_events`]) go. The EventBridge
//! adapter and an in-memory fake sit beside it.
//!
//! A PutEvents request is limited by AWS to [`MAX_EVENTS_PER_CALL`] entries and entries
//! totalling less than [`MAX_REQUEST_BYTES`], each entry sized by [`entry_size`]; a request
//! over either limit is refused whole (`ValidationException`). [`pack`] cuts a list of
//! events into requests within both.

use crate::domain::business_events::{BusinessEvent, SOURCE};
use crate::ports::PortError;
use async_trait::async_trait;
use std::ops::Range;

/// Most events one PutEvents call takes.
pub const MAX_EVENTS_PER_CALL: usize = 10;
/// The entries of one PutEvents request total less than this (AWS: 256 KB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The entry-size formula of the EventBridge guide ("Calculating PutEvents event entry
/// size"): `Time` counts 14 bytes if set; `Source`, `DetailType`, `Detail` and each
/// `Resources` entry count their UTF-8 bytes. The bus name does not count.
pub fn entry_size(
    time_set: bool,
    source: &str,
    detail_type: &str,
    detail: Option<&str>,
    resources: &[&str],
) -> usize {
    let time = if time_set { 14 } else { 0 };
    time + source.len()
        + detail_type.len()
        + detail.map_or(0, str::len)
        + resources.iter().map(|r| r.len()).sum::<usize>()
}

/// The size of the entry an event becomes (the adapter sets no `Time` and no `Resources`).
pub fn event_entry_size(event: &BusinessEvent) -> usize {
    entry_size(
        false,
        SOURCE,
        event.detail_type.as_str(),
        Some(&event.detail_json()),
        &[],
    )
}

/// Whether an entry of `size` bytes can be sent at all (alone in its request).
pub fn fits_one_request(size: usize) -> bool {
    size < MAX_REQUEST_BYTES
}

/// Cuts entries of these sizes, in order, into requests: consecutive ranges of at most
/// [`MAX_EVENTS_PER_CALL`] entries totalling less than [`MAX_REQUEST_BYTES`]. An entry too
/// large for any request gets a range of its own (the bus refuses it alone, not its
/// neighbours).
pub fn pack(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut requests = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count == MAX_EVENTS_PER_CALL || !fits_one_request(total + size)) {
            requests.push(start..i);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < sizes.len() {
        requests.push(start..sizes.len());
    }
    requests
}

/// What became of one event of a [`EventBus::publish`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Published,
    /// The bus refused this entry, with its error code: see [`is_transient`].
    Refused {
        code: String,
    },
}

/// The code an adapter gives every entry of a request the bus refused whole as invalid (too
/// large, too many entries): the request, not the bus, is at fault.
pub const REQUEST_INVALID: &str = "ValidationException";

/// Whether a refusal says the bus is struggling (try again later, it is nobody's fault) rather
/// than that the entry itself is refused (malformed, too large, not allowed): only the latter
/// counts against the item that holds the event.
pub fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "InternalFailure"
            | "InternalException"
            | "ServiceUnavailable"
            | "MissingResult"
    )
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes up to [`MAX_EVENTS_PER_CALL`] events; one [`Delivery`] per event, in order. A
    /// request refused whole as invalid is [`Delivery::Refused`] with [`REQUEST_INVALID`] for
    /// each event. `Err` means the call failed as a whole (the bus unreachable, failing, or
    /// denying us) and nothing is known to be published.
    async fn publish(&self, events: &[BusinessEvent]) -> Result<Vec<Delivery>, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(sizes: &[usize], r: &Range<usize>) -> usize {
        sizes[r.clone()].iter().sum()
    }

    #[test]
    fn an_entry_is_sized_by_the_guide_formula() {
        assert_eq!(entry_size(false, "src", "Type", Some("{}"), &[]), 9);
        assert_eq!(
            entry_size(true, "src", "Type", None, &["arn:a", "b"]),
            14 + 7 + 6
        );
        // UTF-8 bytes, not characters.
        assert_eq!(entry_size(false, "", "", Some("é"), &[]), 2);
        let e = crate::domain::business_events::reconnect_needed("m", "p", "t");
        assert_eq!(
            event_entry_size(&e),
            SOURCE.len() + "ReconnectNeeded".len() + e.detail.to_string().len()
        );
    }

    #[test]
    fn requests_hold_at_most_ten_entries_and_less_than_256_kb() {
        let small = vec![100; 25];
        assert_eq!(pack(&small), vec![0..10, 10..20, 20..25]);
        // Ten entries of 27 KB do not fit one request: nine do.
        let big = vec![27 * 1024; 11];
        let requests = pack(&big);
        assert_eq!(requests, vec![0..9, 9..11]);
        for r in &requests {
            assert!(r.len() <= MAX_EVENTS_PER_CALL && total(&big, r) < MAX_REQUEST_BYTES);
        }
        // Exactly at the limit does not fit; one byte under does.
        assert_eq!(pack(&[MAX_REQUEST_BYTES / 2; 2]), vec![0..1, 1..2]);
        assert_eq!(
            pack(&[MAX_REQUEST_BYTES / 2, MAX_REQUEST_BYTES / 2 - 1]),
            vec![0..2]
        );
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn an_entry_too_large_for_any_request_is_sent_alone() {
        let sizes = [10, MAX_REQUEST_BYTES + 1, 10, 10];
        assert_eq!(pack(&sizes), vec![0..1, 1..2, 2..4]);
        assert!(!fits_one_request(MAX_REQUEST_BYTES));
    }

    #[test]
    fn throttling_is_transient_and_an_invalid_entry_is_not() {
        assert!(is_transient("ThrottlingException") && is_transient("InternalFailure"));
        assert!(!is_transient(REQUEST_INVALID) && !is_transient("MalformedDetail"));
    }
}
