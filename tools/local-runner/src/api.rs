//! The Monitoring API and the reconciler in the local run: the API served beside the webhook
//! (each request through the function's handler, as API Gateway would pass it), and a demo that
//! enables monitoring of a pull, lists, refreshes and reads the stored pull through it.

use crate::consumers::CanopyTarget;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use canopy_monitor::runtime::config::{ApiEnv, SyncEnv};
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::SimChange;
use devkit::resources::Resources;
use devkit::LOCAL_SIGNING_SECRET;
use monitoring_api::AwsMonitoringApi;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The API over the local resources.
pub async fn build_api(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
) -> Result<AwsMonitoringApi, String> {
    let env = ApiEnv {
        table_name: resources.table_name.clone(),
        fetch_queue_url: resources.fetch_queue_url.clone(),
        notify_queue_url: resources.notify_queue_url.clone(),
        canopy: canopy.env(resources),
        api: canopy_monitor::app::monitoring_api::ApiConfig::default(),
    };
    monitoring_api::api_from(env, aws)
        .await
        .map_err(|e| e.to_string())
}

/// Runs one reconciler pass and prints its report.
pub async fn sync_once(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
) -> Result<canopy_monitor::app::sync::SyncReport, String> {
    let env = SyncEnv {
        table_name: resources.table_name.clone(),
        fetch_queue_url: resources.fetch_queue_url.clone(),
        notify_queue_url: resources.notify_queue_url.clone(),
        canopy: canopy.env(resources),
        sync: canopy_monitor::app::sync::SyncConfig::default(),
    };
    let sync = monitoring_sync::sync_from(env, aws)
        .await
        .map_err(|e| e.to_string())?;
    let report = sync
        .run(canopy_monitor::app::budget::Deadline::NONE)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "   monitoring-sync: {} monitorings on {} page(s); created {}, status fixed {}, settings fixed {}, fetches queued {}",
        report.monitorings_seen,
        report.pages,
        report.created,
        report.status_fixed,
        report.settings_fixed,
        report.fetches_queued
    );
    Ok(report)
}

/// Turns an HTTP request into the API Gateway v2 event and runs monitoring-api's handler.
pub async fn invoke_api(
    State(api): State<Arc<AwsMonitoringApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match crate::lambda_request(&method, &uri, &headers, &body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e).into_response(),
    };
    // As API Gateway would: a response over Lambda's 6 MB becomes its 500.
    let response =
        devkit::aws_limits::api_gateway_response(monitoring_api::handle(&api, request).await).await;
    let (parts, body) = response.into_parts();
    tracing::info!(method = %method, path = %uri.path(), status = parts.status.as_u16(), "monitoring-api request");
    Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

async fn show(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = client.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let json: Value = response.json().await.unwrap_or(Value::Null);
    println!(
        "   {method} {}: {status}",
        url.split_once("/v1").map_or(url, |(_, p)| p)
    );
    if status >= 400 {
        return Err(format!("{method} {url}: {status} {json}"));
    }
    Ok(json)
}

/// Enables monitoring of a fresh pull, lists, refreshes (the fake sends the refresh's webhooks
/// to intake), waits for the new pull to be fetched and reads it back, then runs the reconciler.
pub async fn demo(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
    base: &str,
    webhook_url: &str,
) -> Result<(), String> {
    let Some(fake) = &canopy.fake else {
        println!("\n== demo: Monitoring API (a real Canopy is configured: call {base}/v1/... with one of your pulls)");
        return Ok(());
    };
    println!("\n== demo: the Monitoring API at {base}/v1 (IAM-authorized by API Gateway in AWS; open locally)");
    fake.set_webhook(webhook_url, LOCAL_SIGNING_SECRET);
    let pull_id = "5a0c9f3e-2b7d-4c1a-8e6f-9d3b2a1c0e47";
    let meta = json!({"customer_id": "cust-1042", "email": "clark.kent@example.com"});
    let mut pull = sample_pull(pull_id, PullSize::default());
    pull["meta_data"] = meta.clone();
    fake.add_pull(pull.clone());
    // The consumer's first pull completes (non-monitored yet), as the link flow would end.
    let subject = Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: meta,
    };
    let complete = refresh_sequence(&subject, &pull).pop().unwrap_or_default();
    canopy_sim::send_webhooks(webhook_url, LOCAL_SIGNING_SECRET, &[complete]).await?;

    let client = reqwest::Client::new();
    let enabled = show(
        &client,
        reqwest::Method::POST,
        &format!("{base}/v1/monitorings"),
        Some(json!({"pull_id": pull_id, "interval": "P1M"})),
    )
    .await?;
    let id = enabled["monitoring"]["monitoring_id"]
        .as_str()
        .ok_or("no monitoring id")?
        .to_owned();
    println!(
        "     monitoring {id}: {} every {}, owner {}",
        enabled["monitoring"]["status"],
        enabled["monitoring"]["interval"],
        enabled["monitoring"]["owner"]
    );
    let listed = show(
        &client,
        reqwest::Method::GET,
        &format!("{base}/v1/monitorings?owner=cust-1042"),
        None,
    )
    .await?;
    println!(
        "     customer cust-1042 has {} monitoring(s)",
        listed["monitorings"].as_array().map_or(0, Vec::len)
    );
    // The fake Canopy's refresh changes things, and reports each as MONITORING_EVENTS.
    fake.set_refresh_changes(
        &id,
        vec![
            SimChange::RaisePremium { cents: 4200 },
            SimChange::AddVehicle,
            SimChange::DropCoverage,
        ],
    );
    println!("     the refresh will raise a premium by $42.00, add a vehicle and drop a coverage");
    let refreshed = show(
        &client,
        reqwest::Method::POST,
        &format!("{base}/v1/monitorings/{id}/refresh"),
        None,
    )
    .await?;
    let new_pull = refreshed["pull_id"]
        .as_str()
        .ok_or("no pull id")?
        .to_owned();
    println!("     refresh started: new pull {new_pull}; the fake Canopy sends its webhooks");
    let again = client
        .post(format!("{base}/v1/monitorings/{id}/refresh"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "   POST /monitorings/{{id}}/refresh again: {} (guarded: a refresh is billed like a pull)",
        again.status().as_u16()
    );
    for _ in 0..100 {
        let view: Value = client
            .get(format!("{base}/v1/pulls/{new_pull}"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .unwrap_or(Value::Null);
        if view["summary"].is_object() {
            println!(
                "   GET /pulls/{new_pull}: stored at {}, carrier {}, {} policies",
                view["fetched_at"],
                view["summary"]["insurance_provider_name"],
                view["summary"]["policies"].as_array().map_or(0, Vec::len)
            );
            let full = client
                .get(format!("{base}/v1/pulls/{new_pull}?full=true"))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let encoding = full
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_owned();
            let bytes = full.bytes().await.map_err(|e| e.to_string())?;
            println!(
                "   GET /pulls/{new_pull}?full=true: {} bytes, Content-Encoding {encoding} (as stored)",
                bytes.len()
            );
            let detail = show(
                &client,
                reqwest::Method::GET,
                &format!("{base}/v1/monitorings/{id}"),
                None,
            )
            .await?;
            println!(
                "     latest pull {}, {} refresh(es) in its history",
                detail["monitoring"]["latest_pull_id"],
                detail["refreshes"]["items"].as_array().map_or(0, Vec::len)
            );
            show_changes(&client, base, &id, resources, aws).await?;
            println!("\n== demo: the daily reconciler, run now");
            sync_once(aws, resources, canopy).await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "refreshed pull {new_pull} was not stored within 10 s"
    ))
}

/// The refresh's change history through the API, and the events it published on the bus.
async fn show_changes(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    resources: &Resources,
    aws: &aws_config::SdkConfig,
) -> Result<(), String> {
    // Canopy's MONITORING_EVENTS may still be arriving: wait for the three.
    let mut history = Value::Null;
    for _ in 0..50 {
        history = client
            .get(format!("{base}/v1/monitorings/{id}/changes"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .unwrap_or(Value::Null);
        let canopys = history["items"]
            .as_array()
            .map_or(0, |i| i.iter().filter(|e| e["source"] == "canopy").count());
        if canopys >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("   GET /monitorings/{{id}}/changes: what changed, newest first");
    for item in history["items"].as_array().into_iter().flatten() {
        let changes = item["changes"].as_array().cloned().unwrap_or_default();
        if item["source"] == "canopy" {
            let c = changes.first().cloned().unwrap_or(Value::Null);
            println!(
                "     canopy          MONITORING_EVENTS {} {}",
                c["schema"].as_str().unwrap_or("-"),
                c["type"].as_str().unwrap_or("-")
            );
        } else {
            println!(
                "     canopy-monitor  pull {} vs {}: {} change(s)",
                item["pull_id"].as_str().unwrap_or("-"),
                item["previous_pull_id"].as_str().unwrap_or("(none)"),
                changes.len()
            );
            for c in &changes {
                let detail = match c["kind"].as_str().unwrap_or("") {
                    "premium_changed" => format!(
                        "{} -> {} cents ({:+})",
                        c["before_cents"],
                        c["after_cents"],
                        c["difference_cents"].as_i64().unwrap_or(0)
                    ),
                    "coverage_removed" | "coverage_added" => {
                        format!(
                            "{} ({})",
                            c["coverage"].as_str().unwrap_or("-"),
                            c["scope"]["level"].as_str().unwrap_or("-")
                        )
                    }
                    "added" | "removed" => c["item"].as_str().unwrap_or("-").to_owned(),
                    _ => c["field"].as_str().unwrap_or("").to_owned(),
                };
                println!("       {:<18} {detail}", c["kind"].as_str().unwrap_or("-"));
            }
        }
    }
    // The local publisher sweeps every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    crate::inspect::show_events(aws, resources).await
}
