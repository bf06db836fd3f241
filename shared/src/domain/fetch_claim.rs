//! The fetch claim rule: whether a refreshed pull still needs its GET, given what is stored
//! (see the fetcher's module docs). One decision, used by the store adapters' claim writes.

use crate::domain::records::PullRecord;
use crate::domain::work::FetchTrigger;

pub const FETCHED: &str = "FETCHED";
pub const FAILED: &str = "FAILED";

/// Why a fetch was not needed: each is positive evidence that it is done or never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    AlreadyFetched,
    CompleteWillFetch,
    FailedPermanently,
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::AlreadyFetched => "already_fetched",
            SkipReason::CompleteWillFetch => "complete_will_fetch",
            SkipReason::FailedPermanently => "failed_permanently",
        }
    }
}

/// The claim rule (module docs) over the stored state.
pub fn fetch_decision(state: Option<&PullRecord>, trigger: FetchTrigger, now: i64) -> FetchClaim {
    let Some(state) = state else {
        return FetchClaim::Claimed;
    };
    if state.fetched_complete_at.is_some() {
        return FetchClaim::Skip(SkipReason::AlreadyFetched);
    }
    if state.fetch_status.as_deref() == Some(FAILED) {
        return FetchClaim::Skip(SkipReason::FailedPermanently);
    }
    if trigger == FetchTrigger::PoliciesAvailable {
        if state.fetched_at.is_some() {
            return FetchClaim::Skip(SkipReason::AlreadyFetched);
        }
        if state.completed_at.is_some() {
            return FetchClaim::Skip(SkipReason::CompleteWillFetch);
        }
    }
    match state.fetch_lease_expires_at {
        Some(expires) if expires >= now => FetchClaim::Leased {
            expires_at: expires,
        },
        _ => FetchClaim::Claimed,
    }
}

/// The result of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchClaim {
    Claimed,
    Skip(SkipReason),
    /// Another attempt holds the lease until `expires_at` (Unix seconds): try after it.
    Leased {
        expires_at: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(f: impl FnOnce(&mut PullRecord)) -> PullRecord {
        let mut r = PullRecord::default();
        f(&mut r);
        r
    }

    #[test]
    fn decisions() {
        use FetchClaim::{Claimed, Leased, Skip};
        use FetchTrigger::*;
        let now = 1000;
        assert_eq!(fetch_decision(None, Complete, now), Claimed);
        let fresh = state(|_| {});
        assert_eq!(
            fetch_decision(Some(&fresh), PoliciesAvailable, now),
            Claimed
        );
        let completed = state(|r| r.completed_at = Some("t".into()));
        assert_eq!(
            fetch_decision(Some(&completed), PoliciesAvailable, now),
            Skip(SkipReason::CompleteWillFetch)
        );
        assert_eq!(fetch_decision(Some(&completed), Complete, now), Claimed);
        let fallback_done = state(|r| r.fetched_at = Some("t".into()));
        assert_eq!(
            fetch_decision(Some(&fallback_done), PoliciesAvailable, now),
            Skip(SkipReason::AlreadyFetched)
        );
        assert_eq!(
            fetch_decision(Some(&fallback_done), Complete, now),
            Claimed,
            "COMPLETE brings documents"
        );
        let done = state(|r| {
            r.fetched_at = Some("t".into());
            r.fetched_complete_at = Some("t".into());
        });
        assert_eq!(
            fetch_decision(Some(&done), Complete, now),
            Skip(SkipReason::AlreadyFetched)
        );
        let failed = state(|r| r.fetch_status = Some(FAILED.into()));
        assert_eq!(
            fetch_decision(Some(&failed), Complete, now),
            Skip(SkipReason::FailedPermanently)
        );
        let leased = state(|r| r.fetch_lease_expires_at = Some(now));
        assert_eq!(
            fetch_decision(Some(&leased), Complete, now),
            Leased { expires_at: now },
            "a lease is no evidence: wait for it"
        );
        let expired = state(|r| r.fetch_lease_expires_at = Some(now - 1));
        assert_eq!(fetch_decision(Some(&expired), Complete, now), Claimed);
    }
}
