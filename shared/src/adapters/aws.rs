//! What every AWS client shares: the SDK configuration (one HTTPS client, bounded calls) and
//! the one place that turns AWS SDK errors into [`PortError`]s.

use crate::ports::ConfigError;
use crate::ports::PortError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS SDK configuration of a function, from the environment Lambda sets: `AWS_REGION`
/// and the execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`); `AWS_ENDPOINT_URL` points every client elsewhere (a local
/// emulator). Every call is bounded (see [`crate::app::budget`]).
///
/// Built directly rather than by `aws_config::load`, whose provider chains (profile files,
/// SSO, web identity, container and instance metadata) a function never uses: skipping them
/// keeps their code out of the binary and their file probes out of the cold start.
pub fn sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    sdk_config_from(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// [`sdk_config`] over any source of variables (tests).
pub fn sdk_config_from(
    var: impl Fn(&'static str) -> Option<String>,
) -> Result<aws_config::SdkConfig, ConfigError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Missing("AWS_REGION"))?;
    if var("AWS_ACCESS_KEY_ID").is_none() {
        return Err(ConfigError::Missing("AWS_ACCESS_KEY_ID"));
    }
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .retry_config(aws_config::retry::RetryConfig::standard())
        .timeout_config(timeouts())
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().ok_or(
            ConfigError::Invalid {
                name: "AWS runtime",
                detail: "no async sleep implementation".to_owned(),
            },
        )?)
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .http_client(http_client());
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// The connect, attempt and operation timeouts of every AWS client.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(crate::app::budget::AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(crate::app::budget::AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(crate::app::budget::AWS_OPERATION_TIMEOUT)
        .build()
}

/// The HTTPS client of every AWS client: hyper + rustls (aws-lc). The SDKs' default features,
/// which would also link a legacy hyper 0.14 stack, are off (workspace Cargo.toml). Roots:
/// see [`crate::runtime::tls`].
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// Error codes that no retry will fix: a missing resource or a missing permission.
const MISCONFIGURED: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ValidationException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "NonExistentQueue",
    "KMS.AccessDeniedException",
];

/// Classifies an SDK error of any AWS client.
pub fn port_error<E, R>(service: &'static str, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service_err) => {
            let e = service_err.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let detail = format!("{code}: {}", e.message().unwrap_or_default());
            if MISCONFIGURED.contains(&code.as_str()) {
                PortError::misconfigured(service, detail)
            } else {
                PortError::unavailable(service, detail)
            }
        }
        other => PortError::unavailable(service, aws_smithy_display(other)),
    }
}

fn aws_smithy_display<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // `SdkError`'s Display is terse ("dispatch failure"); its source says why.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &str)]) -> impl Fn(&'static str) -> Option<String> {
        let map: HashMap<&'static str, String> =
            pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_config_comes_from_lambdas_environment() {
        let config = sdk_config_from(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.credentials_provider().is_some());
        assert_eq!(
            config.timeout_config().and_then(|t| t.operation_timeout()),
            Some(crate::app::budget::AWS_OPERATION_TIMEOUT)
        );
        let default_region = sdk_config_from(env(&[
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", "A"),
        ]))
        .unwrap();
        assert_eq!(default_region.endpoint_url(), None);
    }

    #[test]
    fn a_missing_region_or_credentials_stops_the_start() {
        assert!(matches!(
            sdk_config_from(env(&[("AWS_ACCESS_KEY_ID", "A")])),
            Err(ConfigError::Missing("AWS_REGION"))
        ));
        assert!(matches!(
            sdk_config_from(env(&[("AWS_REGION", "us-east-1")])),
            Err(ConfigError::Missing("AWS_ACCESS_KEY_ID"))
        ));
    }
}
