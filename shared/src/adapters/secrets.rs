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
/// not the sum), keeping the sources' order. The primary's must be readable; an additional
/// source whose secret is not (missing, scheduled for deletion, not permitted) is left out,
/// logged and counted (`SourcesUnavailable`), so one bad secret does not stop the others:
/// its deliveries are refused (Canopy retries them) and its jobs retried until it is fixed.
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
        futures::future::join_all(specs.iter().map(|spec| load(client, &spec.secret_id))).await;
    let mut loaded = Vec::with_capacity(specs.len());
    for (i, (spec, value)) in specs.iter().zip(values).enumerate() {
        match value {
            Ok(v) => loaded.push((spec.source.clone(), v)),
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                tracing::error!(source = %spec.source.name, key_type = %spec.source.key_type,
                    error = %e, "this source's secret cannot be read; the source is left out");
                crate::app::metrics::source_unavailable(spec.source.key_type);
            }
        }
    }
    Ok(loaded)
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

/// The sources' signing secrets from Secrets Manager, read at start and again when a delivery
/// verifies under none of them (at most once per `min_interval`; see
/// [`crate::ports::signing`]).
pub struct ReloadingSigningKeys {
    client: Client,
    specs: Vec<crate::domain::source::SourceSpec>,
    min_interval: std::time::Duration,
    state: std::sync::RwLock<(
        std::sync::Arc<crate::domain::source::Sources<SigningSecrets>>,
        std::time::Instant,
    )>,
    /// One read at a time: concurrent misses wait for it and use its result.
    reading: tokio::sync::Mutex<()>,
}

impl ReloadingSigningKeys {
    /// Reads every source's secret; a start-up failure is the function's.
    pub async fn load(
        client: Client,
        specs: Vec<crate::domain::source::SourceSpec>,
        min_interval: std::time::Duration,
    ) -> Result<Self, ConfigError> {
        let keys = load_source_signing_secrets(&client, &specs).await?;
        Ok(Self {
            client,
            specs,
            min_interval,
            state: std::sync::RwLock::new((std::sync::Arc::new(keys), std::time::Instant::now())),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(
        &self,
    ) -> (
        std::sync::Arc<crate::domain::source::Sources<SigningSecrets>>,
        std::time::Instant,
    ) {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        (state.0.clone(), state.1)
    }
}

#[async_trait::async_trait]
impl crate::ports::signing::SigningKeys for ReloadingSigningKeys {
    async fn current(&self) -> std::sync::Arc<crate::domain::source::Sources<SigningSecrets>> {
        let (keys, read_at) = self.snapshot();
        if read_at.elapsed() < self.min_interval * crate::ports::signing::MAX_AGE_FACTOR {
            return keys;
        }
        self.reload().await.unwrap_or(keys)
    }

    async fn reload(
        &self,
    ) -> Option<std::sync::Arc<crate::domain::source::Sources<SigningSecrets>>> {
        let asked = std::time::Instant::now();
        let _reading = self.reading.lock().await;
        let (keys, read_at) = self.snapshot();
        if read_at >= asked {
            return Some(keys);
        }
        if read_at.elapsed() < self.min_interval {
            return None;
        }
        match load_source_signing_secrets(&self.client, &self.specs).await {
            Ok(fresh) => {
                let fresh = std::sync::Arc::new(fresh);
                *self.state.write().unwrap_or_else(|p| p.into_inner()) =
                    (fresh.clone(), std::time::Instant::now());
                tracing::info!("webhook signing secrets read again");
                Some(fresh)
            }
            Err(e) => {
                // The secrets in hand stay; the next miss after the interval tries again.
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                state.1 = std::time::Instant::now();
                tracing::warn!(error = %e, "could not read the signing secrets again");
                None
            }
        }
    }
}
