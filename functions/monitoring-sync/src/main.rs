//! The monitoring-sync Lambda, run by an EventBridge schedule: one reconciler pass. The
//! schedule's event carries nothing we need.

use canopy_monitor::app::budget::Deadline;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

fn main() -> Result<(), Error> {
    canopy_monitor::runtime::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    let metrics = canopy_monitor::runtime::observability::init_lambda()?;
    let aws = canopy_monitor::adapters::aws::sdk_config()?;
    let sync = monitoring_sync::sync_from_env(&aws).await?;
    let sync = &sync;
    canopy_monitor::runtime::observability::run(
        metrics,
        move |event: LambdaEvent<Value>| async move {
            let deadline = Deadline::from_lambda_ms(event.context.deadline);
            let report = sync.run(deadline).await?;
            tracing::info!(
                pages = report.pages,
                seen = report.monitorings_seen,
                created = report.created,
                status_fixed = report.status_fixed,
                settings_fixed = report.settings_fixed,
                fetches_queued = report.fetches_queued,
                skipped = report.skipped,
                refused = report.refused,
                complete = report.complete,
                repaired = report.repaired(),
                "monitoring sync"
            );
            Ok::<_, Error>(serde_json::to_value(&report)?)
        },
    )
    .await
}
