//! What changed, checked against Canopy: a refresh that cancels a policy, raises a premium,
//! renews, adds a vehicle and drops a coverage, with the fake Canopy reporting each as a
//! MONITORING_EVENTS webhook (signed, over HTTP, into intake). The two pulls are fetched and
//! stored, and `changes::diff` of the stored pulls must say what Canopy said, no more, no less.

use canopy_monitor::changes::{diff, Change, CoverageScope, ItemKind};
use canopy_monitor::monitoring_api::ApiConfig;
use canopy_sim::fixtures::{sample_pull, PullSize};
use canopy_sim::SimChange;
use devkit::LOCAL_SIGNING_SECRET;
use integration_tests::fetching::{consumer, drain_into, fake_canopy};
use integration_tests::reconnect::serve_intake;
use integration_tests::{attr, RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

/// Canopy's changes, one line each: `schema:type:subject:field=value`.
fn canopys(events: &[Value], previous: &Value) -> BTreeSet<String> {
    let coverage_name = |id: &Value| {
        previous["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["vehicles"].as_array().into_iter().flatten())
            .flat_map(|v| v["coverages"].as_array().into_iter().flatten())
            .find(|c| c["vehicle_coverage_id"] == *id)
            .and_then(|c| c["name"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut out = BTreeSet::new();
    for event in events {
        for c in event["data"]["changes"].as_array().into_iter().flatten() {
            match (c["schema"].as_str(), c["type"].as_str()) {
                (Some("POLICY"), Some("UPDATE")) => {
                    for (field, value) in c["after"].as_object().into_iter().flatten() {
                        if field != "policy_id" {
                            out.insert(format!(
                                "policy:{}:{field}={value}",
                                c["after"]["policy_id"]
                            ));
                        }
                    }
                }
                (Some("VEHICLE"), Some("CREATE")) => {
                    out.insert(format!("vehicle:added:{}", c["after"]["vehicle_id"]));
                }
                (Some("VEHICLECOVERAGE"), Some("DELETE")) => {
                    out.insert(format!(
                        "coverage:removed:{}:{}",
                        c["before"]["vehicle_id"],
                        coverage_name(&c["before"]["vehicle_coverage_id"])
                    ));
                }
                other => panic!("unexpected Canopy change {other:?}"),
            }
        }
    }
    out
}

/// Ours, in the same lines.
fn ours(changes: &[Change]) -> BTreeSet<String> {
    let id = |r: &canopy_monitor::changes::ItemRef| json!(r.id).to_string();
    changes
        .iter()
        .map(|c| match c {
            Change::PolicyFieldChanged {
                policy,
                field,
                after,
                ..
            } => {
                format!("policy:{}:{field}={after}", id(policy))
            }
            Change::PremiumChanged {
                policy,
                after_cents,
                ..
            } => {
                format!(
                    "policy:{}:total_premium_cents={}",
                    id(policy),
                    json!(after_cents)
                )
            }
            Change::Added {
                item: ItemKind::Vehicle,
                reference,
                ..
            } => {
                format!("vehicle:added:{}", id(reference))
            }
            Change::CoverageRemoved {
                scope: CoverageScope::Vehicle { vehicle },
                coverage,
                ..
            } => format!("coverage:removed:{}:{coverage}", id(vehicle)),
            other => format!("unexpected {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn our_diff_agrees_with_canopys_monitoring_events() {
    let env = TestEnv::new("changes").await;
    let canopy = fake_canopy().await;
    let url = serve_intake(&env).await;
    canopy.set_webhook(&url, LOCAL_SIGNING_SECRET);
    let first = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(
        &first,
        PullSize {
            vehicles: 3,
            documents: 1,
        },
    ));
    let api = integration_tests::monitoring::api(
        &env,
        &canopy,
        &RequestCounter::default(),
        ApiConfig::default(),
    );
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let api = &api;
        async move { integration_tests::monitoring::call(api, method, &path, &[], body.as_ref()).await }
    };
    let id = integration_tests::monitoring::enable(&api, &first).await;
    integration_tests::fetching::enqueue_fetch(&env, &first, Some(&id)).await;

    canopy.set_refresh_changes(
        &id,
        vec![
            SimChange::RaisePremium { cents: 10700 },
            SimChange::CancelPolicy,
            SimChange::Renew,
            SimChange::AddVehicle,
            SimChange::DropCoverage,
        ],
    );
    let refreshed = call("POST", format!("/v1/monitorings/{id}/refresh"), None).await;
    assert_eq!(refreshed.status, StatusCode::ACCEPTED, "{}", refreshed.json);
    let second = refreshed.json["pull_id"].as_str().expect("pull").to_owned();

    // The refresh's webhooks arrive over HTTP: its COMPLETE and five MONITORING_EVENTS.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = env
            .event_records()
            .await
            .into_iter()
            .filter(|r| {
                attr(r, "event_type") == Some("MONITORING_EVENTS")
                    && attr(r, "pull_id") == Some(second.as_str())
            })
            .collect();
        if events.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.len(), 5, "one MONITORING_EVENTS per change");
    let bodies: Vec<Value> = events
        .iter()
        .map(|r| {
            let gz = r["body_gz"].as_b().expect("stored body").as_ref().to_vec();
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut text)
                .expect("gzip");
            serde_json::from_slice(&text).expect("json")
        })
        .collect();

    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;
    drain_into(&env, &fetcher).await;
    let before = env
        .store
        .get_pull_data(&first)
        .await
        .unwrap()
        .expect("first stored")
        .pull;
    let after = env
        .store
        .get_pull_data(&second)
        .await
        .unwrap()
        .expect("second stored")
        .pull;

    let set = diff(&before, &after);
    let (our_lines, canopy_lines) = (ours(&set.changes), canopys(&bodies, &before));
    println!("ours: {our_lines:#?}\ncanopy's: {canopy_lines:#?}");
    assert_eq!(
        our_lines, canopy_lines,
        "the same changes, no more, no less"
    );
    assert!(set.changes.iter().any(|c| matches!(
        c,
        Change::PremiumChanged {
            difference_cents: Some(10700),
            ..
        }
    )));
    assert!(diff(&after, &after).is_empty());

    // Both are stored, side by side in the monitoring's change history (newest first), and
    // the stored lists agree as the live ones do.
    let history = call(
        "GET",
        format!("/v1/monitorings/{id}/changes?limit=100"),
        None,
    )
    .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.json);
    let items = history.json["items"].as_array().expect("items").clone();
    let of = |source: &str, pull: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|i| i["source"] == source && i["pull_id"] == pull)
            .cloned()
            .collect()
    };
    let stored_ours = of("canopy-monitor", &second);
    assert_eq!(stored_ours.len(), 1, "{items:#?}");
    assert_eq!(stored_ours[0]["previous_pull_id"], first.as_str());
    assert_eq!(stored_ours[0]["compared"], true);
    assert_eq!(
        stored_ours[0]["changes"],
        serde_json::to_value(&set.changes).unwrap()
    );
    let stored_canopys: Vec<Value> = of("canopy", &second)
        .into_iter()
        .map(|i| json!({"data": {"changes": i["changes"]}}))
        .collect();
    assert_eq!(stored_canopys.len(), 5);
    assert_eq!(
        canopys(&stored_canopys, &before),
        our_lines,
        "the stored lists agree"
    );
    let initial = of("canopy-monitor", &first);
    assert_eq!(initial.len(), 1);
    assert_eq!(initial[0]["compared"], false);
    assert_eq!(initial[0]["not_compared"], "no_previous_pull");
    let position = |pull: &str| items.iter().position(|i| i["pull_id"] == pull).unwrap();
    assert!(position(&second) < position(&first), "newest first");
    // Pages of two walk the same history.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/monitorings/{id}/changes?limit=2&cursor={c}"),
            None => format!("/v1/monitorings/{id}/changes?limit=2"),
        };
        let page = call("GET", path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        walked.extend(page.json["items"].as_array().cloned().unwrap_or_default());
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, items);
}
