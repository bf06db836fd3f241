//! Prints what the pipeline stored and queued. A local tool: it scans the local table.
//! Message bodies are shown with reconnect links redacted.

use aws_sdk_dynamodb::types::AttributeValue;
use canopy_monitor::records::{MonitoringRecord, PullRecord};
use canopy_monitor::work::{parse_message, WorkMessage};
use devkit::resources::Resources;
use std::collections::HashMap;

pub async fn show(aws: &aws_config::SdkConfig, resources: &Resources) -> Result<(), String> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let items = ddb
        .scan()
        .table_name(&resources.table_name)
        .send()
        .await
        .map_err(|e| format!("scan: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?
        .items
        .unwrap_or_default();
    let text = |item: &HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    println!("\n== DynamoDB table {}", resources.table_name);
    let mut events = 0;
    for item in &items {
        let pk = text(item, "pk");
        if pk.starts_with("EVENT#") {
            events += 1;
            println!(
                "   event     {} {} pull={} status={} outcome={}",
                &pk[..22.min(pk.len())],
                text(item, "event_type"),
                text(item, "pull_id"),
                text(item, "status"),
                text(item, "outcome")
            );
        } else if pk.starts_with("PULL#") && text(item, "sk") == "STATE" {
            let pull: PullRecord =
                serde_dynamo::from_item(item.clone()).map_err(|e| e.to_string())?;
            println!(
                "   pull      {} status={} last_event={} monitoring={} completed_at={}",
                pull.pull_id,
                pull.status.unwrap_or_default(),
                pull.last_event_type.unwrap_or_default(),
                pull.monitoring_id.unwrap_or_default(),
                pull.completed_at.unwrap_or_default()
            );
        } else if pk.starts_with("PULL#") && text(item, "sk") == "DATA" {
            println!(
                "   pull data {} carrier={} fetched_at={} parts={}",
                &pk[5..],
                text(item, "insurance_provider_name"),
                text(item, "fetched_at"),
                item.get("parts")
                    .and_then(|v| v.as_n().ok())
                    .map_or("-", |v| v)
            );
        } else if pk.starts_with("MONITORING#") && text(item, "sk").starts_with("EPISODE#") {
            println!(
                "   episode   {} started={} notices_sent={} last_sent={} next_reminder={}",
                &pk[11..],
                text(item, "started_at"),
                item.get("notices_sent")
                    .and_then(|v| v.as_n().ok())
                    .map_or("0", |v| v),
                text(item, "last_sent"),
                text(item, "next_reminder_at")
            );
        } else if pk.starts_with("MONITORING#") && text(item, "sk") == "STATE" {
            let m: MonitoringRecord =
                serde_dynamo::from_item(item.clone()).map_err(|e| e.to_string())?;
            println!(
                "   monitoring {} latest_pull={} reconnect_needed_since={} last_event={}",
                m.monitoring_id,
                m.latest_pull_id.unwrap_or_default(),
                m.reconnect_needed_since.unwrap_or_else(|| "-".into()),
                m.last_event_type.unwrap_or_default()
            );
        }
    }
    println!("   ({events} event records)");
    let sqs = aws_sdk_sqs::Client::new(aws);
    for (name, url) in [
        ("fetch queue", &resources.fetch_queue_url),
        ("notify queue", &resources.notify_queue_url),
        ("fetch DLQ", &resources.fetch_dlq_url),
        ("notify DLQ", &resources.notify_dlq_url),
    ] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| format!("{name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .attributes
            .unwrap_or_default();
        let count = |a| attrs.get(&a).cloned().unwrap_or_else(|| "0".into());
        use aws_sdk_sqs::types::QueueAttributeName as A;
        println!(
            "== {name}: {} visible, {} delayed, {} in flight",
            count(A::ApproximateNumberOfMessages),
            count(A::ApproximateNumberOfMessagesDelayed),
            count(A::ApproximateNumberOfMessagesNotVisible)
        );
        // Peek without taking: visibility timeout 0 leaves the messages where they are.
        let peeked = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| format!("{name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        for message in peeked.messages.unwrap_or_default() {
            match message.body.as_deref().map(parse_message) {
                Some(Ok(WorkMessage::FetchPull(job))) => println!(
                    "   fetch_pull pull={} trigger={:?} monitoring={}",
                    job.pull_id,
                    job.trigger,
                    job.monitoring_id.unwrap_or_default()
                ),
                Some(Ok(WorkMessage::NotifyReconnect(job))) => println!(
                    "   notify_reconnect monitoring={} pull={} link=<redacted>",
                    job.monitoring_id, job.pull_id
                ),
                _ => println!("   (unreadable message)"),
            }
        }
    }
    Ok(())
}
