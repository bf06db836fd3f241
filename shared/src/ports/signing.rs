//! The webhook signing secrets intake verifies with, one set per source. They change while a
//! stack runs (a source added, a secret rotated): the adapter reads them again when a
//! delivery verifies under none of them, at most once every [`MIN_RELOAD_INTERVAL`], so a new
//! secret works within seconds without a redeploy, and a flood of forged deliveries costs at
//! most one read per interval and instance (8,640 a day, about USD 0.04 at Secrets Manager's
//! price). It also reads them again once they are [`MAX_AGE_FACTOR`] intervals old, so
//! a secret dropped from the store (a rotation's end, a leak) stops verifying within minutes.

use crate::domain::signature::SigningSecrets;
use crate::domain::source::Sources;
use async_trait::async_trait;
use std::sync::Arc;

/// How often a function's signing secrets may be read again.
pub const MIN_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Secrets older than this many reload intervals are read again before use.
pub const MAX_AGE_FACTOR: u32 = 5;

#[async_trait]
pub trait SigningKeys: Send + Sync {
    /// The secrets to verify with: as last read, or read again when that is too long ago.
    async fn current(&self) -> Arc<Sources<SigningSecrets>>;
    /// The secrets read again, or read by another caller since this one began; `None` when
    /// they were read too recently to read again (or the read failed: the old ones stay).
    async fn reload(&self) -> Option<Arc<Sources<SigningSecrets>>>;
}

/// Secrets that never change (tests, and tools that sign with a known secret).
pub struct FixedSigningKeys(pub Arc<Sources<SigningSecrets>>);

#[async_trait]
impl SigningKeys for FixedSigningKeys {
    async fn current(&self) -> Arc<Sources<SigningSecrets>> {
        self.0.clone()
    }

    async fn reload(&self) -> Option<Arc<Sources<SigningSecrets>>> {
        None
    }
}
