//! Creates, on a local emulator, the resources template.yaml declares: the state table, the
//! work queues with their dead-letter queues, the signing secret and the event bus. Keep the two in step;
//! the integration tests check the names and key schema against template.yaml.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;

/// Receives before a message moves to its dead-letter queue (template.yaml: maxReceiveCount).
pub const MAX_RECEIVE_COUNT: u32 = 8;

/// The names and URLs of one set of resources.
#[derive(Debug, Clone)]
pub struct Resources {
    pub table_name: String,
    pub fetch_queue_url: String,
    pub fetch_dlq_url: String,
    pub notify_queue_url: String,
    pub notify_dlq_url: String,
    pub webhook_secret_id: String,
    pub canopy_api_secret_id: String,
    pub outbound_webhook_secret_id: String,
    /// Where additional sources keep their secrets (`{prefix}{name}/api`, `.../webhook`), as
    /// template.yaml's `SOURCE_SECRET_PREFIX`; see [`provision_source`].
    pub source_secret_prefix: String,
    /// The verified SES sender.
    pub email_from: String,
    /// The custom EventBridge bus business events go to.
    pub event_bus_name: String,
    /// A queue a rule on the bus copies every canopy-monitor event into: what
    /// `canopy-local inspect` and the tests read back.
    pub events_tap_url: String,
}

/// The documented local Standard Webhooks secret of the outbound webhook.
pub const LOCAL_OUTBOUND_WEBHOOK_SECRET: &str = "whsec_Y2Fub3B5LW1vbml0b3ItbG9jYWwtb3V0Ym91bmQ=";
/// The local SES sender.
pub const LOCAL_EMAIL_FROM: &str = "reconnect@canopy-monitor.example";

#[derive(Debug, thiserror::Error)]
#[error("could not create {what}: {detail}")]
pub struct ProvisionError {
    what: String,
    detail: String,
}

fn fail<E: std::error::Error>(what: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let what = what.into();
    move |e| ProvisionError {
        what,
        detail: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

/// The names of one set of resources; the one place they are derived from a prefix.
struct Names {
    table: String,
    fetch_queue: String,
    notify_queue: String,
    webhook_secret: String,
    canopy_api_secret: String,
    outbound_webhook_secret: String,
    source_secret_prefix: String,
    event_bus: String,
    events_tap: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            table: format!("{prefix}-state"),
            fetch_queue: format!("{prefix}-fetch"),
            notify_queue: format!("{prefix}-notify"),
            webhook_secret: format!("{prefix}/canopy-webhook-signing-secret"),
            canopy_api_secret: format!("{prefix}/canopy-api-credentials"),
            outbound_webhook_secret: format!("{prefix}/outbound-webhook-secret"),
            source_secret_prefix: format!("{prefix}/sources/"),
            event_bus: format!("{prefix}-events"),
            events_tap: format!("{prefix}-events-tap"),
        }
    }

    fn resources(
        self,
        fetch: (String, String),
        notify: (String, String),
        events_tap_url: String,
    ) -> Resources {
        Resources {
            table_name: self.table,
            fetch_queue_url: fetch.0,
            fetch_dlq_url: fetch.1,
            notify_queue_url: notify.0,
            notify_dlq_url: notify.1,
            webhook_secret_id: self.webhook_secret,
            canopy_api_secret_id: self.canopy_api_secret,
            outbound_webhook_secret_id: self.outbound_webhook_secret,
            source_secret_prefix: self.source_secret_prefix,
            email_from: LOCAL_EMAIL_FROM.to_owned(),
            event_bus_name: self.event_bus,
            events_tap_url,
        }
    }
}

fn dlq_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

/// Creates everything under names starting with `prefix`; `signing_secret` goes into the secret.
pub async fn provision(
    aws: &aws_config::SdkConfig,
    prefix: &str,
    signing_secret: &str,
    canopy_credentials: &serde_json::Value,
) -> Result<Resources, ProvisionError> {
    let names = Names::new(prefix);
    create_table(&aws_sdk_dynamodb::Client::new(aws), &names.table).await?;
    let sqs = aws_sdk_sqs::Client::new(aws);
    let fetch = create_queue_with_dlq(
        &sqs,
        &names.fetch_queue,
        canopy_monitor::app::budget::FETCHER.visibility_timeout,
    )
    .await?;
    let notify = create_queue_with_dlq(
        &sqs,
        &names.notify_queue,
        canopy_monitor::app::budget::NOTIFIER.visibility_timeout,
    )
    .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (id, value) in [
        (&names.webhook_secret, signing_secret.to_owned()),
        (&names.canopy_api_secret, canopy_credentials.to_string()),
        (
            &names.outbound_webhook_secret,
            LOCAL_OUTBOUND_WEBHOOK_SECRET.to_owned(),
        ),
    ] {
        secrets
            .create_secret()
            .name(id)
            .secret_string(value)
            .send()
            .await
            .map_err(fail(id))?;
    }
    aws_sdk_sesv2::Client::new(aws)
        .create_email_identity()
        .email_identity(LOCAL_EMAIL_FROM)
        .send()
        .await
        .map_err(fail(LOCAL_EMAIL_FROM))?;
    let tap = create_event_bus_with_tap(aws, &names.event_bus, &names.events_tap).await?;
    Ok(names.resources(fetch, notify, tap))
}

/// Creates an additional source's two secrets (its API keys and its webhook signing secret)
/// under [`Resources::source_secret_prefix`], as `canopy-ops setup` does in AWS.
pub async fn provision_source(
    aws: &aws_config::SdkConfig,
    resources: &Resources,
    name: &str,
    credentials: &serde_json::Value,
    signing_secret: &str,
) -> Result<(), ProvisionError> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (role, value) in [
        ("api", credentials.to_string()),
        ("webhook", signing_secret.to_owned()),
    ] {
        let id = canopy_monitor::domain::source::SourceSpec::additional_secret_name(
            &resources.source_secret_prefix,
            name,
            role,
        );
        secrets
            .create_secret()
            .name(&id)
            .secret_string(value)
            .send()
            .await
            .map_err(fail(&id))?;
    }
    Ok(())
}

/// The rule that copies every canopy-monitor event on the bus into the tap queue.
pub const TAP_RULE: &str = "all-canopy-monitor-events";

/// The bus, and a queue that receives a copy of every event on it; returns the queue's URL.
async fn create_event_bus_with_tap(
    aws: &aws_config::SdkConfig,
    bus: &str,
    tap: &str,
) -> Result<String, ProvisionError> {
    let events = aws_sdk_eventbridge::Client::new(aws);
    events
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(fail(bus))?;
    let pattern = serde_json::json!({"source": [canopy_monitor::domain::business_events::SOURCE]});
    route_to_new_queue(aws, bus, TAP_RULE, &pattern, tap).await
}

/// A queue and a rule on `bus` that sends it the events matching `pattern`; returns the
/// queue's URL. The tests use it to check rules the README recommends.
pub async fn route_to_new_queue(
    aws: &aws_config::SdkConfig,
    bus: &str,
    rule: &str,
    pattern: &serde_json::Value,
    queue: &str,
) -> Result<String, ProvisionError> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(fail(queue))?
        .queue_url
        .unwrap_or_default();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(fail(queue))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let events = aws_sdk_eventbridge::Client::new(aws);
    events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(fail(rule))?;
    events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .map_err(fail(rule))?,
        )
        .send()
        .await
        .map_err(fail(rule))?;
    Ok(url)
}

/// The resources an earlier [`provision`] with `prefix` created, queue URLs looked up.
pub async fn existing(
    aws: &aws_config::SdkConfig,
    prefix: &str,
) -> Result<Resources, ProvisionError> {
    let names = Names::new(prefix);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let url = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(fail(&name))
                .map(|o| o.queue_url.unwrap_or_default())
        }
    };
    let fetch = (
        url(names.fetch_queue.clone()).await?,
        url(dlq_name(&names.fetch_queue)).await?,
    );
    let notify = (
        url(names.notify_queue.clone()).await?,
        url(dlq_name(&names.notify_queue)).await?,
    );
    let tap = url(names.events_tap.clone()).await?;
    Ok(names.resources(fetch, notify, tap))
}

/// The state table: `pk`/`sk` strings, on demand, TTL on `expires_at`, the sparse reminder
/// index `gsi1` (`gsi1pk`/`gsi1sk`) and the three monitoring indexes (see
/// `canopy_monitor::adapters::dynamo::monitorings`), as template.yaml declares them.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let index =
        |index: &str, hash: &str, range: &str| -> Result<GlobalSecondaryIndex, ProvisionError> {
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(hash, KeyType::Hash).map_err(fail(name))?)
                .key_schema(key(range, KeyType::Range).map_err(fail(name))?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(fail(name))
        };
    use canopy_monitor::adapters::dynamo::monitorings::{
        OWNER_INDEX, RECONNECT_INDEX, RECONNECT_KEY_ATTR, STATUS_INDEX, STATUS_SHARD_ATTR,
    };
    use canopy_monitor::adapters::dynamo::operations::RECENT_DAY_ATTR;
    use canopy_monitor::adapters::dynamo::outbox::OUTBOX_INDEX;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .global_secondary_indexes(index("gsi1", "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(index(STATUS_INDEX, STATUS_SHARD_ATTR, "monitoring_id")?)
        .global_secondary_indexes(index(OWNER_INDEX, "owner", "monitoring_id")?)
        .global_secondary_indexes(index(
            RECONNECT_INDEX,
            STATUS_SHARD_ATTR,
            RECONNECT_KEY_ATTR,
        )?)
        .global_secondary_indexes(index(OUTBOX_INDEX, "outbox_pending", "outbox_at")?)
        .global_secondary_indexes(recent_index(name)?);
    for a in [
        "pk",
        "sk",
        "gsi1pk",
        "gsi1sk",
        STATUS_SHARD_ATTR,
        "monitoring_id",
        "owner",
        RECONNECT_KEY_ATTR,
        "outbox_pending",
        "outbox_at",
        RECENT_DAY_ATTR,
        "received_at",
    ] {
        request = request.attribute_definitions(attr(a).map_err(fail(name))?);
    }
    let created = request
        .key_schema(key("pk", KeyType::Hash).map_err(fail(name))?)
        .key_schema(key("sk", KeyType::Range).map_err(fail(name))?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        // A retried CreateTable whose first attempt went through: the table is there.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(fail(name)(e)),
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(fail(name))?,
        )
        .send()
        .await
        .map_err(fail(name))?;
    Ok(())
}

/// The operator's `recent` index: deliveries by day, only what `canopy-ops tail` shows.
fn recent_index(table: &str) -> Result<GlobalSecondaryIndex, ProvisionError> {
    use canopy_monitor::adapters::dynamo::operations::{RECENT_DAY_ATTR, RECENT_INDEX};
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(fail(table))
    };
    let mut projection = Projection::builder().projection_type(ProjectionType::Include);
    for attr in [
        "event_type",
        "pull_id",
        "monitoring_id",
        "status",
        "outcome",
    ] {
        projection = projection.non_key_attributes(attr);
    }
    GlobalSecondaryIndex::builder()
        .index_name(RECENT_INDEX)
        .key_schema(key(RECENT_DAY_ATTR, KeyType::Hash)?)
        .key_schema(key("received_at", KeyType::Range)?)
        .projection(projection.build())
        .build()
        .map_err(fail(table))
}

/// A standard queue and its dead-letter queue, as template.yaml makes them; returns
/// (queue URL, DLQ URL).
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: std::time::Duration,
) -> Result<(String, String), ProvisionError> {
    let dlq_name = dlq_name(name);
    let dlq_url = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(fail(&dlq_name))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(fail(&dlq_name))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT});
    let url = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.as_secs().to_string(),
            ),
        ])))
        .send()
        .await
        .map_err(fail(name))?
        .queue_url
        .unwrap_or_default();
    Ok((url, dlq_url))
}
