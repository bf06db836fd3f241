//! canopy-local: the pipeline on one machine.
//!
//! `up` creates the resources on the emulator (as template.yaml would in AWS), then serves
//! webhook-intake at `http://127.0.0.1:PORT/webhooks/canopy`: each HTTP request becomes the
//! API Gateway HTTP API v2 event Lambda would receive and goes through the same handler.
//! It polls the fetch queue and hands batches to pull-fetcher the way Lambda's event source
//! mapping does. Canopy is the bundled fake (`canopy-sim`) unless `CANOPY_CLIENT_ID`,
//! `CANOPY_CLIENT_SECRET` and `CANOPY_TEAM_ID` name a real (sandbox) team.
//! `--demo` sends sample webhooks once up (a redelivery included), waits for the pull to be
//! fetched, and shows what was stored and queued. `inspect` shows the state at any time.

mod api;
mod consumers;
mod inspect;
mod reconnect;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use canopy_monitor::app::intake::IntakeConfig;
use canopy_monitor::runtime::config::IntakeEnv;
use clap::{Parser, Subcommand};
use devkit::events::{events_dir, to_lambda_request};
use devkit::resources::{provision, Resources};
use devkit::{local_aws_config, LOCAL_SIGNING_SECRET};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use webhook_intake::AwsIntake;

#[derive(Parser)]
#[command(
    name = "canopy-local",
    about = "Run canopy-monitor locally against an AWS emulator"
)]
struct Cli {
    /// The emulator's endpoint (moto), e.g. http://127.0.0.1:5000.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        global = true,
        default_value = "http://127.0.0.1:5000"
    )]
    endpoint: String,
    /// Resource name prefix.
    #[arg(long, global = true, default_value = "canopy-local")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the resources and serve the webhook endpoint.
    Up {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Send the sample events once up, then show the state and the queues.
        #[arg(long)]
        demo: bool,
        /// Stop after the demo instead of serving on.
        #[arg(long, requires = "demo")]
        exit_after_demo: bool,
    },
    /// Show the stored state and the queued work.
    Inspect,
    /// Create the resources (unless they exist) and print the functions' environment as
    /// KEY=VALUE lines, for `cargo lambda watch --env-file`.
    Env {
        /// Where the functions reach Canopy (default: `canopy-sim serve` on port 4010).
        #[arg(long, default_value = "http://127.0.0.1:4010/api/v1.0.0")]
        canopy_url: String,
    },
    /// Run one pass of the reminder scheduler, as if it were HOURS from now.
    Remind {
        #[arg(long, default_value_t = 0)]
        hours_ahead: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    canopy_monitor::runtime::observability::init_local_tracing();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("canopy-local: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let aws = local_aws_config(&cli.endpoint);
    match cli.command {
        Command::Up {
            port,
            demo,
            exit_after_demo,
        } => {
            let canopy = consumers::CanopyTarget::from_env_or_fake().await?;
            let resources = provision(
                &aws,
                &cli.prefix,
                &canopy.primary().signing_secret,
                &canopy.primary().credentials_json(),
            )
            .await
            .map_err(|e| e.to_string())?;
            canopy.provision_sources(&aws, &resources).await?;
            tracing::info!(table = %resources.table_name, fetch_queue = %resources.fetch_queue_url,
                notify_queue = %resources.notify_queue_url, "resources created on the emulator");
            let intake = webhook_intake::intake_from(intake_env(&resources, &canopy), &aws)
                .await
                .map_err(|e| e.to_string())?;
            consumers::start_fetcher(&aws, &resources, &canopy).await?;
            consumers::start_publisher(&aws, &resources);
            let receiver = consumers::start_notifier(&aws, &resources, &canopy).await?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let url = format!("http://{addr}{}", webhook_intake::WEBHOOK_PATH);
            let api_base = format!("http://{addr}");
            let monitoring_api = Arc::new(api::build_api(&aws, &resources, &canopy).await?);
            let reconnect_state =
                reconnect::build(&aws, &resources, &canopy, monitoring_api.clone(), &url).await?;
            let app = axum::Router::new()
                .route("/v1/{*rest}", axum::routing::any(api::invoke_api))
                .with_state(monitoring_api)
                .merge(
                    axum::Router::new()
                        .route(
                            "/v1/reconnect/{*rest}",
                            axum::routing::any(reconnect::invoke),
                        )
                        .route("/demo/reconnect", axum::routing::get(reconnect::page))
                        .route(
                            "/demo/session",
                            axum::routing::post(reconnect::demo_session),
                        )
                        .with_state(Arc::new(reconnect_state)),
                )
                .merge(
                    axum::Router::new()
                        .fallback(invoke_intake)
                        .with_state(Arc::new(intake)),
                );
            tracing::info!(%url, "webhook-intake is serving; signing secret is the documented local one");
            tracing::info!(
                url = %format!("{api_base}/v1/monitorings"),
                "monitoring-api is serving; in AWS, API Gateway admits only SigV4-signed callers (AWS_IAM), here requests are not authenticated"
            );
            tracing::info!(
                url = %format!("{api_base}/demo/reconnect"),
                "reconnect-api is serving at /v1/reconnect behind a local stand-in for API Gateway's JWT authorizer (HS256, the documented local key); open the demo page"
            );
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            if demo {
                run_demo(&url).await?;
                consumers::demo_reconnect(&aws, &resources, &receiver, &url, &cli.endpoint).await?;
                consumers::demo_refresh(&aws, &resources, &canopy, &url).await?;
                consumers::demo_sources(&aws, &resources, &canopy, &url).await?;
                api::demo(&aws, &resources, &canopy, &api_base, &url).await?;
                inspect::show(&aws, &resources).await?;
                if exit_after_demo {
                    return Ok(());
                }
            }
            println!("\nSend more with: cargo run -q -p canopy-sim -- send events/webhook-complete.json --url {url}\nCtrl-C stops.");
            tokio::select! {
                result = server => result.map_err(|e| e.to_string())?.map_err(|e| e.to_string()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Remind { hours_ahead } => {
            let resources = devkit::resources::existing(&aws, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?;
            let store = canopy_monitor::adapters::dynamo::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&aws),
                &resources.table_name,
            );
            let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
                aws_sdk_sqs::Client::new(&aws),
                resources.fetch_queue_url.clone(),
                resources.notify_queue_url.clone(),
            );
            let at = time::OffsetDateTime::now_utc() + time::Duration::hours(hours_ahead);
            let run = canopy_monitor::app::reminders::run_reminders(
                &store,
                &queue,
                at,
                500,
                canopy_monitor::app::budget::Deadline::NONE,
            )
            .await
            .map_err(|e| e.to_string())?;
            println!(
                "reminders: {} due, {} queued, {} already resolved, {} failed",
                run.due, run.queued, run.resolved, run.failed
            );
            Ok(())
        }
        Command::Env { canopy_url } => {
            let resources = match devkit::resources::existing(&aws, &cli.prefix).await {
                Ok(r) => r,
                Err(_) => provision(
                    &aws,
                    &cli.prefix,
                    LOCAL_SIGNING_SECRET,
                    &serde_json::json!({"client_id": canopy_sim::CLIENT_ID, "client_secret": canopy_sim::CLIENT_SECRET}),
                )
                .await
                .map_err(|e| e.to_string())?,
            };
            let r = &resources;
            for (key, value) in [
                ("AWS_ENDPOINT_URL", cli.endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("TABLE_NAME", &r.table_name),
                ("FETCH_QUEUE_URL", &r.fetch_queue_url),
                ("NOTIFY_QUEUE_URL", &r.notify_queue_url),
                ("WEBHOOK_SECRET_ID", &r.webhook_secret_id),
                ("CANOPY_API_SECRET_ID", &r.canopy_api_secret_id),
                ("CANOPY_TEAM_ID", canopy_sim::fixtures::TEAM_ID),
                ("CANOPY_BASE_URL", &canopy_url),
                ("EMAIL_FROM_ADDRESS", &r.email_from),
                ("EVENT_BUS_NAME", &r.event_bus_name),
                // No stream locally: a sweep takes every waiting event.
                ("OUTBOX_GRACE_SECONDS", "0"),
            ] {
                println!("{key}={value}");
            }
            Ok(())
        }
        Command::Inspect => {
            let resources = devkit::resources::existing(&aws, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?;
            inspect::show(&aws, &resources).await
        }
    }
}

fn intake_env(resources: &Resources, canopy: &consumers::CanopyTarget) -> IntakeEnv {
    IntakeEnv {
        table_name: resources.table_name.clone(),
        fetch_queue_url: resources.fetch_queue_url.clone(),
        notify_queue_url: resources.notify_queue_url.clone(),
        sources: canopy.specs(resources, "webhook"),
        secrets_reload: canopy_monitor::ports::signing::MIN_RELOAD_INTERVAL,
        intake: IntakeConfig {
            // Short, so a local run shows the fallback fetch being skipped after COMPLETE.
            plan: canopy_monitor::domain::plan::PlanConfig {
                fetch_fallback_delay: std::time::Duration::from_secs(20),
                ..canopy_monitor::domain::plan::PlanConfig::default()
            },
            ..IntakeConfig::default()
        },
    }
}

/// The request a function gets from API Gateway (HTTP API v2) for this HTTP request.
pub fn lambda_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<lambda_http::Request, String> {
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    to_lambda_request(devkit::events::http_event(
        method.as_str(),
        target,
        headers,
        body,
    ))
}

/// Turns an HTTP request into the API Gateway v2 event Lambda would get and runs the handler.
async fn invoke_intake(
    State(intake): State<Arc<AwsIntake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match lambda_request(&method, &uri, &headers, &body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e).into_response(),
    };
    let response =
        devkit::aws_limits::api_gateway_response(webhook_intake::handle(&intake, request).await)
            .await;
    let (parts, body) = response.into_parts();
    tracing::info!(method = %method, path = %uri.path(), status = parts.status.as_u16(), "request");
    Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

/// Sends the sample events the way Canopy would, one redelivery included.
async fn run_demo(url: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    let plan = [
        ("webhook-auth-status.json", 1),
        ("webhook-monitoring-events.json", 2),
    ];
    println!("\n== demo: delivering sample webhooks to {url}");
    for (file, times) in plan {
        let event = devkit::events::read_event(&events_dir().join(file))?;
        let body = devkit::events::event_body(&event);
        for attempt in 1..=times {
            let (status, text) =
                canopy_sim::send_signed(&client, url, LOCAL_SIGNING_SECRET, &body).await?;
            let label = if attempt > 1 { " (redelivery)" } else { "" };
            println!("   {file}{label}: {status} {text}");
        }
    }
    Ok(())
}
