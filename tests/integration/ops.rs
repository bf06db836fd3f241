//! canopy-ops against a stack on moto (the CLI's `--local` mode over a test's resources):
//! `status` with one failed fetch, one open reconnect episode and one dead-lettered fetch;
//! `redrive --dry-run`, then a redrive that moves the fetch back, after which it is stored;
//! `replay` of a stored webhook; `tail`; and the JSON forms.

use canopy_monitor::adapters::dynamo::{monitoring_pk, STATE_SK};
use canopy_monitor::app::intake::IntakeConfig;
use canopy_monitor::domain::event::REDACTED;
use canopy_monitor::domain::plan::PlanConfig;
use canopy_monitor::domain::work::{FetchPullJob, FetchTrigger, Outgoing, WorkMessage};
use canopy_monitor::ports::queue::WorkQueue;
use canopy_ops::{
    deliveries_table, redrive_table, status_table, Ops, QueueName, Stack, OWNER_KEY_PARAMETER,
};
use canopy_sim::fixtures::{reconnect_webhook, sample_pull, PullSize};
use canopy_sim::Fault;
use integration_tests::fetching::{consumer, drain_into, enqueue_fetch, fake_canopy, queue_depth};
use integration_tests::notifying::{self, Channels};
use integration_tests::{subject, TestEnv};
use lambda_http::http::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn status_redrive_replay_and_tail_on_the_local_stack() {
    let env = TestEnv::new("ops").await;
    let canopy = fake_canopy().await;
    let fetcher = consumer(&env, &canopy, Duration::from_secs(5)).await;

    // One failed fetch: a pull Canopy does not know.
    let missing = uuid::Uuid::new_v4().to_string();
    enqueue_fetch(&env, &missing, Some("m-ops")).await;
    drain_into(&env, &fetcher).await;

    // One open reconnect episode.
    let reconnect_pull = uuid::Uuid::new_v4().to_string();
    let body = reconnect_webhook(
        &subject(
            "0b7d4c1e-9a2f-4e3b-8c5d-6f7a8b9c0d1e",
            &reconnect_pull,
            json!({"customer_id": "cust-7"}),
        ),
        "https://canopy.example/r?t=secret-token",
        "secret-token",
    );
    let (status, answer) = env.deliver(body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let dedupe_key = env
        .event_records()
        .await
        .iter()
        .find(|r| integration_tests::attr(r, "event_type") == Some("MONITORING_RECONNECT"))
        .and_then(|r| integration_tests::attr(r, "pk"))
        .map(|pk| pk.trim_start_matches("EVENT#").to_owned())
        .expect("the stored delivery");
    // Its notice job is not run here.
    integration_tests::drain_queue(&env.aws, &env.resources.notify_queue_url).await;

    // One dead-lettered fetch of a pull Canopy has.
    let dead = uuid::Uuid::new_v4().to_string();
    canopy.add_pull(sample_pull(&dead, PullSize::default()));
    canopy_monitor::adapters::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_dlq_url.clone(),
        env.resources.notify_dlq_url.clone(),
    )
    .enqueue(&Outgoing {
        message: WorkMessage::FetchPull(FetchPullJob {
            source: None,
            pull_id: dead.clone(),
            monitoring_id: None,
            initial_pull_id: None,
            trigger: FetchTrigger::Complete,
            event_key: "k".into(),
            requested_at: "2026-11-27T00:00:00.000Z".into(),
        }),
        delay: Duration::ZERO,
    })
    .await
    .expect("dead-letter a fetch");

    let ops = Ops::new(&env.aws, Stack::local("ops-test", &env.resources));
    let status = ops.status().await.expect("status");
    println!("$ canopy-ops --local status\n{}", status_table(&status));
    assert_eq!(status.open_reconnects.len(), 1);
    assert_eq!(status.open_reconnects[0].owner.as_deref(), Some("cust-7"));
    assert_eq!(status.failed_fetches.len(), 1);
    assert_eq!(status.failed_fetches[0].pull_id, missing);
    assert_eq!(status.failed_fetches[0].code, "NOT_FOUND");
    // Grouped by source: everything here is the one source's.
    assert_eq!(
        status
            .sources
            .iter()
            .map(|s| (s.open_reconnects, s.failed_fetches))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        (1, 1)
    );
    let dlq = status
        .queues
        .iter()
        .find(|q| q.queue == "fetch DLQ")
        .expect("DLQ");
    assert_eq!(dlq.visible, 1);
    assert!(dlq.oldest_age_secs.is_some());
    let last = status.last_webhook.as_ref().expect("last webhook");
    assert_eq!(last.event_type, "MONITORING_RECONNECT");
    assert_eq!(last.outcome.as_deref(), Some("accepted"));
    let text = serde_json::to_string(&status).expect("json");
    assert!(!text.contains("secret-token") && !text.contains("canopy.example"));

    // Dry run: lists, moves nothing.
    let dry = ops.redrive(QueueName::Fetch, true).await.expect("dry run");
    println!(
        "$ canopy-ops --local redrive --dry-run\n{}",
        redrive_table(&dry)
    );
    assert_eq!(dry.waiting, 1);
    assert_eq!(dry.messages[0].pull_id.as_deref(), Some(dead.as_str()));
    let again = ops.status().await.expect("status");
    assert_eq!(
        again
            .queues
            .iter()
            .find(|q| q.queue == "fetch DLQ")
            .unwrap()
            .visible,
        1
    );

    // Redrive: the fetch goes back to its queue, and the fetcher stores the pull.
    let moved = ops.redrive(QueueName::Fetch, false).await.expect("redrive");
    println!("$ canopy-ops --local redrive\n{}", redrive_table(&moved));
    assert_eq!(moved.messages.len(), 1);
    drain_into(&env, &fetcher).await;
    assert!(
        env.store.get_pull_data(&dead).await.unwrap().is_some(),
        "stored after the redrive"
    );
    let after = ops.status().await.expect("status");
    assert_eq!(
        after
            .queues
            .iter()
            .find(|q| q.queue == "fetch DLQ")
            .unwrap()
            .visible,
        0
    );

    // Replay the stored MONITORING_RECONNECT: its notice is queued again.
    let replayed = ops.replay(&dedupe_key).await.expect("replay");
    assert_eq!(replayed.event_type, "MONITORING_RECONNECT");
    assert_eq!(replayed.queued, 1);
    assert!(ops.replay("not-a-key").await.is_err());

    // Tail: the deliveries, newest first.
    let tail = ops.tail(10).await.expect("tail");
    println!("$ canopy-ops --local tail\n{}", deliveries_table(&tail));
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].dedupe_key, dedupe_key);
    assert_eq!(
        serde_json::to_value(&tail).unwrap()[0]["outcome"],
        "accepted"
    );
}

/// `--stack NAME`: the resources come from the stack's CloudFormation outputs (moto's
/// CloudFormation, over the real wire protocol), and `status` reads through them, the live
/// queues' oldest age from CloudWatch (which has no data points on the emulator).
#[tokio::test]
async fn a_deployed_stack_is_found_by_its_outputs() {
    let env = TestEnv::new("ops-stack").await;
    let r = &env.resources;
    let name = format!("{}-stack", r.table_name);
    create_stack(&env, &name, "customer_id").await;

    let stack = Stack::deployed(&env.aws, &name)
        .await
        .expect("the stack's outputs");
    assert!(!stack.local);
    assert_eq!(stack.table, r.table_name);
    assert_eq!(stack.fetch_dlq_url, r.fetch_dlq_url);
    assert_eq!(stack.notify_queue_url, r.notify_queue_url);
    assert_eq!(stack.owner_key, "customer_id");
    let status = Ops::new(&env.aws, stack).status().await.expect("status");
    assert_eq!(status.queues.len(), 4);
    assert!(status.open_reconnects.is_empty() && status.failed_fetches.is_empty());

    let missing = Stack::deployed(&env.aws, "no-such-stack").await;
    assert!(missing.is_err());
}

/// A stack on moto's CloudFormation with `env`'s resources as its outputs and `owner_key` as
/// its OwnerMetaDataKey parameter (what `Stack::deployed` reads).
async fn create_stack(env: &TestEnv, name: &str, owner_key: &str) {
    let r = &env.resources;
    let output = |key: &str, value: &str| json!({"Value": value, "Description": key});
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {OWNER_KEY_PARAMETER: {"Type": "String", "Default": "customer_id"}},
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{name}-marker")}}},
        "Outputs": {
            "StateTableName": output("table", &r.table_name),
            "FetchQueueUrl": output("fetch", &r.fetch_queue_url),
            "FetchDeadLetterQueueUrl": output("fetch dlq", &r.fetch_dlq_url),
            "NotifyQueueUrl": output("notify", &r.notify_queue_url),
            "NotifyDeadLetterQueueUrl": output("notify dlq", &r.notify_dlq_url),
        }
    });
    aws_sdk_cloudformation::Client::new(&env.aws)
        .create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(OWNER_KEY_PARAMETER)
                .parameter_value(owner_key)
                .build(),
        )
        .send()
        .await
        .expect("create the stack");
}

/// The dedupe key of the stored delivery about `pull_id`.
async fn dedupe_key_of(env: &TestEnv, pull_id: &str) -> String {
    env.event_records()
        .await
        .iter()
        .find(|r| integration_tests::attr(r, "pull_id") == Some(pull_id))
        .and_then(|r| integration_tests::attr(r, "pk"))
        .map(|pk| pk.trim_start_matches("EVENT#").to_owned())
        .expect("the stored delivery")
}

/// Sets (or, with `None`, removes) a monitoring's stored owner, as a later change would.
async fn set_owner(env: &TestEnv, monitoring_id: &str, owner: Option<&str>) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let update = aws_sdk_dynamodb::Client::new(&env.aws)
        .update_item()
        .table_name(&env.resources.table_name)
        .key("pk", S(monitoring_pk(monitoring_id)))
        .key("sk", S(STATE_SK.to_owned()));
    let update = match owner {
        Some(o) => update
            .update_expression("SET #o = :o")
            .expression_attribute_values(":o", S(o.to_owned())),
        None => update.update_expression("REMOVE #o"),
    };
    update
        .expression_attribute_names("#o", "owner")
        .send()
        .await
        .expect("set the owner");
}

/// `replay` reads the owner key from the stack (its OwnerMetaDataKey), not from the operator's
/// environment (where it is unset here: the old default, `customer_id`, named another owner),
/// and never replaces an owner already stored.
#[tokio::test]
async fn replay_uses_the_stacks_owner_key_and_never_replaces_an_owner() {
    // The stack's functions read the owner from `tenant_id`.
    let config = IntakeConfig {
        plan: PlanConfig {
            owner_key: "tenant_id".into(),
            ..integration_tests::test_intake_config().plan
        },
        ..integration_tests::test_intake_config()
    };
    let env = TestEnv::with_config("ops-owner", config).await;
    let name = format!("{}-stack", env.resources.table_name);
    create_stack(&env, &name, "tenant_id").await;
    let stack = Stack::deployed(&env.aws, &name).await.expect("the stack");
    assert_eq!(stack.owner_key, "tenant_id");
    let ops = Ops::new(&env.aws, stack);

    let meta = json!({"customer_id": "cust-env", "tenant_id": "tenant-9"});
    let mut stored = Vec::new();
    for _ in 0..2 {
        let monitoring = uuid::Uuid::new_v4().to_string();
        let pull = uuid::Uuid::new_v4().to_string();
        let body = reconnect_webhook(
            &subject(&monitoring, &pull, meta.clone()),
            "https://canopy.example/r?t=tok-owner",
            "tok-owner",
        );
        let (status, answer) = env.deliver(body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let owner = env.store.get_monitoring(&monitoring).await.unwrap();
        assert_eq!(owner.and_then(|m| m.owner).as_deref(), Some("tenant-9"));
        stored.push((monitoring, dedupe_key_of(&env, &pull).await));
    }
    // One monitoring lost its owner; the other was handed to another tenant since.
    let (unowned, unowned_key) = &stored[0];
    let (moved, moved_key) = &stored[1];
    set_owner(&env, unowned, None).await;
    set_owner(&env, moved, Some("tenant-other")).await;

    ops.replay(unowned_key).await.expect("replay");
    ops.replay(moved_key).await.expect("replay");
    let owner_of = |id: String| {
        let store = env.store.clone();
        async move {
            store
                .get_monitoring(&id)
                .await
                .unwrap()
                .and_then(|m| m.owner)
        }
    };
    assert_eq!(
        owner_of(unowned.clone()).await.as_deref(),
        Some("tenant-9"),
        "the owner under the stack's key, not the environment's"
    );
    assert_eq!(
        owner_of(moved.clone()).await.as_deref(),
        Some("tenant-other"),
        "a stored owner is never replaced by a replay"
    );

    // A stack without the parameter is not taken for one with the default.
    let bare = format!("{name}-bare");
    aws_sdk_cloudformation::Client::new(&env.aws)
        .create_stack()
        .stack_name(&bare)
        .template_body(
            json!({"Resources": {"Marker": {"Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": format!("{bare}-marker")}}}})
            .to_string(),
        )
        .send()
        .await
        .expect("create");
    assert!(Stack::deployed(&env.aws, &bare).await.is_err());
}

/// A replayed MONITORING_RECONNECT whose fresh-token call fails: the stored body's link is
/// `[REDACTED]`, which must never reach the consumer. The notice is retried, and goes out with
/// a fresh link once Canopy answers.
#[tokio::test]
async fn a_replayed_reconnect_never_sends_the_redacted_link() {
    let env = TestEnv::new("ops-redacted").await;
    let canopy = fake_canopy().await;
    let hooks = notifying::receiver().await;
    let monitoring = uuid::Uuid::new_v4().to_string();
    let pull = uuid::Uuid::new_v4().to_string();
    let body = reconnect_webhook(
        &subject(&monitoring, &pull, json!({"customer_id": "cust-r"})),
        "https://canopy.example/r?reconnectToken=rt_hook_redacted",
        "rt_hook_redacted",
    );
    let (status, answer) = env.deliver(body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The original notice is not the subject here.
    integration_tests::drain_queue(&env.aws, &env.resources.notify_queue_url).await;

    let ops = Ops::new(&env.aws, Stack::local("ops-redacted", &env.resources));
    let replayed = ops
        .replay(&dedupe_key_of(&env, &pull).await)
        .await
        .expect("replay");
    assert_eq!(replayed.queued, 1);

    // Canopy cannot give a fresh token.
    canopy.set_faults(&monitoring, vec![Fault::ServerError], true);
    let channels = Channels {
        email: false,
        sms: false,
        webhook: Some(&hooks),
    };
    let notifier = notifying::consumer(&env, &canopy, channels).await;
    notifying::drain_once(&env, &notifier).await;
    let sent = serde_json::to_string(&hooks.received()).expect("json");
    assert!(!sent.contains(REDACTED), "a redacted link was sent: {sent}");
    assert!(hooks.received().is_empty(), "nothing without a link");
    assert_eq!(
        queue_depth(&env, &env.resources.notify_queue_url).await,
        1,
        "the notice waits for its retry"
    );

    // Canopy answers again: the retry sends a fresh link.
    canopy.set_faults(&monitoring, Vec::new(), false);
    notifying::drain_into(&env, &notifier).await;
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    let text = received[0].1.to_string();
    assert!(
        text.contains("rt_fresh") && !text.contains(REDACTED),
        "{text}"
    );
}
