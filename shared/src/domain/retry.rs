//! When to try again: the project's one backoff. Exponential, capped ([`RetryPolicy::backoff`]),
//! used by every retry: a failed queue message's next receive ([`RetryPolicy::delay`], never
//! sooner than a `Retry-After`, with a per-message jitter so a burst of failures does not come
//! back as a burst), and the in-process retries of intake's claim wait, the notifier's token
//! call, the outbox's PutEvents and DynamoDB's unprocessed batch writes.

use std::time::Duration;

/// The backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed receive; doubles with each further one.
    pub base: Duration,
    /// Longest delay (SQS allows up to 12 h of visibility; we stay at 15 min).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry `n` (1 is the first retry): `base`, doubling, at most `cap`.
    pub fn backoff(&self, n: u32) -> Duration {
        let exponent = n.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exponent).min(self.cap)
    }

    /// The delay before receive number `receive_count + 1`. `jitter_seed` (e.g. a hash of the
    /// message id) spreads delays over 80-100 % of the nominal value.
    pub fn delay(
        &self,
        receive_count: u32,
        retry_after: Option<Duration>,
        jitter_seed: u64,
    ) -> Duration {
        let nominal = self.backoff(receive_count);
        let jittered = nominal.mul_f64(0.8 + 0.2 * ((jitter_seed % 1000) as f64 / 999.0));
        // Never sooner than the other side asked; `jittered` is already within the cap.
        jittered.max(retry_after.unwrap_or_default())
    }
}

/// An error that may name the least delay before a retry (e.g. a 429's `Retry-After`).
pub trait RetryHint {
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let p = RetryPolicy::default();
        let full = |n| p.delay(n, None, 999);
        assert_eq!(full(1), Duration::from_secs(60));
        assert_eq!(full(2), Duration::from_secs(120));
        assert_eq!(full(4), Duration::from_secs(480));
        assert_eq!(full(5), Duration::from_secs(900));
        assert_eq!(full(50), Duration::from_secs(900));
        assert_eq!(
            p.delay(1, None, 0),
            Duration::from_secs(48),
            "80 % at the low end"
        );
    }

    #[test]
    fn honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(300)), 999),
            Duration::from_secs(300)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(5)), 999),
            Duration::from_secs(240)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600)), 0),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn zero_base_retries_at_once() {
        let p = RetryPolicy {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        assert_eq!(p.delay(3, None, 7), Duration::ZERO);
    }
}
