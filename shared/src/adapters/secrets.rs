//! Secrets Manager: read once per cold start, never logged.

use crate::domain::signature::SigningSecrets;
use crate::ports::ConfigError;
use aws_sdk_secretsmanager::Client;

/// Reads a secret's string value by ARN or name.
pub async fn read_secret_string(client: &Client, secret_id: &str) -> Result<String, ConfigError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            secret: secret_id.to_owned(),
            detail: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    out.secret_string.ok_or_else(|| ConfigError::Secret {
        secret: secret_id.to_owned(),
        detail: "the secret has no string value".to_owned(),
    })
}

/// Loads the webhook signing secrets (see [`SigningSecrets::from_secret_string`]).
pub async fn load_signing_secrets(
    client: &Client,
    secret_id: &str,
) -> Result<SigningSecrets, ConfigError> {
    let value = read_secret_string(client, secret_id).await?;
    SigningSecrets::from_secret_string(&value).map_err(|e| ConfigError::Secret {
        secret: secret_id.to_owned(),
        detail: e.to_string(),
    })
}

/// Loads the Canopy API credentials: `{"client_id": "...", "client_secret": "..."}`.
pub async fn load_canopy_credentials(
    client: &Client,
    secret_id: &str,
) -> Result<crate::ports::canopy::CanopyCredentials, ConfigError> {
    let value = read_secret_string(client, secret_id).await?;
    serde_json::from_str(&value).map_err(|_| ConfigError::Secret {
        secret: secret_id.to_owned(),
        detail: "expected {\"client_id\": ..., \"client_secret\": ...}".to_owned(),
    })
}

/// Reads each source's secret with `load` (concurrently: a cold start waits for the slowest,
/// not the sum), keeping the sources' order.
pub async fn load_for_sources<'a, T, F, Fut>(
    client: &'a Client,
    specs: &'a [crate::domain::source::SourceSpec],
    load: F,
) -> Result<Vec<(crate::domain::source::Source, T)>, ConfigError>
where
    F: Fn(&'a Client, &'a str) -> Fut,
    Fut: std::future::Future<Output = Result<T, ConfigError>>,
{
    let values =
        futures::future::try_join_all(specs.iter().map(|spec| load(client, &spec.secret_id)))
            .await?;
    Ok(specs
        .iter()
        .map(|spec| spec.source.clone())
        .zip(values)
        .collect())
}

/// Every source's webhook signing secrets, for intake.
pub async fn load_source_signing_secrets(
    client: &Client,
    specs: &[crate::domain::source::SourceSpec],
) -> Result<crate::domain::source::Sources<SigningSecrets>, ConfigError> {
    let loaded = load_for_sources(client, specs, load_signing_secrets).await?;
    crate::domain::source::Sources::new(loaded).map_err(|e| ConfigError::Invalid {
        name: "CANOPY_ADDITIONAL_SOURCES",
        detail: e.to_string(),
    })
}
