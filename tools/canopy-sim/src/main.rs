//! canopy-sim: plays Canopy's part locally.
//!
//! - `sign FILE`: writes a freshly signed copy of a sample API Gateway event (for
//!   `cargo lambda invoke --data-file` and `sam local invoke -e`).
//! - `send FILE... --url URL`: delivers each event's body to a running intake, signed now,
//!   the way Canopy's webhook sender does.
//! - `serve`: the fake Canopy API on a port (admin calls under `/_sim`): the production keys
//!   of `--team-id`, and with `--sandbox-team-id` a second source with sandbox keys.
//! - `trigger refresh|reconnect --url URL`: sends the webhooks of a refresh or a reconnect.

use clap::{Parser, Subcommand};
use devkit::events::{event_body, read_event, resign};
use devkit::LOCAL_SIGNING_SECRET;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canopy-sim",
    about = "A fake Canopy Connect for local runs and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a freshly signed copy of an API Gateway v2 event file.
    Sign {
        file: PathBuf,
        /// Where to write the copy (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The signing secret (default: the documented local one).
        #[arg(long, env = "CANOPY_WEBHOOK_SECRET", default_value = LOCAL_SIGNING_SECRET, hide_env_values = true)]
        secret: String,
    },
    /// POST the body of each event file to a webhook URL, signed now.
    Send {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:3000/webhooks/canopy")]
        url: String,
        #[arg(long, env = "CANOPY_WEBHOOK_SECRET", default_value = LOCAL_SIGNING_SECRET, hide_env_values = true)]
        secret: String,
        /// Deliver each file this many times (Canopy redelivers on any non-200).
        #[arg(long, default_value_t = 1)]
        times: u32,
    },
    /// Serve the fake Canopy API (base URL http://127.0.0.1:PORT/api/v1.0.0).
    Serve {
        #[arg(long, default_value_t = 4010)]
        port: u16,
        /// The team of the production keys.
        #[arg(long, default_value = canopy_sim::fixtures::TEAM_ID)]
        team_id: String,
        /// Also serve this team with sandbox keys (a second source, named "sandbox").
        #[arg(long)]
        sandbox_team_id: Option<String>,
    },
    /// Print a generated pull (the JSON of GET pull's `pull`), for fixtures and fuzz seeds.
    Pull {
        #[arg(long, default_value = "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61")]
        pull_id: String,
        #[arg(long, default_value_t = 2)]
        vehicles: usize,
        #[arg(long, default_value_t = 2)]
        documents: usize,
    },
    /// Send the webhooks of a refresh or a reconnect, signed now.
    Trigger {
        #[arg(value_enum)]
        what: Trigger,
        #[arg(long, default_value = "http://127.0.0.1:3000/webhooks/canopy")]
        url: String,
        #[arg(long, default_value = "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61")]
        pull_id: String,
        #[arg(long, default_value = "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c")]
        monitoring_id: String,
        #[arg(long, env = "CANOPY_WEBHOOK_SECRET", default_value = LOCAL_SIGNING_SECRET, hide_env_values = true)]
        secret: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Trigger {
    Refresh,
    Reconnect,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("canopy-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Pull {
            pull_id,
            vehicles,
            documents,
        } => {
            let pull = canopy_sim::fixtures::sample_pull(
                &pull_id,
                canopy_sim::fixtures::PullSize {
                    vehicles,
                    documents,
                },
            );
            println!("{pull}");
            Ok(())
        }
        Command::Sign { file, out, secret } => {
            let mut event = read_event(&file)?;
            resign(&mut event, &secret, now());
            let text = serde_json::to_string_pretty(&event).map_err(|e| e.to_string())?;
            match out {
                Some(path) => std::fs::write(&path, text + "\n")
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                None => println!("{text}"),
            }
            Ok(())
        }
        Command::Send {
            files,
            url,
            secret,
            times,
        } => {
            let client = reqwest::Client::new();
            for file in files {
                let body = event_body(&read_event(&file)?);
                for attempt in 1..=times {
                    let (status, text) =
                        canopy_sim::send_signed(&client, &url, &secret, &body).await?;
                    println!("{} #{attempt}: {status} {text}", file.display());
                }
            }
            Ok(())
        }
        Command::Serve {
            port,
            team_id,
            sandbox_team_id,
        } => {
            let mut sources = vec![canopy_sim::SimSource::production(team_id)];
            sources.extend(sandbox_team_id.map(canopy_sim::SimSource::sandbox));
            let sim =
                canopy_sim::FakeCanopy::start_with_sources(([127, 0, 0, 1], port).into(), sources)
                    .await
                    .map_err(|e| format!("cannot serve on port {port}: {e}"))?;
            println!("fake Canopy at {}", sim.base_url());
            for source in sim.sources() {
                println!(
                    "  {} (team {}): client id {}, secret {}",
                    source.name, source.team_id, source.client_id, source.client_secret
                );
            }
            println!(
                "add pulls with POST /_sim/pulls[?source=NAME], point webhooks with POST /_sim/webhook {{\"url\": ..., \"secret\": ..., \"source\": NAME}} (source optional) or the Webhooks API"
            );
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
        }
        Command::Trigger {
            what,
            url,
            pull_id,
            monitoring_id,
            secret,
        } => {
            use canopy_sim::fixtures::{
                reconnect_webhook, refresh_sequence, sample_pull, PullSize, Subject,
            };
            let subject = Subject {
                pull_id: pull_id.clone(),
                monitoring_id: Some(monitoring_id),
                initial_pull_id: Some("59ced597-b48f-49e3-9756-799e4c6f79a0".to_owned()),
                meta_data: serde_json::json!({"user_id": "crm-1042"}),
            };
            let bodies = match what {
                Trigger::Refresh => {
                    refresh_sequence(&subject, &sample_pull(&pull_id, PullSize::default()))
                }
                Trigger::Reconnect => vec![reconnect_webhook(
                    &subject,
                    "https://app.usecanopy.com/c/demo/reconnect?reconnectToken=rt_webhook_1",
                    "rt_webhook_1",
                )],
            };
            for (body, (status, text)) in bodies
                .iter()
                .zip(canopy_sim::send_webhooks(&url, &secret, &bodies).await?)
            {
                println!(
                    "{}: {status} {text}",
                    body["event_type"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
