//! The use cases, each over the domain and the ports: one file per flow.

pub mod budget;
pub mod change_log;
pub mod fetcher;
pub mod intake;
pub mod metrics;
pub mod monitoring_api;
pub mod notifier;
pub mod outbox;
pub mod reconnect;
pub mod reminders;
pub mod replay;
pub mod sync;
