//! canopy-ops: the operator CLI (see lib.rs). Tables by default, `--json` for scripts.

use canopy_ops::deploy::{checks_table, setup_table, Deployment, Verdict};
use canopy_ops::{deliveries_table, redrive_table, status_table, Ops, QueueName, Stack};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canopy-ops",
    about = "Setup, doctor, ping, status, redrive, replay and tail for a canopy-monitor stack"
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
    /// The local stack's webhook URL (`scripts/run-local.sh` serves it there).
    #[arg(
        long,
        default_value = "http://127.0.0.1:3000/webhooks/canopy",
        requires = "local"
    )]
    webhook_url: String,
    /// The Canopy the local stack talks to (`canopy-sim serve --sandbox-team-id ...`).
    #[arg(
        long,
        default_value = "http://127.0.0.1:4010/api/v1.0.0",
        requires = "local"
    )]
    canopy_url: String,
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
    /// Register the stack's webhook with each source's Canopy team (or one source's) and
    /// store the signing secret. Idempotent.
    Setup {
        #[arg(long)]
        source: Option<String>,
        /// Replace the registration with a new one, both secrets valid until the old is deleted.
        #[arg(long, conflicts_with = "drop_previous")]
        rotate: bool,
        /// After a rotation (and Canopy's retry window, about 7 hours): drop the old secret.
        #[arg(long)]
        drop_previous: bool,
    },
    /// Check the stack: one line per check; exits 1 if any fails.
    Doctor,
    /// Send the stack's webhook URL a signed harmless delivery; check it was recorded; remove it.
    Ping {
        #[arg(long)]
        source: Option<String>,
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
    let (aws, stack, deployment) = if cli.local {
        let endpoint = cli
            .endpoint
            .ok_or("--local needs --endpoint (the emulator's URL)")?;
        let aws = devkit::local_aws_config(&endpoint);
        let resources = devkit::resources::existing(&aws, &cli.prefix)
            .await
            .map_err(|e| e.to_string())?;
        let stack = Stack::local(&cli.prefix, &resources);
        let deployment = Deployment::local(&resources, &cli.webhook_url, &cli.canopy_url);
        (aws, stack, Some(deployment))
    } else {
        let name = cli
            .stack
            .ok_or("name the stack: --stack NAME (or --local)")?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let stack = Stack::deployed(&aws, &name)
            .await
            .map_err(|e| e.to_string())?;
        (aws, stack, None)
    };
    let stack_name = stack.name.clone();
    let deployment = || async {
        match &deployment {
            Some(d) => Ok(d.clone()),
            None => Deployment::deployed(&aws, &stack_name)
                .await
                .map_err(|e| e.to_string()),
        }
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
        Command::Setup {
            source,
            rotate,
            drop_previous,
        } => {
            let d = deployment().await?;
            let o = if drop_previous {
                ops.drop_previous(&d, source.as_deref()).await
            } else {
                ops.setup(&d, source.as_deref(), rotate).await
            }
            .map_err(|e| e.to_string())?;
            print(cli.json, &o, || setup_table(&o))
        }
        Command::Doctor => {
            let d = deployment().await?;
            let checks = ops.doctor(&d).await;
            print(cli.json, &checks, || checks_table(&checks))?;
            if checks.iter().any(|c| c.verdict == Verdict::Fail) {
                return Err("some checks failed (FAIL lines above)".to_owned());
            }
            Ok(())
        }
        Command::Ping { source } => {
            let d = deployment().await?;
            let o = ops
                .ping(&d, source.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            print(cli.json, &o, || {
                o.iter()
                    .map(|p| {
                        format!(
                            "{}: {} in {} ms, recorded as {} and removed\n",
                            p.source, p.status, p.latency_ms, p.dedupe_key
                        )
                    })
                    .collect()
            })
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
