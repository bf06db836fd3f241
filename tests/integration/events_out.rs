//! Business events out: every event type recorded by the write that caused it, kept through an
//! EventBridge outage, published afterwards once per `id` (a replayed stream record sends
//! copies with the same `id`), each detail valid against its JSON Schema, and the README's
//! premium-increase rule routing exactly the premium increase. EventBridge is moto's: rules
//! on the test's bus deliver to SQS queues the test reads.

use canopy_monitor::app::budget::Deadline;
use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::domain::business_events::DetailType;
use canopy_sim::fixtures::{reconnect_webhook, sample_pull, PullSize, Subject};
use canopy_sim::SimChange;
use devkit::LOCAL_SIGNING_SECRET;
use integration_tests::events_out::{
    function_publisher, premium_increase_rule, publisher, publisher_with, receive_all,
    schema_errors, test_outbox_config, waiting, PutEventsLimits,
};
use integration_tests::faults::{Fault, FaultInjector};
use integration_tests::fetching::{consumer, drain_into, enqueue_fetch, fake_canopy};
use integration_tests::reconnect::serve_intake;
use integration_tests::{attr, RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A DynamoDB stream batch with one record whose new image is `item` (as Lambda delivers it).
fn stream_batch(
    item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Value {
    let image: serde_dynamo::Item = item.into();
    json!({"Records": [{
        "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"NewImage": image, "SequenceNumber": "1", "SizeBytes": 1,
                     "StreamViewType": "NEW_IMAGE"}
    }]})
}

#[tokio::test]
async fn every_event_is_published_once_per_id_after_an_outage_and_matches_its_schema() {
    let env = TestEnv::new("events-out").await;
    let canopy = fake_canopy().await;
    let url = serve_intake(&env).await;
    canopy.set_webhook(&url, LOCAL_SIGNING_SECRET);
    let premium_queue = devkit::resources::route_to_new_queue(
        &env.aws,
        &env.resources.event_bus_name,
        "premium-increase",
        &premium_increase_rule(),
        &format!("{}-premium-increase", env.resources.table_name),
    )
    .await
    .expect("the README's rule");

    // A monitored pull, stored: PullRefreshed (first refresh, not compared).
    let first = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(
        &first,
        PullSize {
            vehicles: 2,
            documents: 1,
        },
    ));
    let api = integration_tests::monitoring::api(
        &env,
        &canopy,
        &RequestCounter::default(),
        ApiConfig::default(),
    );
    let id = integration_tests::monitoring::enable(&api, &first).await;
    enqueue_fetch(&env, &first, Some(&id)).await;

    // The consumer must log in again: ReconnectNeeded.
    let reconnect_pull = uuid::Uuid::new_v4().to_string();
    let subject = Subject {
        pull_id: reconnect_pull.clone(),
        monitoring_id: Some(id.clone()),
        initial_pull_id: Some(first.clone()),
        meta_data: json!({}),
    };
    let (status, _) = env
        .deliver(
            reconnect_webhook(&subject, "https://canopy.example/r", "tok-123")
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A refresh with a premium increase and a dropped coverage: its COMPLETE closes the
    // episode (ReconnectResolved), Canopy reports each change (CanopyMonitoringEvent), and
    // its fetch records PullRefreshed and a PolicyChanged.
    canopy.set_refresh_changes(
        &id,
        vec![
            SimChange::RaisePremium { cents: 10700 },
            SimChange::DropCoverage,
        ],
    );
    let refreshed = integration_tests::monitoring::call(
        &api,
        "POST",
        &format!("/v1/monitorings/{id}/refresh"),
        &[],
        None,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::ACCEPTED, "{}", refreshed.json);
    let second = refreshed.json["pull_id"].as_str().expect("pull").to_owned();
    for _ in 0..200 {
        let recorded = env
            .event_records()
            .await
            .into_iter()
            .filter(|r| attr(r, "pull_id") == Some(second.as_str()))
            .count();
        if recorded == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A pull Canopy does not know: FetchFailed.
    let missing = uuid::Uuid::new_v4().to_string();
    enqueue_fetch(&env, &missing, Some(&id)).await;
    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;
    drain_into(&env, &fetcher).await;

    // Everything is recorded and waits in the outbox.
    let pending = waiting(&env).await;
    let recorded: BTreeMap<String, DetailType> = pending
        .iter()
        .flat_map(|item| item.events.iter())
        .map(|e| (e.id().to_owned(), e.detail_type))
        .collect();
    let types: BTreeSet<&str> = recorded.values().map(|t| t.as_str()).collect();
    assert_eq!(
        types,
        DetailType::ALL.iter().map(|t| t.as_str()).collect(),
        "every event type is recorded"
    );
    let count = |t: DetailType| recorded.values().filter(|v| **v == t).count();
    assert_eq!(count(DetailType::PullRefreshed), 2);
    assert_eq!(count(DetailType::PolicyChanged), 1);
    assert_eq!(count(DetailType::CanopyMonitoringEvent), 2);
    assert_eq!(count(DetailType::ReconnectNeeded), 1);
    assert_eq!(count(DetailType::ReconnectResolved), 1);
    assert_eq!(count(DetailType::FetchFailed), 1);

    // EventBridge fails: nothing is published, nothing is lost.
    let faults = FaultInjector::default();
    faults.always(
        "AWSEvents.PutEvents",
        Fault::json_1_1(500, "InternalException"),
    );
    let p = publisher(&env, &faults);
    let outage = p.sweep(Deadline::NONE).await.expect("sweep");
    assert!(!outage.complete, "{outage:?}");
    assert_eq!(outage.events.published, 0);
    assert!(faults.injected() > 0);
    assert_eq!(
        waiting(&env).await.len(),
        pending.len(),
        "all still waiting"
    );
    // What a stream record of the monitoring's item looked like during the outage.
    let monitoring_item = pending
        .iter()
        .find(|i| i.pk == format!("MONITORING#{id}") && i.sk == "STATE")
        .expect("the monitoring item holds its reconnect events");
    let raw = env
        .store
        .client()
        .get_item()
        .table_name(&env.resources.table_name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(monitoring_item.pk.clone()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(monitoring_item.sk.clone()),
        )
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    let second_outage = p.sweep(Deadline::NONE).await.expect("sweep");
    assert_eq!(second_outage.events.published, 0);

    // EventBridge is back: one sweep publishes everything, and the outbox is empty.
    faults.heal();
    let recovered = p.sweep(Deadline::NONE).await.expect("sweep");
    assert!(recovered.complete, "{recovered:?}");
    assert_eq!(recovered.events.published, recorded.len());
    assert!(waiting(&env).await.is_empty());
    assert_eq!(
        p.sweep(Deadline::NONE)
            .await
            .expect("sweep")
            .events
            .published,
        0,
        "nothing left to publish"
    );
    // A stream record replayed after the sweep (the stream and a sweep racing): its events go
    // out again with the same ids.
    let replayed =
        event_publisher::handle(&function_publisher(&env), stream_batch(raw), Deadline::NONE)
            .await
            .expect("stream batch");
    assert!(matches!(
        replayed,
        event_publisher::Handled::Stream { records: 1, events } if events.published == 2
    ));

    // On the wire: every recorded id, copies identical, each detail valid.
    let envelopes = receive_all(&env, &env.resources.events_tap_url).await;
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &envelopes {
        assert_eq!(e["source"], "canopy-monitor");
        assert_eq!(schema_errors(e), Vec::<String>::new(), "{e:#}");
        by_id
            .entry(e["detail"]["id"].as_str().expect("id").to_owned())
            .or_default()
            .push(e);
    }
    assert_eq!(
        by_id.keys().cloned().collect::<BTreeSet<_>>(),
        recorded.keys().cloned().collect::<BTreeSet<_>>(),
        "every recorded event, nothing else"
    );
    for copies in by_id.values() {
        assert!(copies.iter().all(|c| c["detail"] == copies[0]["detail"]));
    }
    let duplicated: Vec<&str> = by_id
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(_, c)| c[0]["detail-type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        duplicated.len(),
        2,
        "only the replayed record's events: {duplicated:?}"
    );
    println!(
        "{} envelopes for {} events; duplicated by the replay: {duplicated:?}",
        envelopes.len(),
        recorded.len()
    );

    // No personal data travels: the sample pull's holder and the reconnect token.
    let wire = serde_json::to_string(&envelopes).expect("json");
    for secret in ["tok-123", "canopy.example/r", "@", "VIN"] {
        assert!(!wire.contains(secret), "{secret} on the wire");
    }

    // The README's rule routes the premium increase, and only it.
    let routed = receive_all(&env, &premium_queue).await;
    assert_eq!(routed.len(), 1, "{routed:#?}");
    assert_eq!(routed[0]["detail-type"], "PolicyChanged");
    assert_eq!(routed[0]["detail"]["premium_difference_cents"], 10700);
    assert_eq!(routed[0]["detail"]["previous_pull_id"], first.as_str());
}

/// The AWS requests one refresh with changes costs, counted by the SDK interceptor: the
/// fetcher's (store the pull, record the refresh, compare with the previous stored pull,
/// write the change set with its events) and the publisher's.
#[tokio::test]
async fn a_refresh_with_changes_costs_these_aws_requests() {
    use canopy_monitor::app::fetcher::{FetcherConfig, PullFetcher};
    use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger};
    let env = TestEnv::new("events-cost").await;
    let canopy = fake_canopy().await;
    let first = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(
        &first,
        PullSize {
            vehicles: 2,
            documents: 1,
        },
    ));
    let id = canopy.add_monitoring(&first, "P1M");
    let counter = RequestCounter::default();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.aws)
            .interceptor(counter.clone())
            .build(),
    );
    let fetcher = PullFetcher::new(
        canopy_monitor::adapters::dynamo::DynamoStore::new(ddb.clone(), &env.resources.table_name),
        integration_tests::rigs::canopy_client(&canopy, Duration::from_secs(5)),
        canopy_monitor::ports::SystemClock,
        FetcherConfig::default(),
    );
    let job = |pull: &str| FetchPullJob {
        source: None,
        pull_id: pull.to_owned(),
        monitoring_id: Some(id.clone()),
        initial_pull_id: Some(first.clone()),
        trigger: FetchTrigger::Complete,
        event_key: "k".to_owned(),
        requested_at: "2026-11-27T00:00:00.000Z".to_owned(),
    };
    fetcher.fetch(&job(&first)).await.expect("first fetch");
    canopy.set_refresh_changes(
        &id,
        vec![
            SimChange::RaisePremium { cents: 2500 },
            SimChange::AddVehicle,
            SimChange::DropCoverage,
        ],
    );
    let second = canopy.refresh_silently(&id).expect("refresh");
    counter.reset();
    fetcher.fetch(&job(&second)).await.expect("second fetch");
    let fetch = counter.snapshot();

    counter.reset();
    let publisher = publisher(&env, &counter);
    let swept = publisher.sweep(Deadline::NONE).await.expect("sweep");
    let publish = counter.snapshot();
    println!("fetch and record a refresh with changes: {fetch:#?}");
    println!(
        "publish its events ({} events): {publish:#?}",
        swept.events.published
    );

    let op = |counts: &BTreeMap<String, usize>, name: &str| {
        counts
            .iter()
            .filter(|(k, _)| k.ends_with(name))
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    // Change log: the history Query, the previous pull (GetItem + Query of its parts), and one
    // PutItem of the change set with its events; the rest is the fetch as before.
    assert_eq!(
        op(&fetch, ".PutItem"),
        3,
        "summary, refresh entry, change set"
    );
    assert_eq!(op(&fetch, ".GetItem"), 1, "the previous pull's summary");
    assert_eq!(
        op(&fetch, "AWSEvents.PutEvents"),
        0,
        "the fetcher never calls EventBridge"
    );
    // Both refreshes' events (PullRefreshed x2, PolicyChanged x1) in one PutEvents per item.
    assert_eq!(swept.events.published, 3);
    assert_eq!(
        op(&publish, "AWSEvents.PutEvents"),
        2,
        "one per change-set item"
    );
    assert_eq!(
        op(&publish, ".Query"),
        canopy_monitor::domain::shard::SHARDS as usize,
        "one page of each shard of the outbox index"
    );
    assert_eq!(
        op(&publish, ".UpdateItem"),
        2,
        "one acknowledgement per item"
    );
}

/// A change set of `policies` policies with `per_policy` coverage changes each, written with
/// its events (PullRefreshed and one PolicyChanged per policy) as the fetcher writes it, its
/// events waiting since `at`.
async fn put_change_set(
    env: &TestEnv,
    monitoring_id: &str,
    pull_id: &str,
    at: &str,
    policies: usize,
    per_policy: usize,
    coverage_len: usize,
) -> Vec<canopy_monitor::domain::business_events::BusinessEvent> {
    use canopy_monitor::domain::business_events::{refresh_events, RefreshContext};
    use canopy_monitor::domain::changes::{Change, ChangeSet, CoverageScope, ItemRef, MatchedBy};
    use canopy_monitor::ports::store::{ChangeSetRecord, ChangeStore};
    let item = |id: String| ItemRef {
        id: Some(id),
        matched_by: MatchedBy::Id,
    };
    let changes = ChangeSet {
        changes: (0..policies)
            .flat_map(|p| {
                (0..per_policy).map(move |c| Change::CoverageChanged {
                    policy: item(format!("policy-{p:04}-{}", "0".repeat(24))),
                    scope: CoverageScope::Vehicle {
                        vehicle: item(format!("vehicle-{c:04}-{}", "0".repeat(24))),
                    },
                    coverage: format!("coverage-{c:04}-{}", "c".repeat(coverage_len)),
                    field: "deductible_cents".to_owned(),
                    before: json!(50_000),
                    after: json!(100_000),
                })
            })
            .collect(),
    };
    let ctx = RefreshContext {
        monitoring_id,
        pull_id,
        previous_pull_id: Some("previous-pull"),
        created_at: Some(at),
        at,
    };
    let summary = canopy_monitor::domain::pull_data::PullSummary::default();
    let events = refresh_events(&ctx, &summary, Some(&changes));
    let record = ChangeSetRecord {
        monitoring_id: monitoring_id.to_owned(),
        pull_id: pull_id.to_owned(),
        order: at.to_owned(),
        previous_pull_id: Some("previous-pull".to_owned()),
        computed_at: at.to_owned(),
        // The events are what this test is about; the stored list is another item's size.
        changes: None,
        not_compared: Some("test"),
        counts: json!({}),
    };
    env.store
        .put_change_set(&record, &events)
        .await
        .expect("change set item");
    events
}

/// One oldest item whose events, ten to a request, exceed PutEvents' 256 KB (a change set of
/// 10 policies x 100 changes) no longer stalls the sweep: its events go out in requests sized
/// by AWS's entry-size formula, and every item behind it is published in the same pass.
#[tokio::test]
async fn an_oversized_change_set_oldest_in_the_outbox_does_not_stall_the_items_behind_it() {
    let env = TestEnv::new("events-stall").await;
    let big = put_change_set(
        &env,
        "m-big",
        "p-big",
        "2026-01-01T00:00:00.000Z",
        10,
        100,
        60,
    )
    .await;
    let sizes: Vec<usize> = big
        .iter()
        .map(|e| "canopy-monitor".len() + e.detail_type.as_str().len() + e.detail.to_string().len())
        .collect();
    assert!(
        sizes.iter().take(10).sum::<usize>() > 256 * 1024,
        "ten of its events exceed one request: {sizes:?}"
    );
    let mut behind = Vec::new();
    for i in 0..6 {
        let at = format!("2026-01-01T00:00:{:02}.000Z", i + 1);
        behind
            .extend(put_change_set(&env, &format!("m{i}"), &format!("p{i}"), &at, 1, 2, 10).await);
    }
    let limits = PutEventsLimits::default();
    let p = publisher(&env, &limits);
    let report = p.sweep(Deadline::NONE).await.expect("sweep");
    println!(
        "{report:?}; requests refused over the limits: {}",
        limits.refused()
    );
    assert_eq!(limits.refused(), 0, "no request over AWS's limits is sent");
    assert!(waiting(&env).await.is_empty(), "every item published");
    assert_eq!(report.events.published, big.len() + behind.len());
    let envelopes = receive_all(&env, &env.resources.events_tap_url).await;
    let ids: BTreeSet<&str> = envelopes
        .iter()
        .filter_map(|e| e["detail"]["id"].as_str())
        .collect();
    for e in big.iter().chain(&behind) {
        assert!(ids.contains(e.id()), "{} published", e.id());
    }
    for e in &envelopes {
        assert_eq!(schema_errors(e), Vec::<String>::new());
    }
}

/// An event whose own entry is over 256 KB (one policy's 100 changes with long coverage
/// names) is published shrunk: its ids, counts and kinds, `truncated`, and where to read the
/// whole change set; valid against its schema.
#[tokio::test]
async fn an_event_too_large_for_put_events_is_published_shrunk() {
    let env = TestEnv::new("events-shrunk").await;
    let events = put_change_set(
        &env,
        "m-huge",
        "p-huge",
        "2026-01-01T00:00:00.000Z",
        1,
        100,
        2800,
    )
    .await;
    let huge = events
        .iter()
        .find(|e| e.detail_type == DetailType::PolicyChanged)
        .expect("PolicyChanged");
    assert!(
        huge.detail.to_string().len() > 256 * 1024,
        "over the limit alone"
    );
    let limits = PutEventsLimits::default();
    let report = publisher(&env, &limits)
        .sweep(Deadline::NONE)
        .await
        .expect("sweep");
    assert_eq!(limits.refused(), 0, "{report:?}");
    assert_eq!(report.events.published, 2);
    assert!(waiting(&env).await.is_empty());
    let envelopes = receive_all(&env, &env.resources.events_tap_url).await;
    let shrunk = envelopes
        .iter()
        .find(|e| e["detail"]["id"] == huge.id())
        .expect("published, same id");
    println!("{}", shrunk["detail"]);
    assert_eq!(schema_errors(shrunk), Vec::<String>::new());
    let detail = &shrunk["detail"];
    assert_eq!(detail["truncated"], true);
    assert_eq!(detail["change_count"], 100);
    assert!(detail.get("changes").is_none());
    assert_eq!(
        detail["change_set"],
        json!({"source": "canopy-monitor", "monitoring_id": "m-huge", "pull_id": "p-huge",
               "path": "/v1/monitorings/m-huge/changes"})
    );
}

fn key(
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    [
        ("pk".to_owned(), S(pk.to_owned())),
        ("sk".to_owned(), S(sk.to_owned())),
    ]
    .into()
}

async fn get(
    env: &TestEnv,
    pk: &str,
    sk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    env.store
        .client()
        .get_item()
        .table_name(&env.resources.table_name)
        .set_key(Some(key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("item")
}

/// An item whose events PutEvents refuses (ValidationException) on every pass no longer holds
/// up the items behind it: each sweep pages past it (one item per page, more than one page in
/// a shard) and publishes the rest; the 5th refused pass parks it (out of the index, its
/// events kept, `outbox_parked_at` set, counted), and the next sweep is complete.
#[tokio::test]
async fn an_item_refused_on_every_pass_is_parked_and_counted_and_the_sweep_pages_past_it() {
    let env = TestEnv::new("events-park").await;
    let poison = put_change_set(
        &env,
        "m-poison",
        "p-poison",
        "2026-01-01T00:00:00.000Z",
        0,
        0,
        0,
    )
    .await;
    let mut behind = Vec::new();
    for i in 0..20 {
        let at = format!("2026-01-01T00:00:{:02}.000Z", i + 1);
        behind.extend(put_change_set(&env, &format!("m{i}"), &format!("p{i}"), &at, 0, 0, 0).await);
    }
    let limits = PutEventsLimits::default();
    limits.faults.add(integration_tests::faults::Rule {
        operation: "AWSEvents.PutEvents".to_owned(),
        body_contains: Some(poison[0].id().to_owned()),
        times: None,
        fault: Fault::json_1_1(400, "ValidationException"),
    });
    let config = canopy_monitor::app::outbox::OutboxConfig {
        page: 1,
        ..test_outbox_config()
    };
    let park_after = config.park_after;
    let p = publisher_with(&env, &limits, config);
    let first = p.sweep(Deadline::NONE).await.expect("sweep");
    println!("first pass: {first:?}");
    assert_eq!(first.events.published, behind.len(), "everything behind it");
    assert!(
        first.pages > canopy_monitor::domain::shard::SHARDS as usize,
        "21 items in 16 shards, one a page: some shard took more than one page"
    );
    assert!(!first.complete);
    assert_eq!(first.parked, 0);
    let mut parked = 0;
    for _ in 1..park_after {
        parked += p.sweep(Deadline::NONE).await.expect("sweep").parked;
    }
    assert_eq!(parked, 1);
    assert!(waiting(&env).await.is_empty(), "out of the index");
    let item = get(
        &env,
        "MONITORING#m-poison",
        "CHANGES#2026-01-01T00:00:00.000Z#p-poison#canopy-monitor",
    )
    .await;
    assert!(item.contains_key("outbox_parked_at"));
    assert!(!item.contains_key("outbox_pending"));
    assert_eq!(
        attr(&item, "outbox_version").map(|v| !v.is_empty()),
        Some(true)
    );
    assert_eq!(
        item.get("outbox_attempts")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some(park_after.to_string().as_str())
    );
    assert!(
        item.contains_key(&format!("outbox_{}", poison[0].id())),
        "its event kept for a redrive"
    );
    let after = p.sweep(Deadline::NONE).await.expect("sweep");
    assert!(after.complete, "{after:?}");
}

/// A pending mark whose events are gone (no `outbox_<id>` attribute) is cleared by the sweep.
#[tokio::test]
async fn a_pending_mark_without_events_is_cleared() {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let env = TestEnv::new("events-empty-mark").await;
    let (pk, sk) = ("PULL#empty-mark", "STATE");
    let mut item = key(pk, sk);
    item.insert(
        "outbox_pending".to_owned(),
        S(canopy_monitor::adapters::dynamo::outbox::pending_partition(
            pk, sk,
        )),
    );
    item.insert(
        "outbox_at".to_owned(),
        S("2026-01-01T00:00:00.000Z".to_owned()),
    );
    item.insert("outbox_version".to_owned(), S("v1".to_owned()));
    env.store
        .client()
        .put_item()
        .table_name(&env.resources.table_name)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
    assert_eq!(waiting(&env).await.len(), 1);
    let report = publisher(&env, &RequestCounter::default())
        .sweep(Deadline::NONE)
        .await
        .expect("sweep");
    assert_eq!(report.cleared, 1, "{report:?}");
    assert!(waiting(&env).await.is_empty());
    let item = get(&env, pk, sk).await;
    assert!(!item.contains_key("outbox_pending") && !item.contains_key("outbox_version"));
}
