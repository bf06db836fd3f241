//! The event-publisher function: publishes the business events waiting in the table's outbox
//! (see [`canopy_monitor::app::outbox`]). Two triggers call it:
//! - the table's stream, filtered to items with waiting events: published within a second of
//!   the write that recorded them;
//! - a schedule: a sweep of what has waited longer than the grace period (an EventBridge
//!   outage outlasting the retries, a stream batch given up).

use aws_lambda_events::dynamodb::Event as StreamEvent;
use canopy_monitor::adapters::dynamo::outbox::pending_from_item;
use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::eventbridge::EventBridgeBus;
use canopy_monitor::app::budget::Deadline;
use canopy_monitor::app::outbox::{item_can_start, OutboxPublisher, Published, SweepReport};
use canopy_monitor::ports::{PortError, SystemClock};
use canopy_monitor::runtime::config::PublisherEnv;
use serde_json::Value;
use std::collections::HashMap;

pub type AwsPublisher = OutboxPublisher<DynamoStore, EventBridgeBus, SystemClock>;

/// Builds the publisher from explicit settings (the local runner's and the tests' way in).
pub fn publisher_from(env: PublisherEnv, aws: &aws_config::SdkConfig) -> AwsPublisher {
    OutboxPublisher::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name),
        EventBridgeBus::new(aws_sdk_eventbridge::Client::new(aws), env.event_bus_name),
        SystemClock,
        env.outbox,
    )
}

/// What one invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Stream { records: usize, events: Published },
    Sweep(SweepReport),
}

/// Handles one invocation: a stream batch (it has `Records`) or a scheduled sweep.
pub async fn handle(
    publisher: &AwsPublisher,
    event: Value,
    deadline: Deadline,
) -> Result<Handled, PortError> {
    if event.get("Records").is_none() {
        return publisher.sweep(deadline).await.map(Handled::Sweep);
    }
    let batch: StreamEvent = serde_json::from_value(event)
        .map_err(|e| PortError::misconfigured("dynamodb", format!("not a stream batch: {e}")))?;
    let mut events = Published::default();
    let mut records = 0;
    for record in batch.records {
        let image: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            record.change.new_image.into();
        // The filter lets only items with waiting events through; a record replayed after
        // they were published finds none.
        let Some(pending) = pending_from_item(&image) else {
            continue;
        };
        // Time budgets nest: a record is started only if a try and its acknowledgement fit
        // before the function's timeout, and each later try only if it fits too; what is not
        // published stays in the outbox, where the sweep finds it.
        if !item_can_start(&deadline) {
            break;
        }
        records += 1;
        // What the bus refuses stays in the outbox for the sweep: the stream moves on.
        events += publisher.publish_item(&pending, deadline).await?.events;
    }
    Ok(Handled::Stream { records, events })
}
