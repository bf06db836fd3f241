//! A first deploy: `canopy-ops setup` registers the stack's webhook with each source's team on
//! the fake Canopy (its webhooks routes, a fresh signing secret per registration) and stores
//! the secret; a second run changes nothing; `--rotate` loses no delivery; `ping` proves the
//! path; `doctor` fails for each problem and passes once it is fixed. Against a two-source
//! stack on moto, every function built from Secrets Manager as in AWS.

use crate::sources::{deployment_with, pull_of, send, Deployment as Rig, PRODUCTION, SANDBOX};
use canopy_monitor::domain::signature::SigningSecrets;
use canopy_monitor::domain::source::{KeyType, SourceSpec};
use canopy_ops::deploy::{
    checks_table, secret_value, setup_table, stores_all, wanted_types, Check, DeployedSource,
    Deployment, Verdict,
};
use canopy_ops::{Ops, Stack};
use canopy_sim::fixtures::{SANDBOX_TEAM_ID, TEAM_ID};
use canopy_sim::{SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use integration_tests::attr;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What `canopy-ops` knows of the rig's stack.
fn deployment(rig: &Rig) -> Deployment {
    let r = &rig.env.resources;
    let extra = |role| SourceSpec::additional_secret_name(&r.source_secret_prefix, SANDBOX, role);
    Deployment {
        webhook_url: rig.url.clone(),
        canopy_base_url: rig.canopy.base_url(),
        sources: vec![
            DeployedSource {
                name: PRODUCTION.into(),
                team_id: TEAM_ID.into(),
                key_type: KeyType::Production,
                api_secret_id: r.canopy_api_secret_id.clone(),
                webhook_secret_id: r.webhook_secret_id.clone(),
            },
            DeployedSource {
                name: SANDBOX.into(),
                team_id: SANDBOX_TEAM_ID.into(),
                key_type: KeyType::Sandbox,
                api_secret_id: extra("api"),
                webhook_secret_id: extra("webhook"),
            },
        ],
        email_from: Some(r.email_from.clone()),
        sms_enabled: false,
        outbound_webhook_url: None,
        outbound_webhook_secret_id: None,
        alarm_topic_arn: None,
    }
}

fn ops(rig: &Rig) -> Ops {
    Ops::new(
        &rig.env.aws,
        Stack::local("first-deploy", &rig.env.resources),
    )
}

async fn secret(rig: &Rig, id: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&rig.env.aws)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .expect("secret")
        .secret_string()
        .unwrap_or_default()
        .to_owned()
}

async fn put_secret(rig: &Rig, id: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(&rig.env.aws)
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .expect("put secret");
}

/// Intake reads its secrets again at most once per second in these rigs.
async fn past_reload_interval() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[test]
fn stored_secret_values_hold_what_setup_wrote() {
    assert_eq!(secret_value(&["a"]), "a");
    let both = secret_value(&["new", "old"]);
    assert!(stores_all(Some(&both), &["old", "new"]));
    assert!(!stores_all(Some("old"), &["new"]));
    assert!(!stores_all(None, &["new"]));
    assert_eq!(
        wanted_types(&["VALIDATION_COMPLETE".into(), "NOPE".into()]),
        vec![
            "COMPLETE",
            "POLICIES_AVAILABLE",
            "AUTH_STATUS",
            "VALIDATION_COMPLETE"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn setup_registers_each_source_stores_its_secret_and_a_second_run_changes_nothing() {
    let rig = deployment_with("first-setup", false).await;
    let d = deployment(&rig);
    let ops = ops(&rig);

    let first = ops.setup(&d, None, false).await.expect("setup");
    println!("$ canopy-ops setup\n{}", setup_table(&first));
    for (source, outcome) in [PRODUCTION, SANDBOX].iter().zip(&first) {
        assert_eq!(outcome.source, *source);
        assert!(!outcome.changes.is_empty());
        let hooks = rig.canopy.webhooks(source);
        assert_eq!(hooks.len(), 1, "{source}: one registration");
        assert_eq!(hooks[0].url, rig.url);
        assert_eq!(outcome.webhook_ids, vec![hooks[0].webhook_id.clone()]);
        let stored = secret(&rig, &d.chosen(Some(source)).unwrap()[0].webhook_secret_id).await;
        assert_eq!(
            stored, hooks[0].signing_secret,
            "{source}: the secret stored"
        );
    }

    let second = ops.setup(&d, None, false).await.expect("setup again");
    let table = setup_table(&second);
    println!("$ canopy-ops setup\n{table}");
    assert!(second.iter().all(|o| o.changes.is_empty()), "{table}");
    assert_eq!(table.matches("nothing changed").count(), 2);
    assert_eq!(
        rig.canopy.count("POST", "/webhooks"),
        2,
        "no new registration"
    );
    assert!(rig.canopy.requests().iter().all(|r| r.refused.is_none()));

    // A delivery signed with the registration's secret is accepted once intake reads it.
    past_reload_interval().await;
    let (_, bodies) = pull_of(&rig, SANDBOX, "cust-s");
    let sandbox_secret = rig.canopy.webhooks(SANDBOX)[0].signing_secret.clone();
    assert_eq!(
        send(&rig, &sandbox_secret, bodies.last().unwrap()).await,
        200
    );

    // ping: recorded as each source's, then removed.
    let pings = ops.ping(&d, None).await.expect("ping");
    assert_eq!(pings.len(), 2);
    for p in &pings {
        assert_eq!(
            (p.status, p.recorded, p.removed),
            (200, true, true),
            "{p:?}"
        );
    }
    let items = rig.env.scan().await;
    assert!(
        !items.iter().any(|i| attr(i, "pull_id")
            .is_some_and(|p| p.starts_with(canopy_monitor::domain::event::PING_PULL_PREFIX))),
        "the pings left nothing behind"
    );
    assert!(
        rig.env
            .drain(&rig.env.resources.notify_queue_url)
            .await
            .is_empty(),
        "a ping queues no notice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_replaces_one_sources_registration_while_webhooks_keep_coming() {
    let rig = Arc::new(deployment_with("first-rotate", false).await);
    let d = deployment(&rig);
    let ops = ops(&rig);
    ops.setup(&d, None, false).await.expect("setup");
    past_reload_interval().await;
    let old_sandbox = rig.canopy.webhooks(SANDBOX)[0].clone();
    let production = rig.canopy.webhooks(PRODUCTION)[0].clone();

    // As Canopy does: every event goes to every registration of its source, each copy signed
    // with that registration's secret; a refused copy is retried (here at once, Canopy in 60 s).
    let stop = Arc::new(AtomicBool::new(false));
    let deliveries = {
        let (rig, stop) = (rig.clone(), stop.clone());
        tokio::spawn(async move {
            let mut outcomes: Vec<(String, String, usize, Vec<u16>)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for source in [SANDBOX, PRODUCTION] {
                    let (pull_id, bodies) = pull_of(&rig, source, "cust");
                    let body = bodies.last().unwrap().clone();
                    let hooks = rig.canopy.webhooks(source);
                    let mut statuses = Vec::new();
                    for hook in &hooks {
                        let mut status = send(&rig, &hook.signing_secret, &body).await;
                        for _ in 0..3 {
                            if status == 200 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            status = send(&rig, &hook.signing_secret, &body).await;
                        }
                        statuses.push(status);
                    }
                    outcomes.push((source.to_owned(), pull_id, hooks.len(), statuses));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rotated = ops.setup(&d, Some(SANDBOX), true).await.expect("rotate");
    println!(
        "$ canopy-ops setup --source sandbox --rotate\n{}",
        setup_table(&rotated)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = deliveries.await.expect("deliveries");

    // Every event got in, through at least one registration: none lost.
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, _, statuses)| !statuses.contains(&200))
        .collect();
    assert!(
        lost.is_empty(),
        "events refused on every registration: {lost:?}"
    );
    let during_overlap = outcomes
        .iter()
        .filter(|(source, _, hooks, _)| source == SANDBOX && *hooks == 2)
        .count();
    assert!(
        during_overlap > 0,
        "events were sent while both registrations lived"
    );
    let refused_copies: usize = outcomes
        .iter()
        .map(|(_, _, _, s)| s.iter().filter(|s| **s != 200).count())
        .sum();
    println!(
        "{} events during the rotation ({during_overlap} sandbox events to both registrations), {refused_copies} copies refused after retries",
        outcomes.len()
    );
    assert_eq!(refused_copies, 0, "no copy refused, its retries included");
    for (_, pull_id, _, _) in &outcomes {
        assert!(
            rig.env.store.get_pull(pull_id).await.unwrap().is_some(),
            "{pull_id} recorded"
        );
    }

    let sandbox = rig.canopy.webhooks(SANDBOX);
    assert_eq!(sandbox.len(), 1, "the old registration is gone");
    assert_ne!(sandbox[0].webhook_id, old_sandbox.webhook_id);
    // Both secrets stay valid for retries the old registration made, until dropped.
    let stored = secret(&rig, &d.sources[1].webhook_secret_id).await;
    assert!(stores_all(
        Some(&stored),
        &[&sandbox[0].signing_secret, &old_sandbox.signing_secret]
    ));
    ops.drop_previous(&d, Some(SANDBOX))
        .await
        .expect("drop previous");
    let stored = secret(&rig, &d.sources[1].webhook_secret_id).await;
    assert_eq!(stored, sandbox[0].signing_secret, "the new secret alone");
    // The other source was not touched.
    assert_eq!(rig.canopy.webhooks(PRODUCTION), vec![production.clone()]);
    assert_eq!(
        secret(&rig, &d.sources[0].webhook_secret_id).await,
        production.signing_secret
    );
    assert!(rig.canopy.requests().iter().all(|r| r.refused.is_none()));
}

fn verdicts(checks: &[Check]) -> HashMap<String, Verdict> {
    checks
        .iter()
        .map(|c| (c.name.clone(), c.verdict.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn doctor_fails_for_each_problem_and_passes_once_fixed() {
    let rig = deployment_with("first-doctor", false).await;
    let r = &rig.env.resources;
    let sns = aws_sdk_sns::Client::new(&rig.env.aws);
    let topic = sns
        .create_topic()
        .name(format!("{}-alarms", &r.table_name))
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .unwrap()
        .to_owned();
    let mut d = deployment(&rig);
    d.email_from = Some("unverified@canopy-monitor.example".into());
    d.sms_enabled = true;
    d.alarm_topic_arn = Some(topic.clone());
    d.outbound_webhook_url = Some("https://hooks.canopy-monitor.example/reconnect".into());
    d.outbound_webhook_secret_id = Some(r.outbound_webhook_secret_id.clone());
    put_secret(&rig, &r.outbound_webhook_secret_id, "set-me").await;
    let sandbox_api = d.sources[1].api_secret_id.clone();
    put_secret(
        &rig,
        &sandbox_api,
        r#"{"client_id": "set-me", "client_secret": "set-me"}"#,
    )
    .await;
    // A dead-lettered fetch and a business event stuck in the outbox.
    aws_sdk_sqs::Client::new(&rig.env.aws)
        .send_message()
        .queue_url(&r.fetch_dlq_url)
        .message_body("{}")
        .send()
        .await
        .expect("dead letter");
    let ddb = aws_sdk_dynamodb::Client::new(&rig.env.aws);
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    ddb.put_item()
        .table_name(&r.table_name)
        .item("pk", s("PULL#stuck"))
        .item("sk", s("STATE"))
        .item(
            canopy_monitor::adapters::dynamo::outbox::PENDING_ATTR,
            s(&canopy_monitor::adapters::dynamo::outbox::pending_partition("PULL#stuck", "STATE")),
        )
        .item("outbox_at", s("2026-01-01T00:00:00.000Z"))
        .send()
        .await
        .expect("stuck outbox item");
    let ops = ops(&rig);

    let before = ops.doctor(&d).await;
    println!("$ canopy-ops doctor   # before\n{}", checks_table(&before));
    let v = verdicts(&before);
    for failing in [
        "keys (sandbox)",
        "webhook registered (production)",
        "signing secret (production)",
        "SES sender",
        "SMS spend limit",
        "alarm subscription",
        "dead-letter queues",
        "outbox",
        "outbound webhook secret",
    ] {
        assert_eq!(v.get(failing), Some(&Verdict::Fail), "{failing}");
    }
    assert_eq!(v.get("last webhook"), Some(&Verdict::Warn));
    assert_eq!(v.get("keys (production)"), Some(&Verdict::Pass));
    assert_eq!(v.get("notice channels"), Some(&Verdict::Pass));
    let none = Deployment {
        email_from: None,
        sms_enabled: false,
        outbound_webhook_url: None,
        ..d.clone()
    };
    assert_eq!(
        verdicts(&ops.doctor(&none).await).get("notice channels"),
        Some(&Verdict::Fail)
    );
    // Keys that are set but wrong: Canopy refuses them.
    put_secret(
        &rig,
        &sandbox_api,
        r#"{"client_id": "wrong", "client_secret": "wrong"}"#,
    )
    .await;
    assert_eq!(
        verdicts(&ops.doctor(&d).await).get("Canopy accepts the keys (sandbox)"),
        Some(&Verdict::Fail)
    );

    // The fixes, each as the check's line says.
    put_secret(
        &rig,
        &sandbox_api,
        &json!({"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET})
            .to_string(),
    )
    .await;
    ops.setup(&d, None, false).await.expect("setup");
    d.email_from = Some(r.email_from.clone());
    put_secret(
        &rig,
        &r.outbound_webhook_secret_id,
        devkit::resources::LOCAL_OUTBOUND_WEBHOOK_SECRET,
    )
    .await;
    sns.set_sms_attributes()
        .attributes("MonthlySpendLimit", "50")
        .send()
        .await
        .expect("sms limit");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("email")
        .endpoint("oncall@canopy-monitor.example")
        .send()
        .await
        .expect("subscribe");
    aws_sdk_sqs::Client::new(&rig.env.aws)
        .purge_queue()
        .queue_url(&r.fetch_dlq_url)
        .send()
        .await
        .expect("purge");
    ddb.delete_item()
        .table_name(&r.table_name)
        .key("pk", s("PULL#stuck"))
        .key("sk", s("STATE"))
        .send()
        .await
        .expect("unstick");
    past_reload_interval().await;
    let (_, bodies) = pull_of(&rig, PRODUCTION, "cust-p");
    let secret =
        SigningSecrets::from_secret_string(&secret(&rig, &d.sources[0].webhook_secret_id).await)
            .expect("stored secret");
    assert_eq!(
        send(&rig, secret.current(), bodies.last().unwrap()).await,
        200
    );

    let after = ops.doctor(&d).await;
    println!(
        "$ canopy-ops doctor   # after the fixes\n{}",
        checks_table(&after)
    );
    let failing: Vec<&Check> = after
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    assert!(failing.is_empty(), "{}", checks_table(&after));
    assert!(after.len() >= 15, "{}", checks_table(&after));
}
