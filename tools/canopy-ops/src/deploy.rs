//! A first deploy in minutes: `setup` registers the stack's webhook with each source's Canopy
//! team and stores the signing secret Canopy returns; `doctor` checks a deployed stack, one
//! line per check with what to do when it fails; `ping` sends the stack's own webhook URL a
//! signed harmless delivery and checks it was recorded, then removes the record.

use crate::{aws_error, Ops, OpsError};
use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::domain::event::{parse_event, PING_EVENT_TYPE, PING_PULL_PREFIX};
use canopy_monitor::domain::signature::{sign, SigningSecrets, SIGNATURE_HEADER};
use canopy_monitor::domain::source::{parse_additional_sources, KeyType, SourceSpec};
use canopy_monitor::ports::canopy::{
    CanopyCredentials, CanopyError, WebhookRegistration, HANDLED_EVENT_TYPES,
    REGISTRABLE_EVENT_TYPES,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One source of a deployment and where its secrets are.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedSource {
    pub name: String,
    pub team_id: String,
    pub key_type: KeyType,
    pub api_secret_id: String,
    pub webhook_secret_id: String,
}

/// What `setup`, `doctor` and `ping` need to know of a stack beyond its table and queues.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub webhook_url: String,
    pub canopy_base_url: String,
    /// The primary first.
    pub sources: Vec<DeployedSource>,
    pub email_from: Option<String>,
    pub sms_enabled: bool,
    pub outbound_webhook_url: Option<String>,
    pub outbound_webhook_secret_id: Option<String>,
    pub alarm_topic_arn: Option<String>,
}

impl Deployment {
    /// A deployed stack's: its parameters and outputs (CloudFormation `DescribeStacks`).
    pub async fn deployed(aws: &aws_config::SdkConfig, name: &str) -> Result<Self, OpsError> {
        let stacks = aws_sdk_cloudformation::Client::new(aws)
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeStacks"))?;
        let stack = stacks.stacks().first();
        let outputs = stack.map(|s| s.outputs().to_vec()).unwrap_or_default();
        let parameters = stack.map(|s| s.parameters().to_vec()).unwrap_or_default();
        let output = |key: &'static str| {
            outputs
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let parameter = |key: &'static str| {
            parameters
                .iter()
                .find(|p| p.parameter_key() == Some(key))
                .and_then(|p| p.parameter_value())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let missing_output = |output: &'static str| OpsError::MissingOutput {
            stack: name.to_owned(),
            output,
        };
        let key_type: KeyType = parameter("CanopyKeyType")
            .unwrap_or_else(|| "production".to_owned())
            .parse()
            .map_err(|e: canopy_monitor::domain::source::SourceError| {
                OpsError::Setup(e.to_string())
            })?;
        let mut sources = vec![DeployedSource {
            name: parameter("CanopySourceName")
                .unwrap_or_else(|| canopy_monitor::domain::source::DEFAULT_PRIMARY_NAME.into()),
            team_id: parameter("CanopyTeamId").ok_or(OpsError::MissingParameter {
                stack: name.to_owned(),
                parameter: "CanopyTeamId",
            })?,
            key_type,
            api_secret_id: output("CanopyApiSecretArn")
                .ok_or_else(|| missing_output("CanopyApiSecretArn"))?,
            webhook_secret_id: output("WebhookSigningSecretArn")
                .ok_or_else(|| missing_output("WebhookSigningSecretArn"))?,
        }];
        let prefix = format!("{name}/sources/");
        for s in parse_additional_sources(&parameter("AdditionalSources").unwrap_or_default())
            .map_err(|e| OpsError::Setup(e.to_string()))?
        {
            sources.push(DeployedSource {
                api_secret_id: SourceSpec::additional_secret_name(&prefix, &s.name, "api"),
                webhook_secret_id: SourceSpec::additional_secret_name(&prefix, &s.name, "webhook"),
                name: s.name,
                team_id: s.team_id,
                key_type: s.key_type,
            });
        }
        Ok(Self {
            webhook_url: output("WebhookUrl").ok_or_else(|| missing_output("WebhookUrl"))?,
            canopy_base_url: parameter("CanopyBaseUrl")
                .unwrap_or_else(|| canopy_monitor::ports::canopy::DEFAULT_BASE_URL.to_owned()),
            sources,
            email_from: parameter("EmailFromAddress"),
            sms_enabled: parameter("SmsEnabled").as_deref() == Some("true"),
            outbound_webhook_url: parameter("OutboundWebhookUrl"),
            outbound_webhook_secret_id: output("OutboundWebhookSecretArn"),
            alarm_topic_arn: parameter("AlarmTopicArn").or_else(|| output("AlarmTopic")),
        })
    }

    #[cfg(feature = "local")]
    /// The local stack of `scripts/run-local.sh` (`canopy-local up`): its two sources (the
    /// fake Canopy's production and sandbox teams), intake at `webhook_url`.
    pub fn local(
        r: &devkit::resources::Resources,
        webhook_url: &str,
        canopy_base_url: &str,
    ) -> Self {
        let source =
            |name: &str, team: &str, key_type, api: String, webhook: String| DeployedSource {
                name: name.to_owned(),
                team_id: team.to_owned(),
                key_type,
                api_secret_id: api,
                webhook_secret_id: webhook,
            };
        let extra =
            |role| SourceSpec::additional_secret_name(&r.source_secret_prefix, "sandbox", role);
        Self {
            webhook_url: webhook_url.to_owned(),
            canopy_base_url: canopy_base_url.to_owned(),
            sources: vec![
                source(
                    "production",
                    canopy_sim::fixtures::TEAM_ID,
                    KeyType::Production,
                    r.canopy_api_secret_id.clone(),
                    r.webhook_secret_id.clone(),
                ),
                source(
                    "sandbox",
                    canopy_sim::fixtures::SANDBOX_TEAM_ID,
                    KeyType::Sandbox,
                    extra("api"),
                    extra("webhook"),
                ),
            ],
            email_from: Some(r.email_from.clone()),
            sms_enabled: false,
            outbound_webhook_url: None,
            outbound_webhook_secret_id: None,
            alarm_topic_arn: None,
        }
    }

    /// The sources a command works on: the one named, or all.
    pub fn chosen(&self, name: Option<&str>) -> Result<Vec<&DeployedSource>, OpsError> {
        match name {
            None => Ok(self.sources.iter().collect()),
            Some(n) => self
                .sources
                .iter()
                .find(|s| s.name == n)
                .map(|s| vec![s])
                .ok_or_else(|| {
                    OpsError::Setup(format!(
                        "the stack has no source {n:?} (it has: {})",
                        self.sources
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
        }
    }
}

/// What `setup` did for one source.
#[derive(Debug, Clone, Serialize)]
pub struct SetupOutcome {
    pub source: String,
    /// What changed, in order; empty when nothing had to.
    pub changes: Vec<String>,
    /// The registrations of this stack's URL when setup finished.
    pub webhook_ids: Vec<String>,
}

/// A check of `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
    /// The check could not be made (a call refused or failed): nothing is known.
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do when it fails.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Warn,
            ..Self::fail(name, detail, fix)
        }
    }
    fn error(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Error,
            ..Self::fail(name, detail, fix)
        }
    }
}

/// `doctor`'s exit code: 1 when a check failed, else 2 when one could not be made, else 0.
pub fn doctor_exit(checks: &[Check]) -> u8 {
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        1
    } else if checks.iter().any(|c| c.verdict == Verdict::Error) {
        2
    } else {
        0
    }
}

/// `doctor` as a human reads it: one line per check.
pub fn checks_table(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        };
        let _ = write!(out, "{verdict}  {}: {}", c.name, c.detail);
        if let (Some(fix), false) = (&c.fix, c.verdict == Verdict::Pass) {
            let _ = write!(out, " -> {fix}");
        }
        out.push('\n');
    }
    out
}

/// `setup` as a human reads it.
pub fn setup_table(outcomes: &[SetupOutcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        if o.changes.is_empty() {
            let _ = writeln!(
                out,
                "{}: already set up (webhook {}); nothing changed",
                o.source,
                o.webhook_ids.join(", ")
            );
        }
        for c in &o.changes {
            let _ = writeln!(out, "{}: {c}", o.source);
        }
    }
    out
}

/// What `ping` saw.
#[derive(Debug, Clone, Serialize)]
pub struct PingOutcome {
    pub source: String,
    pub status: u16,
    pub latency_ms: u64,
    pub dedupe_key: String,
    pub recorded: bool,
    pub removed: bool,
}

/// Secret values the template and the docs put in place before the real ones.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v == "set-me"
}

/// How long a rotation waits for intake to accept the new secret before it gives up (and
/// leaves both registrations, so nothing is refused): intake reads its secrets again within
/// [`canopy_monitor::ports::signing::MIN_RELOAD_INTERVAL`] of a miss.
pub const ROTATION_WAIT: Duration = Duration::from_secs(120);

/// How long `ping` keeps trying a 401: a secret `setup` just stored reaches intake within its
/// reload interval.
pub const PING_PATIENCE: Duration = Duration::from_secs(25);

/// A registration of `url`? Canopy may store the URL with or without a trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl Ops {
    async fn secret(&self, id: &str) -> Result<Option<String>, OpsError> {
        match aws_sdk_secretsmanager::Client::new(&self.aws)
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
        {
            Ok(v) => Ok(v.secret_string().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("GetSecretValue")(e)),
        }
    }

    async fn put_secret(&self, id: &str, value: String) -> Result<(), OpsError> {
        aws_sdk_secretsmanager::Client::new(&self.aws)
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .map_err(aws_error("PutSecretValue"))?;
        Ok(())
    }

    /// The source's Canopy client, with its keys from its secret.
    async fn canopy(&self, d: &Deployment, s: &DeployedSource) -> Result<CanopyClient, OpsError> {
        let value = self.secret(&s.api_secret_id).await?.unwrap_or_default();
        let credentials: CanopyCredentials = serde_json::from_str(&value)
            .ok()
            .filter(|c: &CanopyCredentials| {
                !is_placeholder(&c.client_id) && !is_placeholder(&c.client_secret)
            })
            .ok_or_else(|| {
                OpsError::Setup(format!(
                    "{}: put the Canopy keys into {} first: {{\"client_id\": \"...\", \"client_secret\": \"...\"}}",
                    s.name, s.api_secret_id
                ))
            })?;
        CanopyClient::new(
            &d.canopy_base_url,
            &s.team_id,
            credentials,
            Duration::from_secs(10),
        )
        .map_err(|e| OpsError::Setup(e.to_string()))
    }

    fn canopy_error(s: &DeployedSource, what: &str) -> impl FnOnce(CanopyError) -> OpsError {
        let context = format!("{} ({}): {what}", s.name, s.key_type);
        move |e| OpsError::Setup(format!("{context}: {e}"))
    }

    /// Registers the stack's webhook URL with each chosen source's team (or updates its
    /// event types), and stores the signing secret. Idempotent. With `rotate`, a new
    /// registration replaces the old one, both secrets valid until the old one is deleted.
    pub async fn setup(
        &self,
        d: &Deployment,
        source: Option<&str>,
        rotate: bool,
    ) -> Result<Vec<SetupOutcome>, OpsError> {
        let mut outcomes = Vec::new();
        for s in d.chosen(source)? {
            let canopy = self.canopy(d, s).await?;
            let ours: Vec<WebhookRegistration> = canopy
                .list_webhooks()
                .await
                .map_err(Self::canopy_error(s, "listing webhooks"))?
                .into_iter()
                .filter(|h| same_url(&h.url, &d.webhook_url))
                .collect();
            outcomes.push(if rotate {
                self.rotate(d, s, &canopy, ours).await?
            } else {
                self.register(d, s, &canopy, ours).await?
            });
        }
        Ok(outcomes)
    }

    async fn register(
        &self,
        d: &Deployment,
        s: &DeployedSource,
        canopy: &CanopyClient,
        ours: Vec<WebhookRegistration>,
    ) -> Result<SetupOutcome, OpsError> {
        let mut changes = Vec::new();
        let registrations = if ours.is_empty() {
            let new = canopy
                .register_webhook(&d.webhook_url, HANDLED_EVENT_TYPES)
                .await
                .map_err(Self::canopy_error(s, "registering the webhook"))?;
            changes.push(format!(
                "registered webhook {} for {} ({})",
                new.webhook_id,
                d.webhook_url,
                HANDLED_EVENT_TYPES.join(", ")
            ));
            vec![(new.webhook_id, new.signing_secret)]
        } else {
            for h in &ours {
                if !h.is_active || !h.sends(HANDLED_EVENT_TYPES) {
                    let types = wanted_types(&h.event_types);
                    canopy
                        .update_webhook(&h.webhook_id, &types, true)
                        .await
                        .map_err(Self::canopy_error(s, "updating the webhook"))?;
                    changes.push(format!(
                        "updated webhook {}: active, event types {}",
                        h.webhook_id,
                        types.join(", ")
                    ));
                }
            }
            if ours.len() > 1 {
                changes.push(format!(
                    "note: {} registrations of this URL (a rotation that did not finish): both secrets kept; `setup --rotate` leaves one",
                    ours.len()
                ));
            }
            ours.iter()
                .take(2)
                .map(|h| (h.webhook_id.clone(), h.signing_secret.clone()))
                .collect()
        };
        let wanted: Vec<&str> = registrations.iter().map(|(_, s)| s.as_str()).collect();
        let stored = self.secret(&s.webhook_secret_id).await?;
        if !stores_all(stored.as_deref(), &wanted) {
            self.put_secret(&s.webhook_secret_id, secret_value(&wanted))
                .await?;
            changes.push(format!(
                "stored the signing secret in {}",
                s.webhook_secret_id
            ));
        }
        Ok(SetupOutcome {
            source: s.name.clone(),
            changes,
            webhook_ids: registrations.into_iter().map(|(id, _)| id).collect(),
        })
    }

    async fn rotate(
        &self,
        d: &Deployment,
        s: &DeployedSource,
        canopy: &CanopyClient,
        old: Vec<WebhookRegistration>,
    ) -> Result<SetupOutcome, OpsError> {
        let mut changes = Vec::new();
        let new = canopy
            .register_webhook(&d.webhook_url, HANDLED_EVENT_TYPES)
            .await
            .map_err(Self::canopy_error(s, "registering the new webhook"))?;
        changes.push(format!("registered webhook {}", new.webhook_id));
        // Both valid from here: Canopy signs each event's copy for each registration.
        let mut both = vec![new.signing_secret.as_str()];
        // The registration Canopy delivers through now (an inactive leftover signs nothing).
        let current = old.iter().find(|h| h.is_active).or(old.first());
        both.extend(current.map(|h| h.signing_secret.as_str()));
        self.put_secret(&s.webhook_secret_id, secret_value(&both))
            .await?;
        changes.push("stored the new and the old signing secrets".to_owned());
        // The old registration goes only once intake verifies the new secret.
        let started = tokio::time::Instant::now();
        loop {
            match self.ping_with(d, s, &new.signing_secret).await {
                Ok(_) => break,
                Err(e) if started.elapsed() < ROTATION_WAIT => {
                    tracing::info!(error = %e, "intake does not accept the new secret yet");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(OpsError::Setup(format!(
                        "{}: intake did not accept the new secret within {ROTATION_WAIT:?} ({e}); both registrations and both secrets are kept: run `setup --rotate` again later",
                        s.name
                    )))
                }
            }
        }
        changes.push("intake verified a delivery signed with the new secret".to_owned());
        for h in &old {
            canopy
                .delete_webhook(&h.webhook_id)
                .await
                .map_err(Self::canopy_error(s, "deleting the old webhook"))?;
            changes.push(format!("deleted the old webhook {}", h.webhook_id));
        }
        // The old secret stays valid: Canopy may still retry deliveries the old registration
        // made (for up to about 7 hours).
        changes.push(format!(
            "kept the old signing secret for retries already in flight: after 8 hours, `canopy-ops setup --source {} --drop-previous`",
            s.name
        ));
        Ok(SetupOutcome {
            source: s.name.clone(),
            changes,
            webhook_ids: vec![new.webhook_id],
        })
    }

    /// Drops the previous signing secret a rotation kept, for each chosen source.
    pub async fn drop_previous(
        &self,
        d: &Deployment,
        source: Option<&str>,
    ) -> Result<Vec<SetupOutcome>, OpsError> {
        let mut outcomes = Vec::new();
        for s in d.chosen(source)? {
            let stored = self.secret(&s.webhook_secret_id).await?.unwrap_or_default();
            let secrets = SigningSecrets::from_secret_string(&stored).map_err(|e| {
                OpsError::Setup(format!("{}: {}: {e}", s.name, s.webhook_secret_id))
            })?;
            let mut changes = Vec::new();
            if secrets.len() > 1 {
                self.put_secret(&s.webhook_secret_id, secrets.current().to_owned())
                    .await?;
                changes.push("dropped the previous signing secret".to_owned());
            }
            outcomes.push(SetupOutcome {
                source: s.name.clone(),
                changes,
                webhook_ids: Vec::new(),
            });
        }
        Ok(outcomes)
    }

    /// Sends the stack's webhook URL a signed harmless delivery (an event type no function
    /// acts on: nothing is fetched or notified), checks it was recorded, then removes it.
    pub async fn ping(
        &self,
        d: &Deployment,
        source: Option<&str>,
    ) -> Result<Vec<PingOutcome>, OpsError> {
        let mut outcomes = Vec::new();
        for s in d.chosen(source)? {
            let stored = self.secret(&s.webhook_secret_id).await?.unwrap_or_default();
            let secrets = SigningSecrets::from_secret_string(&stored).map_err(|e| {
                OpsError::Setup(format!("{}: {}: {e}", s.name, s.webhook_secret_id))
            })?;
            // A secret stored moments ago is read by intake within its reload interval.
            let started = tokio::time::Instant::now();
            loop {
                match self.ping_with(d, s, secrets.current()).await {
                    Err(OpsError::PingRefused { status: 401, .. })
                        if started.elapsed() < PING_PATIENCE =>
                    {
                        tokio::time::sleep(Duration::from_secs(2)).await
                    }
                    other => {
                        outcomes.push(other?);
                        break;
                    }
                }
            }
        }
        Ok(outcomes)
    }

    async fn ping_with(
        &self,
        d: &Deployment,
        s: &DeployedSource,
        secret: &str,
    ) -> Result<PingOutcome, OpsError> {
        let pull_id = format!("{PING_PULL_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let body = serde_json::to_vec(&serde_json::json!({
            "event_type": PING_EVENT_TYPE,
            "pull_id": pull_id,
            "team_id": s.team_id,
        }))
        .map_err(|e| OpsError::Setup(e.to_string()))?;
        let dedupe_key = parse_event(&body)
            .map_err(|e| OpsError::Setup(e.to_string()))?
            .dedupe_key;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let started = std::time::Instant::now();
        let answer = reqwest::Client::new()
            .post(&d.webhook_url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sign(&body, secret, now))
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OpsError::Setup(format!("POST {}: {e}", d.webhook_url)))?;
        let status = answer.status().as_u16();
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if status != 200 {
            let text = answer.text().await.unwrap_or_default();
            return Err(OpsError::PingRefused {
                source_name: s.name.clone(),
                status,
                text,
            });
        }
        let recorded =
            canopy_monitor::ports::store::MonitoringStore::stored_event(&self.store, &dedupe_key)
                .await
                .map_err(|e| OpsError::Aws(e.to_string()))?
                .is_some_and(|e| e.completed && e.source.as_deref() == Some(s.name.as_str()));
        self.store
            .remove_ping(&dedupe_key, &pull_id)
            .await
            .map_err(|e| OpsError::Aws(e.to_string()))?;
        if !recorded {
            return Err(OpsError::Setup(format!(
                "{}: the delivery was answered 200 but not recorded as this source's in {}",
                s.name, self.stack.table
            )));
        }
        Ok(PingOutcome {
            source: s.name.clone(),
            status,
            latency_ms,
            dedupe_key,
            recorded,
            removed: true,
        })
    }

    /// Checks a deployed stack; see [`checks_table`].
    /// The hint that puts a source's Canopy keys in place: the file the README's deploy steps
    /// write (`{"client_id": "...", "client_secret": "..."}`).
    fn put_keys(&self, secret_id: &str) -> String {
        self.aws_cli(&format!(
            "secretsmanager put-secret-value --secret-id {} --secret-string file://canopy-keys.json",
            crate::aws::shell_word(secret_id)
        ))
    }

    /// The hint of a check that could not read the table: who am I, and is the table there.
    fn describe_table(&self) -> String {
        self.aws_cli(&format!(
            "dynamodb describe-table --table-name {}",
            crate::aws::shell_word(&self.stack.table)
        ))
    }

    pub async fn doctor(&self, d: &Deployment) -> Vec<Check> {
        let mut checks = Vec::new();
        for s in &d.sources {
            self.check_source(d, s, &mut checks).await;
        }
        checks.push(self.check_channels(d).await);
        if let Some(from) = &d.email_from {
            checks.push(self.check_email_identity(from).await);
        }
        if d.sms_enabled {
            checks.push(self.check_sms().await);
        }
        if d.outbound_webhook_url.is_some() {
            checks.push(self.check_outbound_secret(d).await);
        }
        checks.push(self.check_alarm_topic(d).await);
        checks.push(self.check_dead_letters().await);
        checks.push(self.check_outbox().await);
        checks.push(self.check_last_webhook().await);
        checks
    }

    async fn check_source(&self, d: &Deployment, s: &DeployedSource, checks: &mut Vec<Check>) {
        let tag = |what: &str| format!("{what} ({})", s.name);
        let canopy = match self.canopy(d, s).await {
            Ok(c) => c,
            // The secret could not be read (no permission, throttled): nothing is known of it.
            Err(e @ OpsError::Aws(_)) => {
                checks.push(Check::error(
                    tag("keys"),
                    e.to_string(),
                    self.aws_cli(&format!(
                        "secretsmanager describe-secret --secret-id {}",
                        crate::aws::shell_word(&s.api_secret_id)
                    )),
                ));
                return;
            }
            Err(e) => {
                checks.push(Check::fail(
                    tag("keys"),
                    e.to_string(),
                    self.put_keys(&s.api_secret_id),
                ));
                return;
            }
        };
        checks.push(Check::pass(
            tag("keys"),
            format!("set in {}", s.api_secret_id),
        ));
        // The cheapest authenticated call, and the one the next checks need.
        let hooks = match canopy.list_webhooks().await {
            Ok(h) => {
                checks.push(Check::pass(
                    tag("Canopy accepts the keys"),
                    format!("team {} ({})", s.team_id, s.key_type),
                ));
                h
            }
            // Canopy did not answer: the keys may be fine.
            Err(e @ CanopyError::RetryLater { .. }) => {
                checks.push(Check::error(
                    tag("Canopy accepts the keys"),
                    format!("GET /teams/{}/webhooks: {e}", s.team_id),
                    format!("{} doctor", self.invocation),
                ));
                return;
            }
            Err(e) => {
                checks.push(Check::fail(
                    tag("Canopy accepts the keys"),
                    format!("GET /teams/{}/webhooks: {e}", s.team_id),
                    self.put_keys(&s.api_secret_id),
                ));
                return;
            }
        };
        let ours: Vec<&WebhookRegistration> = hooks
            .iter()
            .filter(|h| same_url(&h.url, &d.webhook_url))
            .collect();
        let setup = format!(
            "{} setup --source {}",
            self.invocation,
            crate::aws::shell_word(&s.name)
        );
        // Canopy says which kind of keys listed these: it must be the declared key type, or
        // the alarms would page for the wrong one.
        let sandbox = s.key_type == KeyType::Sandbox;
        if let Some(h) = hooks.iter().find(|h| h.is_sandbox != sandbox) {
            checks.push(Check::fail(
                tag("key type"),
                format!(
                    "declared {}, but Canopy lists webhook {} as {}",
                    s.key_type,
                    h.webhook_id,
                    if h.is_sandbox {
                        "sandbox"
                    } else {
                        "production"
                    }
                ),
                self.put_keys(&s.api_secret_id),
            ));
        }
        match ours
            .iter()
            .find(|h| h.is_active && h.sends(HANDLED_EVENT_TYPES))
        {
            Some(h) => checks.push(Check::pass(
                tag("webhook registered"),
                format!("{} -> {}", h.webhook_id, d.webhook_url),
            )),
            None if ours.is_empty() => checks.push(Check::fail(
                tag("webhook registered"),
                format!("no registration for {}", d.webhook_url),
                setup.clone(),
            )),
            None => checks.push(Check::fail(
                tag("webhook registered"),
                "registered, but inactive or without the event types this stack handles".to_owned(),
                setup.clone(),
            )),
        }
        let stored = self.secret(&s.webhook_secret_id).await.ok().flatten();
        let wanted: Vec<&str> = ours.iter().map(|h| h.signing_secret.as_str()).collect();
        checks.push(if !wanted.is_empty() && stores_all(stored.as_deref(), &wanted) {
            Check::pass(
                tag("signing secret"),
                format!("{} holds the registration's", s.webhook_secret_id),
            )
        } else {
            Check::fail(
                tag("signing secret"),
                format!(
                    "{} does not hold the registration's signing secret: every delivery would be refused with 401",
                    s.webhook_secret_id
                ),
                setup,
            )
        });
    }

    async fn check_channels(&self, d: &Deployment) -> Check {
        let mut on = Vec::new();
        if d.email_from.is_some() {
            on.push("email");
        }
        if d.sms_enabled {
            on.push("sms");
        }
        if d.outbound_webhook_url.is_some() {
            on.push("webhook");
        }
        if on.is_empty() {
            Check::fail(
                "notice channels",
                "none configured: reconnect notices are recorded as unsent",
                format!(
                    "sam deploy --stack-name {} --parameter-overrides SmsEnabled=true",
                    crate::aws::shell_word(&self.stack.name)
                ),
            )
        } else {
            Check::pass("notice channels", on.join(", "))
        }
    }

    async fn check_email_identity(&self, from: &str) -> Check {
        let identity = from.rsplit('@').next().unwrap_or(from);
        let ses = aws_sdk_sesv2::Client::new(&self.aws);
        let mut verified = false;
        for candidate in [from, identity] {
            if let Ok(answer) = ses
                .get_email_identity()
                .email_identity(candidate)
                .send()
                .await
            {
                // Either says so: `VerificationStatus` is the newer field.
                verified |= answer.verified_for_sending_status()
                    || answer.verification_status()
                        == Some(&aws_sdk_sesv2::types::VerificationStatus::Success);
            }
        }
        if verified {
            Check::pass("SES sender", format!("{from} is verified"))
        } else {
            Check::fail(
                "SES sender",
                format!("{from} is not a verified SES identity: email notices would fail"),
                self.aws_cli(&format!(
                    "sesv2 create-email-identity --email-identity {}",
                    crate::aws::shell_word(from)
                )),
            )
        }
    }

    async fn check_sms(&self) -> Check {
        let answer = aws_sdk_sns::Client::new(&self.aws)
            .get_sms_attributes()
            .attributes("MonthlySpendLimit")
            .send()
            .await;
        let limit = answer
            .ok()
            .and_then(|a| {
                a.attributes()
                    .and_then(|m| m.get("MonthlySpendLimit").cloned())
            })
            .and_then(|v| v.parse::<f64>().ok());
        match limit {
            Some(l) if l > 1.0 => Check::pass("SMS spend limit", format!("USD {l} a month")),
            other => Check::fail(
                "SMS spend limit",
                format!(
                    "USD {} a month (the account default): SMS stops after about a hundred messages",
                    other.unwrap_or(1.0)
                ),
                self.aws_cli("sns set-sms-attributes --attributes MonthlySpendLimit=10"),
            ),
        }
    }

    async fn check_outbound_secret(&self, d: &Deployment) -> Check {
        let Some(id) = &d.outbound_webhook_secret_id else {
            return Check::fail(
                "outbound webhook secret",
                "the stack names no secret for the outbound webhook",
                format!(
                    "sam deploy --stack-name {}",
                    crate::aws::shell_word(&self.stack.name)
                ),
            );
        };
        match self.secret(id).await {
            Ok(Some(v)) if v.trim().starts_with("whsec_") => {
                Check::pass("outbound webhook secret", format!("set in {id}"))
            }
            _ => Check::fail(
                "outbound webhook secret",
                format!("{id} holds no Standard Webhooks secret (whsec_...)"),
                self.aws_cli(&format!(
                    "secretsmanager put-secret-value --secret-id {} --secret-string \"whsec_$(openssl rand -base64 32)\"",
                    crate::aws::shell_word(id)
                )),
            ),
        }
    }

    async fn check_alarm_topic(&self, d: &Deployment) -> Check {
        let Some(topic) = &d.alarm_topic_arn else {
            return Check::fail(
                "alarm subscription",
                "no alarm topic",
                format!(
                    "sam deploy --stack-name {} --parameter-overrides AlarmEmail=\"$ALARM_EMAIL\"",
                    crate::aws::shell_word(&self.stack.name)
                ),
            );
        };
        let subs = aws_sdk_sns::Client::new(&self.aws)
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .send()
            .await;
        let confirmed = subs
            .map(|s| {
                s.subscriptions()
                    .iter()
                    .filter(|x| x.subscription_arn().is_some_and(|a| a.starts_with("arn:")))
                    .count()
            })
            .unwrap_or(0);
        if confirmed > 0 {
            Check::pass(
                "alarm subscription",
                format!("{confirmed} confirmed on {topic}"),
            )
        } else {
            Check::fail(
                "alarm subscription",
                format!("no confirmed subscription on {topic}: alarms reach no one"),
                self.aws_cli(&format!(
                    "sns subscribe --topic-arn {} --protocol email --notification-endpoint \"$ALARM_EMAIL\"",
                    crate::aws::shell_word(topic)
                )),
            )
        }
    }

    async fn check_dead_letters(&self) -> Check {
        let mut waiting = Vec::new();
        for (name, url) in [
            ("fetch", &self.stack.fetch_dlq_url),
            ("notify", &self.stack.notify_dlq_url),
        ] {
            match self.queue_depth(url).await {
                Ok(0) => {}
                Ok(n) => waiting.push(format!("{n} in the {name} DLQ")),
                Err(e) => {
                    return Check::error(
                        "dead-letter queues",
                        format!("the {name} DLQ is unreadable: {e}"),
                        self.aws_cli(&format!(
                            "sqs get-queue-attributes --queue-url {} --attribute-names All",
                            crate::aws::shell_word(url)
                        )),
                    )
                }
            }
        }
        if waiting.is_empty() {
            Check::pass("dead-letter queues", "empty")
        } else {
            Check::fail(
                "dead-letter queues",
                waiting.join(", "),
                format!(
                    "{} redrive --queue {} --dry-run",
                    self.invocation,
                    if waiting.iter().any(|w| w.contains("fetch")) {
                        "fetch"
                    } else {
                        "notify"
                    }
                ),
            )
        }
    }

    async fn check_outbox(&self) -> Check {
        use canopy_monitor::ports::store::OutboxStore;
        let cutoff = canopy_monitor::domain::time_fmt::format_ts(
            time::OffsetDateTime::now_utc() - time::Duration::minutes(15),
        );
        let mut stuck = 0;
        for shard in 0..canopy_monitor::domain::shard::SHARDS {
            match self.store.pending(shard, &cutoff, 1, None).await {
                Ok(page) => stuck += page.items.len(),
                Err(e) => {
                    return Check::error(
                        "outbox",
                        format!("unreadable: {e}"),
                        self.describe_table(),
                    )
                }
            }
        }
        if stuck == 0 {
            Check::pass("outbox", "no business event waiting over 15 minutes")
        } else {
            Check::fail(
                "outbox",
                format!("business events waiting over 15 minutes (at least {stuck} items)"),
                "see the runbook \"Events waiting\" (docs/operations.md)",
            )
        }
    }

    async fn check_last_webhook(&self) -> Check {
        let now = time::OffsetDateTime::now_utc();
        match self.store.recent_deliveries(now.date(), 7, 1).await {
            Ok(d) => match d.first() {
                Some(last) => Check::pass(
                    "last webhook",
                    format!(
                        "{} {} ({:.1} h ago)",
                        last.received_at,
                        last.event_type,
                        crate::hours_between(&last.received_at, now)
                    ),
                ),
                None => Check::warn(
                    "last webhook",
                    "none in the last 7 days",
                    format!("{} ping", self.invocation),
                ),
            },
            Err(e) => Check::error(
                "last webhook",
                format!("unreadable: {e}"),
                self.describe_table(),
            ),
        }
    }
}

/// The event types to keep on a registration: what it had (registrable only) and ours.
pub fn wanted_types(had: &[String]) -> Vec<&'static str> {
    REGISTRABLE_EVENT_TYPES
        .iter()
        .copied()
        .filter(|t| HANDLED_EVENT_TYPES.contains(t) || had.iter().any(|h| h == t))
        .collect()
}

/// Whether the stored signing secret value holds each of `wanted`.
pub fn stores_all(stored: Option<&str>, wanted: &[&str]) -> bool {
    let Some(held) = stored.and_then(|v| SigningSecrets::from_secret_string(v).ok()) else {
        return false;
    };
    wanted.iter().all(|w| held.contains(w))
}

/// The secret's value for `secrets`: the one, or the newest as `current` and the next as
/// `previous`.
pub fn secret_value(secrets: &[&str]) -> String {
    match secrets {
        [one] => (*one).to_owned(),
        [current, previous, ..] => {
            serde_json::json!({"current": current, "previous": previous}).to_string()
        }
        [] => String::new(),
    }
}
