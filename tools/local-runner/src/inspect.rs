//! Prints what the pipeline stored and queued. A local tool: it scans the local table.
//! Message bodies are shown with reconnect links redacted.

use aws_sdk_dynamodb::types::AttributeValue;
use canopy_monitor::domain::records::{MonitoringRecord, PullRecord};
use canopy_monitor::domain::work::{parse_message, WorkMessage};
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
    let changes: Vec<_> = items
        .iter()
        .filter(|i| text(i, "sk").starts_with("CHANGES#"))
        .collect();
    if !changes.is_empty() {
        println!("== change history ({} entries)", changes.len());
        for item in changes {
            let count = item
                .get("change_count")
                .and_then(|v| v.as_n().ok())
                .map_or("-", |v| v);
            println!(
                "   {:<14} {} pull={} previous={} changes={} {}",
                text(item, "source"),
                &text(item, "pk")[11..],
                text(item, "pull_id"),
                text(item, "previous_pull_id"),
                count,
                text(item, "not_compared")
            );
        }
    }
    show_events(aws, resources).await?;
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

/// The last business events on the bus: the tap queue (a rule copies every canopy-monitor
/// event into it) is read without taking (each message comes back after a second).
pub async fn show_events(aws: &aws_config::SdkConfig, resources: &Resources) -> Result<(), String> {
    const LAST: usize = 12;
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut seen = std::collections::BTreeSet::new();
    let mut envelopes = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&resources.events_tap_url)
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .send()
            .await
            .map_err(|e| format!("events tap: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .messages
            .unwrap_or_default();
        let new: Vec<_> = got
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
            .collect();
        if new.is_empty() {
            break;
        }
        for m in new {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(m.body().unwrap_or("")) {
                envelopes.push(v);
            }
        }
    }
    println!(
        "== events on bus {} ({} published, the last {} shown)",
        resources.event_bus_name,
        envelopes.len(),
        LAST.min(envelopes.len())
    );
    for e in envelopes.iter().skip(envelopes.len().saturating_sub(LAST)) {
        println!("   {}", event_line(e));
    }
    Ok(())
}

/// One event in a line: its type, id and what it says (ids and business facts only).
pub fn event_line(e: &serde_json::Value) -> String {
    let d = &e["detail"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let id = s(&d["id"]);
    let what = match e["detail-type"].as_str().unwrap_or("") {
        "PullRefreshed" => format!(
            "pull={} previous={} changes={} policies_changed={}",
            s(&d["pull_id"]),
            s(&d["previous_pull_id"]),
            d["change_count"],
            d["policies_changed"]
        ),
        "PolicyChanged" => format!(
            "policy={} kinds={} premium_difference_cents={}",
            s(&d["policy"]["id"]),
            d["change_kinds"],
            d["premium_difference_cents"]
        ),
        "CanopyMonitoringEvent" => {
            format!(
                "pull={} type={} changes={}",
                s(&d["pull_id"]),
                s(&d["event_type"]),
                d["changes"]
            )
        }
        "FetchFailed" => format!("pull={} code={}", s(&d["pull_id"]), s(&d["code"])),
        _ => format!(
            "monitoring={} pull={}",
            s(&d["monitoring_id"]),
            s(&d["pull_id"])
        ),
    };
    format!(
        "{} {:<21} id={} {what}",
        s(&e["time"]),
        s(&e["detail-type"]),
        &id[..8.min(id.len())]
    )
}
