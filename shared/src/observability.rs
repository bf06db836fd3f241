//! Logging set-up shared by every binary. Lambda wants one JSON object per line, without
//! ANSI colours and without the time (CloudWatch stamps it). Log lines carry ids, event types
//! and outcomes only: never pull data, meta_data, secrets, reconnect tokens or URLs.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber; the level comes from `RUST_LOG` (default `info`).
pub fn init_lambda_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
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
