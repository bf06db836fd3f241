//! The common crate of canopy-monitor: the domain (webhook events, state decisions, work
//! messages), the ports it talks through (state store, work queue, clock) and their adapters
//! (DynamoDB, SQS, Secrets Manager, in-memory fakes for unit tests).
//!
//! Function crates stay thin: they build a config and adapters once per cold start and hand
//! Lambda events to the services defined here.

pub mod adapters;
pub mod budget;
pub mod canopy;
pub mod config;
pub mod consumer;
pub mod contact;
pub mod event;
pub mod fetcher;
pub mod ids;
pub mod intake;
pub mod notifier;
pub mod observability;
pub mod plan;
pub mod ports;
pub mod pull_data;
pub mod records;
pub mod reminders;
pub mod retry;
pub mod signature;
pub mod time_fmt;
pub mod work;

pub use config::ConfigError;
pub use event::{EventType, ParseError, WebhookEvent};
pub use intake::{Intake, IntakeError, IntakeOutcome};
pub use signature::{SignatureError, SigningSecrets};
