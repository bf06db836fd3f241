//! Time budgets, nested so that a hung dependency ends in a backed-off retry and never in a
//! function timeout:
//!
//! ```text
//! AWS SDK attempt / operation timeout, Canopy HTTP timeout
//!   < one record's budget (a whole fetch or notice, cut off by `tokio::time::timeout`)
//!   < the function timeout (every wave of a batch fits; checked against the context deadline)
//!   <= the queue's visibility timeout / 6 (AWS's advice for SQS event sources)
//! ```
//!
//! and the leases that guard a record's work outlive its budget, so a live attempt never loses
//! its lease, while the first retry delay outlives the lease, so a retry finds it free.
//! The numbers live here once; template.yaml repeats them and a test pins the two together.

use std::time::Duration;

/// Connecting to an AWS endpoint.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of an AWS call (the SDK retries a timed-out attempt).
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// An AWS call with all its retries.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// One Canopy HTTP call (`CANOPY_TIMEOUT_SECONDS` may lower it, not raise it past the budget).
pub const CANOPY_TIMEOUT: Duration = Duration::from_secs(10);
/// What is kept free at the end of an invocation for reporting the batch.
pub const FINISH_MARGIN: Duration = Duration::from_secs(5);

/// The budget of an SQS-triggered function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerBudget {
    /// One record, all its calls included.
    pub record: Duration,
    /// The event source mapping's `BatchSize`.
    pub batch_size: u32,
    /// Records of a batch processed at once.
    pub concurrency: u32,
    /// The function's `Timeout`.
    pub function_timeout: Duration,
    /// The queue's `VisibilityTimeout`.
    pub visibility_timeout: Duration,
}

impl ConsumerBudget {
    /// How many rounds of `concurrency` records a full batch takes.
    pub fn waves(&self) -> u32 {
        self.batch_size.div_ceil(self.concurrency.max(1))
    }

    /// What the nesting rules require of these numbers; `Err` names the first broken one.
    pub fn check(&self) -> Result<(), String> {
        let needed = self.record * self.waves() + FINISH_MARGIN;
        if self.function_timeout < needed {
            return Err(format!(
                "function timeout {:?} < {} waves x {:?} + {:?}",
                self.function_timeout,
                self.waves(),
                self.record,
                FINISH_MARGIN
            ));
        }
        if self.visibility_timeout < self.function_timeout * 6 {
            return Err(format!(
                "visibility timeout {:?} < 6 x function timeout {:?}",
                self.visibility_timeout, self.function_timeout
            ));
        }
        Ok(())
    }
}

/// pull-fetcher: one GET (at most [`CANOPY_TIMEOUT`]) and a handful of DynamoDB writes.
pub const FETCHER: ConsumerBudget = ConsumerBudget {
    record: Duration::from_secs(30),
    batch_size: 10,
    concurrency: 4,
    function_timeout: Duration::from_secs(100),
    visibility_timeout: Duration::from_secs(600),
};

/// reconnect-notifier: a fresh token (at most [`TOKEN_BUDGET`]), then one send per channel.
pub const NOTIFIER: ConsumerBudget = ConsumerBudget {
    record: Duration::from_secs(40),
    batch_size: 5,
    concurrency: 4,
    function_timeout: Duration::from_secs(90),
    visibility_timeout: Duration::from_secs(540),
};

/// All tries of the fresh-token call together; past it the webhook's own link is used.
pub const TOKEN_BUDGET: Duration = Duration::from_secs(15);
/// The outbound webhook's HTTP timeout.
pub const OUTBOUND_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(8);

/// How long a fetch attempt owns its pull: longer than a record's budget.
pub const FETCH_LEASE: Duration = Duration::from_secs(45);
/// How long a send attempt owns its notice: longer than a record's budget.
pub const SEND_LEASE: Duration = Duration::from_secs(45);

/// webhook-intake: everything of one delivery; the function `Timeout` leaves a margin.
pub const INTAKE_BUDGET: Duration = Duration::from_secs(12);
pub const INTAKE_FUNCTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything of one Monitoring API request; past it the handler answers 503.
pub const API_BUDGET: Duration = Duration::from_secs(20);
/// monitoring-api's function timeout: inside API Gateway's 30 s integration limit.
pub const API_FUNCTION_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a Monitoring API request owns its idempotency key: longer than the function can
/// run, so a live request never loses it.
pub const API_IDEMPOTENCY_LEASE: Duration = Duration::from_secs(60);
/// Everything of one reconnect-api request: a long poll's 20 s wait, or a session start's two
/// Canopy calls, plus a read; past it the handler answers 503. Inside the 25 s function timeout.
pub const RECONNECT_BUDGET: Duration = Duration::from_secs(23);

/// monitoring-sync's function timeout (Lambda's most); a pass stops starting monitorings
/// before it ends.
pub const SYNC_FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);
/// How long intake owns an event: longer than the function timeout, shorter than Canopy's
/// first retry (60 s + 1^4 s), so a crashed attempt never blocks a retry.
pub const INTAKE_LEASE: Duration = Duration::from_secs(30);

/// The reminder pass.
pub const REMINDER_FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// A duration as whole Unix seconds, for lease and TTL arithmetic (saturating far beyond any
/// real setting).
pub fn unix_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// How long until a lease that runs to `expires_at` (Unix seconds, inclusive) is free at `now`:
/// a message that found it held is retried then.
pub fn until_lease_ends(expires_at: i64, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(expires_at - now + 1).unwrap_or(1).max(1))
}

/// The event publisher's function timeout: a sweep pass, or a stream batch.
pub const PUBLISHER_FUNCTION_TIMEOUT: Duration = Duration::from_secs(120);
/// One PutEvents call, the SDK's retries included (its operation timeout).
pub const PUT_EVENTS_TRY: Duration = AWS_OPERATION_TIMEOUT;
/// Acknowledging an item's published events: at most two UpdateItems (the conditional clear of
/// the pending mark, then the removal of the published events alone).
pub const OUTBOX_ACK_BUDGET: Duration = Duration::from_secs(20);
/// The longest one outbox item's publication may take: every PutEvents try and the
/// acknowledging writes. A try is started only if it and the acknowledgement fit both in this
/// budget (from the item's start) and before the invocation's deadline; what does not fit
/// stays pending for the next pass.
pub const OUTBOX_ITEM_BUDGET: Duration = Duration::from_secs(60);

/// When an invocation must stop starting records. `None` (tests, the local runner) never stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<tokio::time::Instant>);

impl Deadline {
    pub const NONE: Deadline = Deadline(None);

    /// From Lambda's context: `deadline_ms` is the invocation's end in Unix milliseconds.
    pub fn from_lambda_ms(deadline_ms: u64) -> Self {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let left = u64::try_from(i128::from(deadline_ms) - now_ms).unwrap_or(0);
        Self::after(Duration::from_millis(left))
    }

    pub fn after(left: Duration) -> Self {
        Deadline(Some(tokio::time::Instant::now() + left))
    }

    /// The earlier of this deadline and `budget` from now: one record's own budget inside
    /// the invocation's.
    pub fn within(&self, budget: Duration) -> Deadline {
        let own = tokio::time::Instant::now() + budget;
        Deadline(Some(self.0.map_or(own, |end| end.min(own))))
    }

    /// Whether `needed` more time fits before the deadline, leaving [`FINISH_MARGIN`].
    pub fn allows(&self, needed: Duration) -> bool {
        self.0.is_none_or(|end| {
            end.saturating_duration_since(tokio::time::Instant::now()) >= needed + FINISH_MARGIN
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budgets_nest() {
        FETCHER.check().unwrap();
        NOTIFIER.check().unwrap();
        assert!(AWS_ATTEMPT_TIMEOUT < AWS_OPERATION_TIMEOUT);
        assert!(AWS_OPERATION_TIMEOUT < FETCHER.record);
        assert!(CANOPY_TIMEOUT + AWS_OPERATION_TIMEOUT < FETCHER.record);
        assert!(TOKEN_BUDGET + OUTBOUND_WEBHOOK_TIMEOUT + AWS_OPERATION_TIMEOUT < NOTIFIER.record);
        assert!(FETCH_LEASE > FETCHER.record && SEND_LEASE > NOTIFIER.record);
        let first_retry = crate::domain::retry::RetryPolicy::default().delay(1, None, 0);
        assert!(
            first_retry > FETCH_LEASE && first_retry > SEND_LEASE,
            "the first retry finds the lease free"
        );
        assert!(INTAKE_BUDGET + Duration::from_secs(2) <= INTAKE_FUNCTION_TIMEOUT);
        assert!(INTAKE_LEASE > INTAKE_FUNCTION_TIMEOUT && INTAKE_LEASE < Duration::from_secs(61));
        assert!(CANOPY_TIMEOUT + Duration::from_secs(5) <= API_BUDGET);
        assert!(API_BUDGET + Duration::from_secs(2) <= API_FUNCTION_TIMEOUT);
        assert!(
            API_FUNCTION_TIMEOUT < Duration::from_secs(30),
            "API Gateway waits 30 s"
        );
        assert!(API_IDEMPOTENCY_LEASE > API_FUNCTION_TIMEOUT);
        let poll = crate::app::reconnect::ReconnectConfig::default().max_wait;
        assert!(poll + Duration::from_secs(2) <= RECONNECT_BUDGET);
        assert!(CANOPY_TIMEOUT * 2 + Duration::from_secs(2) <= RECONNECT_BUDGET);
        assert!(RECONNECT_BUDGET + Duration::from_secs(2) <= API_FUNCTION_TIMEOUT);
        // One outbox request's three tries (pauses included) and the acknowledgement fit an
        // item's budget, and an item fits the publisher's invocation.
        let outbox = crate::app::outbox::OutboxConfig::default();
        let pauses = outbox.first_pause * (2u32.pow(outbox.attempts - 1) - 1);
        assert!(
            PUT_EVENTS_TRY * outbox.attempts + pauses + OUTBOX_ACK_BUDGET + FINISH_MARGIN
                <= OUTBOX_ITEM_BUDGET
        );
        assert!(AWS_OPERATION_TIMEOUT * 2 <= OUTBOX_ACK_BUDGET);
        assert!(OUTBOX_ITEM_BUDGET + FINISH_MARGIN <= PUBLISHER_FUNCTION_TIMEOUT);
    }

    #[test]
    fn a_broken_nesting_is_named() {
        let tight = ConsumerBudget {
            function_timeout: Duration::from_secs(30),
            ..FETCHER
        };
        assert!(tight.check().unwrap_err().contains("waves"));
        let short_queue = ConsumerBudget {
            visibility_timeout: Duration::from_secs(180),
            ..FETCHER
        };
        assert!(short_queue.check().unwrap_err().contains("visibility"));
    }

    #[test]
    fn a_held_lease_is_retried_just_after_it_ends() {
        assert_eq!(until_lease_ends(1045, 1000), Duration::from_secs(46));
        assert_eq!(until_lease_ends(1000, 1000), Duration::from_secs(1));
        assert_eq!(
            until_lease_ends(990, 1000),
            Duration::from_secs(1),
            "never zero"
        );
    }

    #[tokio::test]
    async fn a_deadline_stops_new_work_in_time() {
        assert!(Deadline::NONE.allows(Duration::from_secs(3600)));
        let d = Deadline::after(Duration::from_secs(40));
        assert!(d.allows(Duration::from_secs(30)));
        assert!(!d.allows(Duration::from_secs(36)));
        assert!(!Deadline::from_lambda_ms(0).allows(Duration::ZERO));
        // A record's own budget ends it earlier, never later.
        let item = d.within(Duration::from_secs(20));
        assert!(item.allows(Duration::from_secs(14)) && !item.allows(Duration::from_secs(16)));
        assert!(!d
            .within(Duration::from_secs(3600))
            .allows(Duration::from_secs(36)));
        assert!(Deadline::NONE
            .within(Duration::from_secs(10))
            .allows(Duration::from_secs(4)));
    }
}
