//! The webhook-intake handler: HTTP in, [`Intake::receive`], HTTP out.
//! Every decision lives in the common crate; this file maps routes and errors to statuses.

use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::adapters::secrets;
use canopy_monitor::adapters::sqs::SqsWorkQueue;
use canopy_monitor::app::intake::{Intake, IntakeError, IntakeOutcome};
use canopy_monitor::app::metrics;
use canopy_monitor::domain::signature::SIGNATURE_HEADER;
use canopy_monitor::ports::queue::WorkQueue;
use canopy_monitor::ports::store::IntakeStore;
use canopy_monitor::ports::ConfigError;
use canopy_monitor::ports::{Clock, PortError, SystemClock};
use canopy_monitor::runtime::config::IntakeEnv;
use canopy_monitor::runtime::responses;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

/// The one route this function serves.
pub const WEBHOOK_PATH: &str = "/webhooks/canopy";

/// Intake wired to AWS.
pub type AwsIntake = Intake<DynamoStore, SqsWorkQueue, SystemClock>;

/// Builds intake from the environment (see docs/configuration.md).
pub async fn intake_from_env(aws: &aws_config::SdkConfig) -> Result<AwsIntake, ConfigError> {
    intake_from(IntakeEnv::from_env()?, aws).await
}

/// Builds intake from explicit settings (the local runner's and the tests' way in).
pub async fn intake_from(
    env: IntakeEnv,
    aws: &aws_config::SdkConfig,
) -> Result<AwsIntake, ConfigError> {
    let keys = secrets::ReloadingSigningKeys::load(
        aws_sdk_secretsmanager::Client::new(aws),
        env.sources,
        env.secrets_reload,
    )
    .await?;
    Ok(Intake::with_keys(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), env.table_name),
        SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(aws),
            env.fetch_queue_url,
            env.notify_queue_url,
        ),
        SystemClock,
        Box::new(keys),
        env.intake,
    ))
}

/// Handles one API Gateway request.
pub async fn handle<S: IntakeStore, Q: WorkQueue, C: Clock>(
    intake: &Intake<S, Q, C>,
    request: Request,
) -> Response<Body> {
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let route = if path.trim_end_matches('/') == WEBHOOK_PATH {
        responses::by_method(request.method(), "POST", [(Method::POST, ())])
    } else {
        Err(responses::NoRoute::NotFound)
    };
    if let Err(why) = route {
        return responses::no_route(&path, &why);
    }
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let started = std::time::Instant::now();
    let result = intake.receive(signature, request.body().as_ref()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok((event, outcome)) => {
            let event_type = event.event_type.to_string();
            metrics::webhook(outcome.as_str(), Some(&event_type), latency_ms);
            tracing::info!(
                event_type = %event_type,
                pull_id = %event.pull_id,
                monitoring_id = event.monitoring_id().unwrap_or("-"),
                dedupe_key = %event.dedupe_key,
                outcome = outcome.as_str(),
                "webhook accepted"
            );
            let mut body = json!({"status": outcome.as_str()});
            if let IntakeOutcome::Accepted { queued } | IntakeOutcome::Stale { queued } = outcome {
                body["queued"] = json!(queued);
            }
            responses::json(StatusCode::OK, &body)
        }
        Err(err) => {
            let (_, code) = status_and_code(&err);
            metrics::webhook(&format!("rejected_{code}"), None, latency_ms);
            error_response(&err)
        }
    }
}

/// The one place intake errors become HTTP statuses and error codes. 4xx tell Canopy (or
/// whoever sent it) the delivery is wrong; 5xx make Canopy retry.
pub fn status_and_code(err: &IntakeError) -> (StatusCode, &'static str) {
    match err {
        IntakeError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        IntakeError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        IntakeError::OtherSource => (StatusCode::UNAUTHORIZED, "other_source"),
        IntakeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
        IntakeError::InFlight => (StatusCode::SERVICE_UNAVAILABLE, "in_flight"),
        IntakeError::TimedOut(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed_out"),
        IntakeError::Storage(PortError::Unavailable { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        IntakeError::Storage(PortError::Misconfigured { .. }) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "misconfigured")
        }
    }
}

/// The answer to a delivery intake did not accept, logged (never with the body).
pub fn error_response(err: &IntakeError) -> Response<Body> {
    let (status, code) = status_and_code(err);
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "webhook not accepted");
    } else {
        tracing::warn!(error = %err, status = status.as_u16(), "webhook refused");
    }
    // Server-side details (table names, AWS messages) stay in the logs.
    let message = if status.is_server_error() {
        match err {
            IntakeError::InFlight | IntakeError::TimedOut(_) => err.to_string(),
            _ => "temporarily unable to record the event; retry later".to_owned(),
        }
    } else {
        err.to_string()
    };
    let mut response = responses::error(status, code, &message, &[]);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        responses::retry_after(&mut response, 5);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_monitor::app::intake::IntakeConfig;
    use canopy_monitor::domain::signature::{sign, SigningSecrets};
    use canopy_monitor::fakes::queue::MemoryQueue;
    use canopy_monitor::fakes::store::MemoryStore;
    use canopy_monitor::ports::FixedClock;
    use serde_json::Value;

    const NOW: i64 = 1_764_115_200;
    const SECRET: &str = "whsec_unit";

    struct Rig {
        intake: Intake<MemoryStore, MemoryQueue, FixedClock>,
        store: MemoryStore,
        queue: MemoryQueue,
    }

    fn rig() -> Rig {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let intake = Intake::new(
            store.clone(),
            queue.clone(),
            FixedClock::at_unix(NOW),
            canopy_monitor::domain::source::Sources::single(
                canopy_monitor::domain::source::Source::primary("team"),
                SigningSecrets::new(vec![SECRET.into()]).unwrap(),
            ),
            IntakeConfig::default(),
        );
        Rig {
            intake,
            store,
            queue,
        }
    }

    fn request(method: &str, path: &str, body: &[u8], signature: Option<String>) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{path}"));
        if let Some(sig) = signature {
            builder = builder.header(SIGNATURE_HEADER, sig);
        }
        builder.body(Body::from(body.to_vec())).unwrap()
    }

    fn signed(body: &[u8]) -> Request {
        request("POST", WEBHOOK_PATH, body, Some(sign(body, SECRET, NOW)))
    }

    async fn call(rig: &Rig, req: Request) -> (StatusCode, Value) {
        let response = handle(&rig.intake, req).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        (response.status(), body)
    }

    const COMPLETE: &[u8] = br#"{"event_type":"COMPLETE","pull_id":"p1","status":"SUCCESS"}"#;

    #[tokio::test]
    async fn accepts_then_dedupes() {
        let rig = rig();
        let (status, body) = call(&rig, signed(COMPLETE)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "accepted", "queued": 1}));
        for _ in 0..3 {
            let (status, body) = call(&rig, signed(COMPLETE)).await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, json!({"status": "duplicate"}))
            );
        }
        assert_eq!(rig.queue.sent().len(), 1);
        assert_eq!(
            rig.store.state().pulls["p1"].status.as_deref(),
            Some("SUCCESS")
        );
    }

    #[tokio::test]
    async fn routes_and_methods() {
        let rig = rig();
        let (status, body) = call(&rig, request("POST", "/elsewhere", COMPLETE, None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        let response = handle(&rig.intake, request("GET", WEBHOOK_PATH, b"", None)).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[lambda_http::http::header::ALLOW], "POST");
        assert!(rig.store.state().events.is_empty());
    }

    #[tokio::test]
    async fn bad_input_is_refused_and_changes_nothing() {
        let rig = rig();
        let cases: Vec<(Request, StatusCode, &str)> = vec![
            (
                request("POST", WEBHOOK_PATH, COMPLETE, None),
                StatusCode::UNAUTHORIZED,
                "missing canopy-signature",
            ),
            (
                request(
                    "POST",
                    WEBHOOK_PATH,
                    COMPLETE,
                    Some(sign(COMPLETE, "other", NOW)),
                ),
                StatusCode::UNAUTHORIZED,
                "no signature matches",
            ),
            (
                request(
                    "POST",
                    WEBHOOK_PATH,
                    COMPLETE,
                    Some(sign(COMPLETE, SECRET, NOW - 301)),
                ),
                StatusCode::UNAUTHORIZED,
                "tolerance",
            ),
            (signed(b"{nope"), StatusCode::BAD_REQUEST, "not valid JSON"),
            (signed(b"[]"), StatusCode::BAD_REQUEST, "JSON object"),
            (
                signed(br#"{"pull_id":"p"}"#),
                StatusCode::BAD_REQUEST,
                "`event_type`",
            ),
            (
                signed(br#"{"event_type":"COMPLETE"}"#),
                StatusCode::BAD_REQUEST,
                "`pull_id`",
            ),
            (
                signed(&vec![b' '; 1024 * 1024 + 1]),
                StatusCode::PAYLOAD_TOO_LARGE,
                "exceeds",
            ),
        ];
        for (req, expected, needle) in cases {
            let (status, body) = call(&rig, req).await;
            assert_eq!(status, expected, "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
        let state = rig.store.state();
        assert!(state.events.is_empty() && state.pulls.is_empty());
        assert!(rig.queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_queue_failure_answers_503_and_the_retry_is_processed() {
        let rig = rig();
        rig.queue.set_failing(true);
        let (status, body) = call(&rig, signed(COMPLETE)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "unavailable");
        assert!(
            rig.store.state().events.is_empty(),
            "the claim was released"
        );
        rig.queue.set_failing(false);
        let (status, body) = call(&rig, signed(COMPLETE)).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("accepted"))
        );
        assert_eq!(rig.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_store_failure_answers_503() {
        let rig = rig();
        rig.store.fail("apply_pull_update");
        let (status, _) = call(&rig, signed(COMPLETE)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(rig.queue.sent().is_empty());
        assert!(rig.store.state().events.is_empty());
    }

    #[tokio::test]
    async fn misconfiguration_is_a_500_without_details() {
        let err = IntakeError::Storage(PortError::misconfigured(
            "dynamodb",
            "ResourceNotFoundException: table secret-name",
        ));
        let response = error_response(&err);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8(response.body().to_vec()).unwrap();
        assert!(!text.contains("secret-name"), "{text}");
    }

    #[tokio::test]
    async fn late_auth_status_is_recorded_but_does_not_overwrite() {
        let rig = rig();
        let auth = |seq: i64, status: &str| {
            format!(
                r#"{{"event_type":"AUTH_STATUS","pull_id":"p9","sequence":{seq},"data":{{"auth_status":"{status}"}}}}"#
            )
        };
        let (_, first) = call(&rig, signed(auth(3, "SUCCESS").as_bytes())).await;
        let (_, late) = call(&rig, signed(auth(2, "IDENTITY_VERIFICATION").as_bytes())).await;
        assert_eq!(first["status"], "accepted");
        assert_eq!(late["status"], "stale");
        let state = rig.store.state();
        assert_eq!(state.pulls["p9"].auth_status.as_deref(), Some("SUCCESS"));
        assert_eq!(state.pulls["p9"].auth_sequence, Some(3));
        assert_eq!(state.events.len(), 2, "both deliveries are recorded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_concurrent_duplicate_waits_then_gives_up_with_503() {
        let rig = rig();
        // Simulate an attempt in flight: claim the event by hand, never complete it.
        let event = canopy_monitor::domain::event::parse_event(COMPLETE).unwrap();
        let claim = canopy_monitor::ports::store::EventClaim {
            source: None,
            dedupe_key: event.dedupe_key.clone(),
            event_type: "COMPLETE".into(),
            pull_id: "p1".into(),
            monitoring_id: None,
            lease_id: "other".into(),
            received_at: "t".into(),
            now: NOW,
            lease_expires_at: NOW + 30,
            expires_at: NOW + 3600,
            body: COMPLETE.to_vec(),
        };
        rig.store.claim_event(&claim).await.unwrap();
        let (status, body) = call(&rig, signed(COMPLETE)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "in_flight");
        assert!(rig.queue.sent().is_empty());
    }
}
