//! canopy-ops: what an on-call engineer runs against a deployed stack (found by its name,
//! through CloudFormation's outputs) or the local one.
//!
//! - `status`: open reconnect episodes and for how long, pulls whose fetch failed and why,
//!   queue and dead-letter depths with the age of their oldest message, the last webhook.
//! - `redrive`: dead-lettered messages back to their queue (SQS's message move task; `--dry-run`
//!   lists what would move).
//! - `replay <dedupe key>`: re-runs a stored webhook through the same plan as intake.
//! - `tail`: recent deliveries and their outcome.
//! - `setup`, `doctor`, `ping` (in [`deploy`]): register the stack's webhook with each source's
//!   Canopy team and store its signing secret; check a deployed stack, one line per check;
//!   send the stack's webhook URL a signed harmless delivery and check it was recorded.
//!
//! Every command reads through Query, GetItem and SQS attributes: nothing scans the table.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use canopy_monitor::adapters::dynamo::operations::{Delivery, FailedFetch};
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::replay::{replay_stored_event, ReplayError, Replayed};
use canopy_monitor::domain::plan::PlanConfig;
use canopy_monitor::domain::time_fmt::{format_ts, parse_ts};
use canopy_monitor::domain::work::parse_message;
use canopy_monitor::domain::work::WorkMessage;
use canopy_monitor::ports::store::{MonitoringQuery, MonitoringStore};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Aws(String),
    #[error("stack {stack}: output {output} is missing (is it a canopy-monitor stack?)")]
    MissingOutput { stack: String, output: &'static str },
    #[error("stack {stack}: parameter {parameter} is missing (is it a canopy-monitor stack?)")]
    MissingParameter {
        stack: String,
        parameter: &'static str,
    },
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("{0} is not a dedupe key (v1: and 64 hex digits)")]
    BadKey(String),
    /// `setup`, `ping`: what went wrong and what to do.
    #[error("{0}")]
    Setup(String),
    /// The webhook URL refused a ping.
    #[error("{source_name}: the webhook URL answered {status} {text}")]
    PingRefused {
        source_name: String,
        status: u16,
        text: String,
    },
}

pub mod aws;
pub mod deploy;

/// An AWS call's error in one line: the service's code and message, or why the request
/// never got an answer (the chain of causes).
fn aws_error<E, R>(
    what: &str,
) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> OpsError + '_
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug,
{
    move |e| {
        let detail = match canopy_monitor::adapters::aws::port_error("AWS", e) {
            canopy_monitor::ports::PortError::Unavailable { detail, .. }
            | canopy_monitor::ports::PortError::Misconfigured { detail, .. } => detail,
        };
        OpsError::Aws(format!("{what}: {detail}"))
    }
}

/// The resources of one stack.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub name: String,
    pub table: String,
    pub fetch_queue_url: String,
    pub fetch_dlq_url: String,
    pub notify_queue_url: String,
    pub notify_dlq_url: String,
    /// The `meta_data` key naming a monitoring's owner, as the stack's functions read it
    /// (its `OwnerMetaDataKey` parameter): a replay must name the same owner intake did.
    pub owner_key: String,
    /// A stack on a local emulator: SQS message move tasks and CloudWatch are not there.
    pub local: bool,
}

/// The stack parameter that holds the owner key (template.yaml).
pub const OWNER_KEY_PARAMETER: &str = "OwnerMetaDataKey";

impl Stack {
    /// A deployed stack, by its name: its CloudFormation outputs, and the parameters the
    /// functions were given that the CLI must apply the same way.
    pub async fn deployed(aws: &aws_config::SdkConfig, name: &str) -> Result<Self, OpsError> {
        let stacks = aws_sdk_cloudformation::Client::new(aws)
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeStacks"))?;
        let stack = stacks.stacks().first();
        let outputs = stack.map(|s| s.outputs().to_vec()).unwrap_or_default();
        let owner_key = stack
            .map(|s| s.parameters())
            .unwrap_or_default()
            .iter()
            .find(|p| p.parameter_key() == Some(OWNER_KEY_PARAMETER))
            .and_then(|p| p.parameter_value())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(OpsError::MissingParameter {
                stack: name.to_owned(),
                parameter: OWNER_KEY_PARAMETER,
            })?;
        let output = |key: &'static str| {
            outputs
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .map(str::to_owned)
                .ok_or(OpsError::MissingOutput {
                    stack: name.to_owned(),
                    output: key,
                })
        };
        Ok(Self {
            name: name.to_owned(),
            table: output("StateTableName")?,
            fetch_queue_url: output("FetchQueueUrl")?,
            fetch_dlq_url: output("FetchDeadLetterQueueUrl")?,
            notify_queue_url: output("NotifyQueueUrl")?,
            notify_dlq_url: output("NotifyDeadLetterQueueUrl")?,
            owner_key,
            local: false,
        })
    }

    #[cfg(feature = "local")]
    /// The local stack (`canopy-local up`), or a test's: its functions use the default owner
    /// key, as the local runner does.
    pub fn local(name: &str, r: &devkit::resources::Resources) -> Self {
        Self {
            name: name.to_owned(),
            table: r.table_name.clone(),
            fetch_queue_url: r.fetch_queue_url.clone(),
            fetch_dlq_url: r.fetch_dlq_url.clone(),
            notify_queue_url: r.notify_queue_url.clone(),
            notify_dlq_url: r.notify_dlq_url.clone(),
            owner_key: canopy_monitor::domain::plan::DEFAULT_OWNER_KEY.to_owned(),
            local: true,
        }
    }
}

/// Which queue a redrive empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    Fetch,
    Notify,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenReconnect {
    pub monitoring_id: String,
    pub source: Option<String>,
    pub since: String,
    pub open_hours: f64,
    pub reconnect_pull_id: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueState {
    pub queue: &'static str,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Seconds; `None` when unknown (a live queue on the local emulator: CloudWatch only).
    pub oldest_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub stack: String,
    pub at: String,
    /// What needs an operator, per source (sandbox and production apart).
    pub sources: Vec<SourceSummary>,
    pub open_reconnects: Vec<OpenReconnect>,
    pub failed_fetches: Vec<FailedFetch>,
    pub queues: Vec<QueueState>,
    pub last_webhook: Option<Delivery>,
}

/// One source's share of [`Status`] (of the episodes and failures listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSummary {
    /// The source's name; records from before sources are the primary's.
    pub source: String,
    pub open_reconnects: usize,
    pub failed_fetches: usize,
}

/// The name shown for a record that names no source (written before sources existed).
pub const UNNAMED_SOURCE: &str = "(primary)";

/// Groups the listed episodes and failures by source, in name order.
pub fn by_source(open: &[OpenReconnect], failed: &[FailedFetch]) -> Vec<SourceSummary> {
    let mut counts: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for r in open {
        let name = r.source.as_deref().unwrap_or(UNNAMED_SOURCE).to_owned();
        counts.entry(name).or_default().0 += 1;
    }
    for f in failed {
        let name = f.source.as_deref().unwrap_or(UNNAMED_SOURCE).to_owned();
        counts.entry(name).or_default().1 += 1;
    }
    counts
        .into_iter()
        .map(
            |(source, (open_reconnects, failed_fetches))| SourceSummary {
                source,
                open_reconnects,
                failed_fetches,
            },
        )
        .collect()
}

/// A message a redrive moves (or would).
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub kind: String,
    pub pull_id: Option<String>,
    pub monitoring_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Redrive {
    pub queue: QueueName,
    pub dry_run: bool,
    /// Messages in the dead-letter queue before the redrive.
    pub waiting: u64,
    /// What was moved (local), or what would move (dry run, up to 10 listed).
    pub messages: Vec<Moved>,
    /// The SQS message move task (deployed stacks).
    pub task_handle: Option<String>,
}

pub struct Ops {
    pub stack: Stack,
    pub aws: aws_config::SdkConfig,
    /// How this stack is named on the command line: the start of every fix hint printed.
    pub invocation: String,
    /// The `--profile` and `--region` the operator gave, for the `aws ...` fix hints.
    aws_flags: String,
    store: DynamoStore,
    sqs: aws_sdk_sqs::Client,
}

fn hours_between(from: &str, now: time::OffsetDateTime) -> f64 {
    parse_ts(from)
        .map(|t| ((now - t).whole_seconds() as f64 / 360.0).round() / 10.0)
        .unwrap_or(0.0)
}

fn moved(body: &str) -> Moved {
    match parse_message(body) {
        Ok(WorkMessage::FetchPull(job)) => Moved {
            kind: "fetch_pull".into(),
            pull_id: Some(job.pull_id),
            monitoring_id: job.monitoring_id,
        },
        Ok(WorkMessage::NotifyReconnect(job)) => Moved {
            kind: "notify_reconnect".into(),
            pull_id: Some(job.pull_id),
            monitoring_id: Some(job.monitoring_id),
        },
        Err(_) => Moved {
            kind: "unreadable".into(),
            pull_id: None,
            monitoring_id: None,
        },
    }
}

impl Ops {
    pub fn new(aws: &aws_config::SdkConfig, stack: Stack) -> Self {
        Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), stack.table.clone()),
            sqs: aws_sdk_sqs::Client::new(aws),
            aws: aws.clone(),
            invocation: if stack.local {
                "canopy-ops --local".to_owned()
            } else {
                format!("canopy-ops --stack {}", aws::shell_word(&stack.name))
            },
            aws_flags: String::new(),
            stack,
        }
    }

    /// Fix hints name the stack, profile and region the operator named.
    pub fn with_options(mut self, options: &aws::AwsOptions) -> Self {
        self.invocation = options.invocation(&self.stack.name);
        self.aws_flags = options.aws_flags();
        self
    }

    /// An AWS CLI command as a fix hint: `aws <args>` with the operator's profile and region.
    pub(crate) fn aws_cli(&self, args: &str) -> String {
        format!("aws {args}{}", self.aws_flags)
    }

    fn queue_url(&self, q: QueueName, dead: bool) -> &str {
        match (q, dead) {
            (QueueName::Fetch, false) => &self.stack.fetch_queue_url,
            (QueueName::Fetch, true) => &self.stack.fetch_dlq_url,
            (QueueName::Notify, false) => &self.stack.notify_queue_url,
            (QueueName::Notify, true) => &self.stack.notify_dlq_url,
        }
    }

    /// Messages in a queue: visible and in flight.
    async fn queue_depth(&self, url: &str) -> Result<u64, OpsError> {
        use QueueAttributeName as A;
        let attrs = self.attributes(url).await?;
        let count = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(count(A::ApproximateNumberOfMessages) + count(A::ApproximateNumberOfMessagesNotVisible))
    }

    async fn attributes(
        &self,
        url: &str,
    ) -> Result<std::collections::HashMap<QueueAttributeName, String>, OpsError> {
        Ok(self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(aws_error("GetQueueAttributes"))?
            .attributes
            .unwrap_or_default())
    }

    /// Peeks at up to 10 messages without taking them. Only for dead-letter queues: each
    /// receive counts towards a live queue's redrive limit.
    async fn peek(&self, url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>, OpsError> {
        Ok(self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(aws_error("ReceiveMessage"))?
            .messages
            .unwrap_or_default())
    }

    /// A live queue's oldest message, from CloudWatch (deployed stacks only).
    async fn oldest_from_cloudwatch(&self, url: &str) -> Option<u64> {
        let name = url.rsplit('/').next()?;
        let now = std::time::SystemTime::now();
        let answer = aws_sdk_cloudwatch::Client::new(&self.aws)
            .get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("QueueName")
                    .value(name)
                    .build(),
            )
            .start_time((now - std::time::Duration::from_secs(900)).into())
            .end_time(now.into())
            .period(300)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await
            .ok()?;
        let mut points = answer.datapoints().to_vec();
        points.sort_by_key(|p| p.timestamp().map(|t| t.secs()));
        points.last().and_then(|p| p.maximum()).map(|m| m as u64)
    }

    async fn queue_state(
        &self,
        queue: &'static str,
        url: &str,
        dead: bool,
    ) -> Result<QueueState, OpsError> {
        use QueueAttributeName as A;
        let attrs = self.attributes(url).await?;
        let count = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        let oldest_age_secs = if dead {
            let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            self.peek(url)
                .await?
                .iter()
                .filter_map(|m| {
                    m.attributes()?
                        .get(&MessageSystemAttributeName::SentTimestamp)?
                        .parse::<i64>()
                        .ok()
                })
                .min()
                .map(|sent| u64::try_from((now_ms - sent) / 1000).unwrap_or(0))
        } else if self.stack.local {
            None
        } else {
            self.oldest_from_cloudwatch(url).await
        };
        Ok(QueueState {
            queue,
            visible: count(A::ApproximateNumberOfMessages),
            in_flight: count(A::ApproximateNumberOfMessagesNotVisible),
            delayed: count(A::ApproximateNumberOfMessagesDelayed),
            oldest_age_secs,
        })
    }

    pub async fn status(&self) -> Result<Status, OpsError> {
        let now = time::OffsetDateTime::now_utc();
        let reconnecting = self
            .store
            .list_monitorings(&MonitoringQuery {
                reconnect_needed: Some(true),
                limit: 100,
                ..MonitoringQuery::default()
            })
            .await
            .map_err(|e| OpsError::Aws(e.to_string()))?
            .map_err(|e| OpsError::Aws(e.to_string()))?;
        let open_reconnects = reconnecting
            .items
            .into_iter()
            .filter_map(|m| {
                let since = m.reconnect_needed_since.clone()?;
                Some(OpenReconnect {
                    open_hours: hours_between(&since, now),
                    since,
                    source: m.source,
                    monitoring_id: m.monitoring_id,
                    reconnect_pull_id: m.reconnect_pull_id,
                    owner: m.owner,
                })
            })
            .collect::<Vec<OpenReconnect>>();
        let failed_fetches = self
            .store
            .failed_fetches(50)
            .await
            .map_err(|e| OpsError::Aws(e.to_string()))?;
        let mut queues = Vec::new();
        for (name, url, dead) in [
            ("fetch", &self.stack.fetch_queue_url, false),
            ("fetch DLQ", &self.stack.fetch_dlq_url, true),
            ("notify", &self.stack.notify_queue_url, false),
            ("notify DLQ", &self.stack.notify_dlq_url, true),
        ] {
            queues.push(self.queue_state(name, url, dead).await?);
        }
        let last_webhook = self
            .store
            .recent_deliveries(now.date(), 7, 1)
            .await
            .map_err(|e| OpsError::Aws(e.to_string()))?
            .into_iter()
            .next();
        Ok(Status {
            stack: self.stack.name.clone(),
            at: format_ts(now),
            sources: by_source(&open_reconnects, &failed_fetches),
            open_reconnects,
            failed_fetches,
            queues,
            last_webhook,
        })
    }

    /// Moves `queue`'s dead-lettered messages back to it. Deployed: SQS's message move task
    /// (the messages keep their attributes, SQS paces the move). Local: the emulator has no move
    /// tasks, so each message is sent back and deleted from the dead-letter queue.
    pub async fn redrive(&self, queue: QueueName, dry_run: bool) -> Result<Redrive, OpsError> {
        let dlq = self.queue_url(queue, true).to_owned();
        let waiting = self
            .attributes(&dlq)
            .await?
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut report = Redrive {
            queue,
            dry_run,
            waiting,
            messages: Vec::new(),
            task_handle: None,
        };
        if dry_run {
            report.messages = self
                .peek(&dlq)
                .await?
                .iter()
                .map(|m| moved(m.body().unwrap_or("")))
                .collect();
            return Ok(report);
        }
        if !self.stack.local {
            let arn = |url: String| async move {
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .map_err(aws_error("GetQueueAttributes"))?
                    .attributes
                    .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                    .ok_or_else(|| OpsError::Aws("queue without an ARN".into()))
            };
            let source = arn(dlq.clone()).await?;
            let destination = arn(self.queue_url(queue, false).to_owned()).await?;
            let task = self
                .sqs
                .start_message_move_task()
                .source_arn(source)
                .destination_arn(destination)
                .send()
                .await
                .map_err(aws_error("StartMessageMoveTask"))?;
            report.task_handle = task.task_handle;
            return Ok(report);
        }
        let target = self.queue_url(queue, false).to_owned();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(aws_error("ReceiveMessage"))?
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(report);
            }
            for m in batch {
                let body = m.body().unwrap_or("").to_owned();
                self.sqs
                    .send_message()
                    .queue_url(&target)
                    .message_body(&body)
                    .set_message_attributes(m.message_attributes().cloned())
                    .send()
                    .await
                    .map_err(aws_error("SendMessage"))?;
                self.sqs
                    .delete_message()
                    .queue_url(&dlq)
                    .receipt_handle(m.receipt_handle().unwrap_or(""))
                    .send()
                    .await
                    .map_err(aws_error("DeleteMessage"))?;
                report.messages.push(moved(&body));
            }
        }
    }

    /// Re-runs stored webhook `key` through intake's plan (as the Monitoring API's replay),
    /// with the stack's owner key; an owner already stored is never replaced.
    pub async fn replay(&self, key: &str) -> Result<Replayed, OpsError> {
        let key = canopy_monitor::app::monitoring_api::validate_dedupe_key(key)
            .map_err(|_| OpsError::BadKey(key.to_owned()))?;
        let queue = SqsWorkQueue::new(
            self.sqs.clone(),
            self.stack.fetch_queue_url.clone(),
            self.stack.notify_queue_url.clone(),
        );
        let at = format_ts(time::OffsetDateTime::now_utc());
        let plan = PlanConfig {
            owner_key: self.stack.owner_key.clone(),
            ..PlanConfig::default()
        };
        Ok(replay_stored_event(&self.store, &queue, &key, &at, &plan).await?)
    }

    /// The newest deliveries, newest first.
    pub async fn tail(&self, limit: usize) -> Result<Vec<Delivery>, OpsError> {
        self.store
            .recent_deliveries(time::OffsetDateTime::now_utc().date(), 7, limit)
            .await
            .map_err(|e| OpsError::Aws(e.to_string()))
    }
}

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// `status` as a human reads it.
pub fn status_table(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "stack {} at {}", s.stack, s.at);
    let _ = writeln!(out, "\nBY SOURCE");
    let _ = writeln!(
        out,
        "  {:<20} {:>16} {:>15}",
        "SOURCE", "OPEN RECONNECTS", "FAILED FETCHES"
    );
    for src in &s.sources {
        let _ = writeln!(
            out,
            "  {:<20} {:>16} {:>15}",
            src.source, src.open_reconnects, src.failed_fetches
        );
    }
    if s.sources.is_empty() {
        let _ = writeln!(out, "  nothing open in any source");
    }
    let _ = writeln!(
        out,
        "\nOPEN RECONNECT EPISODES ({})",
        s.open_reconnects.len()
    );
    if !s.open_reconnects.is_empty() {
        let _ = writeln!(
            out,
            "  {:<38} {:<12} {:>9}  {:<25} OWNER",
            "MONITORING", "SOURCE", "OPEN (H)", "SINCE"
        );
    }
    for r in &s.open_reconnects {
        let _ = writeln!(
            out,
            "  {:<38} {:<12} {:>9.1}  {:<25} {}",
            r.monitoring_id,
            r.source.as_deref().unwrap_or(UNNAMED_SOURCE),
            r.open_hours,
            r.since,
            or_dash(r.owner.as_deref())
        );
    }
    let _ = writeln!(out, "\nFAILED FETCHES ({})", s.failed_fetches.len());
    if !s.failed_fetches.is_empty() {
        let _ = writeln!(
            out,
            "  {:<38} {:<12} {:<14} {:<25} MONITORING",
            "PULL", "SOURCE", "WHY", "AT"
        );
    }
    for f in &s.failed_fetches {
        let _ = writeln!(
            out,
            "  {:<38} {:<12} {:<14} {:<25} {}",
            f.pull_id,
            f.source.as_deref().unwrap_or(UNNAMED_SOURCE),
            f.code,
            f.failed_at,
            or_dash(f.monitoring_id.as_deref())
        );
    }
    let _ = writeln!(out, "\nQUEUES");
    let _ = writeln!(
        out,
        "  {:<11} {:>8} {:>10} {:>8} {:>12}",
        "QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED", "OLDEST (S)"
    );
    for q in &s.queues {
        let oldest = q.oldest_age_secs.map_or("-".to_owned(), |a| a.to_string());
        let _ = writeln!(
            out,
            "  {:<11} {:>8} {:>10} {:>8} {:>12}",
            q.queue, q.visible, q.in_flight, q.delayed, oldest
        );
    }
    let _ = writeln!(out, "\nLAST WEBHOOK");
    match &s.last_webhook {
        Some(d) => {
            let _ = writeln!(
                out,
                "  {} {} pull={} outcome={}",
                d.received_at,
                d.event_type,
                d.pull_id,
                or_dash(d.outcome.as_deref())
            );
        }
        None => {
            let _ = writeln!(out, "  none in the last 7 days");
        }
    }
    out
}

/// `tail` as a human reads it.
pub fn deliveries_table(ds: &[Delivery]) -> String {
    let mut out = format!(
        "{:<25} {:<22} {:<38} {:<10} {}\n",
        "RECEIVED", "EVENT", "PULL", "OUTCOME", "DEDUPE KEY"
    );
    for d in ds {
        let _ = writeln!(
            out,
            "{:<25} {:<22} {:<38} {:<10} {}",
            d.received_at,
            d.event_type,
            d.pull_id,
            d.outcome.as_deref().unwrap_or(&d.status),
            d.dedupe_key
        );
    }
    out
}

/// `redrive` as a human reads it.
pub fn redrive_table(r: &Redrive) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would move" } else { "moved" };
    let _ = writeln!(
        out,
        "{:?} dead-letter queue: {} waiting",
        r.queue, r.waiting
    );
    if let Some(task) = &r.task_handle {
        let _ = writeln!(out, "message move task started: {task}");
    }
    for m in &r.messages {
        let _ = writeln!(
            out,
            "  {verb} {} pull={} monitoring={}",
            m.kind,
            or_dash(m.pull_id.as_deref()),
            or_dash(m.monitoring_id.as_deref())
        );
    }
    out
}
