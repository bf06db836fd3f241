//! The reliability defects, one test each, end to end on moto and the fake Canopy: each of
//! these failed on the code before its fix (the note on the issue says how).

use aws_sdk_dynamodb::types::AttributeValue;
use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger, WorkMessage};
use canopy_monitor::ports::store::PullDataStore;
use canopy_monitor::ports::store::ReminderStore;
use canopy_sim::fixtures::{reconnect_webhook, refresh_sequence, sample_pull, PullSize, Subject};
use integration_tests::faults::{Fault, FaultInjector, Rule};
use integration_tests::fetching::{consumer, drain_into, fake_canopy};
use integration_tests::{now, rigs, subject, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook of `event_type` from a refresh of `s` (POLICIES_AVAILABLE, COMPLETE, ...).
fn refresh_event(s: &Subject, event_type: &str) -> Value {
    refresh_sequence(s, &sample_pull(&s.pull_id, PullSize::default()))
        .into_iter()
        .find(|b| b["event_type"] == event_type)
        .expect("event in the refresh sequence")
}

fn auth_status(s: &Subject, sequence: i64) -> Value {
    let mut b = refresh_event(s, "COMPLETE");
    b["event_type"] = json!("AUTH_STATUS");
    b["status"] = json!("NOT_AUTHENTICATED");
    b["sequence"] = json!(sequence);
    b["data"] = json!({"auth_status": "NOT_AUTHENTICATED", "login_error_message": "Locked"});
    b
}

async fn deliver(env: &TestEnv, body: &Value) -> Value {
    let (status, response) = env.deliver(body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    response
}

async fn enqueue(env: &TestEnv, pull_id: &str, trigger: FetchTrigger) {
    use canopy_monitor::ports::queue::WorkQueue;
    let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_queue_url.clone(),
        env.resources.notify_queue_url.clone(),
    );
    queue
        .enqueue(&canopy_monitor::domain::work::Outgoing {
            message: WorkMessage::FetchPull(FetchPullJob {
                source: None,
                pull_id: pull_id.to_owned(),
                monitoring_id: None,
                initial_pull_id: None,
                trigger,
                event_key: "test".to_owned(),
                requested_at: "2026-11-26T00:00:00.000Z".to_owned(),
            }),
            delay: Duration::ZERO,
        })
        .await
        .expect("enqueue");
}

/// Every string in an item, gzip blobs unpacked: what a leak check must look through.
fn item_text(item: &HashMap<String, AttributeValue>) -> String {
    fn walk(v: &AttributeValue, out: &mut String) {
        match v {
            AttributeValue::S(s) => out.push_str(s),
            AttributeValue::N(n) => out.push_str(n),
            AttributeValue::B(b) => {
                let mut text = String::new();
                let bytes = b.as_ref();
                if flate2::read::GzDecoder::new(bytes)
                    .read_to_string(&mut text)
                    .is_err()
                {
                    text = String::from_utf8_lossy(bytes).into_owned();
                }
                out.push_str(&text);
            }
            AttributeValue::M(m) => m.values().for_each(|v| walk(v, out)),
            AttributeValue::L(l) => l.iter().for_each(|v| walk(v, out)),
            AttributeValue::Ss(l) => l.iter().for_each(|s| out.push_str(s)),
            _ => {}
        }
        out.push('\n');
    }
    let mut out = String::new();
    for (k, v) in item {
        out.push_str(k);
        walk(v, &mut out);
    }
    out
}

/// An item's size as DynamoDB counts it (names plus values), near enough for a limit check.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| k.len() + value(v)).sum(),
            AttributeValue::L(l) => l.iter().map(value).sum(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Defect 1: COMPLETE's fetch arrives while the POLICIES_AVAILABLE fallback fetch holds the
/// lease, and that attempt never finishes. COMPLETE's message must wait out the lease and fetch.
#[tokio::test]
async fn complete_during_the_fallback_fetch_is_fetched_when_the_lease_ends() {
    let env = TestEnv::new("d1lease").await;
    let canopy = fake_canopy().await;
    let s = subject("m-d1", "p-d1", json!({}));
    canopy.add_pull(sample_pull("p-d1", PullSize::default()));
    // The fallback attempt: it claimed the fetch (a 3 s lease here) and then died.
    let t = now();
    let _ = env
        .store
        .claim_fetch(
            "p-d1",
            FetchTrigger::PoliciesAvailable,
            "fallback-attempt",
            t,
            t + 3,
        )
        .await
        .expect("claim");
    deliver(&env, &refresh_event(&s, "COMPLETE")).await;
    let fetcher = consumer(&env, &canopy, TIMEOUT).await;
    drain_into(&env, &fetcher).await;
    assert_eq!(
        canopy.count("GET", "/pulls/p-d1"),
        1,
        "COMPLETE's fetch was not dropped"
    );
    let state = env.store.get_pull("p-d1").await.unwrap().unwrap();
    assert!(state.fetched_complete_at.is_some(), "documents fetched");
}

/// Defect 3: a re-fetch that fails between its parts and its summary leaves the stored pull
/// readable (the old version), and the next success replaces it and removes the old parts.
#[tokio::test]
async fn a_failed_refetch_leaves_the_stored_pull_readable() {
    let env = TestEnv::new("d3version").await;
    let canopy = fake_canopy().await;
    let first = sample_pull("p-d3", PullSize::default());
    canopy.add_pull(first.clone());
    enqueue(&env, "p-d3", FetchTrigger::PoliciesAvailable).await;
    drain_into(&env, &consumer(&env, &canopy, TIMEOUT).await).await;
    assert_eq!(
        env.store.get_pull_data("p-d3").await.unwrap().unwrap().pull,
        first
    );

    // COMPLETE's fetch gets a different pull, and its commit (the summary PutItem) fails.
    let second = sample_pull(
        "p-d3",
        PullSize {
            vehicles: 40,
            documents: 40,
        },
    );
    assert_ne!(first, second);
    canopy.add_pull(second.clone());
    let faults = FaultInjector::default();
    faults.add(Rule {
        operation: "PutItem".into(),
        body_contains: Some(r#"{"S":"DATA"}"#.into()),
        times: None,
        fault: Fault::Transport,
    });
    enqueue(&env, "p-d3", FetchTrigger::Complete).await;
    let faulty = rigs::fetcher(&env, &canopy, &faults);
    integration_tests::fetching::fetch_once(&env, &faulty).await;
    assert!(faults.injected() > 0, "the commit was faulted");
    let read = env.store.get_pull_data("p-d3").await;
    assert_eq!(
        read.expect("the stored pull is readable").unwrap().pull,
        first,
        "the old version, whole"
    );

    faults.heal();
    drain_into(&env, &faulty).await;
    assert_eq!(
        env.store.get_pull_data("p-d3").await.unwrap().unwrap().pull,
        second
    );
    let data_items = env
        .scan()
        .await
        .into_iter()
        .filter(|i| {
            i["pk"].as_s().unwrap() == "PULL#p-d3" && i["sk"].as_s().unwrap().starts_with("DATA")
        })
        .count();
    let parts = canopy_monitor::domain::pull_data::prepare(
        "p-d3",
        &canopy_monitor::domain::pull_data::PullJson::from_value(&second),
    )
    .parts
    .len();
    assert_eq!(data_items, parts + 1, "the summary and the new parts only");
}

/// Defect 4: an AUTH_STATUS recorded before the MONITORING_RECONNECT of the same pull (Canopy
/// promises no order) must not suppress the episode or its notice.
#[tokio::test]
async fn a_reconnect_after_an_auth_status_still_opens_an_episode_and_notifies() {
    let env = TestEnv::new("d4order").await;
    let s = subject("m-d4", "p-d4", json!({"email": "d4@example.com"}));
    deliver(&env, &auth_status(&s, 1)).await;
    let response = deliver(
        &env,
        &reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=t4", "t4"),
    )
    .await;
    assert_eq!(response["queued"], 1, "{response}");
    assert!(
        env.store
            .open_episode_start("m-d4")
            .await
            .unwrap()
            .is_some(),
        "the episode is open"
    );
    let notices = env.drain(&env.resources.notify_queue_url).await;
    assert!(
        matches!(notices.as_slice(), [WorkMessage::NotifyReconnect(job)] if job.monitoring_id == "m-d4"),
        "{notices:?}"
    );
    // The pull's status fields kept the newer AUTH_STATUS (the rank guards fields).
    let pull = env.store.get_pull("p-d4").await.unwrap().unwrap();
    assert_eq!(pull.last_event_type.as_deref(), Some("AUTH_STATUS"));
}

/// Defect 4, the other side: positive evidence (the pull's COMPLETE is recorded) does skip it.
#[tokio::test]
async fn a_reconnect_whose_pull_already_completed_opens_no_episode() {
    let env = TestEnv::new("d4done").await;
    let s = subject("m-d4b", "p-d4b", json!({}));
    deliver(&env, &refresh_event(&s, "COMPLETE")).await;
    deliver(
        &env,
        &reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=t", "t"),
    )
    .await;
    assert_eq!(env.store.open_episode_start("m-d4b").await.unwrap(), None);
}

/// Defect 5: a 1 MB delivery whose meta_data is most of it is accepted, stored whole, and its
/// notice goes out; no item or message exceeds DynamoDB's or SQS's limits.
#[tokio::test]
async fn a_one_megabyte_delivery_is_stored_and_notified() {
    let env = TestEnv::new("d5large").await;
    let canopy = fake_canopy().await;
    // Incompressible filler, so gzip cannot hide the size.
    let filler: String = (0..30_000u128)
        .map(|i| {
            format!(
                "{:032x}",
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
            )
        })
        .collect();
    let meta = json!({"email": "d5@example.com", "filler": filler});
    let s = subject("m-d5", "p-d5", meta.clone());
    let body = reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=t5", "t5");
    let bytes = body.to_string().into_bytes();
    assert!(
        (900_000..=1_048_576).contains(&bytes.len()),
        "{} bytes",
        bytes.len()
    );
    let (status, response) = env.deliver(&bytes).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(
        env.store.pull_meta_data("p-d5").await.unwrap(),
        Some(meta),
        "meta_data kept whole"
    );
    let notifier = integration_tests::notifying::email_consumer(&env, &canopy).await;
    integration_tests::notifying::drain_into(&env, &notifier).await;
    let (emails, _) = integration_tests::notifying::sent_to("d5@example.com", "-").await;
    assert_eq!(emails.len(), 1, "the contact came from the large meta_data");
    for item in env.scan().await {
        let size = item_size(&item);
        assert!(size < 400 * 1024, "an item of about {size} bytes");
    }
}

/// Defect 6: one reminder that fails does not stop the others.
#[tokio::test]
async fn one_failing_reminder_does_not_block_the_others() {
    let env = TestEnv::new("d6remind").await;
    let canopy = fake_canopy().await;
    let notifier = integration_tests::notifying::email_consumer(&env, &canopy).await;
    for m in ["m-d6a", "m-d6b"] {
        let s = subject(
            m,
            &format!("p-{m}"),
            json!({"email": format!("{m}@example.com")}),
        );
        deliver(
            &env,
            &reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=t6", "t6"),
        )
        .await;
        integration_tests::notifying::drain_into(&env, &notifier).await;
    }
    // Reading the first monitoring (due first) fails.
    let faults = FaultInjector::default();
    faults.add(Rule {
        operation: "GetItem".into(),
        body_contains: Some("MONITORING#m-d6a".into()),
        times: None,
        fault: Fault::Transport,
    });
    let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_queue_url.clone(),
        env.resources.notify_queue_url.clone(),
    );
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(4);
    let _ = canopy_monitor::app::reminders::run_reminders(
        &rigs::store(&env, &faults),
        &queue,
        later,
        100,
        canopy_monitor::app::budget::Deadline::NONE,
    )
    .await;
    let queued = env.drain(&env.resources.notify_queue_url).await;
    let monitorings: Vec<&str> = queued
        .iter()
        .filter_map(|m| match m {
            WorkMessage::NotifyReconnect(j) => Some(j.monitoring_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(monitorings, vec!["m-d6b"], "the healthy reminder went out");
}

/// Defect 7: account-level send failures (SES account suspended, SNS not authorised) are an
/// operator's to fix: the notice is retried, and sent once fixed, instead of dropped.
#[tokio::test]
async fn account_level_send_failures_are_retried_until_fixed() {
    let env = TestEnv::new("d7account").await;
    let canopy = fake_canopy().await;
    let email = "d7@example.com";
    let phone = "+12125550107";
    let s = subject(
        "m-d7",
        "p-d7",
        json!({"email": email, "phone": "2125550107"}),
    );
    deliver(
        &env,
        &reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=t7", "t7"),
    )
    .await;
    let send_faults = FaultInjector::default();
    send_faults.always(
        "outbound-emails",
        Fault::rest_json(400, "AccountSuspendedException"),
    );
    send_faults.always(
        "Action=Publish",
        Fault::query_xml(403, "AuthorizationError"),
    );
    let notifier = rigs::notifier(&env, &canopy, &FaultInjector::default(), &send_faults);
    integration_tests::notifying::drain_once(&env, &notifier).await;
    assert!(send_faults.injected() >= 2, "both sends were faulted");
    let (emails, sms) = integration_tests::notifying::sent_to(email, phone).await;
    assert_eq!((emails.len(), sms.len()), (0, 0));

    send_faults.heal();
    integration_tests::notifying::drain_into(&env, &notifier).await;
    let (emails, sms) = integration_tests::notifying::sent_to(email, phone).await;
    assert_eq!(
        (emails.len(), sms.len()),
        (1, 1),
        "sent once the account is fixed"
    );
}

/// Defect 8: `latest_pull_id` moves forward only: a late COMPLETE of an older refresh does not
/// take it back.
#[tokio::test]
async fn a_late_complete_of_an_older_refresh_does_not_rewind_the_monitoring() {
    let env = TestEnv::new("d8latest").await;
    let older = subject("m-d8", "p-d8-old", json!({}));
    let newer = subject("m-d8", "p-d8-new", json!({}));
    deliver(&env, &refresh_event(&older, "POLICIES_AVAILABLE")).await;
    deliver(&env, &refresh_event(&newer, "POLICIES_AVAILABLE")).await;
    deliver(&env, &refresh_event(&newer, "COMPLETE")).await;
    deliver(&env, &refresh_event(&older, "COMPLETE")).await;
    let m = env.store.get_monitoring("m-d8").await.unwrap().unwrap();
    assert_eq!(m.latest_pull_id.as_deref(), Some("p-d8-new"));
}

/// Defect 8: ids that would become keys or URL segments are checked where they enter.
#[tokio::test]
async fn ids_that_are_not_plain_tokens_are_refused() {
    let env = TestEnv::new("d8ids").await;
    for (pull, monitoring) in [("p#STATE", "m"), ("p", "../m"), ("p", "m/x")] {
        let body = json!({"event_type": "COMPLETE", "pull_id": pull,
                          "monitoring": {"monitoring_id": monitoring}});
        let (status, response) = env.deliver(body.to_string().as_bytes()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{pull} {monitoring}: {response}"
        );
        assert_eq!(response["error"], "invalid_body");
    }
    assert!(env.scan().await.is_empty(), "nothing stored");
}

/// Defect 9: no stored item holds a reconnect token or URL, whether the webhook's or a fresh
/// one, and no log line either.
#[tokio::test]
async fn no_stored_item_or_log_line_holds_a_reconnect_credential() {
    let logs = integration_tests::logs::capture();
    let env = TestEnv::new("d9secret").await;
    let canopy = fake_canopy().await;
    let s = subject("m-d9", "p-d9", json!({"email": "d9@example.com"}));
    let (token, url) = (
        "rt_webhook_SECRET_d9",
        "https://app.usecanopy.com/c/r?reconnectToken=rt_webhook_SECRET_d9",
    );
    deliver(&env, &reconnect_webhook(&s, url, token)).await;
    let notifier = integration_tests::notifying::email_consumer(&env, &canopy).await;
    integration_tests::notifying::drain_into(&env, &notifier).await;
    let (emails, _) = integration_tests::notifying::sent_to("d9@example.com", "-").await;
    assert_eq!(emails.len(), 1);
    let items = env.scan().await;
    assert!(items.len() >= 4, "event, pull, monitoring, episode, send");
    for item in &items {
        let text = item_text(item);
        for secret in [token, "rt_fresh_", "reconnectToken="] {
            assert!(
                !text.contains(secret),
                "{secret} stored in {:?}",
                item.get("sk")
            );
        }
    }
    let logged = logs.text();
    assert!(logged.contains("m-d9"), "the capture saw the run's logs");
    for secret in [token, "rt_fresh_", "reconnectToken="] {
        assert!(!logged.contains(secret), "{secret} logged");
    }
}
