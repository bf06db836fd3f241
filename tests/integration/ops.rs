//! canopy-ops against a stack on moto (the CLI's `--local` mode over a test's resources):
//! `status` with one failed fetch, one open reconnect episode and one dead-lettered fetch;
//! `redrive --dry-run`, then a redrive that moves the fetch back, after which it is stored;
//! `replay` of a stored webhook; `tail`; and the JSON forms.

use canopy_monitor::queue::WorkQueue;
use canopy_monitor::work::{FetchPullJob, FetchTrigger, Outgoing, WorkMessage};
use canopy_ops::{deliveries_table, redrive_table, status_table, Ops, QueueName, Stack};
use canopy_sim::fixtures::{reconnect_webhook, sample_pull, PullSize};
use integration_tests::fetching::{consumer, drain_into, enqueue_fetch, fake_canopy};
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
    canopy_monitor::queue::sqs::SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(&env.aws),
        env.resources.fetch_dlq_url.clone(),
        env.resources.notify_dlq_url.clone(),
    )
    .enqueue(&Outgoing {
        message: WorkMessage::FetchPull(FetchPullJob {
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
    let output =
        |key: &str, value: &str| json!({"Value": value, "Export": null, "Description": key});
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{name}-marker")}}},
        "Outputs": {
            "StateTableName": output("table", &r.table_name),
            "FetchQueueUrl": output("fetch", &r.fetch_queue_url),
            "FetchDeadLetterQueueUrl": output("fetch dlq", &r.fetch_dlq_url),
            "NotifyQueueUrl": output("notify", &r.notify_queue_url),
            "NotifyDeadLetterQueueUrl": output("notify dlq", &r.notify_dlq_url),
        }
    });
    let mut template = template;
    for (_, o) in template["Outputs"].as_object_mut().unwrap() {
        o.as_object_mut().unwrap().remove("Export");
    }
    aws_sdk_cloudformation::Client::new(&env.aws)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create the stack");

    let stack = Stack::deployed(&env.aws, &name)
        .await
        .expect("the stack's outputs");
    assert!(!stack.local);
    assert_eq!(stack.table, r.table_name);
    assert_eq!(stack.fetch_dlq_url, r.fetch_dlq_url);
    assert_eq!(stack.notify_queue_url, r.notify_queue_url);
    let status = Ops::new(&env.aws, stack).status().await.expect("status");
    assert_eq!(status.queues.len(), 4);
    assert!(status.open_reconnects.is_empty() && status.failed_fetches.is_empty());

    let missing = Stack::deployed(&env.aws, "no-such-stack").await;
    assert!(missing.is_err());
}
