//! The fault suite: the whole pipeline driven through injected faults (DynamoDB and SQS over
//! moto with an SDK fault injector, SES and SNS answering each class of error in their own wire
//! format, the fake Canopy hanging, refusing our keys, missing pulls). For every kind of work,
//! what went in is accounted for: `in = stored + failed-with-reason + dead-lettered`.

use canopy_monitor::domain::work::{FetchTrigger, WorkMessage};
use canopy_monitor::ports::store::PullDataStore;
use canopy_monitor::ports::store::ReminderStore;
use canopy_sim::fixtures::{reconnect_webhook, refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::Fault as CanopyFault;
use integration_tests::faults::{Fault, FaultInjector, Rule};
use integration_tests::fetching::{drain_into, fake_canopy};
use integration_tests::notifying::{self, sent_to};
use integration_tests::{deliver_to, now, rigs, subject, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};

fn complete(s: &Subject) -> Value {
    refresh_sequence(s, &sample_pull(&s.pull_id, PullSize::default()))
        .pop()
        .expect("COMPLETE")
}

fn once(operation: &str, body_contains: &str, fault: Fault) -> Rule {
    Rule {
        operation: operation.into(),
        body_contains: Some(body_contains.into()),
        times: Some(1),
        fault,
    }
}

/// Signs and delivers `body` to `intake` (a webhook as Canopy sends it).
async fn post(intake: &integration_tests::TestIntake, body: &Value) -> StatusCode {
    let event = devkit::events::webhook_request(
        body.to_string().as_bytes(),
        devkit::LOCAL_SIGNING_SECRET,
        now(),
    );
    deliver_to(intake, event).await.0
}

/// Intake: each of its writes fails once. Canopy's delivery gets a 5xx, its retry a 200, and
/// every refresh ends stored with one GET.
#[tokio::test]
async fn intake_write_failures_are_retried_by_canopy_and_nothing_is_lost() {
    let env = TestEnv::new("fault-intake").await;
    let canopy = fake_canopy().await;
    let faults = FaultInjector::default();
    let intake = rigs::intake(&env, &faults);
    let cases = [
        ("claim", "PutItem", "EVENT#"),
        ("pull", "UpdateItem", "PULL#p-f-pull"),
        ("monitoring", "UpdateItem", "MONITORING#m-f-monitoring"),
        ("enqueue", "SendMessage", "p-f-enqueue"),
        ("complete", "UpdateItem", "COMPLETED"),
    ];
    for (name, operation, target) in cases {
        let s = subject(&format!("m-f-{name}"), &format!("p-f-{name}"), json!({}));
        canopy.add_pull(sample_pull(&s.pull_id, PullSize::default()));
        faults.add(once(operation, target, Fault::Transport));
        let first = post(&intake, &complete(&s)).await;
        assert!(first.is_server_error(), "{name}: {first}");
        assert_eq!(
            post(&intake, &complete(&s)).await,
            StatusCode::OK,
            "{name} retry"
        );
    }
    assert_eq!(faults.injected(), cases.len());
    let fetcher =
        integration_tests::fetching::consumer(&env, &canopy, std::time::Duration::from_secs(5))
            .await;
    drain_into(&env, &fetcher).await;
    let mut stored = 0;
    for (name, _, _) in cases {
        let pull_id = format!("p-f-{name}");
        assert!(
            env.store.get_pull_data(&pull_id).await.unwrap().is_some(),
            "{name}"
        );
        assert_eq!(
            canopy.count("GET", &format!("/pulls/{pull_id}")),
            1,
            "{name}"
        );
        stored += 1;
    }
    assert_eq!(stored, cases.len(), "in = stored");
}

/// The fetcher: each DynamoDB write fails once, a lease release fails, Canopy hangs, refuses
/// our keys, loses a pull, and COMPLETE arrives under the fallback's lease.
#[tokio::test]
async fn fetch_faults_end_stored_failed_or_dead_lettered() {
    let env = TestEnv::new("fault-fetch").await;
    let canopy = fake_canopy().await;
    let faults = FaultInjector::default();
    let fetcher = rigs::fetcher(&env, &canopy, &faults);
    // (pull, DynamoDB fault, Canopy faults, sticky, expected end)
    type Case = (
        &'static str,
        Option<Rule>,
        Vec<CanopyFault>,
        bool,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "p-claim",
            Some(once(
                "UpdateItem",
                "fetch_lease_expires_at = :expires",
                Fault::Transport,
            )),
            vec![],
            false,
            "stored",
        ),
        (
            "p-parts",
            Some(once("BatchWriteItem", "p-parts", Fault::Transport)),
            vec![],
            false,
            "stored",
        ),
        (
            "p-summary",
            Some(once("PutItem", "p-summary", Fault::Transport)),
            vec![],
            false,
            "stored",
        ),
        (
            "p-finish",
            Some(once(
                "UpdateItem",
                "fetch_status = :fetched",
                Fault::Transport,
            )),
            vec![],
            false,
            "stored",
        ),
        // Canopy fails, and giving the lease back fails too: the lease runs out instead.
        (
            "p-release",
            Some(once(
                "UpdateItem",
                "SET fetch_error = :reason",
                Fault::Transport,
            )),
            vec![CanopyFault::ServerError],
            false,
            "stored",
        ),
        (
            "p-hang",
            None,
            vec![CanopyFault::Slow { millis: 8_000 }],
            false,
            "stored",
        ),
        (
            "p-401",
            None,
            vec![CanopyFault::Unauthorized],
            true,
            "dead-lettered",
        ),
        ("p-404", None, vec![CanopyFault::NotFound], false, "failed"),
        ("p-lease", None, vec![], false, "stored"),
    ];
    for (pull_id, rule, canopy_faults, sticky, _) in &cases {
        canopy.add_pull(sample_pull(pull_id, PullSize::default()));
        canopy.set_faults(pull_id, canopy_faults.clone(), *sticky);
        if let Some(rule) = rule {
            faults.add(rule.clone());
        }
        if *pull_id == "p-lease" {
            // The fallback attempt holds the lease, then dies without releasing it.
            let t = now();
            let _ = env
                .store
                .claim_fetch(
                    pull_id,
                    FetchTrigger::PoliciesAvailable,
                    "dead-attempt",
                    t,
                    t + 3,
                )
                .await
                .unwrap();
        }
        integration_tests::fetching::enqueue_fetch(&env, pull_id, None).await;
        // One pull at a time, so each one-shot fault hits the pull it names.
        drain_into(&env, &fetcher).await;
    }
    let dead = env.drain(&env.resources.fetch_dlq_url).await;
    let (mut stored, mut failed) = (0, 0);
    for (pull_id, _, _, _, expected) in &cases {
        let data = env.store.get_pull_data(pull_id).await.unwrap();
        let state = env
            .store
            .get_pull(pull_id)
            .await
            .unwrap()
            .unwrap_or_default();
        let in_dlq = dead
            .iter()
            .any(|m| matches!(m, WorkMessage::FetchPull(j) if j.pull_id == *pull_id));
        let end = match (
            data.is_some(),
            state.fetch_status.as_deref() == Some("FAILED"),
            in_dlq,
        ) {
            (true, false, false) => "stored",
            (false, true, false) => "failed",
            (false, false, true) => "dead-lettered",
            other => panic!("{pull_id} ended in more than one place or none: {other:?} {state:?}"),
        };
        assert_eq!(end, *expected, "{pull_id}");
        match end {
            "stored" => stored += 1,
            "failed" => {
                failed += 1;
                assert_eq!(
                    state.fetch_error.as_deref(),
                    Some("NOT_FOUND"),
                    "reason recorded"
                );
            }
            _ => assert_eq!(
                state.fetch_error.as_deref(),
                Some("UNAUTHORIZED"),
                "reason on the pull"
            ),
        }
    }
    assert_eq!(
        stored + failed + dead.len(),
        cases.len(),
        "in = stored + failed + DLQ"
    );
    assert!(faults.injected() >= 5, "every DynamoDB fault was hit");
}

/// The notifier: DynamoDB writes fail once, SES and SNS answer each class of error, and an
/// AUTH_STATUS arrives before the MONITORING_RECONNECT. Every notice ends sent, or failed with
/// its reason on the episode.
#[tokio::test]
async fn notice_faults_end_sent_or_failed_with_a_reason() {
    let env = TestEnv::new("fault-notify").await;
    let canopy = fake_canopy().await;
    let ddb = FaultInjector::default();
    let sends = FaultInjector::default();
    let notifier = rigs::notifier(&env, &canopy, &ddb, &sends);
    let ses = |code: &str| Fault::rest_json(400, code);
    let sns = |status: u16, code: &str| Fault::query_xml(status, code);
    // (monitoring, DynamoDB fault, send fault, expected email, expected SMS)
    type Case = (
        &'static str,
        Option<Rule>,
        Option<Rule>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "m-episode",
            Some(once("PutItem", "EPISODE#", Fault::Transport)),
            None,
            "sent",
            "sent",
        ),
        (
            "m-claim",
            Some(once("PutItem", "SENDING", Fault::Transport)),
            None,
            "sent",
            "sent",
        ),
        (
            "m-record",
            Some(once("UpdateItem", "notices_sent = :n", Fault::Transport)),
            None,
            "sent",
            "sent",
        ),
        (
            "m-throttled",
            None,
            Some(once("outbound-emails", "", ses("TooManyRequestsException"))),
            "sent",
            "sent",
        ),
        (
            "m-suspended",
            None,
            Some(once(
                "outbound-emails",
                "",
                ses("AccountSuspendedException"),
            )),
            "sent",
            "sent",
        ),
        (
            "m-rejected",
            None,
            Some(once("outbound-emails", "", ses("MessageRejected"))),
            "failed",
            "sent",
        ),
        (
            "m-sns-throttled",
            None,
            Some(once("Action=Publish", "", sns(400, "Throttling"))),
            "sent",
            "sent",
        ),
        (
            "m-sns-denied",
            None,
            Some(once("Action=Publish", "", sns(403, "AuthorizationError"))),
            "sent",
            "sent",
        ),
        (
            "m-sns-invalid",
            None,
            Some(once("Action=Publish", "", sns(400, "InvalidParameter"))),
            "sent",
            "failed",
        ),
        ("m-order", None, None, "sent", "sent"),
    ];
    let mut contacts = Vec::new();
    for (i, (m, ddb_rule, send_rule, _, _)) in cases.iter().enumerate() {
        let email = format!("{m}-{}@example.com", now());
        let digits = format!("{:07}", (now() as usize * 10 + i) % 10_000_000);
        let s = subject(
            m,
            &format!("p-{m}"),
            json!({"email": email, "phone": format!("646{digits}")}),
        );
        contacts.push((email, format!("+1646{digits}")));
        if let Some(rule) = ddb_rule {
            ddb.add(rule.clone());
        }
        if let Some(rule) = send_rule {
            sends.add(rule.clone());
        }
        if *m == "m-order" {
            let mut auth = complete(&s);
            auth["event_type"] = json!("AUTH_STATUS");
            auth["sequence"] = json!(3);
            auth["data"] = json!({"auth_status": "NOT_AUTHENTICATED"});
            env.deliver(auth.to_string().as_bytes()).await;
        }
        let body = reconnect_webhook(&s, "https://app.usecanopy.com/c/r?reconnectToken=tf", "tf");
        assert_eq!(
            env.deliver(body.to_string().as_bytes()).await.0,
            StatusCode::OK
        );
        notifying::drain_into(&env, &notifier).await;
    }
    let dead = env.drain(&env.resources.notify_dlq_url).await;
    assert!(dead.is_empty(), "no notice dead-lettered: {dead:?}");
    let mut accounted = 0;
    for ((m, _, _, email_end, sms_end), (email, phone)) in cases.iter().zip(&contacts) {
        let (emails, sms) = sent_to(email, phone).await;
        let start = env
            .store
            .open_episode_start(m)
            .await
            .unwrap()
            .expect("episode open");
        let episode = env
            .store
            .episode_item(m, &start)
            .await
            .unwrap()
            .expect("episode");
        let failed = integration_tests::attr(&episode, "last_failed")
            .unwrap_or_default()
            .to_owned();
        for (channel, end, count) in [
            ("email", email_end, emails.len()),
            ("sms", sms_end, sms.len()),
        ] {
            match *end {
                // At least once: a crash between a send and its record may repeat it (m-record).
                "sent" => assert!(count >= 1, "{m} {channel} sent"),
                _ => {
                    assert_eq!(count, 0, "{m} {channel} not sent");
                    assert!(
                        failed.contains(channel),
                        "{m}: {channel} failure recorded: {failed}"
                    );
                }
            }
        }
        assert_ne!(
            integration_tests::attr(&episode, "last_notice_at"),
            None,
            "{m}: the notice is recorded"
        );
        accounted += 1;
    }
    assert_eq!(
        accounted + dead.len(),
        cases.len(),
        "in = notified + dead-lettered"
    );
    assert_eq!(ddb.injected(), 3);
    assert_eq!(sends.injected(), 6);
}
