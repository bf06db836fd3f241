//! Sandbox and production in one deployment: two sources, each with its own keys and signing
//! secret (the primary's in the stack's secrets, the sandbox's under the additional sources'
//! prefix), every function built from them as in AWS (secrets read from Secrets Manager).
//! The fake Canopy refuses a call made with the other source's keys
//! (`400 INCORRECT_API_KEY_TYPE`), and its request log says which keys every call used.

use canopy_monitor::app::monitoring_api::ApiConfig;
use canopy_monitor::app::notifier::NotifierConfig;
use canopy_monitor::domain::retry::RetryPolicy;
use canopy_monitor::domain::source::{KeyType, Source, SourceSpec};
use canopy_monitor::runtime::config::{
    ApiEnv, CanopyEnv, FetcherEnv, IntakeEnv, NotifierEnv, ReconnectEnv,
};
use canopy_sim::fixtures::{
    refresh_sequence, sample_pull, PullSize, Subject, SANDBOX_TEAM_ID, TEAM_ID,
};
use canopy_sim::{FakeCanopy, SimSource, CLIENT_ID, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET};
use devkit::{LOCAL_SANDBOX_SIGNING_SECRET, LOCAL_SIGNING_SECRET};
use integration_tests::monitoring::{call as api_call, TestApi};
use integration_tests::reconnect::{call as reconnect_call, test_config, TestReconnectApi};
use integration_tests::{attr, deliver_to, now, TestEnv, TestIntake};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

pub(crate) const PRODUCTION: &str = "production";
pub(crate) const SANDBOX: &str = "sandbox";
const OWNER_P: &str = "cust-prod";
const OWNER_S: &str = "cust-sandbox";

/// The two sources, with the secret of `role` (`api` or `webhook`) of each.
fn specs(env: &TestEnv, role: &str) -> Vec<SourceSpec> {
    let primary_secret = match role {
        "api" => env.resources.canopy_api_secret_id.clone(),
        _ => env.resources.webhook_secret_id.clone(),
    };
    vec![
        SourceSpec {
            source: Source::new(PRODUCTION, TEAM_ID, KeyType::Production).unwrap(),
            secret_id: primary_secret,
        },
        SourceSpec {
            source: Source::new(SANDBOX, SANDBOX_TEAM_ID, KeyType::Sandbox).unwrap(),
            secret_id: SourceSpec::additional_secret_name(
                &env.resources.source_secret_prefix,
                SANDBOX,
                role,
            ),
        },
    ]
}

fn canopy_env(env: &TestEnv, canopy: &FakeCanopy) -> CanopyEnv {
    CanopyEnv {
        base_url: canopy.base_url(),
        sources: specs(env, "api"),
        timeout: Duration::from_secs(5),
    }
}

const NO_BACKOFF: RetryPolicy = RetryPolicy {
    base: Duration::ZERO,
    cap: Duration::ZERO,
};

pub(crate) struct Deployment {
    pub(crate) env: TestEnv,
    pub(crate) canopy: FakeCanopy,
    pub(crate) intake: std::sync::Arc<TestIntake>,
    pub(crate) url: String,
    pub(crate) fetcher: pull_fetcher::AwsFetchConsumer,
    pub(crate) notifier: reconnect_notifier::AwsNotifyConsumer,
    pub(crate) api: TestApi,
    pub(crate) reconnect: TestReconnectApi,
}

/// A two-source deployment over a test's own resources, each function built from the
/// sources' secrets as in AWS; intake served over HTTP for the fake's webhooks.
async fn deployment(name: &str) -> Deployment {
    deployment_with(name, true).await
}

/// [`deployment`]; with `registered`, each source's webhook is registered with the fake as
/// `canopy-ops setup` would leave it (else none is: the first deploy).
pub(crate) async fn deployment_with(name: &str, registered: bool) -> Deployment {
    let env = TestEnv::new(name).await;
    devkit::resources::provision_source(
        &env.aws,
        &env.resources,
        SANDBOX,
        &json!({"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}),
        LOCAL_SANDBOX_SIGNING_SECRET,
    )
    .await
    .expect("sandbox secrets");
    let canopy = FakeCanopy::start_with_sources(
        ([127, 0, 0, 1], 0).into(),
        vec![
            SimSource::production(TEAM_ID),
            SimSource::sandbox(SANDBOX_TEAM_ID),
        ],
    )
    .await
    .expect("fake Canopy");
    let r = &env.resources;
    let intake = std::sync::Arc::new(
        webhook_intake::intake_from(
            IntakeEnv {
                table_name: r.table_name.clone(),
                fetch_queue_url: r.fetch_queue_url.clone(),
                notify_queue_url: r.notify_queue_url.clone(),
                sources: specs(&env, "webhook"),
                secrets_reload: Duration::from_secs(1),
                intake: integration_tests::test_intake_config(),
            },
            &env.aws,
        )
        .await
        .expect("intake"),
    );
    let url = integration_tests::reconnect::serve(intake.clone()).await;
    if registered {
        canopy.set_webhook_for(PRODUCTION, &url, LOCAL_SIGNING_SECRET);
        canopy.set_webhook_for(SANDBOX, &url, LOCAL_SANDBOX_SIGNING_SECRET);
    }
    let fetcher = pull_fetcher::fetcher_from(
        FetcherEnv {
            table_name: r.table_name.clone(),
            fetch_queue_url: r.fetch_queue_url.clone(),
            canopy: canopy_env(&env, &canopy),
            retry: NO_BACKOFF,
            pull_data_retention: None,
            fetcher: Default::default(),
        },
        &env.aws,
    )
    .await
    .expect("fetcher");
    let notifier = reconnect_notifier::notifier_from(
        NotifierEnv {
            table_name: r.table_name.clone(),
            notify_queue_url: r.notify_queue_url.clone(),
            canopy: canopy_env(&env, &canopy),
            retry: NO_BACKOFF,
            email_from: Some(r.email_from.clone()),
            sms_enabled: false,
            webhook_url: None,
            webhook_secret_id: None,
            notifier: NotifierConfig {
                token_retry_pause: Duration::from_millis(10),
                ..NotifierConfig::default()
            },
        },
        &env.aws,
    )
    .await
    .expect("notifier");
    let api = monitoring_api::api_from(
        ApiEnv {
            table_name: r.table_name.clone(),
            fetch_queue_url: r.fetch_queue_url.clone(),
            notify_queue_url: r.notify_queue_url.clone(),
            canopy: canopy_env(&env, &canopy),
            api: ApiConfig::default(),
        },
        &env.aws,
    )
    .await
    .expect("monitoring api");
    let reconnect = reconnect_api::api_from(
        ReconnectEnv {
            table_name: r.table_name.clone(),
            canopy: canopy_env(&env, &canopy),
            subject_claim: "sub".to_owned(),
            reconnect: test_config(),
        },
        &env.aws,
    )
    .await
    .expect("reconnect api");
    Deployment {
        env,
        canopy,
        intake,
        url,
        fetcher,
        notifier,
        api,
        reconnect,
    }
}

/// A pull of `owner` in source `source`, its refresh webhooks as that source's Canopy sends
/// them (its team in the body).
pub(crate) fn pull_of(d: &Deployment, source: &str, owner: &str) -> (String, Vec<Value>) {
    let pull_id = uuid::Uuid::new_v4().to_string();
    let mut pull = sample_pull(&pull_id, PullSize::default());
    pull["meta_data"] = json!({"customer_id": owner, "email": format!("{owner}@example.com")});
    d.canopy.add_pull_to(source, pull.clone());
    let subject = Subject {
        pull_id: pull_id.clone(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: pull["meta_data"].clone(),
    };
    let team = if source == SANDBOX {
        SANDBOX_TEAM_ID
    } else {
        TEAM_ID
    };
    let bodies = refresh_sequence(&subject, &pull)
        .into_iter()
        .map(|mut b| {
            b["team_id"] = json!(team);
            b
        })
        .collect();
    (pull_id, bodies)
}

pub(crate) async fn send(d: &Deployment, secret: &str, body: &Value) -> u16 {
    canopy_sim::send_webhooks(&d.url, secret, std::slice::from_ref(body))
        .await
        .expect("delivery")[0]
        .0
}

async fn drain_fetches(d: &Deployment) {
    integration_tests::fetching::drain_into(&d.env, &d.fetcher).await;
}

/// Waits until monitoring `id`'s reconnect episode is open.
async fn until_episode_open(d: &Deployment, id: &str) {
    for _ in 0..200 {
        let m = d.env.store.get_monitoring(id).await.unwrap();
        if m.is_some_and(|m| m.reconnect_needed_since.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reconnect episode of {id} never opened");
}

async fn enable(d: &Deployment, pull_id: &str) -> (String, Value) {
    let reply = api_call(
        &d.api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_id, "interval": "P1M"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let id = reply.json["monitoring"]["monitoring_id"]
        .as_str()
        .expect("monitoring id")
        .to_owned();
    (id, reply.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_delivery_is_handled_with_the_keys_of_its_own_source() {
    let d = deployment("sources").await;

    // 1. Interleaved COMPLETEs of both sources, each signed with its own source's secret.
    let (pull_s, bodies_s) = pull_of(&d, SANDBOX, OWNER_S);
    let (pull_p, bodies_p) = pull_of(&d, PRODUCTION, OWNER_P);
    let complete_s = bodies_s.last().unwrap().clone();
    let complete_p = bodies_p.last().unwrap().clone();
    assert_eq!(
        send(&d, LOCAL_SANDBOX_SIGNING_SECRET, &complete_s).await,
        200
    );
    assert_eq!(send(&d, LOCAL_SIGNING_SECRET, &complete_p).await, 200);
    drain_fetches(&d).await;
    for (pull_id, source) in [(&pull_s, SANDBOX), (&pull_p, PRODUCTION)] {
        let stored = d.env.store.get_pull(pull_id).await.unwrap().expect("pull");
        assert_eq!(stored.source.as_deref(), Some(source), "{pull_id}");
        assert!(
            d.env.store.get_pull_data(pull_id).await.unwrap().is_some(),
            "{source} pull fetched and stored"
        );
    }

    // 2. Monitoring enabled through the API: each with its pull's own source.
    let (monitoring_s, enabled_s) = enable(&d, &pull_s).await;
    let (monitoring_p, _) = enable(&d, &pull_p).await;
    assert_eq!(enabled_s["monitoring"]["source"], SANDBOX);

    // 3. Interleaved MONITORING_RECONNECTs (the fake sends them signed with each source's
    //    secret); the notifier asks each source's Canopy for a fresh link with its keys.
    let reconnect_pull_s = d.canopy.need_reconnect(&monitoring_s).expect("sandbox");
    d.canopy.need_reconnect(&monitoring_p).expect("production");
    until_episode_open(&d, &monitoring_s).await;
    until_episode_open(&d, &monitoring_p).await;
    integration_tests::notifying::drain_into(&d.env, &d.notifier).await;
    // The operator sees each source's open episodes apart.
    let ops = canopy_ops::Ops::new(
        &d.env.aws,
        canopy_ops::Stack::local("sources", &d.env.resources),
    );
    let status = ops.status().await.expect("status");
    println!("{}", canopy_ops::status_table(&status));
    let open: Vec<(String, usize)> = status
        .sources
        .iter()
        .map(|s| (s.source.clone(), s.open_reconnects))
        .collect();
    assert_eq!(
        open,
        vec![(PRODUCTION.to_owned(), 1), (SANDBOX.to_owned(), 1)]
    );
    for id in [&monitoring_s, &monitoring_p] {
        assert_eq!(
            d.canopy
                .count("GET", &format!("/monitorings/{id}/reconnectToken")),
            1,
            "a fresh link for {id}"
        );
    }

    // 4. The sandbox consumer reconnects in the app: the exchange uses the sandbox keys, the
    //    fake's AUTH_STATUS webhooks (signed with the sandbox secret) move the session on.
    let (status, session, _) = reconnect_call(
        &d.reconnect,
        OWNER_S,
        "POST",
        "/v1/reconnect/sessions",
        Some(json!({"monitoring_id": monitoring_s})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["pull_id"], reconnect_pull_s.as_str());
    let session_id = session["session_id"].as_str().unwrap().to_owned();
    let (status, body, _) = reconnect_call(
        &d.reconnect,
        OWNER_S,
        "POST",
        &format!("/v1/reconnect/sessions/{session_id}/connect"),
        Some(json!({"insurerName": "statefarm", "insurerUsername": "user_good", "insurerPassword": "pass_good"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut step = Value::Null;
    let mut after = 0;
    for _ in 0..20 {
        let (status, body, _) = reconnect_call(
            &d.reconnect,
            OWNER_S,
            "GET",
            &format!("/v1/reconnect/sessions/{session_id}?after={after}&wait=2"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        step = body["step"].clone();
        if step["step"] == "data_ready" {
            break;
        }
        after = step["sequence"].as_i64().unwrap_or(after);
    }
    assert_eq!(step["step"], "data_ready", "{step}");
    let reconnected = d
        .env
        .store
        .get_pull(&reconnect_pull_s)
        .await
        .unwrap()
        .expect("pull");
    assert_eq!(reconnected.source.as_deref(), Some(SANDBOX));
    assert!(reconnected.auth_sequence.is_some(), "AUTH_STATUS recorded");
    drain_fetches(&d).await;
    assert!(
        d.env
            .store
            .get_pull_data(&reconnect_pull_s)
            .await
            .unwrap()
            .is_some(),
        "the reconnected sandbox pull fetched with the sandbox keys"
    );

    // 5. A refresh through the API, and a stop: each with the monitoring's own keys.
    for (id, source) in [(&monitoring_p, PRODUCTION), (&monitoring_s, SANDBOX)] {
        let reply = api_call(
            &d.api,
            "DELETE",
            &format!("/v1/monitorings/{id}"),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{source}: {}", reply.json);
        assert_eq!(reply.json["monitoring"]["source"], source);
    }

    // 6. From the fake's request log: every call made with team keys used the keys of the
    //    source that owns what it asked about, and none was refused.
    let requests = d.canopy.requests();
    let sandbox_ids: HashSet<&str> = [pull_s.as_str(), &monitoring_s, &reconnect_pull_s]
        .into_iter()
        .collect();
    let production_ids: HashSet<&str> = [pull_p.as_str(), &monitoring_p].into_iter().collect();
    let mut by_source = (0, 0);
    for r in &requests {
        assert_eq!(r.refused, None, "{} {} was refused", r.method, r.path);
        let Some(client_id) = r.client_id.as_deref() else {
            continue; // a whitelabel step, made with the pull's JWT
        };
        let about = |ids: &HashSet<&str>| ids.iter().any(|id| r.path.contains(id));
        if about(&sandbox_ids) {
            assert_eq!(client_id, SANDBOX_CLIENT_ID, "{} {}", r.method, r.path);
            by_source.0 += 1;
        } else if about(&production_ids) {
            assert_eq!(client_id, CLIENT_ID, "{} {}", r.method, r.path);
            by_source.1 += 1;
        }
    }
    // GET pull x2, reconnectToken x2 (one for the session), DELETE, and the sandbox exchange.
    assert!(by_source.0 >= 4, "sandbox calls seen: {}", by_source.0);
    assert!(by_source.1 >= 3, "production calls seen: {}", by_source.1);
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/widget/pull/reconnectToken"
                && r.client_id.as_deref() == Some(SANDBOX_CLIENT_ID)),
        "the sandbox reconnect token was exchanged with the sandbox keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_signed_by_one_source_naming_another_team_is_refused() {
    let d = deployment("sources-mismatch").await;
    let (pull_s, bodies_s) = pull_of(&d, SANDBOX, OWNER_S);
    let complete_s = bodies_s.last().unwrap().clone();
    // Signed with the production secret, claiming the sandbox team.
    let (status, body) = deliver_to(
        &d.intake,
        devkit::events::webhook_request(
            complete_s.to_string().as_bytes(),
            LOCAL_SIGNING_SECRET,
            now(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_signature");
    // Nothing recorded, nothing queued.
    assert!(d.env.store.get_pull(&pull_s).await.unwrap().is_none());
    assert!(d
        .env
        .drain(&d.env.resources.fetch_queue_url)
        .await
        .is_empty());
    assert!(
        !d.env
            .scan()
            .await
            .iter()
            .any(|i| attr(i, "pull_id") == Some(pull_s.as_str())),
        "no item about the refused delivery"
    );
    // The same body signed with its own source's secret is accepted as the sandbox's.
    assert_eq!(
        send(&d, LOCAL_SANDBOX_SIGNING_SECRET, &complete_s).await,
        200
    );
    let stored = d.env.store.get_pull(&pull_s).await.unwrap().expect("pull");
    assert_eq!(stored.source.as_deref(), Some(SANDBOX));
    let queued = d.env.drain(&d.env.resources.fetch_queue_url).await;
    assert_eq!(queued.len(), 1);
    match &queued[0] {
        canopy_monitor::domain::work::WorkMessage::FetchPull(job) => {
            assert_eq!(job.source.as_deref(), Some(SANDBOX))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enable_names_the_source_of_a_pull_not_yet_seen_and_refuses_an_unknown_one() {
    let d = deployment("sources-enable").await;
    let (pull_s, _) = pull_of(&d, SANDBOX, OWNER_S);
    // Not seen here yet, and two sources: the caller must say which.
    let reply = api_call(
        &d.api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_s, "interval": "P1M"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap_or_default()
            .contains("source"),
        "{}",
        reply.json
    );
    let reply = api_call(
        &d.api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_s, "interval": "P1M", "source": "staging"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
    assert_eq!(reply.json["error"], "unknown_source");
    assert!(reply.json["message"]
        .as_str()
        .unwrap_or_default()
        .contains("staging"));
    assert_eq!(
        d.canopy.count("POST", "/monitorings"),
        0,
        "Canopy not called"
    );
    let reply = api_call(
        &d.api,
        "POST",
        "/v1/monitorings",
        &[],
        Some(&json!({"pull_id": pull_s, "interval": "P1M", "source": SANDBOX})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["monitoring"]["source"], SANDBOX);
    assert!(d.canopy.requests().iter().all(|r| r.refused.is_none()));
    // The pull's own webhooks, signed with the sandbox secret, then apply to it.
    let (_, bodies) = {
        let pull = d.canopy.state().pulls[&pull_s].clone();
        let subject = Subject {
            pull_id: pull_s.clone(),
            monitoring_id: None,
            initial_pull_id: None,
            meta_data: pull["meta_data"].clone(),
        };
        let mut bodies = refresh_sequence(&subject, &pull);
        for b in &mut bodies {
            b["team_id"] = json!(SANDBOX_TEAM_ID);
        }
        ((), bodies)
    };
    assert_eq!(
        send(&d, LOCAL_SANDBOX_SIGNING_SECRET, bodies.last().unwrap()).await,
        200
    );
    let stored = d.env.store.get_pull(&pull_s).await.unwrap().expect("pull");
    assert_eq!(stored.source.as_deref(), Some(SANDBOX));
    assert!(stored.completed_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sources_signing_secret_is_rotated_without_a_redeploy_or_a_refused_delivery() {
    let d = deployment("sources-rotate").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&d.env.aws);
    let sandbox_secret = SourceSpec::additional_secret_name(
        &d.env.resources.source_secret_prefix,
        SANDBOX,
        "webhook",
    );
    let put = |value: String| {
        let secrets = secrets.clone();
        let id = sandbox_secret.clone();
        async move {
            secrets
                .put_secret_value()
                .secret_id(id)
                .secret_string(value)
                .send()
                .await
                .expect("put secret");
        }
    };
    let new_secret = "whsec_sandbox_rotated";
    // The new registration's secret goes in beside the old one; intake has not read it yet.
    put(json!({"current": new_secret, "previous": LOCAL_SANDBOX_SIGNING_SECRET}).to_string()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first delivery signed with the new secret makes intake read the secrets again.
    let (_, bodies) = pull_of(&d, SANDBOX, OWNER_S);
    assert_eq!(send(&d, new_secret, bodies.last().unwrap()).await, 200);
    // The old registration's deliveries still verify, and production's were never touched.
    let (_, bodies) = pull_of(&d, SANDBOX, OWNER_S);
    assert_eq!(
        send(&d, LOCAL_SANDBOX_SIGNING_SECRET, bodies.last().unwrap()).await,
        200
    );
    let (_, bodies) = pull_of(&d, PRODUCTION, OWNER_P);
    assert_eq!(
        send(&d, LOCAL_SIGNING_SECRET, bodies.last().unwrap()).await,
        200
    );
    // The old registration deleted, its secret dropped: once the secrets in hand are old
    // enough to be read again (5 reload intervals), it no longer verifies.
    put(new_secret.to_owned()).await;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (_, bodies) = pull_of(&d, SANDBOX, OWNER_S);
    assert_eq!(
        send(&d, LOCAL_SANDBOX_SIGNING_SECRET, bodies.last().unwrap()).await,
        401
    );
    assert_eq!(send(&d, new_secret, bodies.last().unwrap()).await, 200);
    let (_, bodies) = pull_of(&d, PRODUCTION, OWNER_P);
    assert_eq!(
        send(&d, LOCAL_SIGNING_SECRET, bodies.last().unwrap()).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sources_secret_cannot_take_over_another_sources_pull_or_monitoring() {
    let d = deployment("sources-takeover").await;
    let (pull_p, bodies_p) = pull_of(&d, PRODUCTION, OWNER_P);
    assert_eq!(
        send(&d, LOCAL_SIGNING_SECRET, bodies_p.last().unwrap()).await,
        200
    );
    let (monitoring_p, _) = enable(&d, &pull_p).await;
    let before = d
        .env
        .store
        .get_monitoring(&monitoring_p)
        .await
        .unwrap()
        .unwrap();
    // Signed with the sandbox secret, naming the production monitoring, no team_id: an
    // attacker's link for the production consumer.
    let subject = Subject {
        pull_id: uuid::Uuid::new_v4().to_string(),
        monitoring_id: Some(monitoring_p.clone()),
        initial_pull_id: Some(pull_p.clone()),
        meta_data: json!({"customer_id": "attacker", "email": "victim@example.com"}),
    };
    let mut forged = canopy_sim::fixtures::reconnect_webhook(
        &subject,
        "https://evil.example/reconnect?t=x",
        "rt_evil",
    );
    forged.as_object_mut().unwrap().remove("team_id");
    let (status, body) = deliver_to(
        &d.intake,
        devkit::events::webhook_request(
            forged.to_string().as_bytes(),
            LOCAL_SANDBOX_SIGNING_SECRET,
            now(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "other_source");
    let after = d
        .env
        .store
        .get_monitoring(&monitoring_p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.source.as_deref(), Some(PRODUCTION));
    assert_eq!(after.owner, before.owner);
    assert!(after.reconnect_needed_since.is_none(), "no episode opened");
    assert!(d
        .env
        .drain(&d.env.resources.notify_queue_url)
        .await
        .is_empty());
    // Nor the production pull itself.
    let mut complete = bodies_p.last().unwrap().clone();
    complete.as_object_mut().unwrap().remove("team_id");
    complete["meta_data"] = json!({"customer_id": "attacker"});
    let (status, body) = deliver_to(
        &d.intake,
        devkit::events::webhook_request(
            complete.to_string().as_bytes(),
            LOCAL_SANDBOX_SIGNING_SECRET,
            now() + 1,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let pull = d.env.store.get_pull(&pull_p).await.unwrap().unwrap();
    assert_eq!(pull.source.as_deref(), Some(PRODUCTION));
    assert_eq!(pull.meta_data.unwrap()["customer_id"], OWNER_P);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_whose_secret_cannot_be_read_is_left_out_and_the_others_keep_working() {
    // No sandbox secrets at all: as a stack whose AdditionalSources names a source whose
    // secrets were not created (or were deleted).
    let env = TestEnv::new("sources-missing").await;
    let r = &env.resources;
    let intake = std::sync::Arc::new(
        webhook_intake::intake_from(
            IntakeEnv {
                table_name: r.table_name.clone(),
                fetch_queue_url: r.fetch_queue_url.clone(),
                notify_queue_url: r.notify_queue_url.clone(),
                sources: specs(&env, "webhook"),
                secrets_reload: Duration::from_secs(1),
                intake: integration_tests::test_intake_config(),
            },
            &env.aws,
        )
        .await
        .expect("intake starts without the sandbox's secret"),
    );
    let fetcher = pull_fetcher::fetcher_from(
        FetcherEnv {
            table_name: r.table_name.clone(),
            fetch_queue_url: r.fetch_queue_url.clone(),
            canopy: CanopyEnv {
                base_url: "http://127.0.0.1:9/api/v1.0.0".into(),
                sources: specs(&env, "api"),
                timeout: Duration::from_secs(1),
            },
            retry: NO_BACKOFF,
            pull_data_retention: None,
            fetcher: Default::default(),
        },
        &env.aws,
    )
    .await;
    assert!(fetcher.is_ok(), "the fetcher starts too");
    let body = |team: &str| {
        json!({"event_type": "COMPLETE", "pull_id": uuid::Uuid::new_v4().to_string(),
               "team_id": team, "status": "SUCCESS", "data": {}})
        .to_string()
    };
    let deliver = |raw: String, secret: &'static str| {
        let intake = intake.clone();
        async move {
            deliver_to(
                &intake,
                devkit::events::webhook_request(raw.as_bytes(), secret, now()),
            )
            .await
            .0
        }
    };
    assert_eq!(
        deliver(body(TEAM_ID), LOCAL_SIGNING_SECRET).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(body(SANDBOX_TEAM_ID), LOCAL_SANDBOX_SIGNING_SECRET).await,
        StatusCode::UNAUTHORIZED
    );
    // Once the secrets exist, the source joins at the next read: no redeploy.
    devkit::resources::provision_source(
        &env.aws,
        r,
        SANDBOX,
        &json!({"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}),
        LOCAL_SANDBOX_SIGNING_SECRET,
    )
    .await
    .expect("sandbox secrets");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        deliver(body(SANDBOX_TEAM_ID), LOCAL_SANDBOX_SIGNING_SECRET).await,
        StatusCode::OK
    );
}
