//! The AWS-limits layer every test client carries (`devkit::aws_limits`), over the wire: each
//! documented limit moto does not enforce is refused with the error AWS returns, parsed by the
//! SDK as the real service error, and a request at (or, where moto is stricter than AWS, just
//! under) the limit still reaches moto and passes. The layer's refusal counter shows that the
//! layer, not moto, refused.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, WriteRequest};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use devkit::aws_limits::{refusal_count, DYNAMODB_ITEM_MAX_BYTES, EXPRESSION_MAX_BYTES};
use integration_tests::TestEnv;

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

/// An item of exactly `size` bytes as DynamoDB counts it: `pk` (2 + 36), `sk` (2 + 1), and
/// `d` (1 + the rest).
fn item_of_size(size: usize) -> std::collections::HashMap<String, AttributeValue> {
    let pk = uuid::Uuid::new_v4().to_string();
    let fixed = 2 + pk.len() + 2 + 1 + 1;
    [
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s("x")),
        ("d".to_owned(), s("x".repeat(size - fixed))),
    ]
    .into()
}

/// Runs `f`, and asserts the layer refused `limit` while it ran (other tests run in parallel:
/// the count only grows).
macro_rules! refused_by_layer {
    ($limit:expr, $call:expr) => {{
        let before = refusal_count($limit);
        let result = $call;
        assert!(
            refusal_count($limit) > before,
            "the layer did not refuse {}",
            $limit
        );
        result
    }};
}

#[tokio::test]
async fn dynamodb_items_over_400_kb_are_refused_as_dynamodb_refuses_them() {
    let env = TestEnv::new("limits-item").await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.aws);
    let put = |item| {
        ddb.put_item()
            .table_name(&env.resources.table_name)
            .set_item(Some(item))
            .send()
    };
    let err = refused_by_layer!(
        "dynamodb item 400 KB",
        put(item_of_size(DYNAMODB_ITEM_MAX_BYTES + 1))
            .await
            .expect_err("over 400 KB")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some("Item size has exceeded the maximum allowed size")
    );
    // moto refuses from 405,000 bytes by its own count (stricter than AWS); the exact
    // 409,600-byte boundary is checked in devkit's unit tests.
    put(item_of_size(404_000)).await.expect("under the limit");
}

#[tokio::test]
async fn batch_writes_over_25_requests_are_refused() {
    let env = TestEnv::new("limits-batch").await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.aws);
    let writes = |n: usize| -> Vec<WriteRequest> {
        (0..n)
            .map(|_| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item_of_size(100)))
                            .build()
                            .expect("put"),
                    )
                    .build()
            })
            .collect()
    };
    let batch = |n| {
        ddb.batch_write_item()
            .request_items(&env.resources.table_name, writes(n))
            .send()
    };
    let err = refused_by_layer!(
        "dynamodb BatchWriteItem 25 requests",
        batch(26).await.expect_err("26 requests")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some("Too many items requested for the BatchWriteItem call")
    );
    batch(25).await.expect("25 requests");
}

#[tokio::test]
async fn transactions_over_100_actions_or_4_mb_are_refused() {
    let env = TestEnv::new("limits-transact").await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.aws);
    let puts = |n: usize, size: usize| -> Vec<TransactWriteItem> {
        (0..n)
            .map(|_| {
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&env.resources.table_name)
                            .set_item(Some(item_of_size(size)))
                            .build()
                            .expect("put"),
                    )
                    .build()
            })
            .collect()
    };
    let transact = |items| {
        ddb.transact_write_items()
            .set_transact_items(Some(items))
            .send()
    };
    // 11 items of 390,000 bytes: each under 400 KB, 4.29 MB together.
    let err = refused_by_layer!(
        "dynamodb transaction 4 MB",
        transact(puts(11, 390_000)).await.expect_err("over 4 MB")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    let err = refused_by_layer!(
        "dynamodb transaction 100 actions",
        transact(puts(101, 100)).await.expect_err("101 actions")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    // 10 items of 400,000 bytes: 4,000,000 bytes, under 4 MB.
    transact(puts(10, 400_000)).await.expect("under 4 MB");
}

#[tokio::test]
async fn expressions_over_4_kb_are_refused() {
    let env = TestEnv::new("limits-expr").await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.aws);
    // Whitespace counts: DynamoDB measures the expression as sent.
    let padded = |expr: &str, len: usize| format!("{expr}{}", " ".repeat(len - expr.len()));
    let put = |condition: String| {
        ddb.put_item()
            .table_name(&env.resources.table_name)
            .set_item(Some(item_of_size(100)))
            .condition_expression(condition)
            .send()
    };
    let err = refused_by_layer!(
        "dynamodb expression 4 KB",
        put(padded("attribute_not_exists(pk)", EXPRESSION_MAX_BYTES + 1))
            .await
            .expect_err("4,097 bytes")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some("Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 4097")
    );
    put(padded("attribute_not_exists(pk)", EXPRESSION_MAX_BYTES))
        .await
        .expect("4,096 bytes");

    let query = |key_condition: String| {
        ddb.query()
            .table_name(&env.resources.table_name)
            .key_condition_expression(key_condition)
            .expression_attribute_values(":p", s("none"))
            .send()
    };
    let err = refused_by_layer!(
        "dynamodb expression 4 KB",
        query(padded("pk = :p", EXPRESSION_MAX_BYTES + 1))
            .await
            .expect_err("4,097 bytes")
    );
    assert!(err
        .message()
        .is_some_and(|m| m.starts_with("Invalid KeyConditionExpression: Expression size")));
    query(padded("pk = :p", EXPRESSION_MAX_BYTES))
        .await
        .expect("4,096 bytes");
}

#[tokio::test]
async fn sqs_messages_over_256_kb_with_their_attributes_are_refused() {
    let env = TestEnv::new("limits-sqs").await;
    let sqs = aws_sdk_sqs::Client::new(&env.aws);
    let kind = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("attribute")
    };
    // "kind" (4) + "String" (6) + the value count toward the message's 262,144 bytes.
    let send = |value: &str| {
        sqs.send_message()
            .queue_url(&env.resources.fetch_queue_url)
            .message_body("x".repeat(262_144 - 20))
            .message_attributes("kind", kind(value))
            .send()
    };
    let err = refused_by_layer!(
        "sqs message 256 KB",
        send("abcdefghijk").await.expect_err("262,145 bytes")
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(
        err.message(),
        Some("One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes.")
    );
    send("abcdefghij").await.expect("262,144 bytes");
}

#[tokio::test]
async fn sqs_batches_over_10_entries_or_256_kb_are_refused() {
    let env = TestEnv::new("limits-sqs-batch").await;
    let sqs = aws_sdk_sqs::Client::new(&env.aws);
    let batch = |n: usize, size: usize| {
        let entries = (0..n)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body("x".repeat(size))
                    .build()
                    .expect("entry")
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&env.resources.fetch_queue_url)
            .set_entries(Some(entries))
            .send()
    };
    let err = refused_by_layer!(
        "sqs batch 10 entries",
        batch(11, 10).await.expect_err("11 entries")
    );
    assert!(matches!(
        err.as_service_error(),
        Some(SendMessageBatchError::TooManyEntriesInBatchRequest(_))
    ));
    let err = refused_by_layer!(
        "sqs batch 256 KB",
        batch(10, 26_215).await.expect_err("262,150 bytes")
    );
    assert!(
        matches!(
            err.as_service_error(),
            Some(SendMessageBatchError::BatchRequestTooLong(_))
        ),
        "{err:?}"
    );
    let sent = batch(10, 26_214).await.expect("262,140 bytes");
    assert_eq!(sent.successful().len(), 10);
}

#[tokio::test]
async fn put_events_over_10_entries_or_256_kb_are_refused() {
    let env = TestEnv::new("limits-events").await;
    let events = aws_sdk_eventbridge::Client::new(&env.aws);
    // Entry size: "canopy.test" (11) + "Big" (3) + the detail `{"d":"…"}` (8 + n).
    let entry = |n: usize| {
        PutEventsRequestEntry::builder()
            .event_bus_name(&env.resources.event_bus_name)
            .source("canopy.test")
            .detail_type("Big")
            .detail(serde_json::json!({"d": "x".repeat(n)}).to_string())
            .build()
    };
    let put =
        |entries: Vec<PutEventsRequestEntry>| events.put_events().set_entries(Some(entries)).send();
    let err = refused_by_layer!(
        "eventbridge PutEvents 10 entries",
        put(vec![entry(1); 11]).await.expect_err("11 entries")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    // Two entries of 22 + 131,050 bytes: 262,144 in all, not less than 256 KB.
    let err = refused_by_layer!(
        "eventbridge PutEvents 256 KB",
        put(vec![entry(131_050); 2])
            .await
            .expect_err("262,144 bytes")
    );
    assert_eq!(err.code(), Some("ValidationException"));
    let sent = put(vec![entry(131_049); 2]).await.expect("262,142 bytes");
    assert_eq!(sent.failed_entry_count(), 0);
}
