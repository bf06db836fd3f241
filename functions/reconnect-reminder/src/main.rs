//! The reconnect-reminder Lambda, run by an EventBridge schedule: one pass of
//! [`run_reminders`]. The schedule's event carries nothing we need.

use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::budget::Deadline;
use canopy_monitor::app::reminders::run_reminders;
use canopy_monitor::runtime::config::ReminderEnv;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};

fn main() -> Result<(), Error> {
    canopy_monitor::runtime::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    let metrics = canopy_monitor::runtime::observability::init_lambda()?;
    let aws = canopy_monitor::adapters::aws::sdk_config()?;
    let env = ReminderEnv::from_env()?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.table_name);
    let notify_url = env.notify_queue_url;
    // Reminders only go to the notify queue; the fetch queue is never written.
    let queue = SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        notify_url.clone(),
        notify_url,
    );
    let (store, queue) = (&store, &queue);
    canopy_monitor::runtime::observability::run(
        metrics,
        move |event: LambdaEvent<Value>| async move {
            let deadline = Deadline::from_lambda_ms(event.context.deadline);
            let run =
                run_reminders(store, queue, time::OffsetDateTime::now_utc(), 500, deadline).await?;
            tracing::info!(
                due = run.due,
                queued = run.queued,
                resolved = run.resolved,
                failed = run.failed,
                deferred = run.deferred,
                "reminder pass"
            );
            // Failed reminders stay due for the next pass; the error makes them visible (metrics,
            // alarms) without having stopped the others.
            if run.failed > 0 {
                return Err(Error::from(format!(
                    "{} of {} due reminders failed",
                    run.failed, run.due
                )));
            }
            Ok::<_, Error>(json!({"due": run.due, "queued": run.queued, "resolved": run.resolved}))
        },
    )
    .await
}
