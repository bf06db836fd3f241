//! The monitoring-sync function: one reconciler pass per scheduled invocation
//! (see [`canopy_monitor::sync`]).

use canopy_monitor::canopy::http::CanopyClient;
use canopy_monitor::config::{ConfigError, SyncEnv};
use canopy_monitor::ports::SystemClock;
use canopy_monitor::queue::sqs::SqsWorkQueue;
use canopy_monitor::secrets;
use canopy_monitor::store::dynamo::DynamoStore;
use canopy_monitor::sync::MonitoringSync;

pub type AwsMonitoringSync = MonitoringSync<DynamoStore, SqsWorkQueue, CanopyClient, SystemClock>;

/// Builds the reconciler from the environment (see the README's configuration table).
pub async fn sync_from_env(aws: &aws_config::SdkConfig) -> Result<AwsMonitoringSync, ConfigError> {
    sync_from(SyncEnv::from_env()?, aws).await
}

/// Builds the reconciler from explicit settings (the local runner's and the tests' way in).
pub async fn sync_from(
    env: SyncEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsMonitoringSync, ConfigError> {
    let canopy =
        secrets::canopy_client(&aws_sdk_secretsmanager::Client::new(aws), &env.canopy).await?;
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
