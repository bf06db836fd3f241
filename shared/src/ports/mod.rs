//! The traits the use cases talk through, and the values they carry: [`store`], [`queue`],
//! [`channel`] (notices), [`canopy`] (Canopy's API), [`bus`] (business events out). Their
//! adapters are in [`crate::adapters`], their in-memory fakes in `crate::fakes`. Here: what
//! every port shares, the error of a call, the error of start-up configuration, and the clock.

pub mod bus;
pub mod canopy;
pub mod channel;
pub mod queue;
pub mod signing;
pub mod store;

use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Why a function cannot start: a missing or malformed environment variable, or a secret that
/// cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {detail}")]
    Invalid { name: &'static str, detail: String },
    #[error("secret {secret} could not be read: {detail}")]
    Secret { secret: String, detail: String },
}

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
