//! pull-fetcher end to end: webhooks through intake, the fetch queue driven like Lambda's event
//! source mapping, the fake Canopy counting every GET, the data read back from DynamoDB.

use canopy_monitor::domain::fetch_claim::FAILED;
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::Fault;
use integration_tests::fetching::{consumer, drain_into, enqueue_fetch, fake_canopy, queue_depth};
use integration_tests::TestEnv;
use lambda_http::http::StatusCode;
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn subject(pull_id: &str, monitoring_id: &str) -> Subject {
    Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: Some(monitoring_id.to_owned()),
        initial_pull_id: Some("initial".to_owned()),
        meta_data: json!({"user_id": "u1"}),
    }
}

#[tokio::test]
async fn a_refresh_is_fetched_once_and_stored() {
    let env = TestEnv::new("refresh").await;
    let canopy = fake_canopy().await;
    let pull = sample_pull("p-refresh", PullSize::default());
    canopy.add_pull(pull.clone());

    // Canopy's refresh sequence, with COMPLETE and POLICIES_AVAILABLE each delivered twice.
    let bodies = refresh_sequence(&subject("p-refresh", "m-refresh"), &pull);
    let n = bodies.len();
    for body in bodies.iter().chain(&bodies[n - 2..]) {
        let (status, _) = env.deliver(body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let fetcher = consumer(&env, &canopy, TIMEOUT).await;
    drain_into(&env, &fetcher).await;

    assert_eq!(
        canopy.count("GET", "/pulls/p-refresh"),
        1,
        "exactly one GET per refresh"
    );
    let stored = env
        .store
        .get_pull_data("p-refresh")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        stored.pull, pull,
        "stored whole, byte for byte the same JSON value"
    );
    assert_eq!(
        stored.summary.insurance_provider_name.as_deref(),
        Some("statefarm")
    );
    assert_eq!(stored.summary.policies.len(), 2);
    let latest = env
        .store
        .latest_monitoring_data("m-refresh")
        .await
        .unwrap()
        .expect("latest data");
    assert_eq!(latest.summary.pull_id, "p-refresh");
    let history = env.store.refresh_history("m-refresh").await.unwrap();
    assert_eq!(history.len(), 1);
    let state = env.store.get_pull("p-refresh").await.unwrap().unwrap();
    assert_eq!(state.fetch_status.as_deref(), Some("FETCHED"));
    assert!(state.fetched_complete_at.is_some());
    assert_eq!(queue_depth(&env, &env.resources.fetch_queue_url).await, 0);
}

#[tokio::test]
async fn a_later_refresh_is_a_new_version() {
    let env = TestEnv::new("versions").await;
    let canopy = fake_canopy().await;
    let fetcher = consumer(&env, &canopy, TIMEOUT).await;
    for (pull_id, created_at) in [
        ("p-first", "2026-01-01T00:00:00.000Z"),
        ("p-second", "2026-02-01T00:00:00.000Z"),
    ] {
        let mut pull = sample_pull(pull_id, PullSize::default());
        pull["created_at"] = json!(created_at);
        canopy.add_pull(pull.clone());
        for body in refresh_sequence(&subject(pull_id, "m-v"), &pull) {
            env.deliver(body.to_string().as_bytes()).await;
        }
        drain_into(&env, &fetcher).await;
    }
    let history = env.store.refresh_history("m-v").await.unwrap();
    let ids: Vec<&str> = history.iter().map(|h| h.pull_id.as_str()).collect();
    assert_eq!(ids, ["p-first", "p-second"]);
    let latest = env
        .store
        .latest_monitoring_data("m-v")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.summary.pull_id, "p-second");
    assert_eq!(
        canopy.count("GET", "/pulls/p-first") + canopy.count("GET", "/pulls/p-second"),
        2
    );
}

#[tokio::test]
async fn concurrent_consumers_fetch_once() {
    let env = TestEnv::new("fetchrace").await;
    let canopy = fake_canopy().await;
    canopy.add_pull(sample_pull("p-race", PullSize::default()));
    // A slow answer keeps the first fetch in flight while the others arrive.
    canopy.set_faults("p-race", vec![Fault::Slow { millis: 300 }], false);
    for _ in 0..12 {
        enqueue_fetch(&env, "p-race", None).await;
    }
    let consumers = [
        consumer(&env, &canopy, TIMEOUT).await,
        consumer(&env, &canopy, TIMEOUT).await,
        consumer(&env, &canopy, TIMEOUT).await,
    ];
    futures::future::join_all(consumers.iter().map(|c| drain_into(&env, c))).await;
    assert_eq!(canopy.count("GET", "/pulls/p-race"), 1);
    assert!(env.store.get_pull_data("p-race").await.unwrap().is_some());
    assert_eq!(queue_depth(&env, &env.resources.fetch_queue_url).await, 0);
}

/// Every fault mode; in = stored + failed + dead-lettered, and the GETs are counted.
#[tokio::test]
async fn faults_end_stored_failed_or_dead_lettered_and_nothing_is_lost() {
    let env = TestEnv::new("faults").await;
    let canopy = fake_canopy().await;
    let cases: Vec<(&str, Vec<Fault>, bool, &str, usize)> = vec![
        // pull, faults, sticky, expected end, expected GETs
        (
            "p-500",
            vec![Fault::ServerError, Fault::ServerError],
            false,
            "stored",
            3,
        ),
        (
            "p-429",
            vec![Fault::TooManyRequests {
                retry_after_secs: 0,
            }],
            false,
            "stored",
            2,
        ),
        (
            "p-slow",
            vec![Fault::Slow { millis: 1500 }],
            false,
            "stored",
            2,
        ),
        (
            "p-malformed",
            vec![Fault::MalformedJson],
            false,
            "stored",
            2,
        ),
        ("p-404", vec![Fault::NotFound], false, "failed", 1),
        (
            "p-down",
            vec![Fault::ServerError],
            true,
            "dead-lettered",
            devkit::resources::MAX_RECEIVE_COUNT as usize,
        ),
    ];
    for (pull_id, faults, sticky, _, _) in &cases {
        canopy.add_pull(sample_pull(pull_id, PullSize::default()));
        canopy.set_faults(pull_id, faults.clone(), *sticky);
        enqueue_fetch(&env, pull_id, None).await;
    }
    // The client gives up on the slow answer after 500 ms: a timeout, retried.
    let fetcher = consumer(&env, &canopy, Duration::from_millis(500)).await;
    drain_into(&env, &fetcher).await;

    let dead = env.drain(&env.resources.fetch_dlq_url).await;
    let (mut stored, mut failed) = (0, 0);
    for (pull_id, _, _, expected, gets) in &cases {
        let data = env.store.get_pull_data(pull_id).await.unwrap();
        let state = env.store.get_pull(pull_id).await.unwrap();
        let is_failed = state.as_ref().and_then(|s| s.fetch_status.as_deref()) == Some(FAILED);
        let in_dlq = dead.iter().any(|m| matches!(m, canopy_monitor::domain::work::WorkMessage::FetchPull(j) if j.pull_id == *pull_id));
        let end = match (data.is_some(), is_failed, in_dlq) {
            (true, false, false) => "stored",
            (false, true, false) => "failed",
            (false, false, true) => "dead-lettered",
            other => panic!("{pull_id} ended in more than one place or none: {other:?}"),
        };
        assert_eq!(end, *expected, "{pull_id}");
        assert_eq!(
            canopy.count("GET", &format!("/pulls/{pull_id}")),
            *gets,
            "{pull_id} GETs"
        );
        stored += usize::from(end == "stored");
        failed += usize::from(end == "failed");
        if end == "failed" {
            assert_eq!(state.unwrap().fetch_error.as_deref(), Some("NOT_FOUND"));
        }
    }
    assert_eq!(
        stored + failed + dead.len(),
        cases.len(),
        "in = stored + failed + DLQ"
    );
    assert_eq!(queue_depth(&env, &env.resources.fetch_queue_url).await, 0);
}

#[tokio::test]
async fn a_large_pull_is_stored_whole() {
    let env = TestEnv::new("large").await;
    let canopy = fake_canopy().await;
    let pull = sample_pull(
        "p-large",
        PullSize {
            vehicles: 3000,
            documents: 3000,
        },
    );
    let json_len = pull.to_string().len();
    assert!(
        json_len > 3_000_000,
        "the fixture should be several MB, is {json_len}"
    );
    canopy.add_pull(pull.clone());
    enqueue_fetch(&env, "p-large", Some("m-large")).await;
    let fetcher = consumer(&env, &canopy, Duration::from_secs(30)).await;
    drain_into(&env, &fetcher).await;
    let stored = env
        .store
        .get_pull_data("p-large")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.pull, pull);
    assert_eq!(stored.summary.policies[0].vehicles, 3000);
    assert_eq!(stored.summary.documents, 3000);
    // Every item stays under DynamoDB's 400 KB limit.
    for item in env.scan().await {
        let size: usize = item
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.as_b()
                        .map(|b| b.as_ref().len())
                        .unwrap_or_else(|_| format!("{v:?}").len())
            })
            .sum();
        assert!(size < 400 * 1024, "an item of {size} bytes");
    }
}

#[tokio::test]
async fn a_pull_whose_complete_never_comes_is_fetched_from_its_fallback() {
    let env = TestEnv::new("fallback").await;
    let canopy = fake_canopy().await;
    let pull = sample_pull("p-nocomplete", PullSize::default());
    canopy.add_pull(pull.clone());
    let sequence = refresh_sequence(&subject("p-nocomplete", "m-nc"), &pull);
    let (complete, before) = sequence.split_last().unwrap();
    for body in before {
        env.deliver(body.to_string().as_bytes()).await;
    }
    let fetcher = consumer(&env, &canopy, TIMEOUT).await;
    drain_into(&env, &fetcher).await;
    assert_eq!(canopy.count("GET", "/pulls/p-nocomplete"), 1);
    assert!(env
        .store
        .get_pull_data("p-nocomplete")
        .await
        .unwrap()
        .is_some());
    let state = env.store.get_pull("p-nocomplete").await.unwrap().unwrap();
    assert!(state.fetched_at.is_some() && state.fetched_complete_at.is_none());

    // COMPLETE arrives after all: documents are in now, so it is fetched once more, and no more.
    env.deliver(complete.to_string().as_bytes()).await;
    env.deliver(complete.to_string().as_bytes()).await;
    drain_into(&env, &fetcher).await;
    assert_eq!(canopy.count("GET", "/pulls/p-nocomplete"), 2);
    let state = env.store.get_pull("p-nocomplete").await.unwrap().unwrap();
    assert!(state.fetched_complete_at.is_some());
}
