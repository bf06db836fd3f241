//! Logging and metrics set-up shared by every binary. Log lines carry ids, event types and
//! outcomes only: never pull data, meta_data, secrets, reconnect tokens or URLs.

use tracing_subscriber::EnvFilter;

/// Runs a function's handler: the runtime with its tracing layer (the per-invocation span) and
/// the metrics layer that flushes the EMF lines after each invocation.
#[cfg(feature = "lambda")]
pub use metrics_cloudwatch_embedded::lambda::handler::{run, run_http};

/// A Lambda function's logs and metrics, installed once at start-up:
/// - logs follow the runtime's conventions (`lambda_runtime::tracing::init_default_subscriber`):
///   JSON lines when Lambda's log format is JSON, the level from Lambda's log-level control
///   (`AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG`, else INFO. The runtime's per-invocation span
///   puts the request id and X-Ray trace id on every line;
/// - metrics ([`crate::metrics`]) go to the Embedded Metric Format recorder, flushed after
///   each invocation by `metrics_cloudwatch_embedded::lambda::handler::run`, with the `Stack`
///   dimension (`STACK_NAME`), a cold-start count, and the request and trace ids as properties.
#[cfg(feature = "lambda")]
pub fn init_lambda() -> Result<&'static metrics_cloudwatch_embedded::Collector, crate::ConfigError>
{
    lambda_runtime::tracing::init_default_subscriber();
    let stack = std::env::var("STACK_NAME").unwrap_or_else(|_| "local".to_owned());
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(crate::metrics::NAMESPACE)
        .with_dimension("Stack", stack)
        .lambda_cold_start_metric("ColdStarts")
        .with_lambda_request_id("RequestId")
        .with_lambda_xray_trace_id("TraceId")
        .init()
        .map_err(|e| crate::ConfigError::Invalid {
            name: "metrics",
            detail: e.to_string(),
        })
}

/// Human-readable logs for the local tools.
pub fn init_local_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .try_init();
}
