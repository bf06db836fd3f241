//! The event-publisher Lambda: the table's stream and a schedule both invoke it (see lib.rs).

use canopy_monitor::app::budget::Deadline;
use canopy_monitor::runtime::config::PublisherEnv;
use event_publisher::{handle, publisher_from, Handled};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

fn main() -> Result<(), Error> {
    canopy_monitor::runtime::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    let metrics = canopy_monitor::runtime::observability::init_lambda()?;
    let aws = canopy_monitor::adapters::aws::sdk_config()?;
    let publisher = publisher_from(PublisherEnv::from_env()?, &aws);
    let publisher = &publisher;
    canopy_monitor::runtime::observability::run(
        metrics,
        move |event: LambdaEvent<Value>| async move {
            let deadline = Deadline::from_lambda_ms(event.context.deadline);
            match handle(publisher, event.payload, deadline).await? {
                Handled::Stream { records, events } => tracing::info!(
                    records,
                    published = events.published,
                    left = events.left,
                    "outbox stream batch"
                ),
                Handled::Sweep(report) => tracing::info!(
                    items = report.items,
                    published = report.events.published,
                    left = report.events.left,
                    parked = report.parked,
                    cleared = report.cleared,
                    pages = report.pages,
                    complete = report.complete,
                    "outbox sweep"
                ),
            }
            Ok::<_, Error>(())
        },
    )
    .await
}
