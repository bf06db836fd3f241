//! The reconciler against drift of each kind: a monitoring we never heard of, one stopped in
//! Canopy, one whose interval changed, one whose refresh completed while its webhooks were
//! lost; then a second run right after that finds nothing to fix.

use canopy_monitor::app::budget::Deadline;
use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::app::sync::SyncReport;
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::{FakeCanopy, Fault};
use integration_tests::fetching::{consumer, drain_into, fake_canopy};
use integration_tests::monitoring::{api, call, sync, TestApi, OWNER_KEY};
use integration_tests::{RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::json;
use std::time::Duration;

/// A pull Canopy has, whose COMPLETE we received.
async fn known_pull(env: &TestEnv, canopy: &FakeCanopy) -> String {
    let pull_id = uuid::Uuid::new_v4().to_string();
    let mut pull = sample_pull(&pull_id, PullSize::default());
    pull["meta_data"] = json!({ OWNER_KEY: "cust-1" });
    canopy.add_pull(pull.clone());
    let subject = Subject {
        pull_id: pull_id.clone(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: json!({ OWNER_KEY: "cust-1" }),
    };
    let complete = refresh_sequence(&subject, &pull).pop().expect("COMPLETE");
    assert_eq!(
        env.deliver(complete.to_string().as_bytes()).await.0,
        StatusCode::OK
    );
    pull_id
}

async fn enabled(env: &TestEnv, canopy: &FakeCanopy, api: &TestApi) -> String {
    let pull_id = known_pull(env, canopy).await;
    let reply = call(
        api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_id, "interval": "P1M"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    reply.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn the_reconciler_repairs_each_kind_of_drift_once() {
    let env = TestEnv::new("sync-drift").await;
    let canopy = fake_canopy().await;
    let counter = RequestCounter::default();
    let api = api(&env, &canopy, &counter, ApiConfig::default());

    let healthy = enabled(&env, &canopy, &api).await;
    let stopped = enabled(&env, &canopy, &api).await;
    let changed = enabled(&env, &canopy, &api).await;
    let missed = enabled(&env, &canopy, &api).await;
    // Drift made on Canopy's side while our webhooks were down.
    let unknown_pull = known_pull(&env, &canopy).await;
    let unknown = canopy.add_monitoring(&unknown_pull, "P3M");
    canopy.set_monitoring_field(&stopped, "status", json!("STOPPED"));
    canopy.set_monitoring_field(&changed, "interval", json!("P6M"));
    let lost_pull = canopy.refresh_silently(&missed).expect("refresh");
    let fetches_before = env.drain(&env.resources.fetch_queue_url).await.len();
    assert!(fetches_before > 0, "the seeds' own fetches, set aside");

    // Pages of two, so paging is exercised across five monitorings.
    let reconciler = sync(&env, &canopy, &counter, 2);
    counter.reset();
    let first = reconciler.run(Deadline::NONE).await.expect("first run");
    println!("first run: {first:?}; requests {:?}", counter.snapshot());
    assert_eq!(
        first,
        SyncReport {
            pages: 3,
            monitorings_seen: 5,
            created: 1,
            status_fixed: 1,
            settings_fixed: 1,
            fetches_queued: 1,
            skipped: 0,
            refused: 0,
            complete: true,
        }
    );
    assert_eq!(
        canopy.count("POST", "/refresh"),
        0,
        "never a (billed) refresh"
    );

    let record = |id: String| {
        let store = env.store.clone();
        async move { store.get_monitoring(&id).await.unwrap().expect("record") }
    };
    let u = record(unknown.clone()).await;
    assert_eq!(
        (u.status.as_deref(), u.interval.as_deref()),
        (Some("ACTIVE"), Some("P3M"))
    );
    assert_eq!(
        record(stopped.clone()).await.status.as_deref(),
        Some("STOPPED")
    );
    assert_eq!(
        record(changed.clone()).await.interval.as_deref(),
        Some("P6M")
    );
    assert_eq!(
        record(healthy.clone()).await.interval.as_deref(),
        Some("P1M")
    );
    let m = record(missed.clone()).await;
    assert_eq!(
        m.latest_pull_id.as_deref(),
        Some(lost_pull.as_str()),
        "recorded as its COMPLETE would have been"
    );

    // The queued fetch stores the pull we never heard of.
    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;
    drain_into(&env, &fetcher).await;
    let stored = env
        .store
        .get_pull_data(&lost_pull)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.summary.pull_id, lost_pull);
    assert_eq!(canopy.count("GET", &format!("/pulls/{lost_pull}")), 1);

    // Right after: nothing to fix, and Canopy is asked only for the pages.
    let calls_before = canopy.state().requests.len();
    let second = reconciler.run(Deadline::NONE).await.expect("second run");
    println!("second run: {second:?}");
    assert_eq!(second.repaired(), 0, "{second:?}");
    assert_eq!(second.monitorings_seen, 5);
    assert_eq!(
        canopy.state().requests.len() - calls_before,
        3,
        "three list pages, no per-monitoring reads"
    );
    assert!(env.drain(&env.resources.fetch_queue_url).await.is_empty());
}

/// One monitoring Canopy will not show (404: deleted between its listing and our read) among
/// several: the pass passes it over, counts it, and repairs the others; every day.
#[tokio::test]
async fn a_monitoring_canopy_refuses_is_passed_over_and_the_pass_goes_on() {
    let env = TestEnv::new("sync-refused").await;
    let canopy = fake_canopy().await;
    let counter = RequestCounter::default();
    let api = api(&env, &canopy, &counter, ApiConfig::default());

    // Three monitorings refreshed while our webhooks were lost: each needs its latest pull read.
    let mut missed = Vec::new();
    for _ in 0..3 {
        let id = enabled(&env, &canopy, &api).await;
        let lost = canopy.refresh_silently(&id).expect("refresh");
        missed.push((id, lost));
    }
    env.drain(&env.resources.fetch_queue_url).await;
    // The middle one (in listing order, newest first): Canopy answers 404, every time.
    let (gone, _) = missed[1].clone();
    canopy.set_faults(&gone, vec![Fault::NotFound], true);

    let reconciler = sync(&env, &canopy, &counter, 100);
    for day in 1..=2 {
        let report = reconciler
            .run(Deadline::NONE)
            .await
            .expect("the pass goes on");
        println!("day {day}: {report:?}");
        assert_eq!(report.monitorings_seen, 3);
        assert_eq!(report.refused, 1, "the refused one is counted");
        assert!(report.complete);
        if day == 1 {
            assert_eq!(report.fetches_queued, 2, "the others are repaired");
        } else {
            assert_eq!(report.repaired(), 0, "{report:?}");
        }
    }
    for (id, lost) in &missed {
        let record = env.store.get_monitoring(id).await.unwrap().expect("record");
        if *id == gone {
            assert_ne!(record.latest_pull_id.as_deref(), Some(lost.as_str()));
        } else {
            assert_eq!(record.latest_pull_id.as_deref(), Some(lost.as_str()));
        }
    }
    let queued = env.drain(&env.resources.fetch_queue_url).await;
    assert_eq!(queued.len(), 2, "one fetch per repaired monitoring");
}
