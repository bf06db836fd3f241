//! The AWS configuration of a deployed stack's operator, found as the AWS CLI finds it: the
//! environment, the shared config and credentials files (profiles, SSO, `credential_process`),
//! web identity, container and instance roles; `AWS_ENDPOINT_URL` (and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`) point the calls elsewhere, such as at an emulator.

use aws_credential_types::provider::ProvideCredentials;

/// What the command line says of the AWS configuration.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

impl AwsOptions {
    /// The command a fix hint starts with: the same stack, profile and region, so that the
    /// hint runs as printed.
    pub fn invocation(&self, stack: &str) -> String {
        format!(
            "canopy-ops --stack {}{}",
            shell_word(stack),
            self.aws_flags()
        )
    }

    /// ` --profile P --region R`, for what was given: the AWS CLI's flags are canopy-ops's.
    pub fn aws_flags(&self) -> String {
        let mut flags = String::new();
        if let Some(p) = &self.profile {
            flags.push_str(&format!(" --profile {}", shell_word(p)));
        }
        if let Some(r) = &self.region {
            flags.push_str(&format!(" --region {}", shell_word(r)));
        }
        flags
    }
}

/// A word a POSIX shell reads back as itself.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Why no AWS call can be made.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("no AWS region: pass --region, set AWS_REGION, or set region in the profile (aws configure)")]
    NoRegion,
    #[error("no AWS region for profile {0:?}: is it in the AWS config file (aws configure --profile {0})? Or pass --region")]
    NoRegionInProfile(String),
    #[error("no AWS credentials ({0}): run aws configure or aws sso login, pass --profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    NoCredentials(String),
}

/// The SDK configuration for `options`, with the one HTTPS client every AWS client of the
/// project shares, and credentials resolved once here so that a missing or expired login is
/// one clear error before the first call.
pub async fn load(options: &AwsOptions) -> Result<aws_config::SdkConfig, AwsSetupError> {
    let profile = options.profile.as_ref().filter(|p| !p.trim().is_empty());
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(canopy_monitor::adapters::aws::http_client())
        .timeout_config(operator_timeouts());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(match &options.profile {
            Some(p) => AwsSetupError::NoRegionInProfile(p.clone()),
            None => AwsSetupError::NoRegion,
        });
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| AwsSetupError::NoCredentials("no credentials provider".to_owned()))?;
    provider.provide_credentials().await.map_err(|e| {
        // The chain of causes, each once (Display, not Debug).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let next = s.to_string();
            if !text.contains(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = s.source();
        }
        AwsSetupError::NoCredentials(text.split_whitespace().collect::<Vec<_>>().join(" "))
    })?;
    Ok(config)
}

/// An operator waits longer than a function may: a listing over a slow link, a message move.
fn operator_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(20))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build()
}
