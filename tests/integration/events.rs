//! Every file in events/ is a payload its function accepts: API Gateway v2 events convert to
//! requests with a verifiable body, SQS events carry work messages of the right kind.

use aws_lambda_events::event::sqs::SqsEvent;
use canopy_monitor::domain::work::{parse_message, WorkMessage};
use devkit::events::{event_body, events_dir, read_event, resign, to_lambda_request};

#[test]
fn every_sample_event_is_a_valid_payload() {
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut event = read_event(&path).unwrap();
        if name.starts_with("webhook-") {
            resign(&mut event, devkit::LOCAL_SIGNING_SECRET, 1_764_115_200);
            assert!(
                canopy_monitor::domain::event::parse_event(&event_body(&event)).is_ok(),
                "{name}"
            );
            to_lambda_request(event).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("sqs-") {
            let sqs: SqsEvent =
                serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!sqs.records.is_empty(), "{name}");
            for record in sqs.records {
                let message = parse_message(record.body.as_deref().unwrap()).unwrap();
                if name.starts_with("sqs-fetch") {
                    assert!(matches!(message, WorkMessage::FetchPull(_)), "{name}");
                } else {
                    assert!(matches!(message, WorkMessage::NotifyReconnect(_)), "{name}");
                }
            }
        } else if name.starts_with("api-reconnect-") {
            // Browser requests as API Gateway passes them (JWT authorizer claims).
            let method = event["requestContext"]["http"]["method"]
                .as_str()
                .unwrap()
                .to_owned();
            let path = event["rawPath"].as_str().unwrap().to_owned();
            let request = to_lambda_request(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                reconnect_api::subject(&request, "sub").as_deref(),
                Some("cust-1042")
            );
            let method = lambda_http::http::Method::from_bytes(method.as_bytes()).unwrap();
            assert!(reconnect_api::route(&method, &path).is_ok(), "{name}");
        } else if name.starts_with("api-") {
            // Monitoring API requests as API Gateway passes them (IAM authorizer context).
            let method = event["requestContext"]["http"]["method"]
                .as_str()
                .unwrap()
                .to_owned();
            let path = event["rawPath"].as_str().unwrap().to_owned();
            to_lambda_request(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            let method = lambda_http::http::Method::from_bytes(method.as_bytes()).unwrap();
            assert!(monitoring_api::route(&method, &path).is_ok(), "{name}");
        } else if name.starts_with("stream-") {
            // A DynamoDB stream batch as event-publisher receives it: new images with events
            // waiting in the outbox.
            let batch: aws_lambda_events::event::dynamodb::Event =
                serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!batch.records.is_empty(), "{name}");
            for record in batch.records {
                let image: std::collections::HashMap<_, _> = record.change.new_image.into();
                let pending = canopy_monitor::adapters::dynamo::outbox::pending_from_item(&image)
                    .unwrap_or_else(|| panic!("{name}: no waiting events"));
                for e in &pending.events {
                    let envelope = serde_json::json!({
                        "detail-type": e.detail_type.as_str(), "detail": e.detail
                    });
                    assert_eq!(
                        integration_tests::events_out::schema_errors(&envelope),
                        Vec::<String>::new(),
                        "{name}"
                    );
                }
            }
        } else if name.starts_with("schedule-") {
            // The reminder function ignores the schedule's payload; it must still be an
            // EventBridge event.
            assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
        } else {
            panic!(
                "unexpected sample {name}: name it webhook-*, api-*, sqs-*, stream-* or schedule-*"
            );
        }
        seen += 1;
    }
    assert!(seen >= 10);
}
