//! The monitoring-sync function: one reconciler pass per scheduled invocation
//! (see [`canopy_monitor::app::sync`]).

use canopy_monitor::adapters::canopy_http::CanopyClient;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::sync::MonitoringSync;
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::SystemClock;
use canopy_monitor::runtime::config::SyncEnv;

pub type AwsMonitoringSync = MonitoringSync<DynamoStore, SqsWorkQueue, CanopyClient, SystemClock>;

/// Builds the reconciler from the environment (see docs/configuration.md).
pub async fn sync_from_env(aws: &aws_config::SdkConfig) -> Result<AwsMonitoringSync, ConfigError> {
    sync_from(SyncEnv::from_env()?, aws).await
}

/// Builds the reconciler from explicit settings (the local runner's and the tests' way in).
pub async fn sync_from(
    env: SyncEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsMonitoringSync, ConfigError> {
    let canopy = env
        .canopy
        .clients(&aws_sdk_secretsmanager::Client::new(aws))
        .await?;
    Ok(MonitoringSync::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name),
        SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(aws),
            env.fetch_queue_url,
            env.notify_queue_url,
        ),
        canopy,
        SystemClock,
        env.sync,
    ))
}
