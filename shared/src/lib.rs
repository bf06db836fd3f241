//! The common crate of canopy-monitor, in layers. Each layer imports only the layers above it
//! in this list (`tests/layers.rs` fails otherwise), and no two modules import each other:
//!
//! - [`domain`]: webhook events, state decisions, records, change sets, business events, work
//!   messages. Pure types and rules: no tokio, no AWS, no I/O.
//! - [`ports`]: the traits the use cases talk through (store, queue, notice channel, Canopy,
//!   event bus) and the values they carry.
//! - [`app`]: the use cases (intake, fetcher, notifier, reconciler, outbox, Monitoring API,
//!   in-app reconnect, reminders, replay, change log), over domain and ports, with their time
//!   budgets and metric names.
//! - [`adapters`]: the ports over AWS (DynamoDB, SQS, SES, SNS, EventBridge, Secrets Manager)
//!   and HTTPS (Canopy, the integrator's webhook). Each behind a Cargo feature (`dynamodb`,
//!   `sqs`, `secrets`, `email`, `sms`, `eventbridge`, `http`), so that each function links only
//!   the SDKs it calls.
//! - [`fakes`]: in-memory ports for tests, benchmarks and the local tools (feature `fakes`;
//!   never in a deployed function).
//! - [`runtime`]: what a function's `main` uses: configuration from the environment, start-up,
//!   TLS, logging and metrics, the SQS batch driver.
//!
//! Function crates stay thin: they build a config and adapters once per cold start and hand
//! Lambda events to the use cases.

pub mod adapters;
pub mod app;
pub mod domain;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod ports;
pub mod runtime;

pub use app::intake::{Intake, IntakeError, IntakeOutcome};
pub use domain::event::{EventType, ParseError, WebhookEvent};
pub use domain::signature::{SignatureError, SigningSecrets};
pub use ports::ConfigError;
