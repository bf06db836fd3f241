//! What changed, checked against Canopy: a refresh that cancels a policy, raises a premium,
//! renews, adds a vehicle and drops a coverage, with the fake Canopy reporting each as a
//! MONITORING_EVENTS webhook (signed, over HTTP, into intake). The two pulls are fetched and
//! stored, and `changes::diff` of the stored pulls must say what Canopy said, no more, no less.

use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::domain::changes::{diff, Change, CoverageScope, ItemKind};
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
    let id = |r: &canopy_monitor::domain::changes::ItemRef| json!(r.id).to_string();
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

/// Every item of the table, read with a consistent paginated Scan, fits DynamoDB's 400 KB as
/// DynamoDB counts it (moto itself refuses nothing).
async fn assert_every_item_fits(env: &TestEnv) -> usize {
    use canopy_monitor::adapters::dynamo::item_size::{item_size, MAX_ITEM_BYTES};
    let mut start = None;
    let mut largest = 0;
    loop {
        let page = env
            .store
            .client()
            .scan()
            .table_name(env.store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let size = item_size(item);
            assert!(
                size <= MAX_ITEM_BYTES,
                "item {:?} {:?} is {size} bytes",
                attr(item, "pk"),
                attr(item, "sk")
            );
            largest = largest.max(size);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return largest,
        }
    }
}

/// A pull of 10 auto policies, each with 10 vehicles of 10 coverages whose limits are
/// `base + n`: between two such pulls, 100 changes per policy.
fn fleet_pull(pull_id: &str, created_at: &str, base: i64) -> Value {
    let policies: Vec<Value> = (0..10)
        .map(|p| {
            let vehicles: Vec<Value> = (0..10)
                .map(|v| {
                    let coverages: Vec<Value> = (0..10)
                        .map(|c| {
                            json!({
                                "vehicle_coverage_id": format!("{pull_id}-vc-{p}-{v}-{c}"),
                                "name": format!("BODILY_INJURY_LIABILITY_SPLIT_LIMIT_{c:02}"),
                                "per_person_limit_cents": base + c,
                            })
                        })
                        .collect();
                    json!({
                        "vehicle_id": format!("b0f1c9de-7a55-4c1e-9f0e-policy{p:02}-vehicle{v:02}"),
                        "vin": format!("1G1FK1R62J{p:02}{v:05}"),
                        "coverages": coverages,
                    })
                })
                .collect();
            json!({
                "policy_id": format!("5d7c2a10-3e4b-4f6a-8c9d-fleetpolicy{p:02}"),
                "policy_type": "AUTO", "status": "ACTIVE", "carrier_policy_number": format!("AU-{p:04}"),
                "vehicles": vehicles,
            })
        })
        .collect();
    json!({"pull_id": pull_id, "created_at": created_at, "status": "SUCCESS", "policies": policies})
}

/// Defect 4: a refresh with 10 policies x 100 changes. Its change set with its outbox events
/// is larger than an item; the fetch still succeeds, every item fits 400 KB, and the changes
/// route returns all 1,000 changes.
#[tokio::test]
async fn a_change_set_of_ten_policies_by_a_hundred_changes_is_stored_whole() {
    let env = TestEnv::new("bigchanges").await;
    let canopy = fake_canopy().await;
    let (first, second) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let before = fleet_pull(&first, "2026-01-01T00:00:00Z", 2_500_000);
    let after = fleet_pull(&second, "2026-02-01T00:00:00Z", 5_000_000);
    canopy.add_pull(before.clone());
    canopy.add_pull(after.clone());
    let api = integration_tests::monitoring::api(
        &env,
        &canopy,
        &RequestCounter::default(),
        ApiConfig::default(),
    );
    let id = integration_tests::monitoring::enable(&api, &first).await;
    let fetcher = consumer(&env, &canopy, Duration::from_secs(10)).await;
    integration_tests::fetching::enqueue_fetch(&env, &first, Some(&id)).await;
    drain_into(&env, &fetcher).await;
    integration_tests::fetching::enqueue_fetch(&env, &second, Some(&id)).await;
    drain_into(&env, &fetcher).await;

    let expected = serde_json::to_value(diff(&before, &after).changes).unwrap();
    let expected_len = expected.as_array().unwrap().len();
    assert_eq!(expected_len, 1000);
    // The premise: the list and its events' copies together outgrow an item.
    assert!(expected.to_string().len() * 2 > 400 * 1024);

    let state = env.store.get_pull(&second).await.unwrap().expect("pull");
    assert_eq!(state.fetch_status.as_deref(), Some("FETCHED"), "{state:?}");
    let largest = assert_every_item_fits(&env).await;
    println!("largest item: {largest} bytes");

    let page = integration_tests::monitoring::call(
        &api,
        "GET",
        &format!("/v1/monitorings/{id}/changes?limit=10"),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    let ours = page.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "canopy-monitor" && i["pull_id"] == second.as_str())
        .cloned()
        .expect("the refresh's change set");
    assert_eq!(ours["change_count"], 1000);
    assert_eq!(ours["truncated"], false);
    assert_eq!(ours["changes"], expected, "all 1,000 changes, as computed");
}

/// Defect 4: a MONITORING_EVENTS delivery of about 1 MB (thousands of small changes, under
/// intake's 1 MB limit) is accepted with 200, every item fits 400 KB, and all its changes
/// read back through the Monitoring API.
#[tokio::test]
async fn a_one_megabyte_monitoring_events_delivery_is_stored_whole() {
    let env = TestEnv::new("bigevents").await;
    let canopy = fake_canopy().await;
    let (monitoring_id, pull_id) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let changes: Vec<Value> = (0..3600)
        .map(|n| {
            let vehicle = uuid::Uuid::new_v4().to_string();
            json!({"schema": "VEHICLE", "type": "UPDATE",
                   "before": {"vehicle_id": vehicle, "annual_mileage": 12000 + n},
                   "after": {"vehicle_id": vehicle, "annual_mileage": 13000 + n,
                             "lien_holder": uuid::Uuid::new_v4().to_string()}})
        })
        .collect();
    let subject = canopy_sim::fixtures::Subject {
        pull_id: pull_id.clone(),
        monitoring_id: Some(monitoring_id.clone()),
        initial_pull_id: Some(pull_id.clone()),
        meta_data: json!({}),
    };
    let body = canopy_sim::fixtures::monitoring_events_webhook(
        &subject,
        json!({"type": "POLICY_CHANGE", "changes": changes, "documents": []}),
    )
    .to_string()
    .into_bytes();
    assert!(
        (900_000..=1_048_576).contains(&body.len()),
        "{} bytes",
        body.len()
    );
    let (status, response) = env.deliver(&body).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let largest = assert_every_item_fits(&env).await;
    println!("largest item: {largest} bytes");

    let api = integration_tests::monitoring::api(
        &env,
        &canopy,
        &RequestCounter::default(),
        ApiConfig::default(),
    );
    let page = integration_tests::monitoring::call(
        &api,
        "GET",
        &format!("/v1/monitorings/{monitoring_id}/changes"),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    let items = page.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", page.json);
    assert_eq!(items[0]["source"], "canopy");
    assert_eq!(
        items[0]["changes"],
        Value::Array(changes),
        "every change read back"
    );
}
