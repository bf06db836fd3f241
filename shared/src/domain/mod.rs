//! Pure types and rules: what a webhook says, what state it moves, what a refresh changed,
//! which business facts follow and which work is queued. No tokio, no AWS, no I/O.

pub mod business_events;
pub mod changes;
pub mod contact;
pub mod crypto;
pub mod event;
pub mod fetch_claim;
pub mod gzip;
pub mod ids;
pub mod monitoring;
pub mod notice;
pub mod plan;
pub mod pull_data;
pub mod records;
pub mod retry;
pub mod shard;
pub mod signature;
pub mod source;
pub mod time_fmt;
pub mod work;
