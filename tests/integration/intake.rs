//! webhook-intake end to end: API Gateway v2 events through the handler, state in DynamoDB and
//! messages in SQS over the real wire protocol (moto).

use canopy_monitor::domain::records::{MonitoringRecord, PullRecord};
use canopy_monitor::domain::signature::sign;
use canopy_monitor::domain::work::{FetchTrigger, WorkMessage};
use devkit::events::{apigw_event, webhook_request};
use devkit::LOCAL_SIGNING_SECRET;
use integration_tests::{attr, deliver_to, now, test_intake_config, RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};

const REFRESH_PULL: &str = "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61";
const RECONNECT_PULL: &str = "c4d8e2a1-6b3f-4f7e-9a2d-5e8c1b0f3a77";
const INITIAL_PULL: &str = "59ced597-b48f-49e3-9756-799e4c6f79a0";
const MONITORING: &str = "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c";

async fn pull(env: &TestEnv, id: &str) -> PullRecord {
    env.store
        .get_pull(id)
        .await
        .unwrap()
        .expect("pull recorded")
}

async fn monitoring(env: &TestEnv, id: &str) -> MonitoringRecord {
    env.store
        .get_monitoring(id)
        .await
        .unwrap()
        .expect("monitoring recorded")
}

#[tokio::test]
async fn every_event_type_is_recorded_and_routed() {
    let env = TestEnv::new("types").await;
    let deliveries = [
        ("webhook-auth-status.json", "accepted"),
        ("webhook-policy-available.json", "accepted"),
        ("webhook-policies-available.json", "accepted"),
        ("webhook-complete.json", "accepted"),
        ("webhook-monitoring-events.json", "accepted"),
        ("webhook-data-updated.json", "accepted"),
        ("webhook-unknown-type.json", "accepted"),
        // An ERROR after COMPLETE of the same pull is older news: recorded, state unchanged.
        ("webhook-error.json", "stale"),
        ("webhook-monitoring-reconnect.json", "accepted"),
    ];
    for (file, expected) in deliveries {
        let (status, body) = env.deliver_file(file).await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
        assert_eq!(body["status"], expected, "{file}: {body}");
    }

    let refreshed = pull(&env, REFRESH_PULL).await;
    assert_eq!(refreshed.status.as_deref(), Some("SUCCESS"));
    assert_eq!(refreshed.auth_sequence, Some(2));
    assert!(refreshed.policies_available_at.is_some());
    assert!(refreshed.completed_at.is_some());
    assert_eq!(refreshed.failed_at, None, "the stale ERROR changed nothing");
    assert_eq!(refreshed.monitoring_id.as_deref(), Some(MONITORING));
    assert_eq!(refreshed.initial_pull_id.as_deref(), Some(INITIAL_PULL));
    assert_eq!(
        refreshed.meta_data,
        Some(json!({"user_id": "crm-1042", "email": "clark.kent@example.com"}))
    );
    assert_eq!(refreshed.last_event_type.as_deref(), Some("SOMETHING_NEW"));

    let initial = pull(&env, INITIAL_PULL).await;
    assert_eq!(initial.last_event_type.as_deref(), Some("DATA_UPDATED"));
    assert_eq!(initial.monitoring_id, None);

    let m = monitoring(&env, MONITORING).await;
    assert_eq!(m.latest_pull_id.as_deref(), Some(REFRESH_PULL));
    assert!(m.last_refresh_at.is_some());
    assert!(
        m.reconnect_needed_since.is_some(),
        "the reconnect opened an episode"
    );
    assert_eq!(m.reconnect_pull_id.as_deref(), Some(RECONNECT_PULL));

    let fetches = env.drain(&env.resources.fetch_queue_url).await;
    let mut triggers: Vec<FetchTrigger> = fetches
        .iter()
        .map(|m| match m {
            WorkMessage::FetchPull(job) => {
                assert_eq!(job.pull_id, REFRESH_PULL);
                assert_eq!(job.monitoring_id.as_deref(), Some(MONITORING));
                job.trigger
            }
            other => panic!("unexpected on the fetch queue: {other:?}"),
        })
        .collect();
    triggers.sort_by_key(|t| format!("{t:?}"));
    assert_eq!(
        triggers,
        vec![FetchTrigger::Complete, FetchTrigger::PoliciesAvailable]
    );

    let notifications = env.drain(&env.resources.notify_queue_url).await;
    assert_eq!(notifications.len(), 1);
    match &notifications[0] {
        WorkMessage::NotifyReconnect(job) => {
            assert_eq!(job.monitoring_id, MONITORING);
            assert_eq!(job.pull_id, RECONNECT_PULL);
            assert_eq!(job.initial_pull_id.as_deref(), Some(INITIAL_PULL));
            let link = job.link.as_ref().expect("link");
            assert_eq!(link.reconnect_token.as_deref(), Some("rt_sample_0001"));
        }
        other => panic!("unexpected on the notify queue: {other:?}"),
    }

    let events = env.event_records().await;
    assert_eq!(events.len(), deliveries.len());
    assert!(events
        .iter()
        .all(|e| attr(e, "status") == Some("COMPLETED")));
    assert!(events
        .iter()
        .any(|e| attr(e, "event_type") == Some("SOMETHING_NEW")));
    assert!(
        events.iter().all(|e| e.contains_key("body_gz")),
        "bodies are kept"
    );
}

#[tokio::test]
async fn five_redeliveries_make_one_record_and_one_message() {
    let env = TestEnv::new("redeliver").await;
    let body =
        devkit::events::event_body(&integration_tests::signed_sample("webhook-complete.json"));
    let mut outcomes = Vec::new();
    for i in 0..5 {
        // Each redelivery is signed afresh, as Canopy's are: only the header differs.
        let event = webhook_request(&body, LOCAL_SIGNING_SECRET, now() - i);
        let (status, response) = deliver_to(&env.intake, event).await;
        assert_eq!(status, StatusCode::OK);
        outcomes.push(response["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        outcomes,
        [
            "accepted",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(env.event_records().await.len(), 1);
    assert_eq!(env.drain(&env.resources.fetch_queue_url).await.len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_duplicates_make_one_record_and_one_message() {
    let env = TestEnv::new("concurrent").await;
    let body = br#"{"event_type":"COMPLETE","pull_id":"p-concurrent","status":"SUCCESS","is_monitored":true,
                    "monitoring":{"monitoring_id":"m-concurrent","initial_pull_id":"p0"}}"#;
    let deliveries = (0..20).map(|_| env.deliver(body));
    let results = futures::future::join_all(deliveries).await;
    let mut accepted = 0;
    for (status, response) in &results {
        assert_eq!(*status, StatusCode::OK, "{response}");
        match response["status"].as_str() {
            Some("accepted") => accepted += 1,
            Some("duplicate") => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(env.event_records().await.len(), 1);
    assert_eq!(env.drain(&env.resources.fetch_queue_url).await.len(), 1);
}

#[tokio::test]
async fn a_late_auth_status_is_recorded_but_does_not_overwrite() {
    let env = TestEnv::new("authorder").await;
    let auth = |seq: i64, status: &str| {
        json!({"event_type": "AUTH_STATUS", "pull_id": "p-auth", "status": status, "sequence": seq,
               "data": {"auth_status": status}})
        .to_string()
    };
    let (_, newer) = env.deliver(auth(3, "SUCCESS").as_bytes()).await;
    let (_, older) = env
        .deliver(auth(2, "IDENTITY_VERIFICATION").as_bytes())
        .await;
    let (_, oldest) = env
        .deliver(auth(1, "IDENTITY_VERIFICATION_OPTIONS").as_bytes())
        .await;
    assert_eq!(
        [&newer["status"], &older["status"], &oldest["status"]],
        [&json!("accepted"), &json!("stale"), &json!("stale")]
    );
    let p = pull(&env, "p-auth").await;
    assert_eq!(p.auth_status.as_deref(), Some("SUCCESS"));
    assert_eq!(p.auth_sequence, Some(3));
    assert_eq!(
        env.event_records().await.len(),
        3,
        "late deliveries are still recorded"
    );
    // And a newer one moves it on.
    let (_, newest) = env.deliver(auth(4, "NOT_AUTHENTICATED").as_bytes()).await;
    assert_eq!(newest["status"], "accepted");
    assert_eq!(
        pull(&env, "p-auth").await.auth_status.as_deref(),
        Some("NOT_AUTHENTICATED")
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_and_stores_nothing() {
    let env = TestEnv::new("bad").await;
    let good = br#"{"event_type":"COMPLETE","pull_id":"p-bad"}"#.as_slice();
    let signed_event = |body: &[u8], header: String| {
        apigw_event(
            "POST",
            "/webhooks/canopy",
            &[
                ("content-type".into(), "application/json".into()),
                ("canopy-signature".into(), header),
            ],
            body,
        )
    };
    let big = vec![b'x'; 1024 * 1024 + 1];
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "unsigned",
            apigw_event("POST", "/webhooks/canopy", &[], good),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "wrong secret",
            signed_event(good, sign(good, "whsec_wrong", now())),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "stale",
            signed_event(good, sign(good, LOCAL_SIGNING_SECRET, now() - 3600)),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "future",
            signed_event(good, sign(good, LOCAL_SIGNING_SECRET, now() + 3600)),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "malformed header",
            signed_event(good, "v1=abc".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "tampered",
            signed_event(
                br#"{"event_type":"COMPLETE","pull_id":"p-evil"}"#,
                sign(good, LOCAL_SIGNING_SECRET, now()),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "malformed JSON",
            webhook_request(b"{\"event_type\":", LOCAL_SIGNING_SECRET, now()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "not an object",
            webhook_request(b"[1,2,3]", LOCAL_SIGNING_SECRET, now()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "no event_type",
            webhook_request(br#"{"pull_id":"p"}"#, LOCAL_SIGNING_SECRET, now()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "no pull_id",
            webhook_request(br#"{"event_type":"COMPLETE"}"#, LOCAL_SIGNING_SECRET, now()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "too large",
            webhook_request(&big, LOCAL_SIGNING_SECRET, now()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "wrong path",
            apigw_event("POST", "/webhooks/other", &[], good),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "wrong method",
            apigw_event("GET", "/webhooks/canopy", &[], b""),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (name, event, expected_status, expected_code) in cases {
        let (status, body) = deliver_to(&env.intake, event).await;
        assert_eq!(status, expected_status, "{name}: {body}");
        assert_eq!(body["error"], expected_code, "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
    }
    assert!(env.scan().await.is_empty(), "nothing was stored");
    assert!(env.drain(&env.resources.fetch_queue_url).await.is_empty());
    assert!(env.drain(&env.resources.notify_queue_url).await.is_empty());
}

#[tokio::test]
async fn a_missing_table_is_a_5xx_and_queues_nothing() {
    let env = TestEnv::new("notable").await;
    let broken = TestEnv::intake_with(
        &env.aws,
        &env.resources,
        &RequestCounter::default(),
        test_intake_config(),
        Some("no-such-table"),
        None,
    );
    let event = webhook_request(
        br#"{"event_type":"COMPLETE","pull_id":"p"}"#,
        LOCAL_SIGNING_SECRET,
        now(),
    );
    let (status, body) = deliver_to(&broken, event).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_ne!(status, StatusCode::OK);
    assert!(env.drain(&env.resources.fetch_queue_url).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_database_is_a_503() {
    let env = TestEnv::new("down").await;
    // A closed port: every request fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = devkit::local_aws_config(&format!("http://{closed}"));
    let dead = TestEnv::intake_with(
        &unreachable,
        &env.resources,
        &RequestCounter::default(),
        test_intake_config(),
        None,
        None,
    );
    let event = webhook_request(
        br#"{"event_type":"COMPLETE","pull_id":"p"}"#,
        LOCAL_SIGNING_SECRET,
        now(),
    );
    let (status, body) = deliver_to(&dead, event).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable");
}

#[tokio::test]
async fn a_queue_failure_is_a_5xx_and_the_retry_is_not_a_duplicate() {
    let env = TestEnv::new("noqueue").await;
    let broken = TestEnv::intake_with(
        &env.aws,
        &env.resources,
        &RequestCounter::default(),
        test_intake_config(),
        None,
        Some(&format!("{}-missing", env.resources.fetch_queue_url)),
    );
    let body = br#"{"event_type":"COMPLETE","pull_id":"p-retry","status":"SUCCESS"}"#;
    let (status, response) =
        deliver_to(&broken, webhook_request(body, LOCAL_SIGNING_SECRET, now())).await;
    assert!(status.is_server_error(), "{status} {response}");
    assert!(
        env.event_records().await.is_empty(),
        "the claim was released"
    );

    // Canopy retries; the queue works again.
    let (status, response) = env.deliver(body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["status"], "accepted");
    assert_eq!(env.drain(&env.resources.fetch_queue_url).await.len(), 1);
    assert_eq!(env.event_records().await.len(), 1);
}

/// The request counts the README quotes. Printed, and pinned so a change that adds a round
/// trip to the hot path is noticed.
#[tokio::test]
async fn aws_requests_per_webhook() {
    let env = TestEnv::new("count").await;
    let counts = |label: &str, counter: &RequestCounter| {
        println!("{label}: {:?}", counter.snapshot());
        (counter.total("DynamoDB"), counter.total("AmazonSQS"))
    };
    env.counter.reset();
    env.deliver_file("webhook-complete.json").await;
    let monitored = counts("accepted monitored COMPLETE", &env.counter);

    env.counter.reset();
    env.deliver_file("webhook-complete.json").await;
    let duplicate = counts("duplicate", &env.counter);

    env.counter.reset();
    env.deliver(
        br#"{"event_type":"POLICY_AVAILABLE","pull_id":"p-plain","status":"PULLING_DATA"}"#,
    )
    .await;
    let unmonitored = counts("accepted unmonitored POLICY_AVAILABLE", &env.counter);

    // claim + pull update + monitoring update + complete; one SendMessage.
    assert_eq!(monitored, (4, 1));
    // The claim's condition fails and returns the old record: one request.
    assert_eq!(duplicate, (1, 0));
    // claim + pull update + complete; no work.
    assert_eq!(unmonitored, (3, 0));
}

#[tokio::test]
async fn auth_status_prompts_are_kept_in_sequence_order() {
    let env = TestEnv::new("prompts").await;
    let (_, body) = env
        .deliver_file("webhook-auth-status-mfa-options.json")
        .await;
    assert_eq!(body["status"], "accepted", "{body}");
    let p = pull(&env, REFRESH_PULL).await;
    assert_eq!(
        p.auth_status.as_deref(),
        Some("IDENTITY_VERIFICATION_OPTIONS")
    );
    assert_eq!(
        p.mfa_options.as_ref().and_then(|o| o.get("sms_0000")),
        Some(&json!("Text message to (***) ***-0000"))
    );
    // The next AUTH_STATUS (sequence 2) replaces the prompt; the options are gone.
    env.deliver_file("webhook-auth-status.json").await;
    let p = pull(&env, REFRESH_PULL).await;
    assert_eq!(p.auth_status.as_deref(), Some("IDENTITY_VERIFICATION"));
    assert_eq!(p.mfa_options, None);
    // A late redelivery of sequence 1 is older news: the prompt stays as it is.
    let mut late = integration_tests::signed_sample("webhook-auth-status-mfa-options.json");
    let mut b: serde_json::Value = serde_json::from_str(late["body"].as_str().unwrap()).unwrap();
    b["data"]["login_error_message"] = json!(null);
    b["redelivered"] = json!(true);
    late["body"] = json!(b.to_string());
    devkit::events::resign(
        &mut late,
        devkit::LOCAL_SIGNING_SECRET,
        integration_tests::now(),
    );
    let (_, body) = integration_tests::deliver_to(&env.intake, late).await;
    assert_eq!(body["status"], "stale", "{body}");
    let p = pull(&env, REFRESH_PULL).await;
    assert_eq!(p.auth_status.as_deref(), Some("IDENTITY_VERIFICATION"));
    assert_eq!(p.mfa_options, None);
}
