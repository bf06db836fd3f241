//! canopy-sim: plays Canopy's part locally.
//!
//! - `sign FILE`: writes a freshly signed copy of a sample API Gateway event (for
//!   `cargo lambda invoke --data-file` and `sam local invoke -e`).
//! - `send FILE... --url URL`: delivers each event's body to a running intake, signed now,
//!   the way Canopy's webhook sender does.

use canopy_monitor::signature::{sign, SIGNATURE_HEADER};
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
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header(SIGNATURE_HEADER, sign(&body, &secret, now()))
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| format!("POST {url}: {e}"))?;
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    println!(
                        "{} #{attempt}: {} {}",
                        file.display(),
                        status.as_u16(),
                        text
                    );
                }
            }
            Ok(())
        }
    }
}
