//! A whole local run's logs hold no secret, token, link or personal value.
//!
//! Runs the local demo (webhooks in, pulls fetched, notices sent, the Monitoring API, the in-app
//! reconnect, events out) with `canopy-local` against the test command's moto server, at the
//! most verbose log level a user can set, and searches every log line the functions wrote
//! (stderr; the demo's own narration is stdout) for what must never be logged. The binary is
//! the one `cargo test` builds beside this test, so the check costs no second build.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// Secrets and credentials, reconnect tokens and links, JWTs; the sample pull's holder, contact
/// details, VIN and address.
const NEVER_LOGGED: &[&str] = &[
    "whsec_",
    "sim-client-secret",
    "rt_fresh",
    "rt_hook",
    "rt_webhook",
    "reconnectToken=",
    "reconnect_token=",
    "eyJ",
    "Clark",
    "Kent",
    "clark.kent",
    "8885550000",
    "+1888",
    "Clinton Street",
    "1G1FK1R62J",
];

/// The most verbose of template.yaml's `ApplicationLogLevel` AllowedValues: the local tools
/// filter their logs at RUST_LOG exactly as the functions filter theirs at Lambda's level
/// (`canopy_monitor::runtime::observability::log_filter`).
fn most_verbose_allowed_level() -> &'static str {
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"))
            .expect("template.yaml");
    let allowed = template
        .lines()
        .skip_while(|l| !l.starts_with("  ApplicationLogLevel:"))
        .find(|l| l.trim_start().starts_with("AllowedValues:"))
        .expect("ApplicationLogLevel has AllowedValues");
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        .into_iter()
        .find(|level| allowed.contains(level))
        .expect("a known level among the AllowedValues")
}

#[test]
fn the_local_demo_logs_no_secret_token_link_or_personal_value() {
    let endpoint = std::env::var("CANOPY_MONITOR_TEST_ENDPOINT").expect(
        "CANOPY_MONITOR_TEST_ENDPOINT is not set: run the tests through scripts/test.sh, \
         which starts a moto server",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let level = most_verbose_allowed_level();
    let output = Command::new(env!("CARGO_BIN_EXE_canopy-local"))
        .args(["--endpoint", &endpoint, "--prefix", "log-secrecy"])
        .args(["up", "--demo", "--exit-after-demo", "--port"])
        .arg(port.to_string())
        .env("RUST_LOG", level)
        // The bundled fake Canopy, whatever the caller's shell holds.
        .env_remove("CANOPY_CLIENT_ID")
        .env_remove("CANOPY_CLIENT_SECRET")
        .env_remove("CANOPY_TEAM_ID")
        .env_remove("CANOPY_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("canopy-local starts");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed ({}); its logs:\n{logs}",
        output.status
    );
    let lines = logs.lines().count();
    assert!(
        lines > 50,
        "only {lines} log lines at {level}: the demo did not run"
    );
    let leaks: Vec<String> = NEVER_LOGGED
        .iter()
        .filter_map(|needle| {
            logs.lines().find(|line| line.contains(needle)).map(|line| {
                let shown: String = line.chars().take(300).collect();
                format!("'{needle}' in: {shown}")
            })
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "leaked into the logs:\n{}",
        leaks.join("\n")
    );
    println!("{lines} log lines at {level}, none with a secret, token, link or personal value");
}
