//! canopy-ops: the operator CLI (see lib.rs). Tables by default, `--output json` for scripts.
//!
//! Exit codes: 0 all is well; 1 a check or the command's work failed; 2 it could not run (bad
//! arguments, no credentials or region, no such stack). Each failure is one line on stderr.

use canopy_ops::aws::{load as load_aws, AwsOptions};
use canopy_ops::deploy::{checks_table, doctor_exit, setup_table, Deployment};
use canopy_ops::{deliveries_table, redrive_table, status_table, Ops, QueueName, Stack};
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canopy-ops",
    version,
    about = "Setup, doctor, ping, status, redrive, replay and tail for a canopy-monitor stack",
    after_help = "Credentials and region are found as the AWS CLI finds them (environment, \
                  profiles, SSO, credential_process, web identity, container and instance \
                  roles). AWS_ENDPOINT_URL points every call at another endpoint (an emulator).\n\
                  Exit codes: 0 all is well, 1 a check or the command failed, 2 it could not run."
)]
struct Cli {
    /// The deployed stack's name (its CloudFormation outputs name the resources).
    #[arg(long, env = "CANOPY_STACK", global = true)]
    stack: Option<String>,
    /// The named profile of the AWS shared config and credentials files (else AWS_PROFILE's,
    /// or the default).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The AWS Region of the stack (else the environment's or the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// How results are printed.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// Short for `--output json`.
    #[arg(long, global = true, hide = true)]
    json: bool,
    #[cfg(feature = "local")]
    #[command(flatten)]
    local: local::LocalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
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
    /// Re-run a stored webhook by its dedupe key (`tail` lists them).
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
    /// Check the stack: one line per check; exit 1 if one fails, 2 if one could not be made.
    Doctor,
    /// Send the stack's webhook URL a signed harmless delivery; check it was recorded; remove it.
    Ping {
        #[arg(long)]
        source: Option<String>,
    },
}

/// Why a run ended badly, and so its exit code.
enum Failure {
    /// The command ran and what it did or checked failed: exit 1.
    Work(String),
    /// It could not run: exit 2.
    CouldNotRun(String),
}

impl Failure {
    fn work(e: impl std::fmt::Display) -> Self {
        Self::Work(e.to_string())
    }
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 on --help and --version.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(Failure::CouldNotRun(format!("no async runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(f),
    }
}

fn fail(f: Failure) -> ExitCode {
    let (code, text) = match f {
        Failure::Work(t) => (1, t),
        Failure::CouldNotRun(t) => (2, t),
    };
    // One line: an AWS error's chain of causes is joined on one line already.
    eprintln!("canopy-ops: {}", text.replace('\n', " "));
    ExitCode::from(code)
}

/// The stack and how to reach it: deployed (by name, through CloudFormation) or local.
async fn connect(cli: &Cli) -> Result<(Ops, Option<Deployment>), Failure> {
    #[cfg(feature = "local")]
    if cli.local.local {
        if cli.stack.is_some() {
            return Err(Failure::CouldNotRun(
                "--stack and --local name two stacks: give one".to_owned(),
            ));
        }
        return cli.local.connect().await.map_err(Failure::CouldNotRun);
    }
    let Some(name) = cli.stack.clone().filter(|s| !s.trim().is_empty()) else {
        return Err(Failure::CouldNotRun(
            "name the stack: --stack NAME (or CANOPY_STACK=NAME)".to_owned(),
        ));
    };
    let options = AwsOptions {
        profile: cli.profile.clone(),
        region: cli.region.clone(),
    };
    let aws = load_aws(&options)
        .await
        .map_err(|e| Failure::CouldNotRun(e.to_string()))?;
    let stack = Stack::deployed(&aws, &name)
        .await
        .map_err(|e| Failure::CouldNotRun(e.to_string()))?;
    let ops = Ops::new(&aws, stack).with_options(&options);
    Ok((ops, None))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let (ops, local_deployment) = connect(&cli).await?;
    let json = cli.json || cli.output == Output::Json;
    // setup, doctor and ping also need the stack's sources and webhook URL.
    let deployment = || async {
        match &local_deployment {
            Some(d) => Ok(d.clone()),
            None => Deployment::deployed(&ops.aws, &ops.stack.name)
                .await
                .map_err(|e| Failure::CouldNotRun(e.to_string())),
        }
    };
    match cli.command {
        Command::Status => {
            let s = ops.status().await.map_err(Failure::work)?;
            print(json, &s, || status_table(&s))
        }
        Command::Redrive { queue, dry_run } => {
            let r = ops.redrive(queue, dry_run).await.map_err(Failure::work)?;
            print(json, &r, || redrive_table(&r))
        }
        Command::Replay { dedupe_key } => {
            let r = ops.replay(&dedupe_key).await.map_err(|e| match e {
                canopy_ops::OpsError::BadKey(_) => Failure::CouldNotRun(e.to_string()),
                other => Failure::work(other),
            })?;
            print(json, &r, || {
                format!(
                    "replayed {} {} pull={} state_applied={} queued={}\n",
                    r.dedupe_key, r.event_type, r.pull_id, r.state_applied, r.queued
                )
            })
        }
        Command::Tail { limit } => {
            let d = ops.tail(limit).await.map_err(Failure::work)?;
            print(json, &d, || deliveries_table(&d))
        }
        Command::Setup {
            source,
            rotate,
            drop_previous,
        } => {
            let d = deployment().await?;
            // A source the stack does not have is a bad argument.
            d.chosen(source.as_deref())
                .map_err(|e| Failure::CouldNotRun(e.to_string()))?;
            let o = if drop_previous {
                ops.drop_previous(&d, source.as_deref()).await
            } else {
                ops.setup(&d, source.as_deref(), rotate).await
            }
            .map_err(Failure::work)?;
            print(json, &o, || setup_table(&o))
        }
        Command::Doctor => {
            let d = deployment().await?;
            let checks = ops.doctor(&d).await;
            print(json, &checks, || checks_table(&checks))?;
            match doctor_exit(&checks) {
                0 => Ok(()),
                1 => Err(Failure::Work(
                    "some checks failed (FAIL lines above)".to_owned(),
                )),
                _ => Err(Failure::CouldNotRun(
                    "some checks could not be made (ERROR lines above)".to_owned(),
                )),
            }
        }
        Command::Ping { source } => {
            let d = deployment().await?;
            d.chosen(source.as_deref())
                .map_err(|e| Failure::CouldNotRun(e.to_string()))?;
            let o = ops
                .ping(&d, source.as_deref())
                .await
                .map_err(Failure::work)?;
            print(json, &o, || {
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
) -> Result<(), Failure> {
    use std::io::Write as _;
    let text = if json {
        serde_json::to_string_pretty(value).map_err(Failure::work)? + "\n"
    } else {
        table()
    };
    // A closed pipe (`canopy-ops tail | head -1`) ends the output quietly.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Work(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

/// `--local`: the stack of `scripts/run-local.sh` (or a test's) on an emulator.
#[cfg(feature = "local")]
mod local {
    use canopy_ops::deploy::Deployment;
    use canopy_ops::{Ops, Stack};

    #[derive(clap::Args)]
    pub struct LocalArgs {
        /// The local stack (`scripts/run-local.sh`) on the emulator at `--endpoint`.
        #[arg(long, global = true)]
        pub local: bool,
        /// The emulator's URL (default: AWS_ENDPOINT_URL).
        #[arg(long, global = true)]
        pub endpoint: Option<String>,
        /// The local stack's resource prefix.
        #[arg(long, default_value = "canopy-local", global = true)]
        pub prefix: String,
        /// The local stack's webhook URL (`scripts/run-local.sh` serves it there).
        #[arg(
            long,
            default_value = "http://127.0.0.1:3000/webhooks/canopy",
            global = true
        )]
        pub webhook_url: String,
        /// The Canopy the local stack talks to: `CANOPY_SIM_PORT=4010 scripts/run-local.sh`
        /// serves the fake there.
        #[arg(
            long,
            default_value = "http://127.0.0.1:4010/api/v1.0.0",
            global = true
        )]
        pub canopy_url: String,
    }

    impl LocalArgs {
        pub async fn connect(&self) -> Result<(Ops, Option<Deployment>), String> {
            let endpoint = self
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .ok_or("--local needs --endpoint (the emulator's URL) or AWS_ENDPOINT_URL")?;
            let aws = devkit::local_aws_config(&endpoint);
            let resources = devkit::resources::existing(&aws, &self.prefix)
                .await
                .map_err(|e| e.to_string())?;
            let stack = Stack::local(&self.prefix, &resources);
            let deployment = Deployment::local(&resources, &self.webhook_url, &self.canopy_url);
            Ok((Ops::new(&aws, stack), Some(deployment)))
        }
    }
}
