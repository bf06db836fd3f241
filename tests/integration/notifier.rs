//! reconnect-notifier end to end: MONITORING_RECONNECT through intake, the notify queue driven
//! like Lambda's event source mapping, email and SMS through moto's SES and SNS, the outbound
//! webhook through a local receiver that verifies its signature, the fake Canopy for tokens.

use canopy_monitor::app::reminders::run_reminders;
use canopy_monitor::ports::store::ReminderStore;
use canopy_sim::fixtures::{reconnect_webhook, refresh_sequence, sample_pull, PullSize, Subject};
use canopy_sim::Fault;
use integration_tests::fetching::fake_canopy;
use integration_tests::notifying::{
    consumer, drain_into, receiver, sent_to, Channels, ALL_CHANNELS,
};
use integration_tests::{attr, subject, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::json;

/// A unique consumer per test: moto's SES/SNS state is shared by all tests.
struct Person {
    email: String,
    phone_raw: String,
    phone: String,
}

fn person() -> Person {
    let n = uuid::Uuid::new_v4().as_u128() % 10_000_000;
    Person {
        email: format!("user-{n}@example.com"),
        phone_raw: format!("212{n:07}"),
        phone: format!("+1212{n:07}"),
    }
}

async fn reconnect(env: &TestEnv, s: &Subject) {
    let body = reconnect_webhook(
        s,
        "https://app.usecanopy.com/c/demo/reconnect?reconnectToken=rt_webhook",
        "rt_webhook",
    );
    let (status, response) = env.deliver(body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["status"], "accepted");
}

#[tokio::test]
async fn every_channel_gets_one_fresh_link() {
    let env = TestEnv::new("channels").await;
    let canopy = fake_canopy().await;
    let hooks = receiver().await;
    let p = person();
    let s = subject(
        "m-ch",
        "p-ch",
        json!({"email": p.email, "phone": p.phone_raw, "first_name": "Lois"}),
    );
    reconnect(&env, &s).await;
    let notifier = consumer(&env, &canopy, ALL_CHANNELS(&hooks)).await;
    drain_into(&env, &notifier).await;

    assert_eq!(canopy.count("GET", "/monitorings/m-ch/reconnectToken"), 1);
    let (emails, sms) = sent_to(&p.email, &p.phone).await;
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0].1.contains("rt_fresh_1"),
        "the email carries the fresh link"
    );
    assert!(emails[0].1.contains("Lois"));
    assert_eq!(sms.len(), 1);
    assert!(sms[0].contains("rt_fresh_1"));
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    assert_eq!(hooks.rejected_signatures(), 0);
    let data = &received[0].1["data"];
    assert_eq!(data["monitoring_id"], "m-ch");
    assert!(data["reconnect_link"]
        .as_str()
        .unwrap()
        .contains("rt_fresh_1"));
    assert_eq!(data["contact"]["email"], p.email.as_str());

    let started = env
        .store
        .open_episode_start("m-ch")
        .await
        .unwrap()
        .expect("open episode");
    let episode = env
        .store
        .episode_item("m-ch", &started)
        .await
        .unwrap()
        .expect("episode");
    assert_eq!(attr(&episode, "last_sent"), Some("email,sms,webhook"));
    assert_eq!(attr(&episode, "link_source"), Some("fresh"));
    assert!(attr(&episode, "next_reminder_at").is_some());
}

#[tokio::test]
async fn no_contact_is_recorded_and_the_webhook_still_fires() {
    let env = TestEnv::new("nocontact").await;
    let canopy = fake_canopy().await;
    let hooks = receiver().await;
    let s = subject("m-nc", "p-nc", json!({"user_id": "u-42"}));
    reconnect(&env, &s).await;
    let notifier = consumer(&env, &canopy, ALL_CHANNELS(&hooks)).await;
    drain_into(&env, &notifier).await;
    assert_eq!(hooks.received().len(), 1);
    assert_eq!(
        hooks.received()[0].1["data"]["meta_data"]["user_id"],
        "u-42"
    );
    let started = env.store.open_episode_start("m-nc").await.unwrap().unwrap();
    let episode = env
        .store
        .episode_item("m-nc", &started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        episode.get("no_contact").and_then(|v| v.as_bool().ok()),
        Some(&true)
    );
    assert_eq!(attr(&episode, "last_sent"), Some("webhook"));
}

#[tokio::test]
async fn contact_falls_back_to_the_stored_pull() {
    let env = TestEnv::new("fallback").await;
    let canopy = fake_canopy().await;
    let p = person();
    // The monitoring's latest data names the holder's email and phone.
    let mut pull = sample_pull("p-fb", PullSize::default());
    pull["account_email"] = json!(p.email);
    pull["mobile_phone"] = json!(p.phone_raw);
    canopy.add_pull(pull.clone());
    for body in refresh_sequence(&subject("m-fb", "p-fb", json!({})), &pull) {
        env.deliver(body.to_string().as_bytes()).await;
    }
    let fetcher =
        integration_tests::fetching::consumer(&env, &canopy, std::time::Duration::from_secs(5))
            .await;
    integration_tests::fetching::drain_into(&env, &fetcher).await;
    reconnect(&env, &subject("m-fb", "p-fb-2", json!({"user_id": "u"}))).await;
    let notifier = consumer(
        &env,
        &canopy,
        Channels {
            email: true,
            sms: true,
            webhook: None,
        },
    )
    .await;
    drain_into(&env, &notifier).await;
    let (emails, sms) = sent_to(&p.email, &p.phone).await;
    assert_eq!((emails.len(), sms.len()), (1, 1));
    assert!(
        emails[0].0.contains("State Farm"),
        "carrier from the stored pull: {}",
        emails[0].0
    );
}

#[tokio::test]
async fn twenty_concurrent_duplicates_send_once_per_channel() {
    let env = TestEnv::new("notifyrace").await;
    let canopy = fake_canopy().await;
    let hooks = receiver().await;
    let p = person();
    let s = subject(
        "m-race",
        "p-race",
        json!({"email": p.email, "phone": p.phone_raw}),
    );
    reconnect(&env, &s).await;
    // Nineteen more copies of the job the reconnect queued, as redeliveries would make.
    let queued = env.drain(&env.resources.notify_queue_url).await;
    assert_eq!(queued.len(), 1);
    let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_queue_url.clone(),
        env.resources.notify_queue_url.clone(),
    );
    for _ in 0..20 {
        use canopy_monitor::ports::queue::WorkQueue;
        queue
            .enqueue(&canopy_monitor::domain::work::Outgoing {
                message: queued[0].clone(),
                delay: std::time::Duration::ZERO,
            })
            .await
            .unwrap();
    }
    let consumers = [
        consumer(&env, &canopy, ALL_CHANNELS(&hooks)).await,
        consumer(&env, &canopy, ALL_CHANNELS(&hooks)).await,
        consumer(&env, &canopy, ALL_CHANNELS(&hooks)).await,
    ];
    futures::future::join_all(consumers.iter().map(|c| drain_into(&env, c))).await;
    let (emails, sms) = sent_to(&p.email, &p.phone).await;
    println!(
        "20 concurrent copies: {} email, {} SMS, {} webhook",
        emails.len(),
        sms.len(),
        hooks.received().len()
    );
    assert_eq!(emails.len(), 1);
    assert_eq!(sms.len(), 1);
    assert_eq!(hooks.received().len(), 1);
}

#[tokio::test]
async fn a_failing_token_call_falls_back_to_the_webhooks_link() {
    let env = TestEnv::new("tokenfail").await;
    let canopy = fake_canopy().await;
    canopy.set_faults("m-tf", vec![Fault::ServerError], true);
    let p = person();
    reconnect(&env, &subject("m-tf", "p-tf", json!({"email": p.email}))).await;
    let notifier = consumer(
        &env,
        &canopy,
        Channels {
            email: true,
            sms: false,
            webhook: None,
        },
    )
    .await;
    drain_into(&env, &notifier).await;
    assert_eq!(
        canopy.count("GET", "/monitorings/m-tf/reconnectToken"),
        3,
        "retried before falling back"
    );
    let (emails, _) = sent_to(&p.email, "-").await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].1.contains("rt_webhook"), "the webhook's own link");
    let started = env.store.open_episode_start("m-tf").await.unwrap().unwrap();
    let episode = env
        .store
        .episode_item("m-tf", &started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attr(&episode, "link_source"), Some("webhook"));
}

#[tokio::test]
async fn the_integrators_errors_retry_on_5xx_and_stop_on_4xx() {
    let env = TestEnv::new("hookerr").await;
    let canopy = fake_canopy().await;
    let hooks = receiver().await;
    hooks.answer_next(&[503, 500]);
    reconnect(&env, &subject("m-5xx", "p-5xx", json!({}))).await;
    let notifier = consumer(
        &env,
        &canopy,
        Channels {
            email: false,
            sms: false,
            webhook: Some(&hooks),
        },
    )
    .await;
    drain_into(&env, &notifier).await;
    assert_eq!(hooks.received().len(), 1, "delivered on the third try");

    hooks.answer_next(&[400]);
    reconnect(&env, &subject("m-4xx", "p-4xx", json!({}))).await;
    drain_into(&env, &notifier).await;
    assert_eq!(hooks.received().len(), 1, "a 400 is not retried");
    let started = env
        .store
        .open_episode_start("m-4xx")
        .await
        .unwrap()
        .unwrap();
    let episode = env
        .store
        .episode_item("m-4xx", &started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attr(&episode, "last_failed"), Some("webhook: HTTP 400"));
    assert_eq!(
        integration_tests::fetching::queue_depth(&env, &env.resources.notify_dlq_url).await,
        0
    );
}

#[tokio::test]
async fn reminders_are_capped_and_stop_when_the_reconnect_is_resolved() {
    let env = TestEnv::new("remind").await;
    let canopy = fake_canopy().await;
    let p = person();
    let notifier = consumer(
        &env,
        &canopy,
        Channels {
            email: true,
            sms: false,
            webhook: None,
        },
    )
    .await;
    let queue = canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_queue_url.clone(),
        env.resources.notify_queue_url.clone(),
    );
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::DAY;

    // An episode nobody resolves: the first notice and two reminders, then nothing more.
    reconnect(
        &env,
        &subject("m-open", "p-open", json!({"email": p.email})),
    )
    .await;
    drain_into(&env, &notifier).await;
    let early = run_reminders(
        &env.store,
        &queue,
        now + day,
        100,
        canopy_monitor::app::budget::Deadline::NONE,
    )
    .await
    .unwrap();
    assert_eq!(early.queued, 0, "nothing is due after one day");
    for (days, expected_emails) in [(3, 2), (6, 3)] {
        let run = run_reminders(
            &env.store,
            &queue,
            now + day * days + time::Duration::minutes(5),
            100,
            canopy_monitor::app::budget::Deadline::NONE,
        )
        .await
        .unwrap();
        assert_eq!(run.queued, 1, "day {days}");
        drain_into(&env, &notifier).await;
        assert_eq!(
            sent_to(&p.email, "-").await.0.len(),
            expected_emails,
            "day {days}"
        );
    }
    let after_cap = run_reminders(
        &env.store,
        &queue,
        now + day * 30,
        100,
        canopy_monitor::app::budget::Deadline::NONE,
    )
    .await
    .unwrap();
    assert_eq!(after_cap.due, 0, "at most two reminders");
    drain_into(&env, &notifier).await;
    assert_eq!(sent_to(&p.email, "-").await.0.len(), 3);

    // An episode resolved by a successful refresh before its reminder is due.
    let q = person();
    reconnect(
        &env,
        &subject("m-fixed", "p-fixed", json!({"email": q.email})),
    )
    .await;
    drain_into(&env, &notifier).await;
    let complete = refresh_sequence(
        &subject("m-fixed", "p-fixed", json!({})),
        &sample_pull("p-fixed", PullSize::default()),
    );
    env.deliver(complete.last().unwrap().to_string().as_bytes())
        .await;
    assert_eq!(
        env.store.open_episode_start("m-fixed").await.unwrap(),
        None,
        "COMPLETE closed the episode"
    );
    let run = run_reminders(
        &env.store,
        &queue,
        now + day * 4,
        100,
        canopy_monitor::app::budget::Deadline::NONE,
    )
    .await
    .unwrap();
    assert_eq!((run.queued, run.resolved), (0, 1));
    assert!(env.drain(&env.resources.notify_queue_url).await.is_empty());
    assert_eq!(
        sent_to(&q.email, "-").await.0.len(),
        1,
        "no reminder after the reconnect"
    );
}
