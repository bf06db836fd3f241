//! Each function reads only what template.yaml gives it, and starts with it: the stack is made
//! on moto from the translated template (scripts/rehearsal_stack.py, as the rehearsal makes
//! it), each function's Environment is read back from moto's Lambda (CloudFormation resolved
//! it against the stack's physical resources), and each function's configuration reader runs
//! against exactly that Environment, recording every variable it asks for.

use canopy_monitor::ports::ConfigError;
use canopy_monitor::runtime::config::{
    read_from, ApiEnv, FetcherEnv, IntakeEnv, NotifierEnv, PublisherEnv, ReconnectEnv, ReminderEnv,
    SyncEnv,
};
use serde_json::Value;
use std::collections::HashMap;

/// A moto server of this test's own: a stack's Lambda functions and KMS key in the shared
/// server would break the other tests' reads of moto's state (`/moto-api/data.json`).
struct OwnMoto {
    child: std::process::Child,
    endpoint: String,
}

impl OwnMoto {
    fn start(root: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = std::process::Command::new(root.join(".venv/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (scripts/test.sh installs it into .venv)");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { child, endpoint }
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stack's functions: binary -> Environment (scripts/rehearsal_stack.py's output).
fn rendered_environments(stack: &str) -> HashMap<String, HashMap<String, String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let moto = OwnMoto::start(&root);
    let out_file = std::env::temp_dir().join(format!("{stack}.json"));
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/rehearsal_stack.py"))
        .args(["create", "--endpoint", &moto.endpoint])
        .args(["--stack", stack, "--out"])
        .arg(&out_file)
        .args(["--gateway-port", "9", "--reconnect-port", "9"])
        .args([
            "CanopyTeamId=394661bc-6361-46f0-8b11-4106d6146cb4",
            // Every optional part on, so that every function and variable exists.
            "ConsumerJwtIssuer=https://issuer.canopy-monitor.example",
            "ConsumerJwtAudience=canopy-monitor",
            "EmailFromAddress=reconnect@canopy-monitor.example",
            "SmsEnabled=true",
            "OutboundWebhookUrl=https://crm.canopy-monitor.example/hooks",
            "AdditionalSources=sandbox=8d2f6a41-0c3e-4b7a-9e15-3a6c2b9d7f08:sandbox",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "scripts/rehearsal_stack.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("stack file"))
            .expect("stack JSON");
    let _ = std::fs::remove_file(&out_file);
    config["functions"]
        .as_object()
        .expect("functions")
        .values()
        .map(|f| {
            let env = f["environment"]
                .as_object()
                .expect("environment")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            (f["binary"].as_str().expect("binary").to_owned(), env)
        })
        .collect()
}

/// Runs `read` against `env` and checks it succeeds and asks for nothing `env` lacks.
fn check<T, E: std::fmt::Debug>(
    function: &str,
    env: &HashMap<String, String>,
    read: impl FnOnce() -> Result<T, E>,
) {
    let (result, names) = read_from(env.clone(), read);
    if let Err(e) = result {
        panic!("{function} does not start with the template's Environment: {e:?}");
    }
    let unset: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !env.contains_key(*n))
        .collect();
    assert!(
        unset.is_empty(),
        "{function} reads {unset:?}, which template.yaml does not set for it"
    );
    assert!(!names.is_empty(), "{function}: nothing was read");
}

#[test]
fn each_function_reads_only_what_the_template_sets_for_it() {
    let envs = rendered_environments(&format!(
        "env-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    type Reader = fn() -> Result<(), ConfigError>;
    let readers: [(&str, Reader); 8] = [
        ("webhook-intake", || IntakeEnv::from_env().map(drop)),
        ("pull-fetcher", || FetcherEnv::from_env().map(drop)),
        ("reconnect-notifier", || NotifierEnv::from_env().map(drop)),
        ("reconnect-reminder", || ReminderEnv::from_env().map(drop)),
        ("monitoring-api", || ApiEnv::from_env().map(drop)),
        ("monitoring-sync", || SyncEnv::from_env().map(drop)),
        ("reconnect-api", || ReconnectEnv::from_env().map(drop)),
        ("event-publisher", || PublisherEnv::from_env().map(drop)),
    ];
    for (binary, read) in readers {
        let env = envs
            .get(binary)
            .unwrap_or_else(|| panic!("the stack has no {binary}"));
        check(binary, env, read);
    }
    assert_eq!(envs.len(), 8, "eight functions: {:?}", envs.keys());
}

#[test]
fn a_variable_the_template_does_not_set_is_caught() {
    // The check itself: an Environment without one of intake's variables fails it.
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("TABLE_NAME".into(), "t".into());
    let (result, names) = read_from(env, IntakeEnv::from_env);
    assert!(result.is_err());
    assert!(names.contains(&"TABLE_NAME"));
    assert!(names.len() >= 2, "it went on to read the next: {names:?}");
}
