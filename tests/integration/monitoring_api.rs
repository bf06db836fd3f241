//! The Monitoring API end to end: requests through the function's handler, DynamoDB and SQS on
//! moto, Canopy played by the fake (which validates bodies as the spec does).

use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::domain::work::WorkMessage;
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::FakeCanopy;
use integration_tests::fetching::{consumer, drain_into, fake_canopy};
use integration_tests::monitoring::{api, call, Reply, TestApi, OWNER_KEY};
use integration_tests::{RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

/// A pull Canopy knows (SUCCESS) and whose COMPLETE we received, owned by `owner`.
async fn seed_pull(env: &TestEnv, canopy: &FakeCanopy, owner: &str) -> String {
    let pull_id = uuid::Uuid::new_v4().to_string();
    let mut pull = sample_pull(&pull_id, PullSize::default());
    pull["meta_data"] = json!({ OWNER_KEY: owner });
    canopy.add_pull(pull.clone());
    let subject = Subject {
        pull_id: pull_id.clone(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: json!({ OWNER_KEY: owner }),
    };
    let complete = refresh_sequence(&subject, &pull).pop().expect("COMPLETE");
    let (status, _) = env.deliver(complete.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    pull_id
}

async fn rig(name: &str) -> (TestEnv, FakeCanopy, RequestCounter, TestApi) {
    let env = TestEnv::new(name).await;
    let canopy = fake_canopy().await;
    let counter = RequestCounter::default();
    let api = api(&env, &canopy, &counter, ApiConfig::default());
    (env, canopy, counter, api)
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(reply.json["error"], code, "{}", reply.json);
    assert!(
        reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "every error names the problem: {}",
        reply.json
    );
}

async fn enable(api: &TestApi, pull_id: &str) -> Reply {
    call(
        api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_id, "interval": "P1M"})),
    )
    .await
}

/// Items of the table whose key starts with `prefix`.
async fn items_with_prefix(env: &TestEnv, prefix: &str) -> usize {
    env.scan()
        .await
        .iter()
        .filter(|i| integration_tests::attr(i, "pk").is_some_and(|pk| pk.starts_with(prefix)))
        .count()
}

#[tokio::test]
async fn enable_validates_first_then_creates_once() {
    let (env, canopy, _, api) = rig("api-enable").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;

    // Refused before Canopy, nothing written.
    for (body, field) in [
        (json!({"interval": "P1M"}), "pull_id"),
        (
            json!({"pull_id": "not/an/id", "interval": "P1M"}),
            "pull_id",
        ),
        (json!({"pull_id": pull_id}), "interval"),
        (json!({"pull_id": pull_id, "interval": "P29D"}), "interval"),
        (
            json!({"pull_id": pull_id, "interval": "PT720H"}),
            "interval",
        ),
        (
            json!({"pull_id": pull_id, "interval": "P1M", "stop_after_date": "tomorrow"}),
            "stop_after_date",
        ),
        (
            json!({"pull_id": pull_id, "interval": "P1M", "colour": "red"}),
            "body",
        ),
    ] {
        let reply = call(&api, "POST", "/v1/monitorings", &[], Some(&body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.json["field"], field, "{body}");
    }
    let reply = call(&api, "POST", "/v1/monitorings", &[], None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        canopy.count("POST", "/monitorings"),
        0,
        "no Canopy call for bad input"
    );
    assert_eq!(items_with_prefix(&env, "MONITORING#").await, 0);

    let created = enable(&api, &pull_id).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let m = &created.json["monitoring"];
    assert_eq!(m["status"], "ACTIVE");
    assert_eq!(m["interval"], "P1M");
    assert_eq!(m["owner"], "cust-1", "owner from the pull's meta_data");
    assert_eq!(m["initial_pull_id"], pull_id.as_str());
    let id = m["monitoring_id"].as_str().expect("id").to_owned();
    assert_eq!(
        canopy.state().monitorings[&id].object["status"],
        "ACTIVE",
        "enabled in Canopy"
    );

    // A second enable of the active pull: the same monitoring, no second Canopy call.
    let again = enable(&api, &pull_id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["created"], false);
    assert_eq!(again.json["monitoring"]["monitoring_id"], id.as_str());
    assert_eq!(canopy.count("POST", "/monitorings"), 1);
}

#[tokio::test]
async fn idempotency_keys_replay_and_concurrent_enables_make_one_call() {
    let (env, canopy, _, api) = rig("api-idem").await;
    let a = seed_pull(&env, &canopy, "cust-1").await;
    let body = json!({"pull_id": a, "interval": "P2M"});
    let first = call(
        &api,
        "POST",
        "/v1/monitorings",
        &[("Idempotency-Key", "k-1")],
        Some(&body),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = call(
        &api,
        "POST",
        "/v1/monitorings",
        &[("Idempotency-Key", "k-1")],
        Some(&body),
    )
    .await;
    assert_eq!(
        replay.status,
        StatusCode::CREATED,
        "the stored answer, as first given"
    );
    assert_eq!(replay.json, first.json);
    let other = json!({"pull_id": a, "interval": "P3M"});
    let reused = call(
        &api,
        "POST",
        "/v1/monitorings",
        &[("Idempotency-Key", "k-1")],
        Some(&other),
    )
    .await;
    assert_error(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(canopy.count("POST", "/monitorings"), 1);

    // Two enables of one pull at once, without keys: one Canopy call.
    let b = seed_pull(&env, &canopy, "cust-2").await;
    let (x, y) = tokio::join!(enable(&api, &b), enable(&api, &b));
    let mut statuses = [x.status.as_u16(), y.status.as_u16()];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 201] || statuses == [201, 409],
        "one creates, the other finds it or is told to retry: {statuses:?}"
    );
    assert_eq!(canopy.count("POST", "/monitorings"), 2);
}

#[tokio::test]
async fn canopy_refusals_come_back_with_canopy_codes() {
    let (env, canopy, _, api) = rig("api-canopy-errors").await;
    // Unknown to Canopy.
    let unknown = enable(&api, &uuid::Uuid::new_v4().to_string()).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND");
    // Not a successful pull.
    let failing = uuid::Uuid::new_v4().to_string();
    let mut pull = sample_pull(&failing, PullSize::default());
    pull["status"] = json!("PROVIDER_ERROR");
    canopy.add_pull(pull);
    assert_error(
        &enable(&api, &failing).await,
        StatusCode::BAD_REQUEST,
        "PULL_NOT_SUCCESS",
    );
    // Too old.
    let old = seed_pull(&env, &canopy, "cust-old").await;
    canopy.state().pulls.get_mut(&old).expect("pull")["_sim_too_old"] = json!(true);
    assert_error(
        &enable(&api, &old).await,
        StatusCode::BAD_REQUEST,
        "PULL_TOO_OLD",
    );
    // Canopy down: 503, retry later.
    let down = seed_pull(&env, &canopy, "cust-down").await;
    canopy.set_faults(&down, vec![canopy_sim::Fault::ServerError], true);
    let reply = enable(&api, &down).await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "canopy_unavailable",
    );
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        items_with_prefix(&env, "MONITORING#").await,
        0,
        "nothing recorded"
    );
}

#[tokio::test]
async fn patch_and_stop_go_through_canopy_then_the_record() {
    let (env, canopy, _, api) = rig("api-patch").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    let id = enable(&api, &pull_id).await.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/monitorings/{id}");

    let patched = call(
        &api,
        "PATCH",
        &path,
        &[],
        Some(&json!({"interval": "P2M", "stop_after_date": "2027-06-30T00:00:00Z"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert_eq!(patched.json["monitoring"]["interval"], "P2M");
    assert_eq!(
        patched.json["monitoring"]["stop_after_date"],
        "2027-06-30T00:00:00.000Z"
    );
    assert_eq!(canopy.state().monitorings[&id].object["interval"], "P2M");

    let patches = canopy.count("PATCH", "/monitorings/");
    for body in [
        json!({}),
        json!({"interval": "P7D"}),
        json!({"status": "PAUSED"}),
    ] {
        let reply = call(&api, "PATCH", &path, &[], Some(&body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(
        canopy.count("PATCH", "/monitorings/"),
        patches,
        "refused before Canopy"
    );
    let reply = call(
        &api,
        "PATCH",
        // `m#1`: no id holds a `#`.
        "/v1/monitorings/m%231",
        &[],
        Some(&json!({"interval": "P2M"})),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(reply.json["field"], "monitoring_id");
    let missing = format!("/v1/monitorings/{}", uuid::Uuid::new_v4());
    let reply = call(
        &api,
        "PATCH",
        &missing,
        &[],
        Some(&json!({"interval": "P2M"})),
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");

    let stopped = call(&api, "DELETE", &path, &[], None).await;
    assert_eq!(stopped.status, StatusCode::OK);
    assert_eq!(stopped.json["monitoring"]["status"], "STOPPED");
    assert!(stopped.json["monitoring"]["stopped_at"].is_string());
    assert_eq!(canopy.state().monitorings[&id].object["status"], "STOPPED");
    let listed = call(&api, "GET", "/v1/monitorings?status=STOPPED", &[], None).await;
    assert_eq!(listed.json["monitorings"][0]["monitoring_id"], id.as_str());

    // Stopped, it can be enabled again through PATCH.
    let resumed = call(
        &api,
        "PATCH",
        &path,
        &[],
        Some(&json!({"status": "ACTIVE"})),
    )
    .await;
    assert_eq!(resumed.json["monitoring"]["status"], "ACTIVE");
    assert!(resumed.json["monitoring"]["stopped_at"].is_null());
}

/// Delivers the COMPLETE of `pull_id`, a refresh of monitoring `id`.
async fn complete_refresh(env: &TestEnv, canopy: &FakeCanopy, id: &str, pull_id: &str) {
    let pull = canopy.state().pulls[pull_id].clone();
    let subject = Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: Some(id.to_owned()),
        initial_pull_id: None,
        meta_data: json!({ OWNER_KEY: "cust-1" }),
    };
    for body in refresh_sequence(&subject, &pull) {
        let (status, _) = env.deliver(body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn refreshes_are_guarded_and_idempotent() {
    let (env, canopy, _, api) = rig("api-refresh").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    let id = enable(&api, &pull_id).await.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/monitorings/{id}/refresh");
    let billed = || canopy.state().refreshes;

    let first = call(&api, "POST", &path, &[("Idempotency-Key", "r-1")], None).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    let new_pull = first.json["pull_id"].as_str().expect("pull id").to_owned();
    let retried = call(&api, "POST", &path, &[("Idempotency-Key", "r-1")], None).await;
    assert_eq!(
        retried.json, first.json,
        "a retried request gets the same answer"
    );
    let again = call(&api, "POST", &path, &[], None).await;
    assert_error(&again, StatusCode::CONFLICT, "refresh_in_flight");
    assert_eq!(billed(), 1, "one billed refresh");

    // Its COMPLETE arrives: no longer in flight, but the last refresh is too recent.
    complete_refresh(&env, &canopy, &id, &new_pull).await;
    let soon = call(&api, "POST", &path, &[], None).await;
    assert_error(&soon, StatusCode::CONFLICT, "refresh_too_soon");
    assert_eq!(billed(), 1);

    // force=true passes our guard, not Canopy's.
    canopy
        .state()
        .monitorings
        .get_mut(&id)
        .expect("m")
        .refreshing = true;
    let busy = call(&api, "POST", &format!("{path}?force=true"), &[], None).await;
    assert_error(&busy, StatusCode::CONFLICT, "CURRENTLY_REFRESHING");
    canopy
        .state()
        .monitorings
        .get_mut(&id)
        .expect("m")
        .refreshing = false;
    let forced = call(&api, "POST", &format!("{path}?force=true"), &[], None).await;
    assert_eq!(forced.status, StatusCode::ACCEPTED, "{}", forced.json);
    assert_eq!(billed(), 2);

    let reply = call(&api, "POST", &format!("{path}?force=maybe"), &[], None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let unknown = format!("/v1/monitorings/{}/refresh", uuid::Uuid::new_v4());
    assert_error(
        &call(&api, "POST", &unknown, &[], None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    call(&api, "DELETE", &format!("/v1/monitorings/{id}"), &[], None).await;
    let stopped = call(&api, "POST", &format!("{path}?force=true"), &[], None).await;
    assert_error(&stopped, StatusCode::CONFLICT, "MONITORING_INACTIVE");
    assert_eq!(billed(), 2);
}

#[tokio::test]
async fn concurrent_refreshes_bill_once() {
    let (env, canopy, _, api) = rig("api-refresh-race").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    let id = enable(&api, &pull_id).await.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/monitorings/{id}/refresh");
    let replies =
        futures::future::join_all((0..4).map(|_| call(&api, "POST", &path, &[], None))).await;
    let accepted = replies
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .count();
    assert_eq!(
        accepted,
        1,
        "{:?}",
        replies.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        assert_error(r, StatusCode::CONFLICT, "refresh_in_flight");
    }
    assert_eq!(canopy.state().refreshes, 1);
}

#[tokio::test]
async fn listings_page_and_filter_through_indexes() {
    let (env, canopy, counter, api) = rig("api-list").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let owner = if i % 2 == 0 { "cust-even" } else { "cust-odd" };
        let pull_id = seed_pull(&env, &canopy, owner).await;
        let reply = enable(&api, &pull_id).await;
        ids.push(
            reply.json["monitoring"]["monitoring_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for id in &ids[..2] {
        call(&api, "DELETE", &format!("/v1/monitorings/{id}"), &[], None).await;
    }

    // Every monitoring once, three at a time, across both status partitions.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/monitorings?limit=3&cursor={c}"),
            None => "/v1/monitorings?limit=3".to_owned(),
        };
        counter.reset();
        let page = call(&api, "GET", &path, &[], None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        assert!(
            counter.snapshot().keys().all(|op| !op.ends_with("Scan")),
            "no Scan"
        );
        pages += 1;
        for m in page.json["monitorings"].as_array().expect("list") {
            seen.push(m["monitoring_id"].as_str().expect("id").to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected, "each once, none twice");
    assert!(pages >= 3, "{pages} pages");

    let count = |reply: Reply| reply.json["monitorings"].as_array().map_or(0, Vec::len);
    assert_eq!(
        count(call(&api, "GET", "/v1/monitorings?status=ACTIVE", &[], None).await),
        5
    );
    assert_eq!(
        count(call(&api, "GET", "/v1/monitorings?owner=cust-even", &[], None).await),
        4
    );
    assert_eq!(
        count(
            call(
                &api,
                "GET",
                "/v1/monitorings?owner=cust-even&status=ACTIVE",
                &[],
                None
            )
            .await
        ),
        3,
        "ids 0 and 1 are stopped; 0 is even"
    );
    assert_eq!(
        count(
            call(
                &api,
                "GET",
                "/v1/monitorings?reconnect_needed=true",
                &[],
                None
            )
            .await
        ),
        0
    );

    // A reconnect opens an episode on one of them.
    let subject = Subject {
        pull_id: uuid::Uuid::new_v4().to_string(),
        monitoring_id: Some(ids[4].clone()),
        initial_pull_id: None,
        meta_data: json!({ OWNER_KEY: "cust-even" }),
    };
    let reconnect =
        canopy_sim::fixtures::reconnect_webhook(&subject, "https://r.example/x", "rt_1");
    assert_eq!(
        env.deliver(reconnect.to_string().as_bytes()).await.0,
        StatusCode::OK
    );
    let needing = call(
        &api,
        "GET",
        "/v1/monitorings?reconnect_needed=true",
        &[],
        None,
    )
    .await;
    assert_eq!(
        needing.json["monitorings"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        needing.json["monitorings"][0]["monitoring_id"],
        ids[4].as_str()
    );
    assert!(needing.json["monitorings"][0]["reconnect"]["needed_since"].is_string());
    assert_eq!(
        count(
            call(
                &api,
                "GET",
                "/v1/monitorings?reconnect_needed=false&status=ACTIVE",
                &[],
                None
            )
            .await
        ),
        4
    );

    // Cursors belong to their listing.
    let first = call(
        &api,
        "GET",
        "/v1/monitorings?limit=1&status=ACTIVE",
        &[],
        None,
    )
    .await;
    let c = first.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let wrong = call(
        &api,
        "GET",
        &format!("/v1/monitorings?limit=1&owner=cust-odd&cursor={c}"),
        &[],
        None,
    )
    .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_cursor");
    let garbage = call(&api, "GET", "/v1/monitorings?cursor=zzz", &[], None).await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_cursor");
    for bad in [
        "status=DONE",
        "limit=0",
        "limit=500",
        "reconnect_needed=1",
        "sort=asc",
    ] {
        let reply = call(&api, "GET", &format!("/v1/monitorings?{bad}"), &[], None).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn a_monitoring_and_its_pulls_read_back_as_stored() {
    let (env, canopy, _, api) = rig("api-read").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    let id = enable(&api, &pull_id).await.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Two refreshes, each completed and fetched.
    let mut refreshed = Vec::new();
    for _ in 0..2 {
        let reply = call(
            &api,
            "POST",
            &format!("/v1/monitorings/{id}/refresh?force=true"),
            &[],
            None,
        )
        .await;
        let new_pull = reply.json["pull_id"].as_str().expect("pull").to_owned();
        complete_refresh(&env, &canopy, &id, &new_pull).await;
        refreshed.push(new_pull);
    }
    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;
    drain_into(&env, &fetcher).await;

    let got = call(
        &api,
        "GET",
        &format!("/v1/monitorings/{id}?history_limit=1"),
        &[],
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert_eq!(
        got.json["monitoring"]["latest_pull_id"],
        refreshed[1].as_str()
    );
    assert_eq!(
        got.json["latest_pull"]["summary"]["pull_id"],
        refreshed[1].as_str()
    );
    assert_eq!(
        got.json["latest_pull"]["summary"]["policies"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let items = got.json["refreshes"]["items"].as_array().expect("history");
    assert_eq!(items.len(), 1);
    let cursor = got.json["refreshes"]["next_cursor"]
        .as_str()
        .expect("more history")
        .to_owned();
    let older = call(
        &api,
        "GET",
        &format!("/v1/monitorings/{id}?history_limit=1&history_cursor={cursor}"),
        &[],
        None,
    )
    .await;
    let older_items = older.json["refreshes"]["items"]
        .as_array()
        .expect("history");
    assert_eq!(older_items.len(), 1);
    assert_ne!(
        older_items[0]["pull_id"], items[0]["pull_id"],
        "the next page is the older refresh"
    );

    let summary = call(
        &api,
        "GET",
        &format!("/v1/pulls/{}", refreshed[1]),
        &[],
        None,
    )
    .await;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(
        summary.json["summary"]["insurance_provider_name"],
        "statefarm"
    );
    assert_eq!(summary.json["state"]["fetch_status"], "FETCHED");
    assert_eq!(summary.json["state"]["monitoring_id"], id.as_str());

    let expected = canopy.state().pulls[&refreshed[1]].clone();
    let gz = call(
        &api,
        "GET",
        &format!("/v1/pulls/{}?full=true", refreshed[1]),
        &[("Accept-Encoding", "gzip")],
        None,
    )
    .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.headers["content-encoding"], "gzip");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(gz.bytes.as_slice())
        .read_to_end(&mut text)
        .expect("gzip");
    assert_eq!(
        serde_json::from_slice::<Value>(&text).expect("json"),
        expected
    );
    let plain = call(
        &api,
        "GET",
        &format!("/v1/pulls/{}?full=true", refreshed[1]),
        &[],
        None,
    )
    .await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.json, expected);

    let missing = uuid::Uuid::new_v4();
    assert_error(
        &call(&api, "GET", &format!("/v1/pulls/{missing}"), &[], None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(
            &api,
            "GET",
            &format!("/v1/pulls/{missing}?full=true"),
            &[],
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&api, "GET", "/v1/pulls/..%2F..", &[], None).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &call(
            &api,
            "GET",
            &format!("/v1/monitorings/{missing}"),
            &[],
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&api, "GET", "/v1/nothing", &[], None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let wrong_method = call(&api, "PUT", "/v1/monitorings", &[], None).await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(wrong_method.headers["allow"], "GET, POST");
}

/// The dedupe key of the (only) COMPLETE event recorded in `env`.
async fn complete_event_key(env: &TestEnv) -> String {
    let records = env.event_records().await;
    let complete = records
        .iter()
        .find(|r| integration_tests::attr(r, "event_type") == Some("COMPLETE"))
        .expect("COMPLETE record");
    integration_tests::attr(complete, "pk")
        .expect("pk")
        .trim_start_matches("EVENT#")
        .to_owned()
}

#[tokio::test]
async fn a_stored_event_replays_through_the_same_plan() {
    let (env, canopy, _, api) = rig("api-replay").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    // The seed's COMPLETE queued one fetch; an operator lost it downstream.
    let first = env.drain(&env.resources.fetch_queue_url).await;
    assert_eq!(first.len(), 1);
    let key = complete_event_key(&env).await;

    let reply = call(&api, "POST", &format!("/v1/events/{key}/replay"), &[], None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["queued"], 1);
    assert_eq!(reply.json["pull_id"], pull_id.as_str());
    let again = env.drain(&env.resources.fetch_queue_url).await;
    let job = |m: &WorkMessage| match m {
        WorkMessage::FetchPull(j) => (j.pull_id.clone(), j.trigger, j.event_key.clone()),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        again.iter().map(job).collect::<Vec<_>>(),
        first.iter().map(job).collect::<Vec<_>>(),
        "the same work, re-queued (only requested_at differs)"
    );
    let state = env.store.get_pull(&pull_id).await.unwrap().expect("pull");
    assert_eq!(
        state.status.as_deref(),
        Some("SUCCESS"),
        "state updates stay idempotent"
    );

    let unknown = format!("v1:{}", "0".repeat(64));
    assert_error(
        &call(
            &api,
            "POST",
            &format!("/v1/events/{unknown}/replay"),
            &[],
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&api, "POST", "/v1/events/whatever/replay", &[], None).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

/// DynamoDB and SQS requests per route, counted by the SDK interceptor (figures for the README).
#[tokio::test]
async fn requests_per_route_are_counted() {
    let (env, canopy, counter, api) = rig("api-counts").await;
    let pull_id = seed_pull(&env, &canopy, "cust-1").await;
    let mut table = Vec::new();
    let mut measure = |label: &str, counter: &RequestCounter| {
        let ddb = counter.total("DynamoDB");
        println!(
            "{label}: {ddb} DynamoDB, {} SQS {:?}",
            counter.total("AmazonSQS"),
            counter.snapshot()
        );
        table.push((label.to_owned(), ddb));
        counter.reset();
    };
    counter.reset();
    let id = enable(&api, &pull_id).await.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("id")
        .to_owned();
    measure("POST /v1/monitorings (new)", &counter);
    enable(&api, &pull_id).await;
    measure("POST /v1/monitorings (already active)", &counter);
    call(
        &api,
        "PATCH",
        &format!("/v1/monitorings/{id}"),
        &[],
        Some(&json!({"interval": "P2M"})),
    )
    .await;
    measure("PATCH /v1/monitorings/{id}", &counter);
    call(
        &api,
        "POST",
        &format!("/v1/monitorings/{id}/refresh"),
        &[],
        None,
    )
    .await;
    measure("POST /v1/monitorings/{id}/refresh", &counter);
    call(
        &api,
        "POST",
        &format!("/v1/monitorings/{id}/refresh"),
        &[],
        None,
    )
    .await;
    measure("POST /v1/monitorings/{id}/refresh (refused)", &counter);
    call(&api, "GET", "/v1/monitorings?limit=10", &[], None).await;
    measure("GET /v1/monitorings", &counter);
    call(&api, "GET", &format!("/v1/monitorings/{id}"), &[], None).await;
    measure("GET /v1/monitorings/{id}", &counter);
    call(&api, "GET", &format!("/v1/pulls/{pull_id}"), &[], None).await;
    measure("GET /v1/pulls/{id}", &counter);
    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;
    drain_into(&env, &fetcher).await;
    counter.reset();
    let full = call(
        &api,
        "GET",
        &format!("/v1/pulls/{pull_id}?full=true"),
        &[("Accept-Encoding", "gzip")],
        None,
    )
    .await;
    assert_eq!(full.status, StatusCode::OK);
    measure("GET /v1/pulls/{id}?full=true", &counter);
    let key = complete_event_key(&env).await;
    counter.reset();
    let replayed = call(&api, "POST", &format!("/v1/events/{key}/replay"), &[], None).await;
    assert_eq!(replayed.status, StatusCode::OK);
    measure("POST /v1/events/{key}/replay (COMPLETE)", &counter);
    call(&api, "DELETE", &format!("/v1/monitorings/{id}"), &[], None).await;
    measure("DELETE /v1/monitorings/{id}", &counter);
    let by = |label: &str| table.iter().find(|(l, _)| l == label).map(|(_, n)| *n);
    assert_eq!(
        by("POST /v1/monitorings (already active)"),
        Some(4),
        "lock, pull, monitoring, unlock"
    );
    assert_eq!(
        by("POST /v1/monitorings/{id}/refresh (refused)"),
        Some(1),
        "one read, refused without a write"
    );
    assert_eq!(
        by("GET /v1/monitorings"),
        Some(2 * canopy_monitor::domain::shard::SHARDS as usize),
        "one Query per shard of each status, read in parallel"
    );
    assert_eq!(
        by("GET /v1/pulls/{id}?full=true"),
        Some(2),
        "the summary's part count, then the parts"
    );
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = B64URL.iter().position(|&b| b == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Re-encodes a cursor's JSON after `edit`, keeping whatever follows its payload (a MAC).
fn forge(cursor: &str, edit: impl FnOnce(&mut Value)) -> String {
    let (payload, rest) = match cursor.split_once('.') {
        Some((p, r)) => (p, format!(".{r}")),
        None => (cursor, String::new()),
    };
    let mut json: Value = serde_json::from_slice(&b64url_decode(payload)).expect("cursor JSON");
    edit(&mut json);
    format!("{}{rest}", b64url_encode(json.to_string().as_bytes()))
}

fn assert_bad_cursor(reply: &Reply) {
    assert_error(reply, StatusCode::BAD_REQUEST, "invalid_cursor");
    assert_eq!(reply.json["field"], "cursor", "{}", reply.json);
}

/// Defect 14: a listing cursor re-encoded with another partition's start key is refused (moto
/// would ignore the key and answer 200; DynamoDB would answer a ValidationException, a 500).
#[tokio::test]
async fn a_forged_listing_cursor_is_refused() {
    let (env, canopy, _, api) = rig("api-forge").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let pull_id = seed_pull(&env, &canopy, "cust-forge").await;
        let reply = enable(&api, &pull_id).await;
        ids.push(
            reply.json["monitoring"]["monitoring_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    call(
        &api,
        "DELETE",
        &format!("/v1/monitorings/{}", ids[2]),
        &[],
        None,
    )
    .await;
    let first = call(&api, "GET", "/v1/monitorings?limit=1", &[], None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    let cursor = first.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    // The genuine cursor pages.
    let next = call(
        &api,
        "GET",
        &format!("/v1/monitorings?limit=1&cursor={cursor}"),
        &[],
        None,
    )
    .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.json);
    assert_ne!(next.json["monitorings"][0], first.json["monitorings"][0]);

    // The same cursor, its start key moved to the STOPPED partition.
    let stopped = ids[2].clone();
    let forged = forge(&cursor, |c| {
        let k = c["k"].as_object_mut().expect("a start key");
        k.insert("monitoring_status".into(), json!("STOPPED"));
        k.insert("pk".into(), json!(format!("MONITORING#{stopped}")));
        k.insert("monitoring_id".into(), json!(stopped));
    });
    let reply = call(
        &api,
        "GET",
        &format!("/v1/monitorings?limit=1&cursor={forged}"),
        &[],
        None,
    )
    .await;
    assert_bad_cursor(&reply);
    // Re-encoded unchanged but for its partition index.
    let forged = forge(&cursor, |c| c["p"] = json!(1));
    let reply = call(
        &api,
        "GET",
        &format!("/v1/monitorings?limit=1&cursor={forged}"),
        &[],
        None,
    )
    .await;
    assert_bad_cursor(&reply);
}

/// Defect 14: a change-history cursor of one monitoring is refused on another; on its own
/// monitoring it pages to the end.
#[tokio::test]
async fn a_cursor_of_one_monitoring_is_refused_on_another() {
    let (env, _canopy, _, api) = rig("api-foreign").await;
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    for (monitoring, n) in [(&a, 0), (&a, 1), (&b, 2)] {
        let subject = Subject {
            pull_id: uuid::Uuid::new_v4().to_string(),
            monitoring_id: Some(monitoring.clone()),
            initial_pull_id: None,
            meta_data: json!({}),
        };
        let body = canopy_sim::fixtures::monitoring_events_webhook(
            &subject,
            json!({"type": "POLICY_CHANGE", "changes": [{"schema": "POLICY", "type": "UPDATE",
                   "before": {"policy_id": "p", "status": "ACTIVE"},
                   "after": {"policy_id": "p", "status": format!("S{n}")}}]}),
        );
        let (status, reply) = env.deliver(body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    let page = call(
        &api,
        "GET",
        &format!("/v1/monitorings/{a}/changes?limit=1"),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    let cursor = page.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let foreign = call(
        &api,
        "GET",
        &format!("/v1/monitorings/{b}/changes?limit=1&cursor={cursor}"),
        &[],
        None,
    )
    .await;
    assert_bad_cursor(&foreign);
    let next = call(
        &api,
        "GET",
        &format!("/v1/monitorings/{a}/changes?limit=1&cursor={cursor}"),
        &[],
        None,
    )
    .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.json);
    assert_eq!(next.json["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(next.json["items"][0], page.json["items"][0]);
    assert!(next.json["next_cursor"].is_null(), "{}", next.json);
}
