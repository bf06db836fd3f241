//! What every AWS client shares: the SDK configuration (one HTTPS client, bounded calls) and
//! the one place that turns AWS SDK errors into [`PortError`]s.

use crate::ports::PortError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS SDK configuration of a function; honours `AWS_ENDPOINT_URL` and `AWS_REGION`.
/// Every call is bounded (see [`crate::budget`]): a hung AWS endpoint fails the call, not the
/// function.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeouts())
        .load()
        .await
}

/// The connect, attempt and operation timeouts of every AWS client.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(crate::budget::AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(crate::budget::AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(crate::budget::AWS_OPERATION_TIMEOUT)
        .build()
}

/// The HTTPS client of every AWS client: hyper + rustls (aws-lc). The SDKs' default features,
/// which would also link a legacy hyper 0.14 stack, are off (workspace Cargo.toml). Roots:
/// see [`crate::tls`].
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
