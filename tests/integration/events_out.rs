//! Business events out: every event type recorded by the write that caused it, kept through an
//! EventBridge outage, published afterwards once per `id` (a replayed stream record sends
//! copies with the same `id`), each detail valid against its JSON Schema, and the README's
//! premium-increase rule routing exactly the premium increase. EventBridge is moto's: rules
//! on the test's bus deliver to SQS queues the test reads.

use canopy_monitor::budget::Deadline;
use canopy_monitor::business_events::DetailType;
use canopy_monitor::monitoring_api::ApiConfig;
use canopy_sim::fixtures::{reconnect_webhook, sample_pull, PullSize, Subject};
use canopy_sim::SimChange;
use devkit::LOCAL_SIGNING_SECRET;
use integration_tests::events_out::{
    function_publisher, premium_increase_rule, publisher, receive_all, schema_errors, waiting,
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
    use canopy_monitor::fetcher::{FetcherConfig, PullFetcher};
    use canopy_monitor::work::{FetchPullJob, FetchTrigger};
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
        canopy_monitor::store::dynamo::DynamoStore::new(ddb.clone(), &env.resources.table_name),
        integration_tests::rigs::canopy_client(&canopy, Duration::from_secs(5)),
        canopy_monitor::ports::SystemClock,
        FetcherConfig::default(),
    );
    let job = |pull: &str| FetchPullJob {
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
    assert_eq!(op(&publish, ".Query"), 2, "the outbox index, until empty");
    assert_eq!(
        op(&publish, ".UpdateItem"),
        2,
        "one acknowledgement per item"
    );
}
