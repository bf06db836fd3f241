//! What every port shares: the error of a storage or queue call, and the clock.
//! The ports themselves live beside their adapters and in-memory fakes: [`crate::store`],
//! [`crate::queue`], [`crate::channel`], [`crate::canopy`].

use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// A failure of a storage or queue call. `Unavailable` may succeed on retry; `Misconfigured`
/// (missing table or queue, no permission) will not until an operator acts.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PortError {
    #[error("{service} unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    #[error("{service} misconfigured: {detail}")]
    Misconfigured {
        service: &'static str,
        detail: String,
    },
}

impl PortError {
    pub fn unavailable(service: &'static str, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            service,
            detail: detail.into(),
        }
    }
    pub fn misconfigured(service: &'static str, detail: impl Into<String>) -> Self {
        Self::Misconfigured {
            service,
            detail: detail.into(),
        }
    }
}

/// Time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until moved (unit tests).
#[derive(Debug, Clone)]
pub struct FixedClock(pub Arc<Mutex<OffsetDateTime>>);

impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(Arc::new(Mutex::new(
            OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )))
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
