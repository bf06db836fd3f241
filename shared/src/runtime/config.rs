//! Configuration from environment variables (set by template.yaml, documented in
//! docs/configuration.md).
//! Read once per cold start; a missing or malformed value stops the start with a clear error.

use crate::app::intake::IntakeConfig;
use crate::domain::plan::PlanConfig;
pub use crate::domain::source::SourceSpec;
use crate::domain::source::{parse_additional_sources, KeyType, Source, DEFAULT_PRIMARY_NAME};
use crate::ports::ConfigError;
use std::str::FromStr;
use std::time::Duration;

thread_local! {
    /// [`read_from`]'s variables and the names read, on this thread.
    static READING: std::cell::RefCell<Option<Reading>> = const { std::cell::RefCell::new(None) };
}

struct Reading {
    vars: std::collections::HashMap<String, String>,
    read: Vec<&'static str>,
}

/// The one place a variable is read: the process environment, or [`read_from`]'s.
fn lookup(name: &'static str) -> Option<String> {
    let overridden = READING.with(|r| {
        r.borrow_mut().as_mut().map(|reading| {
            reading.read.push(name);
            reading.vars.get(name).cloned()
        })
    });
    match overridden {
        Some(value) => value,
        None => std::env::var(name).ok(),
    }
}

/// Runs `read` (a function's `from_env`) against `vars` instead of the process environment,
/// on this thread, and returns what it read by name: the test that each function reads only
/// what template.yaml gives it (tests/integration/environment.rs) uses it.
pub fn read_from<T>(
    vars: std::collections::HashMap<String, String>,
    read: impl FnOnce() -> T,
) -> (T, Vec<&'static str>) {
    READING.with(|r| {
        *r.borrow_mut() = Some(Reading {
            vars,
            read: Vec::new(),
        })
    });
    let value = read();
    let names = READING
        .with(|r| r.borrow_mut().take())
        .map(|r| r.read)
        .unwrap_or_default();
    (value, names)
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable parsed as `T`, or `default` when unset or empty.
pub fn parsed_or<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                detail: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// Which of a source's two secrets a function reads: intake only the webhook signing
/// secret(s), the others only the API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretRole {
    /// `{"client_id": ..., "client_secret": ...}`.
    Api,
    /// The webhook signing secret: plain, or `{"current": ..., "previous": ...}`.
    Webhook,
}

impl SecretRole {
    /// The primary source's variable (a single-source stack's, unchanged since before sources).
    fn primary_var(self) -> &'static str {
        match self {
            SecretRole::Api => "CANOPY_API_SECRET_ID",
            SecretRole::Webhook => "WEBHOOK_SECRET_ID",
        }
    }

    /// The suffix of an additional source's secret name.
    pub fn suffix(self) -> &'static str {
        match self {
            SecretRole::Api => "api",
            SecretRole::Webhook => "webhook",
        }
    }
}

/// The sources of this deployment, the primary first, with the secret of `role` for each.
pub fn sources_from_env(role: SecretRole) -> Result<Vec<SourceSpec>, ConfigError> {
    let invalid = |name: &'static str| {
        move |e: crate::domain::source::SourceError| ConfigError::Invalid {
            name,
            detail: e.to_string(),
        }
    };
    let key_type: KeyType = match optional("CANOPY_KEY_TYPE") {
        Some(v) => v.parse().map_err(invalid("CANOPY_KEY_TYPE"))?,
        None => KeyType::Production,
    };
    let name = optional("CANOPY_SOURCE_NAME").unwrap_or_else(|| DEFAULT_PRIMARY_NAME.to_owned());
    let primary = Source::new(name.trim(), &required("CANOPY_TEAM_ID")?, key_type)
        .map_err(invalid("CANOPY_SOURCE_NAME"))?;
    let mut specs = vec![SourceSpec {
        source: primary,
        secret_id: required(role.primary_var())?,
    }];
    let additional =
        parse_additional_sources(&optional("CANOPY_ADDITIONAL_SOURCES").unwrap_or_default())
            .map_err(invalid("CANOPY_ADDITIONAL_SOURCES"))?;
    if !additional.is_empty() {
        let prefix = required("SOURCE_SECRET_PREFIX")?;
        for source in additional {
            let secret_id =
                SourceSpec::additional_secret_name(&prefix, &source.name, role.suffix());
            specs.push(SourceSpec { source, secret_id });
        }
    }
    // Names must be unique (the check lives with `Sources`).
    crate::domain::source::Sources::new(specs.iter().map(|s| (s.source.clone(), ())).collect())
        .map_err(invalid("CANOPY_ADDITIONAL_SOURCES"))?;
    Ok(specs)
}

/// Everything webhook-intake reads from its environment.
#[derive(Debug, Clone)]
pub struct IntakeEnv {
    pub table_name: String,
    pub fetch_queue_url: String,
    pub notify_queue_url: String,
    /// Each source with the secret holding its webhook signing secret(s).
    pub sources: Vec<SourceSpec>,
    /// How often the signing secrets may be read again (see [`crate::ports::signing`]).
    pub secrets_reload: Duration,
    pub intake: IntakeConfig,
}

impl IntakeEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = IntakeConfig::default();
        let fallback = parsed_or(
            "FETCH_FALLBACK_DELAY_SECONDS",
            defaults.plan.fetch_fallback_delay.as_secs(),
        )?;
        if fallback > 900 {
            return Err(ConfigError::Invalid {
                name: "FETCH_FALLBACK_DELAY_SECONDS",
                detail: "SQS delays are at most 900 seconds".into(),
            });
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            notify_queue_url: required("NOTIFY_QUEUE_URL")?,
            sources: sources_from_env(SecretRole::Webhook)?,
            secrets_reload: crate::ports::signing::MIN_RELOAD_INTERVAL,
            intake: IntakeConfig {
                tolerance_secs: parsed_or("SIGNATURE_TOLERANCE_SECONDS", defaults.tolerance_secs)?,
                retention: Duration::from_secs(
                    3600 * parsed_or("EVENT_RETENTION_HOURS", defaults.retention.as_secs() / 3600)?,
                ),
                plan: PlanConfig {
                    fetch_fallback_delay: Duration::from_secs(fallback),
                    owner_key: parsed_or("OWNER_META_DATA_KEY", defaults.plan.owner_key)?,
                },
                ..defaults
            },
        })
    }
}

/// How to reach Canopy's API.
#[derive(Debug, Clone)]
pub struct CanopyEnv {
    pub base_url: String,
    /// Each source with the secret `{"client_id": "...", "client_secret": "..."}` of its keys.
    pub sources: Vec<SourceSpec>,
    pub timeout: Duration,
}

impl CanopyEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: parsed_or(
                "CANOPY_BASE_URL",
                crate::ports::canopy::DEFAULT_BASE_URL.to_owned(),
            )?,
            sources: sources_from_env(SecretRole::Api)?,
            timeout: canopy_timeout()?,
        })
    }
}

#[cfg(all(feature = "secrets", feature = "http"))]
impl CanopyEnv {
    /// The Canopy API clients of a function, one per source: credentials from Secrets
    /// Manager, the rest from the environment.
    pub async fn clients(
        &self,
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<
        crate::domain::source::Sources<crate::adapters::canopy_http::CanopyClient>,
        ConfigError,
    > {
        self.clients_with(self.credentials(secrets).await?)
    }

    /// Each source's API credentials, the primary first.
    pub async fn credentials(
        &self,
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<crate::domain::source::Sources<crate::ports::canopy::CanopyCredentials>, ConfigError>
    {
        let loaded = crate::adapters::secrets::load_for_sources(
            secrets,
            &self.sources,
            crate::adapters::secrets::load_canopy_credentials,
        )
        .await?;
        crate::domain::source::Sources::new(loaded).map_err(|e| ConfigError::Invalid {
            name: "CANOPY_ADDITIONAL_SOURCES",
            detail: e.to_string(),
        })
    }

    /// The clients of credentials already read.
    pub fn clients_with(
        &self,
        credentials: crate::domain::source::Sources<crate::ports::canopy::CanopyCredentials>,
    ) -> Result<
        crate::domain::source::Sources<crate::adapters::canopy_http::CanopyClient>,
        ConfigError,
    > {
        credentials.try_map(|source, credentials| {
            crate::adapters::canopy_http::CanopyClient::new(
                &self.base_url,
                &source.team_id,
                credentials,
                self.timeout,
            )
            .map_err(|e| ConfigError::Invalid {
                name: "CANOPY_BASE_URL",
                detail: e.to_string(),
            })
        })
    }
}

/// `CANOPY_TIMEOUT_SECONDS`, at most [`crate::app::budget::CANOPY_TIMEOUT`]: a longer call would
/// not fit a record's budget.
fn canopy_timeout() -> Result<Duration, ConfigError> {
    let max = crate::app::budget::CANOPY_TIMEOUT.as_secs();
    let secs: u64 = parsed_or("CANOPY_TIMEOUT_SECONDS", max)?;
    if secs == 0 || secs > max {
        return Err(ConfigError::Invalid {
            name: "CANOPY_TIMEOUT_SECONDS",
            detail: format!("must be 1 to {max} seconds (the record budget holds no more)"),
        });
    }
    Ok(Duration::from_secs(secs))
}

/// Backoff settings of a queue consumer.
pub fn retry_policy_from_env() -> Result<crate::domain::retry::RetryPolicy, ConfigError> {
    let defaults = crate::domain::retry::RetryPolicy::default();
    Ok(crate::domain::retry::RetryPolicy {
        base: Duration::from_secs(parsed_or("RETRY_BASE_SECONDS", defaults.base.as_secs())?),
        cap: Duration::from_secs(parsed_or("RETRY_CAP_SECONDS", defaults.cap.as_secs())?),
    })
}

/// Everything pull-fetcher reads from its environment.
#[derive(Debug, Clone)]
pub struct FetcherEnv {
    pub table_name: String,
    /// The queue the fetcher consumes (to delay retries).
    pub fetch_queue_url: String,
    pub canopy: CanopyEnv,
    pub retry: crate::domain::retry::RetryPolicy,
    /// `PULL_DATA_RETENTION_DAYS`: stored pull data expires this long after its fetch; unset
    /// or 0 keeps it until deleted.
    pub pull_data_retention: Option<Duration>,
    /// Not from the environment: the defaults, which tests may shorten.
    pub fetcher: crate::app::fetcher::FetcherConfig,
}

impl FetcherEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let days: u64 = parsed_or("PULL_DATA_RETENTION_DAYS", 0)?;
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            canopy: CanopyEnv::from_env()?,
            retry: retry_policy_from_env()?,
            pull_data_retention: (days > 0).then(|| Duration::from_secs(days * 24 * 3600)),
            fetcher: crate::app::fetcher::FetcherConfig::default(),
        })
    }
}

fn optional(name: &'static str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

fn keys(name: &'static str, default: Vec<String>) -> Vec<String> {
    optional(name).map_or(default, |v| {
        v.split(',')
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect()
    })
}

/// Everything reconnect-notifier reads from its environment. A channel is on when its
/// setting is: `EMAIL_FROM_ADDRESS` (email), `SMS_ENABLED=true` (SMS), `OUTBOUND_WEBHOOK_URL`
/// with `OUTBOUND_WEBHOOK_SECRET_ID` (webhook).
#[derive(Debug, Clone)]
pub struct NotifierEnv {
    pub table_name: String,
    pub notify_queue_url: String,
    pub canopy: CanopyEnv,
    pub retry: crate::domain::retry::RetryPolicy,
    pub email_from: Option<String>,
    pub sms_enabled: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret_id: Option<String>,
    pub notifier: crate::app::notifier::NotifierConfig,
}

impl NotifierEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = crate::app::notifier::NotifierConfig::default();
        let contact_defaults = crate::domain::contact::ContactKeys::default();
        let webhook_url = optional("OUTBOUND_WEBHOOK_URL");
        let webhook_secret_id = optional("OUTBOUND_WEBHOOK_SECRET_ID");
        if webhook_url.is_some() && webhook_secret_id.is_none() {
            return Err(ConfigError::Missing("OUTBOUND_WEBHOOK_SECRET_ID"));
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            notify_queue_url: required("NOTIFY_QUEUE_URL")?,
            canopy: CanopyEnv::from_env()?,
            retry: retry_policy_from_env()?,
            email_from: optional("EMAIL_FROM_ADDRESS"),
            sms_enabled: parsed_or("SMS_ENABLED", false)?,
            webhook_url,
            webhook_secret_id,
            notifier: crate::app::notifier::NotifierConfig {
                contact_keys: crate::domain::contact::ContactKeys {
                    email: keys("CONTACT_EMAIL_KEYS", contact_defaults.email),
                    phone: keys("CONTACT_PHONE_KEYS", contact_defaults.phone),
                    first_name: keys("CONTACT_NAME_KEYS", contact_defaults.first_name),
                },
                link_template: optional("RECONNECT_URL_TEMPLATE"),
                reminder_delay: Duration::from_secs(
                    3600 * parsed_or("REMINDER_DELAY_HOURS", 72u64)?,
                ),
                max_reminders: parsed_or("MAX_REMINDERS", defaults.max_reminders)?,
                ..defaults
            },
        })
    }
}

/// Everything monitoring-api reads from its environment. It replays events, so it writes
/// where intake writes (the table and both queues).
#[derive(Debug, Clone)]
pub struct ApiEnv {
    pub table_name: String,
    pub fetch_queue_url: String,
    pub notify_queue_url: String,
    pub canopy: CanopyEnv,
    pub api: crate::app::monitoring_api::ApiConfig,
}

fn plan_from_env() -> Result<PlanConfig, ConfigError> {
    let defaults = PlanConfig::default();
    Ok(PlanConfig {
        owner_key: parsed_or("OWNER_META_DATA_KEY", defaults.owner_key.clone())?,
        ..defaults
    })
}

impl ApiEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = crate::app::monitoring_api::ApiConfig::default();
        let hours: i64 = parsed_or(
            "REFRESH_MIN_INTERVAL_HOURS",
            defaults.refresh.min_interval.whole_hours(),
        )?;
        let minutes: i64 = parsed_or(
            "REFRESH_IN_FLIGHT_MINUTES",
            defaults.refresh.in_flight_window.whole_minutes(),
        )?;
        if hours < 0 || minutes < 1 {
            return Err(ConfigError::Invalid {
                name: "REFRESH_IN_FLIGHT_MINUTES",
                detail: "hours must be >= 0 and minutes >= 1".into(),
            });
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            notify_queue_url: required("NOTIFY_QUEUE_URL")?,
            canopy: CanopyEnv::from_env()?,
            api: crate::app::monitoring_api::ApiConfig {
                refresh: crate::domain::monitoring::RefreshPolicy {
                    min_interval: time::Duration::hours(hours),
                    in_flight_window: time::Duration::minutes(minutes),
                },
                plan: plan_from_env()?,
                ..defaults
            },
        })
    }
}

/// Everything monitoring-sync reads from its environment.
#[derive(Debug, Clone)]
pub struct SyncEnv {
    pub table_name: String,
    pub fetch_queue_url: String,
    pub notify_queue_url: String,
    pub canopy: CanopyEnv,
    pub sync: crate::app::sync::SyncConfig,
}

impl SyncEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            notify_queue_url: required("NOTIFY_QUEUE_URL")?,
            canopy: CanopyEnv::from_env()?,
            sync: crate::app::sync::SyncConfig {
                plan: plan_from_env()?,
                ..crate::app::sync::SyncConfig::default()
            },
        })
    }
}

/// Everything reconnect-api reads from its environment.
#[derive(Debug, Clone)]
pub struct ReconnectEnv {
    pub table_name: String,
    pub canopy: CanopyEnv,
    /// The JWT claim that names the caller: compared with a monitoring's owner.
    pub subject_claim: String,
    pub reconnect: crate::app::reconnect::ReconnectConfig,
}

impl ReconnectEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = crate::app::reconnect::ReconnectConfig::default();
        let minutes: u64 = parsed_or(
            "RECONNECT_SESSION_MINUTES",
            defaults.session_ttl.as_secs() / 60,
        )?;
        let window: u64 = parsed_or(
            "RECONNECT_LIMIT_WINDOW_MINUTES",
            defaults.limit_window.as_secs() / 60,
        )?;
        // Each per-subject budget needs at least one use, or the route could never answer.
        let at_least_one = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match parsed_or(name, default)? {
                0 => Err(ConfigError::Invalid {
                    name,
                    detail: "must be at least 1".into(),
                }),
                n => Ok(n),
            }
        };
        if minutes == 0 || window == 0 {
            return Err(ConfigError::Invalid {
                name: "RECONNECT_SESSION_MINUTES",
                detail: "sessions and limit windows need at least a minute".into(),
            });
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            canopy: CanopyEnv::from_env()?,
            subject_claim: parsed_or("SUBJECT_CLAIM", "sub".to_owned())?,
            reconnect: crate::app::reconnect::ReconnectConfig {
                session_ttl: Duration::from_secs(minutes * 60),
                limit_window: Duration::from_secs(window * 60),
                max_starts: at_least_one("RECONNECT_MAX_STARTS", defaults.max_starts)?,
                max_tokens: at_least_one("RECONNECT_MAX_TOKENS", defaults.max_tokens)?,
                max_attempts: at_least_one("RECONNECT_MAX_ATTEMPTS", defaults.max_attempts)?,
                max_concurrent_polls: at_least_one(
                    "RECONNECT_MAX_CONCURRENT_POLLS",
                    defaults.max_concurrent_polls,
                )?,
                ..defaults
            },
        })
    }
}

/// Everything reconnect-reminder reads from its environment.
#[derive(Debug, Clone)]
pub struct ReminderEnv {
    pub table_name: String,
    /// Reminders only go to the notify queue.
    pub notify_queue_url: String,
}

impl ReminderEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            notify_queue_url: required("NOTIFY_QUEUE_URL")?,
        })
    }
}

/// Everything event-publisher reads from its environment.
#[derive(Debug, Clone)]
pub struct PublisherEnv {
    pub table_name: String,
    /// The custom bus's name or ARN.
    pub event_bus_name: String,
    pub outbox: crate::app::outbox::OutboxConfig,
}

impl PublisherEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = crate::app::outbox::OutboxConfig::default();
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            event_bus_name: required("EVENT_BUS_NAME")?,
            outbox: crate::app::outbox::OutboxConfig {
                grace: std::time::Duration::from_secs(parsed_or(
                    "OUTBOX_GRACE_SECONDS",
                    defaults.grace.as_secs(),
                )?),
                ..defaults
            },
        })
    }
}
