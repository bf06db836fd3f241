//! lambda-bench: cold starts, first invocations and peak memory of the release binaries.
//!
//! Each start execs a binary the way Lambda does: a fresh process whose only way in is the
//! Runtime API (`AWS_LAMBDA_RUNTIME_API`, the `2018-06-01` interface), served here. Measured
//! per start:
//! - init: exec until the first `GET /runtime/invocation/next` (what Lambda reports as Init
//!   Duration);
//! - first invocation: the event handed over until its `POST .../response`;
//! - peak RSS: the process's `VmHWM` when the response arrives (Linux).
//!
//! The configuration is real: the AWS SDK points at the moto server given by `--endpoint`
//! (tables, queues and secrets created here under a fresh prefix), secrets are read at init
//! as in a real cold start, and Canopy is the bundled fake. Figures are printed, never asserted.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use canopy_monitor::domain::event::ReconnectLink;
use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger, ReconnectJob, WorkMessage};
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject, TEAM_ID};
use canopy_sim::FakeCanopy;
use clap::Parser;
use devkit::resources::{provision, Resources};
use devkit::LOCAL_SIGNING_SECRET;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path as FsPath, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Parser)]
#[command(
    name = "lambda-bench",
    about = "Cold starts and peak memory of Lambda binaries"
)]
struct Cli {
    /// The moto server.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:5000"
    )]
    endpoint: String,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Cold starts per binary.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Binaries to start (default: the baseline and the four functions).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Pull sizes (MB of JSON) for the pull-fetcher memory runs; empty skips them.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20")]
    pull_mb: Vec<f64>,
    /// Starts per pull size.
    #[arg(long, default_value_t = 3)]
    memory_starts: usize,
    /// A command to run each binary under (e.g. "strace -f -r -o /tmp/trace"); one start.
    #[arg(long)]
    wrap: Option<String>,
    /// Extra environment for every binary (KEY=VALUE, repeatable), for experiments such as
    /// SSL_CERT_DIR=/etc/ssl/certs (the certificate-directory walk).
    #[arg(long = "env", value_parser = parse_key_value)]
    extra_env: Vec<(String, String)>,
    /// Warm invocations of one webhook-intake instance (after its cold start); 0 skips.
    #[arg(long, default_value_t = 300)]
    warm: usize,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text}"))
}

/// What one init-time AWS call costs here: a GetSecretValue on a new client (a new
/// connection), as a cold start makes it. Median of `n`.
async fn secret_round_trip(endpoint: &str, secret_id: &str, n: usize) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..n {
        let client = aws_sdk_secretsmanager::Client::new(&devkit::local_aws_config(endpoint));
        let start = Instant::now();
        client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| format!("GetSecretValue: {e}"))?;
        times.push(ms(start.elapsed()));
    }
    Ok(median(times))
}

/// What one start measured.
#[derive(Debug, Clone)]
struct Sample {
    init: Duration,
    first: Duration,
    peak_rss_kib: Option<u64>,
}

/// The events one process is served, in order, and what happened to them.
#[derive(Default)]
struct Slot {
    pending: VecDeque<Vec<u8>>,
    /// The invocation handed over and not answered yet: request id, when.
    in_flight: Option<(String, Instant)>,
    first_next_at: Option<Instant>,
    /// (handed over, answered) per invocation.
    invocations: Vec<(Instant, Instant)>,
    /// The first answer that did not pass [`response_problem`].
    problem: Option<String>,
    pid: Option<u32>,
    done: Option<oneshot::Sender<Result<Finished, String>>>,
}

/// The process after its last invocation.
struct Finished {
    first_next_at: Instant,
    invocations: Vec<(Instant, Instant)>,
    peak_rss_kib: Option<u64>,
    /// User + system CPU time of the process so far, in clock ticks.
    cpu_ticks: Option<u64>,
}

type Shared = Arc<Mutex<Slot>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Slot> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// `VmHWM` of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process (`/proc/PID/stat` fields 14 and 15), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

async fn next(State(shared): State<Shared>) -> Response {
    let served = {
        let mut slot = lock(&shared);
        let now = Instant::now();
        slot.first_next_at.get_or_insert(now);
        match slot.pending.pop_front() {
            Some(event) => {
                let request_id = uuid::Uuid::new_v4().to_string();
                slot.in_flight = Some((request_id.clone(), now));
                Some((event, request_id))
            }
            None => None,
        }
    };
    let Some((event, request_id)) = served else {
        // Every event was served: the runtime waits here until it is stopped.
        std::future::pending::<()>().await;
        return StatusCode::GONE.into_response();
    };
    let deadline_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 900_000;
    (
        [
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-67890abc-0123456789abcdef01234567;Sampled=0".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        event,
    )
        .into_response()
}

/// Records an answer; after the last one (or an error) the process is measured and released.
fn finish(shared: &Shared, ok: bool, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let mut slot = lock(shared);
    let body = String::from_utf8_lossy(&body).into_owned();
    if !ok {
        if let Some(done) = slot.done.take() {
            let _ = done.send(Err(format!("error: {body}")));
        }
        return StatusCode::ACCEPTED;
    }
    if let Some((_, served_at)) = slot.in_flight.take() {
        slot.invocations.push((served_at, at));
    }
    if slot.problem.is_none() {
        slot.problem = response_problem(&body);
    }
    if slot.pending.is_empty() {
        let result = match (slot.problem.clone(), slot.first_next_at) {
            (Some(problem), _) => Err(problem),
            (None, None) => Err("answered before asking for an event".to_owned()),
            (None, Some(first_next_at)) => Ok(Finished {
                first_next_at,
                invocations: std::mem::take(&mut slot.invocations),
                peak_rss_kib: slot.pid.and_then(peak_rss_kib),
                cpu_ticks: slot.pid.and_then(cpu_ticks),
            }),
        };
        if let Some(done) = slot.done.take() {
            let _ = done.send(result);
        }
    }
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Shared>,
    Path(_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, true, body)
}

async fn invocation_error(
    State(shared): State<Shared>,
    Path(_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, false, body)
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    finish(&shared, false, body)
}

/// A binary to start: its environment and a fresh event per start.
struct Target {
    name: &'static str,
    env: BTreeMap<String, String>,
    event: Box<dyn Fn(usize) -> Value>,
}

/// The checks a response must pass to count: an intake answer of 200, no failed SQS records.
fn response_problem(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    if let Some(status) = value.get("statusCode").and_then(Value::as_u64) {
        if status != 200 {
            return Some(format!("status {status}: {}", value["body"]));
        }
    }
    match value.get("batchItemFailures").and_then(Value::as_array) {
        Some(failures) if !failures.is_empty() => {
            Some(format!("{} failed records", failures.len()))
        }
        _ => None,
    }
}

/// Starts `binary` once and serves it `events`, one invocation each; measures it after the
/// last answer and stops it.
async fn run_process(
    shared: &Shared,
    port: u16,
    binary: &FsPath,
    target: &Target,
    events: Vec<Value>,
    wrap: Option<&str>,
    log: &FsPath,
) -> Result<(Instant, Finished), String> {
    let (tx, rx) = oneshot::channel();
    {
        let mut slot = lock(shared);
        *slot = Slot {
            pending: events
                .iter()
                .map(serde_json::to_vec)
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
            done: Some(tx),
            ..Slot::default()
        };
    }
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut words: Vec<String> = wrap
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    words.push(binary.display().to_string());
    let mut command = tokio::process::Command::new(&words[0]);
    command
        .args(&words[1..])
        .env_clear()
        .envs(&target.env)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", target.name)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    lock(shared).pid = child.id();
    let finished = tokio::time::timeout(Duration::from_secs(300), rx).await;
    let _ = child.kill().await;
    let finished = finished
        .map_err(|_| {
            format!(
                "{}: no answer in time (log: {})",
                target.name,
                log.display()
            )
        })?
        .map_err(|_| "the runtime API stopped".to_owned())?
        .map_err(|e| format!("{}: {e} (log: {})", target.name, log.display()))?;
    Ok((started, finished))
}

/// One cold start and its first invocation.
async fn start_once(
    shared: &Shared,
    port: u16,
    binary: &FsPath,
    target: &Target,
    index: usize,
    wrap: Option<&str>,
    log: &FsPath,
) -> Result<Sample, String> {
    let event = (target.event)(index);
    let (started, finished) =
        run_process(shared, port, binary, target, vec![event], wrap, log).await?;
    let (served_at, answered_at) = *finished
        .invocations
        .first()
        .ok_or("no invocation was answered")?;
    Ok(Sample {
        init: finished.first_next_at - started,
        first: answered_at - served_at,
        peak_rss_kib: finished.peak_rss_kib,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * 0.9).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sqs_event(body: String) -> Value {
    json!({"Records": [{
        "messageId": uuid::Uuid::new_v4().to_string(),
        "receiptHandle": format!("rh-{}", uuid::Uuid::new_v4()),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764115200000",
                       "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "1764115200000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1"
    }]})
}

fn fetch_event(pull_id: &str) -> Value {
    sqs_event(
        WorkMessage::FetchPull(FetchPullJob {
            source: None,
            pull_id: pull_id.to_owned(),
            monitoring_id: Some(format!("m-{pull_id}")),
            initial_pull_id: None,
            trigger: FetchTrigger::Complete,
            event_key: "bench".into(),
            requested_at: "2026-11-27T00:00:00.000Z".into(),
        })
        .to_json(),
    )
}

/// The environment every function gets: the emulator, a region, dummy credentials, and what
/// Lambda itself sets.
fn base_env(endpoint: &str) -> BTreeMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(base: &BTreeMap<String, String>, vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

fn targets(
    base: &BTreeMap<String, String>,
    r: &Resources,
    sim: &FakeCanopy,
    run: &str,
) -> Vec<Target> {
    let canopy_url = sim.base_url();
    let canopy = [
        ("CANOPY_API_SECRET_ID", r.canopy_api_secret_id.as_str()),
        ("CANOPY_TEAM_ID", TEAM_ID),
        ("CANOPY_BASE_URL", canopy_url.as_str()),
    ];
    let intake_run = run.to_owned();
    let fetch_run = run.to_owned();
    let notify_run = run.to_owned();
    let fetch_sim = sim.clone();
    vec![
        Target {
            name: "hello-lambda",
            env: base.clone(),
            event: Box::new(|_| json!({"hello": "world"})),
        },
        Target {
            name: "webhook-intake",
            env: with(
                base,
                &[
                    ("TABLE_NAME", &r.table_name),
                    ("FETCH_QUEUE_URL", &r.fetch_queue_url),
                    ("NOTIFY_QUEUE_URL", &r.notify_queue_url),
                    ("WEBHOOK_SECRET_ID", &r.webhook_secret_id),
                ],
            ),
            event: Box::new(move |i| {
                let pull_id = format!("intake-{intake_run}-{i}");
                let subject = Subject {
                    pull_id: pull_id.clone(),
                    monitoring_id: Some(format!("m-{pull_id}")),
                    initial_pull_id: None,
                    meta_data: json!({}),
                };
                let bodies =
                    refresh_sequence(&subject, &sample_pull(&pull_id, PullSize::default()));
                let body =
                    serde_json::to_vec(bodies.last().unwrap_or(&json!({}))).unwrap_or_default();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                devkit::events::webhook_request(&body, LOCAL_SIGNING_SECRET, now)
            }),
        },
        Target {
            name: "pull-fetcher",
            env: with(
                base,
                &[
                    ("TABLE_NAME", &r.table_name),
                    ("FETCH_QUEUE_URL", &r.fetch_queue_url),
                    canopy[0],
                    canopy[1],
                    canopy[2],
                ],
            ),
            event: Box::new(move |i| {
                let pull_id = format!("fetch-{fetch_run}-{i}");
                fetch_sim.add_pull(sample_pull(&pull_id, PullSize::default()));
                fetch_event(&pull_id)
            }),
        },
        Target {
            name: "reconnect-notifier",
            env: with(
                base,
                &[
                    ("TABLE_NAME", &r.table_name),
                    ("NOTIFY_QUEUE_URL", &r.notify_queue_url),
                    ("EMAIL_FROM_ADDRESS", &r.email_from),
                    canopy[0],
                    canopy[1],
                    canopy[2],
                ],
            ),
            event: Box::new(move |i| {
                let monitoring_id = format!("m-notify-{notify_run}-{i}");
                let job = ReconnectJob {
                    source: None,
                    monitoring_id: monitoring_id.clone(),
                    pull_id: format!("p-{monitoring_id}"),
                    initial_pull_id: None,
                    widget_id: None,
                    meta_data: Some(json!({"email": "consumer@example.com", "first_name": "Lois"})),
                    meta_data_pull_id: None,
                    link: Some(ReconnectLink {
                        reconnect_url: Some(
                            "https://app.usecanopy.com/c/bench/reconnect?reconnectToken=rt".into(),
                        ),
                        reconnect_token: Some("rt".into()),
                    }),
                    event_key: "bench".into(),
                    requested_at: "2026-11-27T00:00:00.000Z".into(),
                    notice: 0,
                    episode: None,
                };
                sqs_event(WorkMessage::NotifyReconnect(job).to_json())
            }),
        },
        Target {
            name: "reconnect-reminder",
            env: with(
                base,
                &[
                    ("TABLE_NAME", &r.table_name),
                    ("NOTIFY_QUEUE_URL", &r.notify_queue_url),
                ],
            ),
            event: Box::new(|_| json!({"source": "aws.scheduler", "detail": {}})),
        },
    ]
}

/// A generated pull of about `mb` MB of JSON.
fn pull_of(pull_id: &str, mb: f64) -> Value {
    let target = (mb * 1e6) as usize;
    let mut size = PullSize {
        vehicles: 2,
        documents: 2,
    };
    loop {
        let pull = sample_pull(pull_id, size);
        let len = serde_json::to_vec(&pull).map(|v| v.len()).unwrap_or(0);
        if len >= target {
            return pull;
        }
        let scale = (target as f64 / len.max(1) as f64).max(1.05);
        size.vehicles = ((size.vehicles as f64 * scale).ceil() as usize).max(size.vehicles + 1);
        size.documents = ((size.documents as f64 * scale).ceil() as usize).max(size.documents + 1);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lambda-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let aws = devkit::local_aws_config(&cli.endpoint);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let sim = FakeCanopy::start(([127, 0, 0, 1], 0).into(), TEAM_ID)
        .await
        .map_err(|e| format!("fake Canopy: {e}"))?;
    let resources = provision(
        &aws,
        &format!("bench-{run_id}"),
        LOCAL_SIGNING_SECRET,
        &json!({"client_id": canopy_sim::CLIENT_ID, "client_secret": canopy_sim::CLIENT_SECRET}),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut base = base_env(&cli.endpoint);
    base.extend(cli.extra_env.iter().cloned());
    let log_dir = cli.bin_dir.join("lambda-bench");
    std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
    let starts = if cli.wrap.is_some() { 1 } else { cli.starts };

    println!(
        "Cold starts: {starts} per binary, Runtime API on 127.0.0.1:{port}, AWS at {} (moto)\n",
        cli.endpoint
    );
    let round_trip = secret_round_trip(&cli.endpoint, &resources.webhook_secret_id, starts).await?;
    println!("One init-time AWS round trip (GetSecretValue on a new connection to moto): {round_trip:.1} ms median\n");
    println!("| binary | size MB | init median ms (x hello) | init p90 ms | init less its AWS round trips (x hello) | first invocation median ms | peak RSS median MiB |");
    println!("|---|---|---|---|---|---|---|");
    let mut hello_init = None;
    for target in targets(&base, &resources, &sim, &run_id) {
        if !cli.only.is_empty() && !cli.only.iter().any(|o| o == target.name) {
            continue;
        }
        let binary = cli.bin_dir.join(target.name);
        let size = std::fs::metadata(&binary)
            .map_err(|e| format!("{}: {e} (build it first)", binary.display()))?
            .len();
        let log = log_dir.join(format!("{}.log", target.name));
        let mut samples = Vec::new();
        for i in 0..starts {
            samples.push(
                start_once(
                    &shared,
                    port,
                    &binary,
                    &target,
                    i,
                    cli.wrap.as_deref(),
                    &log,
                )
                .await?,
            );
        }
        let init = median(samples.iter().map(|s| ms(s.init)).collect());
        if target.name == "hello-lambda" {
            hello_init = Some(init);
        }
        let ratio = hello_init
            .filter(|_| target.name != "hello-lambda")
            .map(|h| format!(" ({:.2}x)", init / h))
            .unwrap_or_default();
        // Intake, the fetcher and the notifier read one secret at init; the others none.
        let trips = match target.name {
            "webhook-intake" | "pull-fetcher" | "reconnect-notifier" => 1.0,
            _ => 0.0,
        };
        let own = init - trips * round_trip;
        let own_ratio = hello_init
            .filter(|_| target.name != "hello-lambda")
            .map(|h| format!(" ({:.2}x)", own / h))
            .unwrap_or_default();
        println!(
            "| {} | {:.2} | {init:.1}{ratio} | {:.1} | {own:.1}{own_ratio} | {:.1} | {:.1} |",
            target.name,
            size as f64 / 1e6,
            p90(samples.iter().map(|s| ms(s.init)).collect()),
            median(samples.iter().map(|s| ms(s.first)).collect()),
            median(
                samples
                    .iter()
                    .filter_map(|s| s.peak_rss_kib)
                    .map(|k| k as f64 / 1024.0)
                    .collect()
            ),
        );
    }

    let wants = |name: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == name);
    if cli.warm > 0 && wants("webhook-intake") && cli.wrap.is_none() {
        let intake = targets(&base, &resources, &sim, &run_id)
            .into_iter()
            .find(|t| t.name == "webhook-intake")
            .ok_or("no intake")?;
        // Each a new delivery (its own pull), so each is claimed, applied and queued.
        let events: Vec<Value> = (0..=cli.warm)
            .map(|i| (intake.event)(100_000 + i))
            .collect();
        let log = log_dir.join("webhook-intake-warm.log");
        let (_, finished) = run_process(
            &shared,
            port,
            &cli.bin_dir.join("webhook-intake"),
            &intake,
            events,
            None,
            &log,
        )
        .await?;
        // The first invocation follows the cold start; the rest are warm.
        let warm = finished.invocations.get(1..).unwrap_or_default();
        let (first, last) = (
            warm.first().ok_or("no warm invocation")?,
            warm.last().ok_or("no warm invocation")?,
        );
        let wall = last.1 - first.0;
        let durations: Vec<f64> = warm.iter().map(|(a, b)| ms(*b - *a)).collect();
        // /proc reports CPU time in USER_HZ ticks, 100 per second on Linux.
        let cpu_ms = finished.cpu_ticks.map_or(f64::NAN, |t| t as f64 * 10.0);
        let per_request = median(durations.clone());
        let cpu_per_request = cpu_ms / finished.invocations.len() as f64;
        println!("\nWarm path: one webhook-intake instance, {} deliveries one after another (as Lambda sends them to one instance), each claimed, applied and queued against moto\n", warm.len());
        println!("| requests/s | invocation median ms | invocation p90 ms | function CPU per request ms | share in the function |");
        println!("|---|---|---|---|---|");
        println!(
            "| {:.0} | {per_request:.2} | {:.2} | {cpu_per_request:.2} | {:.0}% |",
            warm.len() as f64 / wall.as_secs_f64(),
            p90(durations),
            100.0 * cpu_per_request / per_request,
        );
    }

    let run_memory = wants("pull-fetcher");
    if cli.pull_mb.is_empty() || !run_memory || cli.wrap.is_some() {
        return Ok(());
    }
    println!("\nPull-fetcher, one SQS record, {} starts per pull size; stored data read back and compared with the pull served\n", cli.memory_starts);
    println!("| pull JSON MB | peak RSS median MiB | peak RSS max MiB | first invocation median ms | stored = served |");
    println!("|---|---|---|---|---|");
    let store = canopy_monitor::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &resources.table_name,
    );
    let fetcher = targets(&base, &resources, &sim, &run_id)
        .into_iter()
        .find(|t| t.name == "pull-fetcher")
        .ok_or("no fetcher")?;
    let binary = cli.bin_dir.join("pull-fetcher");
    for mb in cli.pull_mb {
        let mut samples = Vec::new();
        let mut json_bytes = 0;
        let mut all_equal = true;
        for i in 0..cli.memory_starts {
            let pull_id = format!("large-{run_id}-{mb}-{i}");
            let pull = pull_of(&pull_id, mb);
            json_bytes = serde_json::to_vec(&pull).map(|v| v.len()).unwrap_or(0);
            sim.add_pull(pull.clone());
            let large = Target {
                name: "pull-fetcher",
                env: fetcher.env.clone(),
                event: Box::new(move |_| fetch_event(&pull_id)),
            };
            let log = log_dir.join("pull-fetcher-large.log");
            samples.push(start_once(&shared, port, &binary, &large, i, None, &log).await?);
            let stored = canopy_monitor::adapters::dynamo::DynamoStore::get_pull_data(
                &store,
                pull["pull_id"].as_str().unwrap_or_default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            all_equal &= stored.map(|s| s.pull) == Some(pull);
        }
        let rss: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.peak_rss_kib)
            .map(|k| k as f64 / 1024.0)
            .collect();
        println!(
            "| {:.2} | {:.1} | {:.1} | {:.0} | {} |",
            json_bytes as f64 / 1e6,
            median(rss.clone()),
            rss.iter().copied().fold(f64::NAN, f64::max),
            median(samples.iter().map(|s| ms(s.first)).collect()),
            if all_equal { "yes" } else { "NO" }
        );
        if !all_equal {
            return Err("a stored pull differs from the pull served".into());
        }
    }
    Ok(())
}
