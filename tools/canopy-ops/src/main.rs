//! canopy-ops: the operator CLI (see lib.rs). Tables by default, `--json` for scripts.

use canopy_ops::{deliveries_table, redrive_table, status_table, Ops, QueueName, Stack};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canopy-ops",
    about = "Status, redrive, replay and tail for a canopy-monitor stack"
)]
struct Cli {
    /// The deployed stack's name (its CloudFormation outputs name the resources).
    #[arg(long, env = "CANOPY_STACK", conflicts_with = "local")]
    stack: Option<String>,
    /// The local stack (`scripts/run-local.sh`) on the emulator at `--endpoint`.
    #[arg(long)]
    local: bool,
    #[arg(long, env = "AWS_ENDPOINT_URL", requires = "local")]
    endpoint: Option<String>,
    /// The local stack's resource prefix.
    #[arg(long, default_value = "canopy-local")]
    prefix: String,
    /// JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open reconnects, failed fetches, queue and DLQ depths, the last webhook.
    Status,
    /// Dead-lettered messages back to their queue.
    Redrive {
        #[arg(long, value_enum, default_value = "fetch")]
        queue: QueueName,
        /// List what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-run a stored webhook by its dedupe key.
    Replay { dedupe_key: String },
    /// Recent deliveries and their outcome.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canopy-ops: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (aws, stack) = if cli.local {
        let endpoint = cli
            .endpoint
            .ok_or("--local needs --endpoint (the emulator's URL)")?;
        let aws = devkit::local_aws_config(&endpoint);
        let resources = devkit::resources::existing(&aws, &cli.prefix)
            .await
            .map_err(|e| e.to_string())?;
        let stack = Stack::local(&cli.prefix, &resources);
        (aws, stack)
    } else {
        let name = cli
            .stack
            .ok_or("name the stack: --stack NAME (or --local)")?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let stack = Stack::deployed(&aws, &name)
            .await
            .map_err(|e| e.to_string())?;
        (aws, stack)
    };
    let ops = Ops::new(&aws, stack);
    match cli.command {
        Command::Status => {
            let s = ops.status().await.map_err(|e| e.to_string())?;
            print(cli.json, &s, || status_table(&s))
        }
        Command::Redrive { queue, dry_run } => {
            let r = ops
                .redrive(queue, dry_run)
                .await
                .map_err(|e| e.to_string())?;
            print(cli.json, &r, || redrive_table(&r))
        }
        Command::Replay { dedupe_key } => {
            let r = ops.replay(&dedupe_key).await.map_err(|e| e.to_string())?;
            print(cli.json, &r, || {
                format!(
                    "replayed {} {} pull={} state_applied={} queued={}\n",
                    r.dedupe_key, r.event_type, r.pull_id, r.state_applied, r.queued
                )
            })
        }
        Command::Tail { limit } => {
            let d = ops.tail(limit).await.map_err(|e| e.to_string())?;
            print(cli.json, &d, || deliveries_table(&d))
        }
    }
}

fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", table());
    }
    Ok(())
}
