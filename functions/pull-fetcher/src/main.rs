//! The pull-fetcher Lambda: builds its adapters once per cold start, then serves SQS batches.

use canopy_monitor::app::budget::Deadline;
use lambda_runtime::{Error, LambdaEvent};

fn main() -> Result<(), Error> {
    canopy_monitor::runtime::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    let metrics = canopy_monitor::runtime::observability::init_lambda()?;
    let aws = canopy_monitor::adapters::aws::sdk_config()?;
    let consumer = pull_fetcher::fetcher_from_env(&aws).await?;
    let consumer = &consumer;
    canopy_monitor::runtime::observability::run(metrics, move |event: LambdaEvent<_>| async move {
        let deadline = Deadline::from_lambda_ms(event.context.deadline);
        Ok::<_, Error>(consumer.handle(event.payload, deadline).await)
    })
    .await
}
