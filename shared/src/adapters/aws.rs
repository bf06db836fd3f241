//! One place that turns AWS SDK errors into [`PortError`]s.

use crate::ports::PortError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

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
