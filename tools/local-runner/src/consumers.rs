//! The queue consumers of the local run, and the Canopy they talk to.

use canopy_monitor::domain::retry::RetryPolicy;
use canopy_monitor::domain::source::{KeyType, Source, SourceSpec};
use canopy_monitor::ports::store::ReminderStore;
use canopy_monitor::runtime::config::{CanopyEnv, FetcherEnv};
use canopy_sim::fixtures::{
    refresh_sequence, sample_pull, PullSize, Subject, SANDBOX_TEAM_ID, TEAM_ID,
};
use canopy_sim::{FakeCanopy, SimSource};
use devkit::resources::Resources;
use devkit::sqs_driver::spawn_poller;
use devkit::{LOCAL_SANDBOX_SIGNING_SECRET, LOCAL_SIGNING_SECRET};
use serde_json::{json, Value};
use std::time::Duration;

/// Quick retries locally, so a misbehaving fake Canopy is seen recovering.
/// The monitoring refresh that needs the consumer in the demo; once they reconnect, Canopy
/// completes this same pull.
const RECONNECT_PULL_ID: &str = "c4d8e2a1-6b3f-4f7e-9a2d-5e8c1b0f3a77";

const LOCAL_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_secs(2),
    cap: Duration::from_secs(30),
};

/// One source of the local run: who it is, its keys and its webhook signing secret.
pub struct TargetSource {
    pub source: Source,
    client_id: String,
    client_secret: String,
    pub signing_secret: String,
}

impl TargetSource {
    /// The value of its API secret.
    pub fn credentials_json(&self) -> Value {
        json!({"client_id": self.client_id, "client_secret": self.client_secret})
    }
}

/// The Canopy the local run uses: the bundled fake, serving a production and a sandbox source
/// (as one deployment does with `AdditionalSources`), or a real team from the environment.
pub struct CanopyTarget {
    pub base_url: String,
    /// The primary first.
    pub sources: Vec<TargetSource>,
    pub fake: Option<FakeCanopy>,
}

impl CanopyTarget {
    pub async fn from_env_or_fake() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(client_id), Some(client_secret), Some(team_id)) = (
            var("CANOPY_CLIENT_ID"),
            var("CANOPY_CLIENT_SECRET"),
            var("CANOPY_TEAM_ID"),
        ) {
            let base_url = var("CANOPY_BASE_URL")
                .unwrap_or_else(|| canopy_monitor::ports::canopy::DEFAULT_BASE_URL.to_owned());
            let key_type: KeyType = var("CANOPY_KEY_TYPE")
                .unwrap_or_else(|| "sandbox".to_owned())
                .parse()
                .map_err(|e| format!("CANOPY_KEY_TYPE: {e}"))?;
            tracing::info!(%base_url, %team_id, %key_type, "using a real Canopy team");
            let source =
                Source::new(key_type.as_str(), &team_id, key_type).map_err(|e| e.to_string())?;
            return Ok(Self {
                base_url,
                sources: vec![TargetSource {
                    source,
                    client_id,
                    client_secret,
                    signing_secret: var("CANOPY_WEBHOOK_SECRET")
                        .unwrap_or_else(|| LOCAL_SIGNING_SECRET.to_owned()),
                }],
                fake: None,
            });
        }
        let port: u16 = var("CANOPY_SIM_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let fake = FakeCanopy::start_with_sources(
            ([127, 0, 0, 1], port).into(),
            vec![
                SimSource::production(TEAM_ID),
                SimSource::sandbox(SANDBOX_TEAM_ID),
            ],
        )
        .await
        .map_err(|e| format!("cannot start the fake Canopy: {e}"))?;
        tracing::info!(base_url = %fake.base_url(), "using the bundled fake Canopy: a production and a sandbox source");
        let target = |sim: &SimSource, key_type, signing_secret: &str| TargetSource {
            source: Source {
                name: sim.name.clone(),
                team_id: sim.team_id.clone(),
                key_type,
            },
            client_id: sim.client_id.clone(),
            client_secret: sim.client_secret.clone(),
            signing_secret: signing_secret.to_owned(),
        };
        let sims = fake.sources();
        let sources = vec![
            target(&sims[0], KeyType::Production, LOCAL_SIGNING_SECRET),
            target(&sims[1], KeyType::Sandbox, LOCAL_SANDBOX_SIGNING_SECRET),
        ];
        Ok(Self {
            base_url: fake.base_url(),
            sources,
            fake: Some(fake),
        })
    }

    pub fn primary(&self) -> &TargetSource {
        &self.sources[0]
    }

    /// Each source with its secret of `role`, as a deployment names them.
    pub fn specs(&self, resources: &Resources, role: &str) -> Vec<SourceSpec> {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, t)| SourceSpec {
                source: t.source.clone(),
                secret_id: match (i, role) {
                    (0, "api") => resources.canopy_api_secret_id.clone(),
                    (0, _) => resources.webhook_secret_id.clone(),
                    _ => SourceSpec::additional_secret_name(
                        &resources.source_secret_prefix,
                        &t.source.name,
                        role,
                    ),
                },
            })
            .collect()
    }

    /// Creates the additional sources' secrets (the primary's are the stack's own).
    pub async fn provision_sources(
        &self,
        aws: &aws_config::SdkConfig,
        resources: &Resources,
    ) -> Result<(), String> {
        for t in &self.sources[1..] {
            devkit::resources::provision_source(
                aws,
                resources,
                &t.source.name,
                &t.credentials_json(),
                &t.signing_secret,
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// How the queue functions reach this Canopy.
    pub fn env(&self, resources: &Resources) -> CanopyEnv {
        CanopyEnv {
            base_url: self.base_url.clone(),
            sources: self.specs(resources, "api"),
            timeout: Duration::from_secs(10),
        }
    }
}

/// With the fake Canopy's two sources: a sandbox pull completes (its webhooks signed with the
/// sandbox registration's secret, its team in the body); intake records it as the sandbox's
/// and the fetcher fetches it with the sandbox keys, as the fake's request log shows.
pub async fn demo_sources(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
    url: &str,
) -> Result<(), String> {
    let (Some(fake), Some(sandbox)) = (&canopy.fake, canopy.sources.get(1)) else {
        return Ok(());
    };
    let pull_id = "3e9b7c2d-8f41-4a6e-b5d0-7c1a9e2f4b63";
    let pull = sample_pull(pull_id, PullSize::default());
    fake.add_pull_to(&sandbox.source.name, pull.clone());
    let subject = Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: None,
        initial_pull_id: None,
        meta_data: json!({"user_id": "crm-2001"}),
    };
    let mut complete = refresh_sequence(&subject, &pull)
        .pop()
        .ok_or("no COMPLETE in the refresh")?;
    complete["team_id"] = json!(sandbox.source.team_id);
    println!(
        "\n== demo: sources: the sandbox team's COMPLETE for pull {pull_id}, signed with the sandbox secret"
    );
    for (status, text) in canopy_sim::send_webhooks(
        url,
        &sandbox.signing_secret,
        std::slice::from_ref(&complete),
    )
    .await?
    {
        println!("   COMPLETE: {status} {text}");
    }
    let mut forged = complete.clone();
    forged["pull_id"] = json!("9a1c5e7b-2d4f-4b8a-9c6e-1f3a5b7d9e02");
    for (status, text) in canopy_sim::send_webhooks(
        url,
        &canopy.primary().signing_secret,
        std::slice::from_ref(&forged),
    )
    .await?
    {
        println!("   the same team_id signed with the production secret: {status} {text}");
    }
    let store = canopy_monitor::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        &resources.table_name,
    );
    for _ in 0..100 {
        if store
            .get_pull_data(pull_id)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            let record = store.get_pull(pull_id).await.map_err(|e| e.to_string())?;
            let keys: Vec<String> = fake
                .requests()
                .iter()
                .filter(|r| r.path.ends_with(&format!("/pulls/{pull_id}")))
                .map(|r| {
                    format!(
                        "{} (refused: {})",
                        r.client_id.as_deref().unwrap_or("-"),
                        r.refused.as_deref().unwrap_or("no")
                    )
                })
                .collect();
            println!(
                "   pull {pull_id} recorded as source {:?} and fetched with client id {}",
                record.and_then(|p| p.source).unwrap_or_default(),
                keys.join(", ")
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("sandbox pull {pull_id} was not stored within 10 s"))
}

/// Starts polling the fetch queue into pull-fetcher.
pub async fn start_fetcher(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
) -> Result<(), String> {
    let env = FetcherEnv {
        table_name: resources.table_name.clone(),
        fetch_queue_url: resources.fetch_queue_url.clone(),
        canopy: canopy.env(resources),
        retry: LOCAL_RETRY,
        pull_data_retention: None,
        fetcher: Default::default(),
    };
    let consumer = std::sync::Arc::new(
        pull_fetcher::fetcher_from(env, aws)
            .await
            .map_err(|e| e.to_string())?,
    );
    spawn_poller(
        aws_sdk_sqs::Client::new(aws),
        resources.fetch_queue_url.clone(),
        move |batch| {
            let consumer = consumer.clone();
            async move {
                consumer
                    .handle(batch, canopy_monitor::app::budget::Deadline::NONE)
                    .await
            }
        },
    );
    Ok(())
}

/// Publishes the outbox: the table's stream does it in AWS, and moto does not run stream
/// triggers, so locally the publisher sweeps every second with no grace period.
pub fn start_publisher(aws: &aws_config::SdkConfig, resources: &Resources) {
    let publisher = event_publisher::publisher_from(
        canopy_monitor::runtime::config::PublisherEnv {
            table_name: resources.table_name.clone(),
            event_bus_name: resources.event_bus_name.clone(),
            outbox: canopy_monitor::app::outbox::OutboxConfig {
                grace: Duration::ZERO,
                ..Default::default()
            },
        },
        aws,
    );
    tokio::spawn(async move {
        loop {
            match publisher
                .sweep(canopy_monitor::app::budget::Deadline::NONE)
                .await
            {
                Ok(report) if report.events.published > 0 || report.events.left > 0 => {
                    tracing::info!(
                        published = report.events.published,
                        left = report.events.left,
                        "event-publisher: outbox swept"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event-publisher: sweep failed"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// With the fake Canopy: the consumer has reconnected, so Canopy completes the pull that
/// needed the reconnect and sends its webhooks as it would (a redelivered COMPLETE included);
/// then waits until the pull's data is stored. The COMPLETE closes the reconnect episode.
pub async fn demo_refresh(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
    url: &str,
) -> Result<(), String> {
    let Some(fake) = &canopy.fake else {
        println!(
            "   (a real Canopy is configured: trigger a refresh in your sandbox to see a fetch)"
        );
        return Ok(());
    };
    let pull_id = RECONNECT_PULL_ID;
    let pull = sample_pull(pull_id, PullSize::default());
    fake.add_pull(pull.clone());
    let subject = Subject {
        pull_id: pull_id.to_owned(),
        monitoring_id: Some("b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c".to_owned()),
        initial_pull_id: Some("59ced597-b48f-49e3-9756-799e4c6f79a0".to_owned()),
        meta_data: json!({"user_id": "crm-1042", "email": "clark.kent@example.com"}),
    };
    let mut bodies = refresh_sequence(&subject, &pull);
    bodies.push(bodies[bodies.len() - 1].clone());
    println!("\n== demo: the consumer reconnected; the fake Canopy completes pull {pull_id}");
    let answers = canopy_sim::send_webhooks(url, LOCAL_SIGNING_SECRET, &bodies).await?;
    for (body, (status, text)) in bodies.iter().zip(answers) {
        println!(
            "   {}: {status} {text}",
            body["event_type"].as_str().unwrap_or_default()
        );
    }
    let store = canopy_monitor::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        &resources.table_name,
    );
    for _ in 0..100 {
        if let Some(stored) = store
            .get_pull_data(pull_id)
            .await
            .map_err(|e| e.to_string())?
        {
            let s = &stored.summary;
            println!(
                "   pull {pull_id} stored: carrier={} policies={} drivers={} documents={} claims={} ({} bytes of JSON)",
                s.insurance_provider_name.as_deref().unwrap_or("-"),
                s.policies.len(),
                s.drivers,
                s.documents,
                s.claims,
                stored.pull.to_string().len()
            );
            println!(
                "   the fake Canopy served {} GET pull for it",
                fake.count("GET", &format!("/pulls/{pull_id}"))
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("pull {pull_id} was not stored within 10 s"))
}

/// Starts the local receiver of the outbound webhook and polls the notify queue into
/// reconnect-notifier (email and SMS go to the emulator).
pub async fn start_notifier(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    canopy: &CanopyTarget,
) -> Result<devkit::receiver::WebhookReceiver, String> {
    let receiver =
        devkit::receiver::WebhookReceiver::start(devkit::resources::LOCAL_OUTBOUND_WEBHOOK_SECRET)
            .await
            .map_err(|e| format!("cannot start the webhook receiver: {e}"))?;
    let env = canopy_monitor::runtime::config::NotifierEnv {
        table_name: resources.table_name.clone(),
        notify_queue_url: resources.notify_queue_url.clone(),
        canopy: canopy.env(resources),
        retry: LOCAL_RETRY,
        email_from: Some(resources.email_from.clone()),
        sms_enabled: true,
        webhook_url: Some(receiver.url.clone()),
        webhook_secret_id: Some(resources.outbound_webhook_secret_id.clone()),
        notifier: canopy_monitor::app::notifier::NotifierConfig::default(),
    };
    let consumer = std::sync::Arc::new(
        reconnect_notifier::notifier_from(env, aws)
            .await
            .map_err(|e| e.to_string())?,
    );
    spawn_poller(
        aws_sdk_sqs::Client::new(aws),
        resources.notify_queue_url.clone(),
        move |batch| {
            let consumer = consumer.clone();
            async move {
                consumer
                    .handle(batch, canopy_monitor::app::budget::Deadline::NONE)
                    .await
            }
        },
    );
    Ok(receiver)
}

/// Hides the token in a reconnect link or in text holding one.
pub fn redact_links(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .map(|word| match word.find("://") {
            Some(_) if word.contains('?') => {
                let (head, _) = word.split_at(word.find('?').unwrap_or(word.len()));
                let tail: String = word
                    .chars()
                    .rev()
                    .take_while(|c| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
                    .collect();
                format!(
                    "{head}?<redacted>{}",
                    tail.chars().rev().collect::<String>()
                )
            }
            _ => word.to_owned(),
        })
        .collect()
}

/// The reconnect story: a MONITORING_RECONNECT, the notices on every channel, then a
/// successful refresh that closes the episode.
pub async fn demo_reconnect(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    receiver: &devkit::receiver::WebhookReceiver,
    url: &str,
    endpoint: &str,
) -> Result<(), String> {
    let monitoring_id = "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c";
    let subject = Subject {
        pull_id: RECONNECT_PULL_ID.to_owned(),
        monitoring_id: Some(monitoring_id.to_owned()),
        initial_pull_id: Some("59ced597-b48f-49e3-9756-799e4c6f79a0".to_owned()),
        meta_data: json!({"user_id": "crm-1042", "email": "clark.kent@example.com", "phone": "8885550000", "first_name": "Clark"}),
    };
    let body = canopy_sim::fixtures::reconnect_webhook(
        &subject,
        "https://app.usecanopy.com/c/demo/reconnect?reconnectToken=rt_webhook_1",
        "rt_webhook_1",
    );
    println!(
        "\n== demo: the fake Canopy sends MONITORING_RECONNECT for monitoring {monitoring_id}"
    );
    for (status, text) in
        canopy_sim::send_webhooks(url, LOCAL_SIGNING_SECRET, &[body.clone(), body]).await?
    {
        println!("   MONITORING_RECONNECT: {status} {text}");
    }
    let started = tokio::time::Instant::now();
    while receiver.received().is_empty() && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (emails, sms) = devkit::receiver::moto_sent(endpoint).await?;
    for (to, subject, body) in emails {
        println!(
            "   email to {to} (captured by the emulator): {subject:?}\n      {}",
            redact_links(&body).replace('\n', "\n      ")
        );
    }
    for (to, message) in sms {
        println!(
            "   SMS to {to} (captured by the emulator): {}",
            redact_links(&message)
        );
    }
    for (id, payload) in receiver.received() {
        let data = &payload["data"];
        println!(
            "   outbound webhook {id} (signature verified): monitoring={} notice={} link={}",
            data["monitoring_id"],
            data["notice"],
            redact_links(data["reconnect_link"].as_str().unwrap_or_default())
        );
    }
    let store = canopy_monitor::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        &resources.table_name,
    );
    let open = store
        .open_episode_start(monitoring_id)
        .await
        .map_err(|e| e.to_string())?;
    println!("   episode open since {}", open.as_deref().unwrap_or("-"));
    Ok(())
}
