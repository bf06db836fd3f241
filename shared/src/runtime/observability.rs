//! Logging and metrics set-up shared by every binary. Log lines carry ids, event types and
//! outcomes only: never pull data, meta_data, secrets, reconnect tokens or URLs.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The application log levels a user can choose (template.yaml `ApplicationLogLevel`), the most
/// verbose first. No TRACE: see [`QUIET_CRATES`] and [`effective_level`].
pub const LOG_LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The most verbose level a user can set: the log-secrecy test (tools/local-runner/tests) runs the functions at it.
pub const MOST_VERBOSE_LEVEL: &str = LOG_LEVELS[0];

/// Crates that log what passes through them below INFO: lambda_runtime logs every raw event
/// at TRACE ("raw JSON event received from Lambda": consumer JWTs, MFA codes, reconnect tokens),
/// the AWS SDK (`aws*`) and the HTTP stack the requests and answers they carry. They never log
/// below INFO, whatever level is asked for (prefixes: `lambda_runtime` also covers
/// `lambda_runtime_api_client`, `hyper` covers `hyper_util`).
pub const QUIET_CRATES: [&str; 8] = [
    "lambda_runtime",
    "lambda_http",
    "aws",
    "hyper",
    "h2",
    "rustls",
    "reqwest",
    "tower",
];

/// The level a requested one (Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`) comes to. TRACE
/// becomes DEBUG, whoever sets it; FATAL (a Lambda level tracing lacks) is ERROR; anything else
/// unknown, or nothing, is INFO (the runtime's default).
pub fn effective_level(requested: Option<&str>) -> LevelFilter {
    match requested.map(|r| r.trim().to_ascii_uppercase()).as_deref() {
        Some("TRACE" | "DEBUG") => LevelFilter::DEBUG,
        Some("WARN" | "WARNING") => LevelFilter::WARN,
        Some("ERROR" | "FATAL") => LevelFilter::ERROR,
        Some("OFF") => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    }
}

/// The filter of every binary's logs at `requested`: [`effective_level`] for our lines, never
/// below INFO for the [`QUIET_CRATES`]. A level, not directives: nothing a user sets can turn
/// a quiet crate up.
pub fn log_filter(requested: Option<&str>) -> EnvFilter {
    let level = effective_level(requested);
    let quiet = level.min(LevelFilter::INFO);
    // The bare level first: a builder's default directive applies only to a filter with no
    // directives at all, and the quiet crates' are directives.
    let directives = std::iter::once(level.to_string())
        .chain(QUIET_CRATES.iter().map(|c| format!("{c}={quiet}")))
        .collect::<Vec<_>>()
        .join(",");
    EnvFilter::builder().parse_lossy(directives)
}

/// A function's log lines, as lambda_runtime's default subscriber writes them (JSON when
/// Lambda's log format is JSON, no time: Lambda adds it, no target) but filtered by
/// [`log_filter`] at Lambda's level (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`).
pub fn init_lambda_logs<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(log_filter(requested.as_deref()))
        .with_writer(writer);
    // Already installed (a test's subscriber): keep it.
    let _ = if json {
        logs.json().try_init()
    } else {
        logs.try_init()
    };
}

/// Runs a function's handler: the runtime with its tracing layer (the per-invocation span) and
/// the metrics layer that flushes the EMF lines after each invocation.
#[cfg(feature = "lambda")]
pub use metrics_cloudwatch_embedded::lambda::handler::{run, run_http};

/// A Lambda function's logs and metrics, installed once at start-up:
/// - logs follow the runtime's conventions ([`init_lambda_logs`]): JSON lines when Lambda's
///   log format is JSON, the level from Lambda's log-level control (`AWS_LAMBDA_LOG_LEVEL`),
///   else `RUST_LOG`, else INFO, never TRACE and never below INFO for the runtime and SDK
///   crates ([`log_filter`]). The runtime's per-invocation span puts the request id and X-Ray
///   trace id on every line;
/// - metrics ([`crate::app::metrics`]) go to the Embedded Metric Format recorder, flushed after
///   each invocation by `metrics_cloudwatch_embedded::lambda::handler::run`, with the `Stack`
///   dimension (`STACK_NAME`), a cold-start count, and the request and trace ids as properties.
#[cfg(feature = "lambda")]
pub fn init_lambda(
) -> Result<&'static metrics_cloudwatch_embedded::Collector, crate::ports::ConfigError> {
    init_lambda_logs(std::io::stdout);
    let stack = std::env::var("STACK_NAME").unwrap_or_else(|_| "local".to_owned());
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(crate::app::metrics::NAMESPACE)
        .with_dimension("Stack", stack)
        .lambda_cold_start_metric("ColdStarts")
        .with_lambda_request_id("RequestId")
        .with_lambda_xray_trace_id("TraceId")
        .init()
        .map_err(|e| crate::ports::ConfigError::Invalid {
            name: "metrics",
            detail: e.to_string(),
        })
}

/// Human-readable logs for the local tools, at the level `RUST_LOG` names, filtered as the
/// functions' are ([`log_filter`]).
pub fn init_local_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For each target: whether TRACE, DEBUG and INFO lines are on under `filter`.
    macro_rules! enabled {
        ($filter:expr, $($target:literal),+) => {{
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter($filter)
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                vec![$((
                    $target,
                    tracing::enabled!(target: $target, tracing::Level::TRACE),
                    tracing::enabled!(target: $target, tracing::Level::DEBUG),
                    tracing::enabled!(target: $target, tracing::Level::INFO),
                )),+]
            })
        }};
    }

    #[test]
    fn no_level_lets_the_runtime_or_sdk_crates_log_below_info() {
        for requested in LOG_LEVELS
            .iter()
            .copied()
            .chain(["TRACE", "trace", "bogus"])
        {
            let seen = enabled!(
                log_filter(Some(requested)),
                // Where lambda_runtime 1.5 logs the raw event at TRACE.
                "lambda_runtime::layers::api_response",
                "lambda_runtime_api_client",
                "lambda_http::request",
                "aws_smithy_runtime::client::orchestrator",
                "aws_config::imds",
                "hyper_util::client::legacy",
                "h2::codec",
                "reqwest::connect",
                "rustls::client",
                "tower::buffer"
            );
            for (target, trace, debug, info) in seen {
                assert!(!trace && !debug, "{requested}: {target} logs below INFO");
                let wants_info = effective_level(Some(requested)) >= LevelFilter::INFO;
                assert_eq!(info, wants_info, "{requested}: {target} at INFO");
            }
        }
    }

    #[test]
    fn trace_is_never_on_and_becomes_debug_for_our_lines() {
        for requested in LOG_LEVELS.iter().copied().chain(["TRACE", "trace"]) {
            let (_, trace, debug, _) =
                enabled!(log_filter(Some(requested)), "canopy_monitor::app::notifier")[0];
            assert!(!trace, "{requested}: TRACE on");
            assert_eq!(
                debug,
                ["DEBUG", "TRACE"].contains(&requested.to_ascii_uppercase().as_str()),
                "{requested}: DEBUG"
            );
        }
        assert_eq!(effective_level(Some("FATAL")), LevelFilter::ERROR);
        assert_eq!(effective_level(None), LevelFilter::INFO);
        assert_eq!(MOST_VERBOSE_LEVEL, "DEBUG");
    }
}
