//! The ports over AWS and HTTPS, each behind the Cargo feature of the SDK or client it needs.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "http")]
pub mod canopy_http;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "email")]
pub mod ses;
#[cfg(feature = "sms")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "http")]
pub mod webhook;
