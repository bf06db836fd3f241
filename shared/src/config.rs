//! Configuration from environment variables (set by template.yaml, documented in the README).
//! Read once per cold start; a missing or malformed value stops the start with a clear error.

use crate::intake::IntakeConfig;
use crate::plan::PlanConfig;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {detail}")]
    Invalid { name: &'static str, detail: String },
    #[error("secret {secret} could not be read: {detail}")]
    Secret { secret: String, detail: String },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable parsed as `T`, or `default` when unset or empty.
pub fn parsed_or<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                detail: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// The variables [`IntakeEnv::from_env`] reads; template.yaml sets each (a test checks).
pub const INTAKE_ENV_VARS: &[&str] = &[
    "TABLE_NAME",
    "FETCH_QUEUE_URL",
    "NOTIFY_QUEUE_URL",
    "WEBHOOK_SECRET_ID",
    "SIGNATURE_TOLERANCE_SECONDS",
    "EVENT_RETENTION_HOURS",
    "FETCH_FALLBACK_DELAY_SECONDS",
];

/// Everything webhook-intake reads from its environment.
#[derive(Debug, Clone)]
pub struct IntakeEnv {
    pub table_name: String,
    pub fetch_queue_url: String,
    pub notify_queue_url: String,
    /// ARN or name of the secret holding the Canopy webhook signing secret(s).
    pub webhook_secret_id: String,
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
            webhook_secret_id: required("WEBHOOK_SECRET_ID")?,
            intake: IntakeConfig {
                tolerance_secs: parsed_or("SIGNATURE_TOLERANCE_SECONDS", defaults.tolerance_secs)?,
                retention: Duration::from_secs(
                    3600 * parsed_or("EVENT_RETENTION_HOURS", defaults.retention.as_secs() / 3600)?,
                ),
                plan: PlanConfig {
                    fetch_fallback_delay: Duration::from_secs(fallback),
                },
                ..defaults
            },
        })
    }
}

/// The AWS SDK configuration; honours `AWS_ENDPOINT_URL` and `AWS_REGION`.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The variables [`FetcherEnv::from_env`] reads; template.yaml sets each (a test checks).
pub const FETCHER_ENV_VARS: &[&str] = &[
    "TABLE_NAME",
    "FETCH_QUEUE_URL",
    "CANOPY_API_SECRET_ID",
    "CANOPY_TEAM_ID",
    "CANOPY_BASE_URL",
    "CANOPY_TIMEOUT_SECONDS",
    "RETRY_BASE_SECONDS",
    "RETRY_CAP_SECONDS",
];

/// How to reach Canopy's API.
#[derive(Debug, Clone)]
pub struct CanopyEnv {
    pub base_url: String,
    pub team_id: String,
    /// ARN or name of the secret `{"client_id": "...", "client_secret": "..."}`.
    pub api_secret_id: String,
    pub timeout: Duration,
}

impl CanopyEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: parsed_or(
                "CANOPY_BASE_URL",
                crate::canopy::DEFAULT_BASE_URL.to_owned(),
            )?,
            team_id: required("CANOPY_TEAM_ID")?,
            api_secret_id: required("CANOPY_API_SECRET_ID")?,
            timeout: Duration::from_secs(parsed_or("CANOPY_TIMEOUT_SECONDS", 10)?),
        })
    }
}

/// Backoff settings of a queue consumer.
pub fn retry_policy_from_env() -> Result<crate::retry::RetryPolicy, ConfigError> {
    let defaults = crate::retry::RetryPolicy::default();
    Ok(crate::retry::RetryPolicy {
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
    pub retry: crate::retry::RetryPolicy,
}

impl FetcherEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            canopy: CanopyEnv::from_env()?,
            retry: retry_policy_from_env()?,
        })
    }
}
