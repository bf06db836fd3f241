//! In-app reconnect end to end: a monitoring needs a reconnect (the fake Canopy's signed
//! MONITORING_RECONNECT reaches intake over HTTP), the consumer's browser starts a session,
//! logs in through reconnect-api, the fake Canopy answers each step with a signed AUTH_STATUS
//! webhook, the browser long-polls for the step to show, the refresh's data is fetched and
//! stored, and the episode closes.

use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::app::reconnect::ReconnectConfig;
use canopy_sim::fixtures::{refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::FakeCanopy;
use devkit::LOCAL_SIGNING_SECRET;
use integration_tests::fetching::{consumer, drain_into, fake_canopy};
use integration_tests::reconnect::{
    api, call, call_with_headers, serve_intake, test_config, TestReconnectApi,
};
use integration_tests::{RequestCounter, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const OWNER: &str = "cust-7";

struct Rig {
    env: TestEnv,
    canopy: FakeCanopy,
    api: TestReconnectApi,
    monitoring_id: String,
    pull_id: String,
}

/// A monitoring of `OWNER` that needs a reconnect, its episode open.
async fn rig(name: &str, config: ReconnectConfig) -> Rig {
    let env = TestEnv::new(name).await;
    let canopy = fake_canopy().await;
    let url = serve_intake(&env).await;
    canopy.set_webhook(&url, LOCAL_SIGNING_SECRET);
    // The consumer's first pull, completed, then monitored.
    let first = uuid::Uuid::new_v4().to_string();
    let mut pull = sample_pull(&first, PullSize::default());
    pull["meta_data"] = json!({"customer_id": OWNER, "email": "ck@example.com"});
    canopy.add_pull(pull.clone());
    let subject = Subject {
        pull_id: first.clone(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: pull["meta_data"].clone(),
    };
    let complete = refresh_sequence(&subject, &pull).pop().expect("COMPLETE");
    assert_eq!(
        env.deliver(complete.to_string().as_bytes()).await.0,
        StatusCode::OK
    );
    let monitoring_api = integration_tests::monitoring::api(
        &env,
        &canopy,
        &RequestCounter::default(),
        ApiConfig::default(),
    );
    let enabled = integration_tests::monitoring::call(
        &monitoring_api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": first, "interval": "P1M"})),
    )
    .await;
    let monitoring_id = enabled.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("monitoring")
        .to_owned();
    let pull_id = canopy
        .need_reconnect(&monitoring_id)
        .expect("reconnect pull");
    // The MONITORING_RECONNECT arrives through intake and opens the episode.
    let mut open = false;
    for _ in 0..100 {
        let m = env.store.get_monitoring(&monitoring_id).await.unwrap();
        if m.is_some_and(|m| m.reconnect_needed_since.is_some()) {
            open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(open, "the reconnect episode opened");
    let api = api(&env, &canopy, config);
    Rig {
        env,
        canopy,
        api,
        monitoring_id,
        pull_id,
    }
}

async fn start(rig: &Rig) -> (String, Value) {
    let (status, body, _) = call(
        &rig.api,
        OWNER,
        "POST",
        "/v1/reconnect/sessions",
        Some(json!({"monitoring_id": rig.monitoring_id})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["pull_id"], rig.pull_id.as_str());
    (
        body["session_id"].as_str().expect("session").to_owned(),
        body,
    )
}

/// Long-polls until the step is `want`; returns the step.
async fn until_step(rig: &Rig, session: &str, want: &str) -> Value {
    let mut after = 0;
    for _ in 0..10 {
        let (status, body, _) = call(
            &rig.api,
            OWNER,
            "GET",
            &format!("/v1/reconnect/sessions/{session}?after={after}&wait=5"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let step = body["step"].clone();
        if step["step"] == want {
            return step;
        }
        after = step["sequence"].as_i64().unwrap_or(after);
    }
    panic!("step {want} never came");
}

/// Long-polls until a step newer than sequence `after` comes; returns it.
async fn next_step(rig: &Rig, session: &str, after: i64) -> Value {
    for _ in 0..10 {
        let (status, body, _) = call(
            &rig.api,
            OWNER,
            "GET",
            &format!("/v1/reconnect/sessions/{session}?after={after}&wait=5"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["step"]["sequence"].as_i64() > Some(after) {
            return body["step"].clone();
        }
    }
    panic!("no step after sequence {after}");
}

async fn post(rig: &Rig, session: &str, action: &str, body: Value) -> (StatusCode, Value) {
    let (status, body, _) = call(
        &rig.api,
        OWNER,
        "POST",
        &format!("/v1/reconnect/sessions/{session}/{action}"),
        Some(body),
    )
    .await;
    (status, body)
}

fn login(username: &str) -> Value {
    json!({"insurerName": "statefarm", "insurerUsername": username, "insurerPassword": "pass_good"})
}

/// The refresh's data is fetched and stored, and the episode is over.
async fn assert_reconnected(rig: &Rig) {
    let fetcher = consumer(&rig.env, &rig.canopy, Duration::from_secs(5)).await;
    drain_into(&rig.env, &fetcher).await;
    let stored = rig.env.store.get_pull_data(&rig.pull_id).await.unwrap();
    assert!(stored.is_some(), "the reconnected pull's data is stored");
    let m = rig
        .env
        .store
        .get_monitoring(&rig.monitoring_id)
        .await
        .unwrap()
        .expect("monitoring");
    assert_eq!(m.reconnect_needed_since, None, "the episode closed");
    assert_eq!(m.latest_pull_id.as_deref(), Some(rig.pull_id.as_str()));
}

#[tokio::test]
async fn user_good_reconnects_in_one_step() {
    let rig = rig("rc-good", test_config()).await;
    let (session, started) = start(&rig).await;
    assert_eq!(started["step"]["step"], "enter_credentials");
    let (status, _) = post(&rig, &session, "connect", login("user_good")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until_step(&rig, &session, "data_ready").await;
    assert_reconnected(&rig).await;
}

#[tokio::test]
async fn user_mfa_walks_through_options_and_code() {
    let rig = rig("rc-mfa", test_config()).await;
    let (session, _) = start(&rig).await;
    post(&rig, &session, "connect", login("user_mfa")).await;
    let options = until_step(&rig, &session, "choose_mfa_option").await;
    let choices = options["options"].as_array().expect("options");
    assert_eq!(choices.len(), 2, "{options}");
    let key = choices[0]["key"].as_str().expect("key").to_owned();
    assert_eq!(
        post(&rig, &session, "idvoptions", json!({"optionKey": key}))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    let ask = until_step(&rig, &session, "enter_code").await;
    // A wrong code: asked again, with Canopy's message.
    post(&rig, &session, "idv", json!({"mfaValue": "000000"})).await;
    let retry = next_step(&rig, &session, ask["sequence"].as_i64().unwrap_or(0)).await;
    assert_eq!(retry["step"], "enter_code");
    assert!(
        retry["message"]
            .as_str()
            .is_some_and(|m| m.contains("not right")),
        "{retry}"
    );
    post(&rig, &session, "idv", json!({"mfaValue": "123456"})).await;
    until_step(&rig, &session, "data_ready").await;
    assert_reconnected(&rig).await;
}

#[tokio::test]
async fn user_locked_is_asked_again_with_canopys_message() {
    let rig = rig("rc-locked", test_config()).await;
    let (session, _) = start(&rig).await;
    post(&rig, &session, "connect", login("user_locked")).await;
    let step = next_step(&rig, &session, 0).await;
    assert_eq!(step["step"], "enter_credentials");
    assert!(
        step["message"]
            .as_str()
            .is_some_and(|m| m.contains("locked")),
        "{step}"
    );
    let m = rig
        .env
        .store
        .get_monitoring(&rig.monitoring_id)
        .await
        .unwrap()
        .expect("monitoring");
    assert!(m.reconnect_needed_since.is_some(), "still open");
}

#[tokio::test]
async fn only_the_owner_sees_its_monitoring_and_sessions() {
    let rig = rig("rc-owner", test_config()).await;
    for path in ["/v1/reconnect/sessions", "/v1/reconnect/token"] {
        let (status, body, _) = call(
            &rig.api,
            "someone-else",
            "POST",
            path,
            Some(json!({"monitoring_id": rig.monitoring_id})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    let (session, _) = start(&rig).await;
    let (status, _, _) = call(
        &rig.api,
        "someone-else",
        "GET",
        &format!("/v1/reconnect/sessions/{session}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &rig.api,
        "someone-else",
        "POST",
        &format!("/v1/reconnect/sessions/{session}/connect"),
        Some(login("user_good")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(rig.canopy.count("POST", "/connect"), 0, "nothing forwarded");
    // The owner gets a fresh token for Canopy's SDK.
    let (status, body, _) = call(
        &rig.api,
        OWNER,
        "POST",
        "/v1/reconnect/token",
        Some(json!({"monitoring_id": rig.monitoring_id})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["reconnect_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("rt_fresh_")));
    // Without the claim: 401.
    let (status, _, _) = call(
        &rig.api,
        "",
        "POST",
        "/v1/reconnect/token",
        Some(json!({"monitoring_id": rig.monitoring_id})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire_and_attempts_are_limited() {
    let rig = rig(
        "rc-limits",
        ReconnectConfig {
            max_attempts: 2,
            session_ttl: Duration::from_secs(3),
            ..test_config()
        },
    )
    .await;
    let (session, _) = start(&rig).await;
    post(&rig, &session, "connect", login("user_mfa")).await;
    let options = until_step(&rig, &session, "choose_mfa_option").await;
    let key = options["options"][0]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    post(&rig, &session, "idvoptions", json!({"optionKey": key})).await;
    until_step(&rig, &session, "enter_code").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post(&rig, &session, "idv", json!({"mfaValue": "000000"}))
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [202, 202, 429],
        "a third code is refused: no brute force through us"
    );
    assert_eq!(rig.canopy.count("POST", "/idv"), 2);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body, _) = call(
        &rig.api,
        OWNER,
        "GET",
        &format!("/v1/reconnect/sessions/{session}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "session_expired");
    let (status, _) = post(&rig, &session, "connect", login("user_good")).await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn canopys_refusals_reach_the_ui_with_their_codes() {
    let rig = rig("rc-refusals", test_config()).await;
    for (code, status) in [
        ("INVALID_RECONNECT_TOKEN", StatusCode::GONE),
        ("MONITORING_INACTIVE", StatusCode::CONFLICT),
        ("NEWER_PULL_AVAILABLE", StatusCode::CONFLICT),
        ("ALREADY_RECONNECTED", StatusCode::CONFLICT),
    ] {
        rig.canopy.state().exchange_refusal = Some(code.to_owned());
        let (got, body, _) = call(
            &rig.api,
            OWNER,
            "POST",
            "/v1/reconnect/sessions",
            Some(json!({"monitoring_id": rig.monitoring_id})),
        )
        .await;
        assert_eq!(got, status, "{code}: {body}");
        assert_eq!(body["error"], code);
        let message = body["message"].as_str().expect("message");
        assert!(
            !message.is_empty() && !message.contains('_'),
            "a sentence for the UI: {message}"
        );
    }
    // Bad input is refused before Canopy.
    let (status, body, _) = call(
        &rig.api,
        OWNER,
        "POST",
        "/v1/reconnect/sessions",
        Some(json!({"monitoring_id": "x/../y"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (session, _) = start(&rig).await;
    let (status, body) = post(
        &rig,
        &session,
        "connect",
        json!({"insurerName": "statefarm", "insurerUsername": "abc"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "insurerUsername");
}

#[tokio::test]
async fn no_answer_item_or_log_line_holds_a_secret() {
    let logs = integration_tests::logs::capture();
    let rig = rig("rc-secrets", test_config()).await;
    let (session, _) = start(&rig).await;
    let mut answers = String::new();
    let (_, _, text) = call(
        &rig.api,
        OWNER,
        "GET",
        &format!("/v1/reconnect/sessions/{session}"),
        None,
    )
    .await;
    answers.push_str(&text);
    let (_, body) = post(&rig, &session, "connect", login("user_mfa")).await;
    answers.push_str(&body.to_string());
    until_step(&rig, &session, "choose_mfa_option").await;
    let jwts: Vec<String> = rig.canopy.state().pull_jwts.keys().cloned().collect();
    let tokens: Vec<String> = rig.canopy.state().issued_tokens.keys().cloned().collect();
    assert!(!jwts.is_empty() && !tokens.is_empty());
    let items = format!("{:?}", rig.env.scan().await);
    for secret in jwts
        .iter()
        .chain(&tokens)
        .map(String::as_str)
        .chain(["pass_good"])
    {
        assert!(!answers.contains(secret), "an answer holds {secret}");
        assert!(!logs.text().contains(secret), "a log line holds {secret}");
        assert!(!items.contains(secret), "an item holds {secret}");
    }
}

/// A 429 that names `limit`, with a `Retry-After` equal to the body's `retry_after`.
fn assert_limited(
    (status, body, _, headers): &(StatusCode, Value, String, lambda_http::http::HeaderMap),
    limit: &str,
) {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_requests");
    assert_eq!(body["limit"], limit);
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after >= 1);
    assert_eq!(body["retry_after"], retry_after);
}

#[tokio::test]
async fn a_sixth_session_start_in_the_window_is_refused() {
    let rig = rig("rc-starts", test_config()).await;
    for _ in 0..5 {
        start(&rig).await;
    }
    let exchanges = rig.canopy.count("POST", "/widget/pull/reconnectToken");
    let sixth = call_with_headers(
        &rig.api,
        OWNER,
        "POST",
        "/v1/reconnect/sessions",
        Some(json!({"monitoring_id": rig.monitoring_id})),
    )
    .await;
    assert_limited(&sixth, "session_starts");
    assert_eq!(
        rig.canopy.count("POST", "/widget/pull/reconnectToken"),
        exchanges,
        "a refused start asks Canopy nothing"
    );
    // The budget is this consumer's: another one is answered as before (not theirs: 404).
    let (status, _, _) = call(
        &rig.api,
        "someone-else",
        "POST",
        "/v1/reconnect/sessions",
        Some(json!({"monitoring_id": rig.monitoring_id})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_calls_are_limited_per_consumer() {
    let rig = rig("rc-tokens", test_config()).await;
    let before = rig.canopy.count("GET", "/reconnectToken");
    let token = || {
        call_with_headers(
            &rig.api,
            OWNER,
            "POST",
            "/v1/reconnect/token",
            Some(json!({"monitoring_id": rig.monitoring_id})),
        )
    };
    for _ in 0..5 {
        let (status, body, _, _) = token().await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_limited(&token().await, "tokens");
    assert_eq!(
        rig.canopy.count("GET", "/reconnectToken") - before,
        5,
        "five Canopy calls on the team's keys, not six"
    );
}

#[tokio::test]
async fn a_new_session_buys_no_new_attempts() {
    let rig = rig(
        "rc-attempts",
        ReconnectConfig {
            max_attempts: 2,
            ..test_config()
        },
    )
    .await;
    let (first, _) = start(&rig).await;
    for _ in 0..2 {
        let (status, body) = post(&rig, &first, "connect", login("user_locked")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let path = |session: &str| format!("/v1/reconnect/sessions/{session}/connect");
    let third = call_with_headers(
        &rig.api,
        OWNER,
        "POST",
        &path(&first),
        Some(login("user_good")),
    )
    .await;
    assert_limited(&third, "connects");
    // A fresh session on the same monitoring: the same budget.
    let (second, _) = start(&rig).await;
    let again = call_with_headers(
        &rig.api,
        OWNER,
        "POST",
        &path(&second),
        Some(login("user_good")),
    )
    .await;
    assert_limited(&again, "connects");
    assert_eq!(rig.canopy.count("POST", "/connect"), 2);
}

#[tokio::test]
async fn a_third_concurrent_poll_of_one_consumer_is_refused() {
    use canopy_monitor::adapters::dynamo::limits::{limit_pk, slot_sk};
    use canopy_monitor::ports::store::LimitKey;
    let rig = rig("rc-polls", test_config()).await;
    let (session, started) = start(&rig).await;
    let sequence = started["step"]["sequence"].as_i64().expect("sequence");
    // Nothing is forwarded, so these wait their whole 8 s, each holding a slot.
    let waiting = format!("/v1/reconnect/sessions/{session}?after={sequence}&wait=8");
    let quick = format!("/v1/reconnect/sessions/{session}?after={sequence}&wait=0");
    let (pk, sk) = (
        limit_pk(OWNER),
        slot_sk(&LimitKey {
            subject: OWNER,
            name: "concurrent_polls",
            monitoring_id: None,
        }),
    );
    let third = async {
        let mut held = false;
        for _ in 0..100 {
            held = rig.env.scan().await.iter().any(|item| {
                item["pk"].as_s().ok() == Some(&pk)
                    && item["sk"].as_s().ok() == Some(&sk)
                    && item
                        .get("held")
                        .and_then(|v| v.as_n().ok())
                        .map(String::as_str)
                        == Some("2")
            });
            if held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(held, "both waiting polls hold a slot");
        let third = call_with_headers(&rig.api, OWNER, "GET", &quick, None).await;
        // Another consumer's polls are not this one's: answered (not theirs: 404), not 429.
        let other = call(&rig.api, "someone-else", "GET", &quick, None).await.0;
        (third, other)
    };
    let (first, second, (third, other)) = tokio::join!(
        call(&rig.api, OWNER, "GET", &waiting, None),
        call(&rig.api, OWNER, "GET", &waiting, None),
        third
    );
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(second.0, StatusCode::OK, "{}", second.1);
    assert_limited(&third, "concurrent_polls");
    assert_eq!(other, StatusCode::NOT_FOUND);
    // The waiting polls gave their slots back.
    let (status, body, _) = call(&rig.api, OWNER, "GET", &quick, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_expired_pull_jwt_ends_the_session_with_410() {
    let rig = rig("rc-jwt-expired", test_config()).await;
    let (session, _) = start(&rig).await;
    // Canopy no longer knows the session's JWT: its widget calls answer 401 UNAUTHORIZED.
    rig.canopy.state().pull_jwts.clear();
    let (status, body) = post(&rig, &session, "connect", login("user_good")).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "session_expired");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("start again")),
        "{body}"
    );
    // A new session has a new JWT, and goes on.
    let (session, _) = start(&rig).await;
    let (status, body) = post(&rig, &session, "connect", login("user_good")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The lines of the `- Sid: {sid}` statement in `block`, up to the next statement.
fn statement<'a>(block: &'a str, sid: &str) -> Vec<&'a str> {
    let mut lines = block
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != format!("- Sid: {sid}"));
    let first = lines.next().unwrap_or_else(|| panic!("no statement {sid}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("- Sid: ") && !l.starts_with("Events:")))
        .collect()
}

#[test]
fn reconnect_api_writes_only_under_the_key_prefixes_its_code_writes() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml");
    let block: String = template
        .lines()
        .skip_while(|l| *l != "  ReconnectApiFunction:")
        .take_while(|l| !l.starts_with("  ReconnectApiLogGroup:"))
        .collect::<Vec<_>>()
        .join("\n");
    // Every write action sits in the one statement with the condition.
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    let written_in = |line: &str| {
        writes
            .iter()
            .any(|w| line.trim_start_matches("- ").trim_start_matches("Action: ") == *w)
    };
    let statement = statement(&block, "WriteSessionsAndLimits");
    assert_eq!(
        block.lines().filter(|l| written_in(l.trim())).count(),
        statement.iter().filter(|l| written_in(l)).count(),
        "a write action outside the conditioned statement"
    );
    assert!(
        statement.contains(&"ForAllValues:StringLike:"),
        "{statement:?}"
    );
    let mut allowed: Vec<String> = statement
        .iter()
        .skip_while(|l| **l != "dynamodb:LeadingKeys:")
        .skip(1)
        .map_while(|l| l.strip_prefix("- "))
        .map(|p| p.trim_matches('"').to_owned())
        .collect();
    let mut written: Vec<String> = reconnect_api::WRITTEN_KEY_PREFIXES
        .iter()
        .map(|p| format!("{p}*"))
        .collect();
    allowed.sort();
    written.sort();
    assert_eq!(
        allowed, written,
        "LeadingKeys = the prefixes the code writes"
    );
}
