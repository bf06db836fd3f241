//! The common crate of canopy-monitor: the domain (webhook events, state decisions, work
//! messages) and the ports it talks through, each in one folder with its adapters and its
//! in-memory fake: `store/` (DynamoDB), `queue/` (SQS), `channel/` (SES, SNS, webhook),
//! `canopy/` (HTTPS), `bus/` (EventBridge).
//!
//! Each AWS adapter is behind a Cargo feature (`dynamodb`, `sqs`, `secrets`, `email`, `sms`, `eventbridge`),
//! and the HTTPS clients behind `http`, so that each function links only the SDKs it calls.
//! Function crates stay thin: they build a config and adapters once per cold start and hand
//! Lambda events to the services defined here.

#[cfg(feature = "aws")]
pub mod aws;
pub mod budget;
pub mod bus;
pub mod business_events;
pub mod canopy;
pub mod change_log;
pub mod changes;
pub mod channel;
pub mod config;
pub mod consumer;
pub mod contact;
pub mod event;
pub mod fetcher;
pub mod ids;
pub mod intake;
pub mod metrics;
pub mod monitoring;
pub mod monitoring_api;
pub mod notifier;
pub mod observability;
pub mod outbox;
pub mod plan;
pub mod ports;
pub mod pull_data;
pub mod queue;
pub mod reconnect;
pub mod records;
pub mod reminders;
pub mod replay;
pub mod retry;
#[cfg(feature = "secrets")]
pub mod secrets;
pub mod shard;
pub mod signature;
pub mod start;
pub mod store;
pub mod sync;
pub mod time_fmt;
pub mod tls;
pub mod work;

pub use config::ConfigError;
pub use event::{EventType, ParseError, WebhookEvent};
pub use intake::{Intake, IntakeError, IntakeOutcome};
pub use signature::{SignatureError, SigningSecrets};
