//! What a function's `main` uses: configuration from the environment, start-up, TLS, logging
//! and metrics, and the SQS batch driver.

pub mod config;
pub mod consumer;
pub mod observability;
pub mod responses;
pub mod start;
pub mod tls;
