//! lambda-host: plays Lambda for the rehearsal account (`scripts/rehearse.sh`).
//!
//! Each function is its own binary, started as Lambda starts it: a fresh process with the
//! Environment its stack gave it, whose only way in is the Runtime API (`AWS_LAMBDA_RUNTIME_API`,
//! the `2018-06-01` interface) served here. A function that would fail at init in AWS (a
//! variable it needs and is not given, a secret it cannot read) fails here the same way.
//!
//! - `serve`: API Gateway's HTTP APIs (payload format 2.0) on local ports, routing to the
//!   functions by the routes the template declares, and the SQS event source mappings (batches
//!   received, handed over, deleted but for the batch item failures the function reports).
//! - `samples`: each function, cold, handles its sample events from `events/`.
//!
//! The stack (functions, environments, routes, mappings) comes from a JSON file that
//! `scripts/rehearsal_stack.py` writes from the stack on the emulator; nothing is listed here.
//! Not played: IAM and JWT authorizers (routes are served as if authorized), DynamoDB stream
//! mappings and schedules (their functions answer their sample events in `samples`).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

#[derive(Parser)]
#[command(name = "lambda-host", about = "Plays Lambda for the rehearsal account")]
struct Cli {
    /// The stack's functions, APIs and mappings (scripts/rehearsal_stack.py writes it).
    #[arg(long)]
    config: PathBuf,
    /// Where the functions' binaries are (built for this machine from the same code).
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Each function's standard output and error go to <log-dir>/<function>.log.
    #[arg(long, default_value = ".local/rehearsal/logs")]
    log_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP APIs and poll the queues until stopped.
    Serve,
    /// Start each function cold and hand it its sample events; exit 1 if one fails.
    Samples {
        /// The folder of the sample events.
        #[arg(long, default_value = "events")]
        events: PathBuf,
    },
}

/// What `scripts/rehearsal_stack.py` writes.
#[derive(Deserialize)]
struct HostConfig {
    /// The emulator every AWS call goes to.
    endpoint: String,
    region: String,
    functions: BTreeMap<String, FunctionSpec>,
    #[serde(default)]
    apis: Vec<ApiSpec>,
    #[serde(default)]
    queues: Vec<QueueMapping>,
}

#[derive(Deserialize, Clone)]
struct FunctionSpec {
    binary: String,
    /// The function's Environment on the stack, with what Lambda itself sets.
    environment: BTreeMap<String, String>,
    timeout_seconds: u64,
    #[serde(default)]
    sample_events: Vec<String>,
}

#[derive(Deserialize)]
struct ApiSpec {
    name: String,
    port: u16,
    routes: Vec<RouteSpec>,
}

#[derive(Deserialize, Clone)]
struct RouteSpec {
    method: String,
    path: String,
    function: String,
}

#[derive(Deserialize, Clone)]
struct QueueMapping {
    queue_url: String,
    queue_arn: String,
    function: String,
    batch_size: i32,
    report_batch_item_failures: bool,
}

// --- one function: its process and its Runtime API ----------------------------------------------

/// How an invocation ended.
enum Outcome {
    Response(Bytes),
    /// `POST .../error`: the handler returned an error.
    Error(String),
    /// The process ended (an init failure, a crash) before answering.
    Exited(String),
    TimedOut,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Response(body) => write!(f, "answered ({} bytes)", body.len()),
            Self::Error(e) => write!(f, "the handler failed: {e}"),
            Self::Exited(why) => write!(f, "the process ended: {why}"),
            Self::TimedOut => f.write_str("timed out"),
        }
    }
}

struct Invocation {
    id: String,
    payload: Vec<u8>,
    deadline_ms: i64,
    arn: String,
    reply: oneshot::Sender<Outcome>,
}

/// The invocations waiting for one process: a new queue for each process, so that an
/// invocation a dead process never took is not handed to the next one.
type InvocationQueue = Arc<Mutex<mpsc::Receiver<Invocation>>>;

#[derive(Clone)]
struct RuntimeApi {
    next: Arc<std::sync::Mutex<InvocationQueue>>,
    pending: Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    init_error: Arc<std::sync::Mutex<Option<String>>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn next_invocation(State(api): State<RuntimeApi>) -> Response {
    let queue = lock(&api.next).clone();
    let invocation = queue.lock().await.recv().await;
    let Some(inv) = invocation else {
        return StatusCode::GONE.into_response();
    };
    lock(&api.pending).insert(inv.id.clone(), inv.reply);
    Response::builder()
        .header("Lambda-Runtime-Aws-Request-Id", &inv.id)
        .header("Lambda-Runtime-Deadline-Ms", inv.deadline_ms.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", &inv.arn)
        .header(
            "Lambda-Runtime-Trace-Id",
            format!(
                "Root=1-{:08x}-{}",
                now_ms() / 1000,
                &inv.id.replace('-', "")[..24]
            ),
        )
        .header("content-type", "application/json")
        .body(Body::from(inv.payload))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn answer(api: &RuntimeApi, id: &str, outcome: Outcome) -> StatusCode {
    match lock(&api.pending).remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn invocation_response(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&api, &id, Outcome::Response(body))
}

async fn invocation_error(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(
        &api,
        &id,
        Outcome::Error(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(State(api): State<RuntimeApi>, body: Bytes) -> StatusCode {
    *lock(&api.init_error) = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

struct Process {
    /// Dropped, it ends the process.
    _stop: oneshot::Sender<()>,
    exited: watch::Receiver<Option<String>>,
}

/// One function: started on its first invocation, as Lambda does, and kept warm; one
/// invocation at a time (a concurrency of one).
struct Function {
    name: String,
    spec: FunctionSpec,
    binary: PathBuf,
    log: PathBuf,
    queue: std::sync::Mutex<mpsc::Sender<Invocation>>,
    api: RuntimeApi,
    api_addr: std::net::SocketAddr,
    process: Mutex<Option<Process>>,
    arn: String,
}

impl Function {
    async fn new(
        name: &str,
        spec: FunctionSpec,
        region: &str,
        bin_dir: &std::path::Path,
        log_dir: &std::path::Path,
    ) -> Result<Arc<Self>, String> {
        let (queue, receiver) = mpsc::channel(1);
        let api = RuntimeApi {
            next: Arc::new(std::sync::Mutex::new(Arc::new(Mutex::new(receiver)))),
            pending: Arc::default(),
            init_error: Arc::default(),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("{name}: no port for its Runtime API: {e}"))?;
        let api_addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let function_name = spec
            .environment
            .get("AWS_LAMBDA_FUNCTION_NAME")
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        Ok(Arc::new(Self {
            name: name.to_owned(),
            binary: bin_dir.join(&spec.binary),
            log: log_dir.join(format!("{name}.log")),
            spec,
            queue: std::sync::Mutex::new(queue),
            api,
            api_addr,
            process: Mutex::new(None),
            arn: format!("arn:aws:lambda:{region}:123456789012:function:{function_name}"),
        }))
    }

    /// A fresh process with exactly the function's Environment (and the Runtime API's address).
    fn start(&self) -> Result<Process, String> {
        let (queue, receiver) = mpsc::channel(1);
        *lock(&self.queue) = queue;
        *lock(&self.api.next) = Arc::new(Mutex::new(receiver));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {}: {e}", self.name, self.log.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.binary)
            .env_clear()
            .envs(&self.spec.environment)
            .env("AWS_LAMBDA_RUNTIME_API", self.api_addr.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: cannot start {}: {e}", self.name, self.binary.display()))?;
        let (tx, exited) = watch::channel(None);
        let (stop, stopped) = oneshot::channel::<()>();
        let init_error = self.api.init_error.clone();
        // The process is waited on here; dropping its `Process` ends it (a new sandbox next).
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stopped => {
                    let _ = child.kill().await;
                    return;
                }
            };
            let why = lock(&init_error).take();
            let text = match (status, why) {
                (_, Some(init)) => format!("init error: {init}"),
                (Ok(s), None) => format!("exited: {s}"),
                (Err(e), None) => format!("lost: {e}"),
            };
            let _ = tx.send(Some(text));
        });
        Ok(Process {
            _stop: stop,
            exited,
        })
    }

    /// Hands `payload` to the function and waits for its answer (its timeout at most).
    async fn invoke(&self, payload: &Value) -> Outcome {
        let mut process = self.process.lock().await;
        let restart = match process.as_ref() {
            None => true,
            Some(p) => p.exited.borrow().is_some(),
        };
        if restart {
            match self.start() {
                Ok(p) => *process = Some(p),
                Err(e) => return Outcome::Exited(e),
            }
        }
        let Some(p) = process.as_mut() else {
            return Outcome::Exited("not started".to_owned());
        };
        let (reply, answer) = oneshot::channel();
        let timeout = Duration::from_secs(self.spec.timeout_seconds.max(1));
        let invocation = Invocation {
            id: uuid::Uuid::new_v4().to_string(),
            payload: payload.to_string().into_bytes(),
            deadline_ms: now_ms() + timeout.as_millis() as i64,
            arn: self.arn.clone(),
            reply,
        };
        let queue = lock(&self.queue).clone();
        let mut exited = p.exited.clone();
        // Handed over (the process asks with GET .../next), unless it ends or times out first.
        tokio::select! {
            sent = queue.send(invocation) => if sent.is_err() {
                return Outcome::Exited("the Runtime API is gone".to_owned());
            },
            why = exited.wait_for(|e| e.is_some()) => {
                return Outcome::Exited(why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default());
            }
            _ = tokio::time::sleep(timeout) => {
                *process = None;
                return Outcome::TimedOut;
            }
        }
        tokio::select! {
            outcome = answer => outcome.unwrap_or(Outcome::Exited("no answer".to_owned())),
            why = exited.wait_for(|e| e.is_some()) => {
                Outcome::Exited(why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default())
            }
            _ = tokio::time::sleep(timeout) => {
                // Lambda ends a timed-out sandbox: the next invocation starts a new one.
                *process = None;
                Outcome::TimedOut
            }
        }
    }
}

// --- API Gateway HTTP API (payload format 2.0) ---------------------------------------------------

/// Whether `path` matches the route's template (`{name}` one segment, `{name+}` the rest),
/// and its path parameters.
fn match_route(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let want: Vec<&str> = template.trim_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut params = BTreeMap::new();
    for (i, w) in want.iter().enumerate() {
        if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix("+}")) {
            if i >= got.len() || got[i].is_empty() {
                return None;
            }
            params.insert(name.to_owned(), got[i..].join("/"));
            return Some(params);
        }
        let segment = got.get(i)?;
        match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => {
                params.insert(name.to_owned(), (*segment).to_owned());
            }
            Some(_) => return None,
            None if w == segment => {}
            None => return None,
        }
    }
    (want.len() == got.len()).then_some(params)
}

/// The most specific route first: more literal segments, then fewer greedy ones.
fn specificity(route: &RouteSpec) -> (usize, usize) {
    let segments: Vec<&str> = route.path.split('/').collect();
    let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
    let greedy = segments.iter().filter(|s| s.ends_with("+}")).count();
    (usize::MAX - literal, greedy)
}

/// The payload format 2.0 event of a request on `route`: devkit's event of the request (its
/// headers, query and body as API Gateway decodes them), with the route's key, the path
/// parameters and the cookies, which API Gateway moves out of the headers.
fn v2_event(
    api: &str,
    route: &RouteSpec,
    params: &BTreeMap<String, String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Value {
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut event = devkit::events::http_event(method.as_str(), target, headers, body);
    let route_key = format!("{} {}", route.method.to_uppercase(), route.path);
    event["routeKey"] = json!(route_key);
    event["requestContext"]["routeKey"] = json!(route_key);
    event["requestContext"]["apiId"] = json!(api);
    if let Some(cookies) = event["headers"]
        .as_object_mut()
        .and_then(|h| h.remove("cookie"))
    {
        let cookies: Vec<&str> = cookies.as_str().unwrap_or_default().split("; ").collect();
        event["cookies"] = json!(cookies);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    event
}

/// The function's answer as API Gateway turns it into an HTTP response (format 2.0).
fn v2_response(answer: &[u8]) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(answer) else {
        return gateway_error(StatusCode::BAD_GATEWAY);
    };
    if value.get("statusCode").is_none() {
        // A bare value is a 200 with that JSON.
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            value.to_string(),
        )
            .into_response();
    }
    let status = value["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    if let Some(headers) = value["headers"].as_object() {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                response = response.header(k, v);
            }
        }
    }
    for cookie in value["cookies"].as_array().into_iter().flatten() {
        if let Some(c) = cookie.as_str() {
            response = response.header("set-cookie", c);
        }
    }
    let body = value["body"].as_str().unwrap_or_default();
    let bytes = if value["isBase64Encoded"].as_bool() == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(b) => b,
            Err(_) => return gateway_error(StatusCode::BAD_GATEWAY),
        }
    } else {
        body.as_bytes().to_vec()
    };
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| gateway_error(StatusCode::BAD_GATEWAY))
}

fn gateway_error(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::NOT_FOUND => "Not Found",
        StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
        StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
        _ => "Internal Server Error",
    };
    (status, axum::Json(json!({ "message": message }))).into_response()
}

struct Gateway {
    name: String,
    routes: Vec<RouteSpec>,
    functions: Arc<BTreeMap<String, Arc<Function>>>,
}

async fn gateway(
    State(g): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let found = g.routes.iter().find_map(|r| {
        let method_matches =
            r.method.eq_ignore_ascii_case("ANY") || r.method.eq_ignore_ascii_case(method.as_str());
        if !method_matches {
            return None;
        }
        match_route(&r.path, uri.path()).map(|p| (r, p))
    });
    let Some((route, params)) = found else {
        return gateway_error(StatusCode::NOT_FOUND);
    };
    let Some(function) = g.functions.get(&route.function) else {
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let event = v2_event(&g.name, route, &params, &method, &uri, &headers, &body);
    match function.invoke(&event).await {
        Outcome::Response(answer) => v2_response(&answer),
        other => {
            eprintln!("lambda-host: {} {}: {other}", route.method, route.path);
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// API Gateway's HTTP API payload limit.
const HTTP_API_MAX_BODY: usize = 10 * 1024 * 1024;

// --- SQS event source mappings -------------------------------------------------------------------

fn sqs_event(
    mapping: &QueueMapping,
    region: &str,
    messages: &[aws_sdk_sqs::types::Message],
) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: BTreeMap<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                json!({
                                    "stringValue": v.string_value(),
                                    "stringListValues": [],
                                    "binaryListValues": [],
                                    "dataType": v.data_type(),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a batch response reports as failed; every message when the batch failed.
fn failed_ids(mapping: &QueueMapping, outcome: &Outcome, all: &[String]) -> Vec<String> {
    match outcome {
        Outcome::Response(body) if mapping.report_batch_item_failures => {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => {
                    let items = v["batchItemFailures"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let ids: Vec<String> = items
                        .iter()
                        .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                        .filter(|id| all.contains(id))
                        .collect();
                    // Lambda fails the whole batch on an identifier it cannot match.
                    if ids.len() == items.len() {
                        ids
                    } else {
                        all.to_vec()
                    }
                }
                Err(_) => all.to_vec(),
            }
        }
        Outcome::Response(_) => Vec::new(),
        _ => all.to_vec(),
    }
}

async fn poll(
    sqs: aws_sdk_sqs::Client,
    mapping: QueueMapping,
    region: String,
    function: Arc<Function>,
) {
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&mapping.queue_url)
            .max_number_of_messages(mapping.batch_size.clamp(1, 10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(r) => r.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!(
                    "lambda-host: receive from {}: {}",
                    mapping.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id().map(str::to_owned))
            .collect();
        let outcome = function
            .invoke(&sqs_event(&mapping, &region, &messages))
            .await;
        let failed = failed_ids(&mapping, &outcome, &ids);
        if !matches!(outcome, Outcome::Response(_)) {
            eprintln!("lambda-host: {} batch: {outcome}", function.name);
        }
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| {
                m.message_id()
                    .is_some_and(|id| !failed.iter().any(|f| f == id))
            })
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            if let Err(e) = sqs
                .delete_message_batch()
                .queue_url(&mapping.queue_url)
                .set_entries(Some(done))
                .send()
                .await
            {
                eprintln!(
                    "lambda-host: delete from {}: {}",
                    mapping.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                );
            }
        }
    }
}

// --- main ---------------------------------------------------------------------------------------

async fn functions_of(
    config: &HostConfig,
    cli: &Cli,
) -> Result<Arc<BTreeMap<String, Arc<Function>>>, String> {
    std::fs::create_dir_all(&cli.log_dir).map_err(|e| format!("{}: {e}", cli.log_dir.display()))?;
    let mut functions = BTreeMap::new();
    for (name, spec) in &config.functions {
        let f = Function::new(
            name,
            spec.clone(),
            &config.region,
            &cli.bin_dir,
            &cli.log_dir,
        )
        .await?;
        functions.insert(name.clone(), f);
    }
    Ok(Arc::new(functions))
}

async fn serve(config: HostConfig, cli: &Cli) -> Result<(), String> {
    let functions = functions_of(&config, cli).await?;
    for api in &config.apis {
        let mut routes = api.routes.clone();
        routes.sort_by_key(specificity);
        let gateway = Arc::new(Gateway {
            name: api.name.clone(),
            routes,
            functions: functions.clone(),
        });
        let router = Router::new()
            .fallback(gateway_handler)
            .layer(axum::extract::DefaultBodyLimit::max(HTTP_API_MAX_BODY))
            .with_state(gateway);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", api.port))
            .await
            .map_err(|e| format!("{}: port {}: {e}", api.name, api.port))?;
        println!("lambda-host: {} on http://127.0.0.1:{}", api.name, api.port);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
    }
    let sqs = aws_sdk_sqs::Client::new(&devkit::local_aws_config(&config.endpoint));
    for mapping in &config.queues {
        let function = functions
            .get(&mapping.function)
            .ok_or_else(|| format!("mapping to an unknown function {}", mapping.function))?
            .clone();
        println!(
            "lambda-host: {} -> {} (batch {})",
            mapping.queue_url, mapping.function, mapping.batch_size
        );
        tokio::spawn(poll(
            sqs.clone(),
            mapping.clone(),
            config.region.clone(),
            function,
        ));
    }
    println!("lambda-host: ready");
    // SIGINT or SIGTERM: the functions' processes end with their handles.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn gateway_handler(
    state: State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    match body {
        Ok(body) => gateway(state, method, uri, headers, body).await,
        Err(_) => gateway_error(StatusCode::PAYLOAD_TOO_LARGE),
    }
}

/// An HTTP answer of 500 or more: the function failed the request.
fn server_error(answer: &[u8]) -> bool {
    serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .is_some_and(|s| s >= 500)
}

/// What a sample's answer says, in a few words (the status of an HTTP answer, the batch
/// item failures of an SQS one).
fn summary(answer: &[u8]) -> String {
    match serde_json::from_slice::<Value>(answer) {
        Ok(v) if v.get("statusCode").is_some() => format!("HTTP {}", v["statusCode"]),
        Ok(v) if v.get("batchItemFailures").is_some() => format!(
            "{} batch item failure(s)",
            v["batchItemFailures"].as_array().map_or(0, Vec::len)
        ),
        Ok(Value::Null) => "null".to_owned(),
        Ok(v) => {
            let text = v.to_string();
            text.chars().take(80).collect()
        }
        Err(_) => format!("{} bytes", answer.len()),
    }
}

async fn samples(config: HostConfig, cli: &Cli, events: &std::path::Path) -> Result<bool, String> {
    let functions = functions_of(&config, cli).await?;
    let mut all_answered = true;
    for (name, function) in functions.iter() {
        if function.spec.sample_events.is_empty() {
            println!("{name}: no sample event");
            all_answered = false;
            continue;
        }
        for file in &function.spec.sample_events {
            let path = events.join(file);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let event: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let cold = function.process.lock().await.is_none();
            let started = Instant::now();
            let outcome = function.invoke(&event).await;
            let ms = started.elapsed().as_millis();
            let start = if cold { "cold" } else { "warm" };
            match outcome {
                Outcome::Response(answer) if server_error(&answer) => {
                    all_answered = false;
                    println!(
                        "{name}: {file} -> FAILED {} ({start}, {ms} ms)",
                        summary(&answer)
                    )
                }
                Outcome::Response(answer) => {
                    println!("{name}: {file} -> {} ({start}, {ms} ms)", summary(&answer))
                }
                other => {
                    all_answered = false;
                    let log = std::fs::read_to_string(&function.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    println!("{name}: {file} -> FAILED {other} ({start}, {ms} ms)");
                    for line in tail.iter().rev() {
                        println!("    {line}");
                    }
                }
            }
        }
    }
    Ok(all_answered)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match std::fs::read_to_string(&cli.config)
        .map_err(|e| format!("{}: {e}", cli.config.display()))
        .and_then(|t| {
            serde_json::from_str::<HostConfig>(&t)
                .map_err(|e| format!("{}: {e}", cli.config.display()))
        }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lambda-host: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Serve => serve(config, &cli).await.map(|()| true),
        Command::Samples { events } => samples(config, &cli, events).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lambda-host: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_as_api_gateway_matches_them() {
        assert!(match_route("/webhooks/canopy", "/webhooks/canopy").is_some());
        assert!(match_route("/webhooks/canopy", "/webhooks/other").is_none());
        let p = match_route("/v1/pulls/{pull_id}", "/v1/pulls/abc").unwrap();
        assert_eq!(p["pull_id"], "abc");
        assert!(match_route("/v1/pulls/{pull_id}", "/v1/pulls").is_none());
        let p = match_route("/v1/{proxy+}", "/v1/a/b").unwrap();
        assert_eq!(p["proxy"], "a/b");
    }
}
