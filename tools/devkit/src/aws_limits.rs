//! AWS's documented service limits, enforced in front of the local emulator.
//!
//! moto checks few of the limits AWS documents, so code that breaks one
//! passes every local test and fails in AWS. [`LimitsClient`] wraps the SDK's HTTP client that
//! [`crate::local_aws_config`] gives every client (integration tests, canopy-sim, the local
//! runner): it reads each outgoing JSON-protocol request (`X-Amz-Target`:
//! `DynamoDB_20120810.*`, `AmazonSQS.*`, `AWSEvents.*`) and, when the request breaks a limit,
//! answers for AWS with the error AWS returns, in its wire format, so the SDK parses it as the
//! real service error. [`api_gateway_response`] does the same for a Lambda function's
//! synchronous response behind API Gateway.
//!
//! The sizing functions are pure and follow AWS's documented formulas:
//! - DynamoDB item: "DynamoDB item sizes and formats" (CapacityUnitCalculations.html);
//! - PutEvents entry: "Calculating Amazon EventBridge PutEvents event entry size";
//! - SQS message: the body plus every part (name, type, value) of each message attribute.
//!
//! Every refusal is counted ([`refusals`]) and logged (`tracing::warn!`, naming the limit and
//! the operation, never the data).
//!
//! Not checked: an UpdateItem's resulting item size (the item after the update is unknown to
//! the client without a read; moto checks it itself, less strictly).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// DynamoDB: an item, attribute names included (400 KB).
pub const DYNAMODB_ITEM_MAX_BYTES: usize = 400 * 1024;
/// DynamoDB BatchWriteItem: put and delete requests in one call.
pub const BATCH_WRITE_MAX_REQUESTS: usize = 25;
/// DynamoDB BatchWriteItem: data in one call (16 MB).
pub const BATCH_WRITE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// DynamoDB TransactWriteItems / TransactGetItems: actions in one call.
pub const TRANSACT_MAX_ACTIONS: usize = 100;
/// DynamoDB TransactWriteItems: aggregate size of the items in one call (4 MB).
pub const TRANSACT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB: any one expression parameter (condition, update, key condition, filter,
/// projection), measured as sent (4 KB).
pub const EXPRESSION_MAX_BYTES: usize = 4 * 1024;
/// SQS: one message, body and message attributes (256 KB, the limit this project keeps to).
pub const SQS_MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// SQS: entries of a batch call.
pub const SQS_BATCH_MAX_ENTRIES: usize = 10;
/// SQS SendMessageBatch: the sum of its messages' sizes.
pub const SQS_BATCH_MAX_BYTES: usize = 256 * 1024;
/// EventBridge PutEvents: entries in one call.
pub const PUT_EVENTS_MAX_ENTRIES: usize = 10;
/// EventBridge PutEvents: the entries' total size must be less than this (256 KB).
pub const PUT_EVENTS_MAX_BYTES: usize = 256 * 1024;
/// Lambda: a synchronous invocation's response payload (6 MB).
pub const LAMBDA_SYNC_RESPONSE_MAX_BYTES: usize = 6 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Sizing (pure)

/// The raw length of a base64 value (DynamoDB `B`, SQS `BinaryValue`): DynamoDB and SQS count
/// the bytes, not their encoding. The SDK sends padded standard base64.
fn base64_raw_len(encoded: &str) -> usize {
    let padding = encoded.bytes().rev().take_while(|&b| b == b'=').count();
    (encoded.len() / 4 * 3).saturating_sub(padding)
}

fn str_len(v: &Value) -> usize {
    v.as_str().map_or(0, str::len)
}

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A DynamoDB number's size: 1 byte per two significant digits (leading and trailing zeroes
/// trimmed) plus 1 byte.
pub fn dynamodb_number_size(number: &str) -> usize {
    let mantissa = number
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The size of one attribute value in DynamoDB's JSON wire format (`{"S": "..."}`), without its
/// name: strings their UTF-8 bytes, numbers as [`dynamodb_number_size`], binary its raw bytes,
/// BOOL and NULL 1 byte, sets the sum of their members, a list or map 3 bytes plus 1 byte and
/// the size of each element (a map element's key counted too).
pub fn dynamodb_value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => str_len(inner),
        "N" => dynamodb_number_size(inner.as_str().unwrap_or_default()),
        "B" => base64_raw_len(inner.as_str().unwrap_or_default()),
        "BOOL" | "NULL" => 1,
        "SS" => array(inner).map(str_len).sum(),
        "NS" => array(inner)
            .map(|n| dynamodb_number_size(n.as_str().unwrap_or_default()))
            .sum(),
        "BS" => array(inner)
            .map(|b| base64_raw_len(b.as_str().unwrap_or_default()))
            .sum(),
        "L" => {
            3 + array(inner)
                .map(|e| 1 + dynamodb_value_size(e))
                .sum::<usize>()
        }
        "M" => {
            3 + inner.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(k, e)| 1 + k.len() + dynamodb_value_size(e))
                    .sum::<usize>()
            })
        }
        _ => 0,
    }
}

/// The size of an item in DynamoDB's JSON wire format: each attribute's name (UTF-8 bytes) plus
/// its value's size.
pub fn dynamodb_item_size(item: &Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + dynamodb_value_size(value))
        .sum()
}

/// The size of a PutEvents entry as EventBridge counts it: `Time` 14 bytes if set; `Source`,
/// `DetailType`, `Detail` and each of `Resources` their UTF-8 bytes.
pub fn put_events_entry_size(entry: &Value) -> usize {
    let text = |key: &str| entry.get(key).map_or(0, str_len);
    let time = if entry.get("Time").is_some_and(|t| !t.is_null()) {
        14
    } else {
        0
    };
    let resources: usize = entry
        .get("Resources")
        .map_or(0, |r| array(r).map(str_len).sum());
    time + text("Source") + text("DetailType") + text("Detail") + resources
}

/// The size of an SQS message (`SendMessage` input or a `SendMessageBatch` entry) as SQS counts
/// it against its limit: the body's UTF-8 bytes plus, for each message attribute, its name, its
/// data type and its value (a binary value's raw bytes).
pub fn sqs_message_size(message: &Value) -> usize {
    let body = message.get("MessageBody").map_or(0, str_len);
    let attributes: usize = message
        .get("MessageAttributes")
        .and_then(Value::as_object)
        .map_or(0, |attrs| {
            attrs
                .iter()
                .map(|(name, a)| {
                    let binary = |key: &str| {
                        a.get(key)
                            .map_or(0, |b| base64_raw_len(b.as_str().unwrap_or_default()))
                    };
                    let binaries: usize = a.get("BinaryListValues").map_or(0, |l| {
                        array(l)
                            .map(|b| base64_raw_len(b.as_str().unwrap_or_default()))
                            .sum()
                    });
                    let strings: usize = a
                        .get("StringListValues")
                        .map_or(0, |l| array(l).map(str_len).sum());
                    name.len()
                        + a.get("DataType").map_or(0, str_len)
                        + a.get("StringValue").map_or(0, str_len)
                        + binary("BinaryValue")
                        + binaries
                        + strings
                })
                .sum()
        });
    body + attributes
}

/// The size of a Lambda function's synchronous response behind API Gateway: the JSON of the
/// API Gateway v2 response the runtime sends, a binary body base64-encoded.
pub fn api_gateway_payload_size(
    response: &lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse,
) -> usize {
    serde_json::to_vec(response).map_or(0, |v| v.len())
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// A request AWS would refuse: which limit, and the error AWS answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit broken, for the log and the counter (`"dynamodb item 400 KB"`).
    pub limit: &'static str,
    /// The error's `__type` in the JSON body.
    pub error_type: &'static str,
    /// SQS's query-compatible error code (`x-amzn-query-error`), which the SDK reports as the
    /// error code.
    pub query_error: Option<&'static str>,
    /// The error message.
    pub message: String,
}

impl Refusal {
    /// The error code the SDK reports.
    pub fn code(&self) -> &'static str {
        let code = self
            .query_error
            .unwrap_or(self.error_type)
            .split(';')
            .next()
            .unwrap_or_default();
        code.rsplit('#').next().unwrap_or(code)
    }
}

const DYNAMODB_VALIDATION: &str = "com.amazon.coral.validate#ValidationException";

fn dynamodb(limit: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        limit,
        error_type: DYNAMODB_VALIDATION,
        query_error: None,
        message: message.into(),
    }
}

fn item_too_large() -> Refusal {
    dynamodb(
        "dynamodb item 400 KB",
        "Item size has exceeded the maximum allowed size",
    )
}

/// The first of `names` (expression parameters of `request`) longer than 4 KB.
fn expressions(request: &Value, names: &[&str]) -> Option<Refusal> {
    names.iter().find_map(|name| {
        let size = request.get(*name).map_or(0, str_len);
        (size > EXPRESSION_MAX_BYTES).then(|| {
            dynamodb(
                "dynamodb expression 4 KB",
                format!(
                    "Invalid {name}: Expression size has exceeded the maximum allowed size; expression size: {size}"
                ),
            )
        })
    })
}

fn item_of(request: &Value, key: &str) -> Option<usize> {
    request
        .get(key)
        .and_then(Value::as_object)
        .map(dynamodb_item_size)
}

fn check_dynamodb(operation: &str, request: &Value) -> Option<Refusal> {
    match operation {
        "PutItem" => expressions(request, &["ConditionExpression"])
            .or_else(|| (item_of(request, "Item")? > DYNAMODB_ITEM_MAX_BYTES).then(item_too_large)),
        // The item after an update is unknown to the client: only its expressions are checked.
        "UpdateItem" => expressions(request, &["UpdateExpression", "ConditionExpression"]),
        "DeleteItem" => expressions(request, &["ConditionExpression"]),
        "GetItem" => expressions(request, &["ProjectionExpression"]),
        "Query" => expressions(
            request,
            &[
                "KeyConditionExpression",
                "FilterExpression",
                "ProjectionExpression",
            ],
        ),
        "Scan" => expressions(request, &["FilterExpression", "ProjectionExpression"]),
        "BatchGetItem" => request
            .get("RequestItems")
            .and_then(Value::as_object)?
            .values()
            .find_map(|t| expressions(t, &["ProjectionExpression"])),
        "BatchWriteItem" => check_batch_write(request),
        "TransactWriteItems" => check_transact_write(request),
        "TransactGetItems" => {
            let actions: Vec<&Value> = request.get("TransactItems").map(array)?.collect();
            if actions.len() > TRANSACT_MAX_ACTIONS {
                return Some(too_many_transact_items());
            }
            actions
                .iter()
                .find_map(|a| expressions(a.get("Get")?, &["ProjectionExpression"]))
        }
        _ => None,
    }
}

fn too_many_transact_items() -> Refusal {
    dynamodb(
        "dynamodb transaction 100 actions",
        "1 validation error detected at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100",
    )
}

fn check_batch_write(request: &Value) -> Option<Refusal> {
    let tables = request.get("RequestItems").and_then(Value::as_object)?;
    let writes: Vec<&Value> = tables.values().flat_map(array).collect();
    if writes.len() > BATCH_WRITE_MAX_REQUESTS {
        return Some(dynamodb(
            "dynamodb BatchWriteItem 25 requests",
            "Too many items requested for the BatchWriteItem call",
        ));
    }
    let mut total = 0;
    for write in writes {
        if let Some(size) = write.get("PutRequest").and_then(|p| item_of(p, "Item")) {
            if size > DYNAMODB_ITEM_MAX_BYTES {
                return Some(item_too_large());
            }
            total += size;
        }
        total += write
            .get("DeleteRequest")
            .and_then(|d| item_of(d, "Key"))
            .unwrap_or(0);
    }
    // Unreachable while each item keeps to 400 KB (25 x 400 KB < 16 MB); checked for
    // completeness. The code is AWS's; the message is ours.
    (total > BATCH_WRITE_MAX_BYTES).then(|| {
        dynamodb(
            "dynamodb BatchWriteItem 16 MB",
            format!(
                "BatchWriteItem request size {total} exceeds the maximum allowed size of 16 MB"
            ),
        )
    })
}

fn check_transact_write(request: &Value) -> Option<Refusal> {
    let actions: Vec<&Value> = request.get("TransactItems").map(array)?.collect();
    if actions.len() > TRANSACT_MAX_ACTIONS {
        return Some(too_many_transact_items());
    }
    let mut total = 0;
    for action in actions {
        if let Some(put) = action.get("Put") {
            if let Some(refusal) = expressions(put, &["ConditionExpression"]) {
                return Some(refusal);
            }
            let size = item_of(put, "Item").unwrap_or(0);
            if size > DYNAMODB_ITEM_MAX_BYTES {
                return Some(item_too_large());
            }
            total += size;
        }
        for (kind, names) in [
            ("Update", &["UpdateExpression", "ConditionExpression"][..]),
            ("Delete", &["ConditionExpression"][..]),
            ("ConditionCheck", &["ConditionExpression"][..]),
        ] {
            if let Some(op) = action.get(kind) {
                if let Some(refusal) = expressions(op, names) {
                    return Some(refusal);
                }
                total += item_of(op, "Key").unwrap_or(0);
            }
        }
    }
    // The code is AWS's; the message is ours.
    (total > TRANSACT_MAX_BYTES).then(|| {
        dynamodb(
            "dynamodb transaction 4 MB",
            format!("Transaction size {total} exceeds the maximum allowed aggregate size of 4 MB"),
        )
    })
}

fn sqs(
    limit: &'static str,
    error_type: &'static str,
    query_error: &'static str,
    message: String,
) -> Refusal {
    Refusal {
        limit,
        error_type,
        query_error: Some(query_error),
        message,
    }
}

fn too_many_entries(count: usize) -> Refusal {
    sqs(
        "sqs batch 10 entries",
        "com.amazonaws.sqs#TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender",
        format!("Maximum number of entries per request are 10. You have sent {count}."),
    )
}

fn check_sqs(operation: &str, request: &Value) -> Option<Refusal> {
    match operation {
        "SendMessage" => (sqs_message_size(request) > SQS_MESSAGE_MAX_BYTES).then(|| {
            sqs(
                "sqs message 256 KB",
                "com.amazonaws.sqs#InvalidParameterValue",
                "InvalidParameterValue;Sender",
                format!(
                    "One or more parameters are invalid. Reason: Message must be shorter than {SQS_MESSAGE_MAX_BYTES} bytes."
                ),
            )
        }),
        "SendMessageBatch" => {
            let entries: Vec<&Value> = request.get("Entries").map(array)?.collect();
            if entries.len() > SQS_BATCH_MAX_ENTRIES {
                return Some(too_many_entries(entries.len()));
            }
            let total: usize = entries.iter().map(|e| sqs_message_size(e)).sum();
            (total > SQS_BATCH_MAX_BYTES).then(|| {
                sqs(
                    "sqs batch 256 KB",
                    "com.amazonaws.sqs#BatchRequestTooLong",
                    "AWS.SimpleQueueService.BatchRequestTooLong;Sender",
                    format!(
                        "Batch requests cannot be longer than {SQS_BATCH_MAX_BYTES} bytes. You have sent {total} bytes."
                    ),
                )
            })
        }
        "DeleteMessageBatch" | "ChangeMessageVisibilityBatch" => {
            let count = request.get("Entries").map_or(0, |e| array(e).count());
            (count > SQS_BATCH_MAX_ENTRIES).then(|| too_many_entries(count))
        }
        _ => None,
    }
}

fn check_put_events(request: &Value) -> Option<Refusal> {
    let entries: Vec<&Value> = request.get("Entries").map(array)?.collect();
    let refusal = |limit, message: &str| Refusal {
        limit,
        error_type: "ValidationException",
        query_error: None,
        message: message.to_owned(),
    };
    if entries.len() > PUT_EVENTS_MAX_ENTRIES {
        return Some(refusal(
            "eventbridge PutEvents 10 entries",
            "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10",
        ));
    }
    let total: usize = entries.iter().map(|e| put_events_entry_size(e)).sum();
    // "The total entry size must be less than 256KB."
    (total >= PUT_EVENTS_MAX_BYTES).then(|| {
        refusal(
            "eventbridge PutEvents 256 KB",
            "Total size of the entries in the request is over the limit.",
        )
    })
}

/// What AWS answers to the JSON-protocol request `target` (`X-Amz-Target`) with `body`: a
/// refusal when the request breaks a documented limit, `None` otherwise (or when the request is
/// of another service or operation).
pub fn check(target: &str, body: &[u8]) -> Option<Refusal> {
    let (service, operation) = target.split_once('.')?;
    if !matches!(service, "DynamoDB_20120810" | "AmazonSQS" | "AWSEvents") {
        return None;
    }
    let request: Value = serde_json::from_slice(body).ok()?;
    match service {
        "DynamoDB_20120810" => check_dynamodb(operation, &request),
        "AmazonSQS" => check_sqs(operation, &request),
        _ if operation == "PutEvents" => check_put_events(&request),
        _ => None,
    }
}

static REFUSED: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());

fn record(limit: &'static str, operation: &str) {
    tracing::warn!(
        limit,
        operation,
        "aws-limits: request refused as AWS would refuse it"
    );
    // Also on stderr: a test's output shows it beside the test's failure, whatever subscriber
    // (or none) the test installed.
    eprintln!("aws-limits: refused {operation}: {limit}");
    let mut refused = REFUSED.lock().unwrap_or_else(|e| e.into_inner());
    *refused.entry(limit).or_default() += 1;
}

/// How many requests (and Lambda responses) this process refused, by limit.
pub fn refusals() -> BTreeMap<&'static str, usize> {
    REFUSED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// How many refusals of `limit` this process made.
pub fn refusal_count(limit: &str) -> usize {
    refusals().get(limit).copied().unwrap_or(0)
}

/// The HTTP response AWS sends for `refusal` (`content_type` of the service's JSON protocol).
fn error_response(refusal: &Refusal, content_type: &'static str) -> HttpResponse {
    let body = json!({"__type": refusal.error_type, "message": refusal.message}).to_string();
    let status = aws_smithy_runtime_api::http::StatusCode::try_from(400_u16)
        .unwrap_or_else(|_| unreachable!("400 is a status code"));
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    let headers = response.headers_mut();
    let _ = headers.try_insert("content-type", content_type);
    let _ = headers.try_insert("x-amzn-requestid", "aws-limits-layer");
    if let Some(query_error) = refusal.query_error {
        let _ = headers.try_insert("x-amzn-query-error", query_error);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// The HTTP client layer

/// An SDK HTTP client that refuses, as AWS would, requests breaking a documented limit, and
/// passes every other request to the client it wraps.
#[derive(Debug, Clone)]
pub struct LimitsClient {
    inner: SharedHttpClient,
}

impl LimitsClient {
    /// Wraps `inner`.
    pub fn wrap(inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(Self { inner })
    }
}

impl HttpClient for LimitsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitsConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner
            .validate_base_client_config(runtime_components, cfg)
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct LimitsConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for LimitsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target");
        let refusal = target
            .zip(request.body().bytes())
            .and_then(|(t, b)| check(t, b));
        match (refusal, target) {
            (Some(refusal), Some(target)) => {
                record(refusal.limit, target);
                let content_type = if target.starts_with("AWSEvents.") {
                    "application/x-amz-json-1.1"
                } else {
                    "application/x-amz-json-1.0"
                };
                HttpConnectorFuture::ready(Ok(error_response(&refusal, content_type)))
            }
            _ => self.inner.call(request),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lambda behind API Gateway

/// What API Gateway (HTTP API, payload v2) returns for a function's HTTP response: the response
/// itself, or, when the function's response payload (the API Gateway v2 response JSON, a binary
/// body base64-encoded, as lambda_http serializes it) exceeds Lambda's 6 MB, the 500
/// `{"message":"Internal Server Error"}` API Gateway answers when the invocation fails with
/// `Function.ResponseSizeTooLarge`. The local runner and the tests pass every handler's response
/// through it.
pub async fn api_gateway_response(
    response: lambda_http::Response<lambda_http::Body>,
) -> lambda_http::Response<lambda_http::Body> {
    use lambda_http::IntoResponse;
    let (parts, body) = response.into_parts();
    // lambda_http's own conversion decides text or binary (content type and encoding).
    let converted = lambda_http::Response::from_parts(parts.clone(), body.clone())
        .into_response()
        .await;
    let size = api_gateway_payload_size(&v2_response(converted));
    if size <= LAMBDA_SYNC_RESPONSE_MAX_BYTES {
        return lambda_http::Response::from_parts(parts, body);
    }
    record("lambda response 6 MB", "Invoke");
    let mut refused = lambda_http::Response::new(lambda_http::Body::from(
        json!({"message": "Internal Server Error"}).to_string(),
    ));
    *refused.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
    refused.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    refused
}

/// The API Gateway v2 response lambda_http sends for `response` (its `LambdaResponse` is
/// crate-private): a binary body base64-encoded, `Set-Cookie` headers moved to `cookies`.
fn v2_response(
    response: lambda_http::Response<lambda_http::Body>,
) -> lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    use lambda_http::Body;
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(lambda_http::http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    headers.remove(lambda_http::http::header::SET_COOKIE);
    let mut v2 = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
    v2.status_code = i64::from(parts.status.as_u16());
    v2.is_base64_encoded = matches!(body, Body::Binary(_));
    v2.body = match body {
        Body::Empty => None,
        other => Some(other),
    };
    v2.headers = headers;
    v2.cookies = cookies;
    v2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn numbers_count_significant_digits() {
        assert_eq!(dynamodb_number_size("0"), 1);
        assert_eq!(dynamodb_number_size("7"), 2);
        assert_eq!(dynamodb_number_size("12"), 2);
        assert_eq!(dynamodb_number_size("123"), 3);
        assert_eq!(dynamodb_number_size("-00123.4500"), 4); // 12345
        assert_eq!(dynamodb_number_size("1000000"), 2); // 1
        assert_eq!(dynamodb_number_size("1.5E+10"), 2); // 15
    }

    #[test]
    fn item_size_follows_the_documented_formula() {
        // "AAEC" is 3 raw bytes; "AA==" 1.
        let item = obj(json!({
            "pk": {"S": "héllo"},           // 2 + 6
            "n": {"N": "12345"},            // 1 + 3 + 1
            "b": {"B": "AAEC"},             // 1 + 3
            "t": {"BOOL": true},            // 1 + 1
            "z": {"NULL": true},            // 1 + 1
            "ss": {"SS": ["a", "bc"]},      // 2 + 3
            "ns": {"NS": ["1", "100"]},     // 2 + 2 + 2
            "bs": {"BS": ["AA==", "AAEC"]}, // 2 + 1 + 3
            "l": {"L": [{"S": "ab"}, {"N": "1"}]},  // 1 + 3 + (1+2) + (1+1+1)
            "m": {"M": {"k": {"S": "v"}, "e": {"M": {}}}} // 1 + 3 + (1+1+1) + (1+1+3)
        }));
        let expected = 8 + 5 + 4 + 2 + 2 + 5 + 6 + 6 + 10 + 12;
        assert_eq!(dynamodb_item_size(&item), expected);
    }

    #[test]
    fn put_events_entry_size_counts_documented_fields() {
        let entry = json!({
            "Source": "canopy",            // 6
            "DetailType": "PullRefreshed", // 13
            "Detail": "{\"a\":\"é\"}",     // 10
            "Resources": ["r1", "r22"],    // 5
            "Time": 1700000000,            // 14
            "EventBusName": "ignored"
        });
        assert_eq!(put_events_entry_size(&entry), 6 + 13 + 10 + 5 + 14);
        let untimed = json!({"Source": "s", "DetailType": "d"});
        assert_eq!(put_events_entry_size(&untimed), 2);
    }

    #[test]
    fn sqs_message_size_counts_attribute_names_types_and_values() {
        let message = json!({
            "MessageBody": "héllo", // 6
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": "pull"}, // 4 + 6 + 4
                "blob": {"DataType": "Binary", "BinaryValue": "AAEC"}  // 4 + 6 + 3
            }
        });
        assert_eq!(sqs_message_size(&message), 6 + 14 + 13);
    }

    fn string_of(len: usize) -> String {
        "x".repeat(len)
    }

    #[test]
    fn put_item_is_refused_over_400_kb_only() {
        // name "pk" (2) + "d" (1) + key value (1): the rest fills the limit exactly.
        let fill = DYNAMODB_ITEM_MAX_BYTES - 4;
        let at = json!({"TableName": "t", "Item": {"pk": {"S": "k"}, "d": {"S": string_of(fill)}}});
        assert_eq!(
            check("DynamoDB_20120810.PutItem", at.to_string().as_bytes()),
            None
        );
        let over =
            json!({"TableName": "t", "Item": {"pk": {"S": "k"}, "d": {"S": string_of(fill + 1)}}});
        let refusal =
            check("DynamoDB_20120810.PutItem", over.to_string().as_bytes()).expect("refused");
        assert_eq!(refusal.code(), "ValidationException");
        assert_eq!(
            refusal.message,
            "Item size has exceeded the maximum allowed size"
        );
    }

    #[test]
    fn expressions_are_refused_over_4_kb() {
        let at = json!({"TableName": "t", "KeyConditionExpression": string_of(4096)});
        assert_eq!(
            check("DynamoDB_20120810.Query", at.to_string().as_bytes()),
            None
        );
        let over = json!({"TableName": "t", "FilterExpression": string_of(4097)});
        let refusal =
            check("DynamoDB_20120810.Scan", over.to_string().as_bytes()).expect("refused");
        assert!(refusal
            .message
            .starts_with("Invalid FilterExpression: Expression size has exceeded"));
        let update = json!({"UpdateExpression": string_of(4097)});
        assert!(check(
            "DynamoDB_20120810.UpdateItem",
            update.to_string().as_bytes()
        )
        .is_some());
    }

    #[test]
    fn batch_write_counts_requests_across_tables() {
        let put = json!({"PutRequest": {"Item": {"pk": {"S": "k"}}}});
        let batch = |a: usize, b: usize| {
            json!({"RequestItems": {"t1": vec![put.clone(); a], "t2": vec![put.clone(); b]}})
                .to_string()
        };
        assert_eq!(
            check("DynamoDB_20120810.BatchWriteItem", batch(20, 5).as_bytes()),
            None
        );
        let refusal =
            check("DynamoDB_20120810.BatchWriteItem", batch(20, 6).as_bytes()).expect("refused");
        assert_eq!(
            refusal.message,
            "Too many items requested for the BatchWriteItem call"
        );
    }

    #[test]
    fn transactions_are_limited_by_actions_and_aggregate_size() {
        let check_put = json!({"ConditionCheck": {"Key": {"pk": {"S": "k"}}, "ConditionExpression": "attribute_exists(pk)"}});
        let many = json!({"TransactItems": vec![check_put.clone(); 101]}).to_string();
        assert!(check("DynamoDB_20120810.TransactWriteItems", many.as_bytes()).is_some());
        let hundred = json!({"TransactItems": vec![check_put; 100]}).to_string();
        assert_eq!(
            check("DynamoDB_20120810.TransactWriteItems", hundred.as_bytes()),
            None
        );
        let big = json!({"Put": {"Item": {"pk": {"S": string_of(400_000)}}}});
        let heavy = json!({"TransactItems": vec![big; 11]}).to_string();
        let refusal =
            check("DynamoDB_20120810.TransactWriteItems", heavy.as_bytes()).expect("refused");
        assert_eq!(refusal.limit, "dynamodb transaction 4 MB");
    }

    #[test]
    fn sqs_refusals_carry_the_query_compatible_code() {
        let body = |n: usize| json!({"QueueUrl": "q", "MessageBody": string_of(n)}).to_string();
        assert_eq!(
            check("AmazonSQS.SendMessage", body(262_144).as_bytes()),
            None
        );
        let refusal = check("AmazonSQS.SendMessage", body(262_145).as_bytes()).expect("refused");
        assert_eq!(refusal.code(), "InvalidParameterValue");

        let entry = |i: usize, n: usize| json!({"Id": i.to_string(), "MessageBody": string_of(n)});
        let batch = |k: usize, n: usize| {
            json!({"QueueUrl": "q", "Entries": (0..k).map(|i| entry(i, n)).collect::<Vec<_>>()})
                .to_string()
        };
        assert_eq!(
            check("AmazonSQS.SendMessageBatch", batch(11, 1).as_bytes()).map(|r| r.code()),
            Some("AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
        );
        assert_eq!(
            check("AmazonSQS.SendMessageBatch", batch(8, 32_768).as_bytes()),
            None
        );
        assert_eq!(
            check("AmazonSQS.SendMessageBatch", batch(9, 32_768).as_bytes()).map(|r| r.code()),
            Some("AWS.SimpleQueueService.BatchRequestTooLong")
        );
    }

    #[test]
    fn put_events_is_limited_by_entries_and_total_size() {
        let entry = |n: usize| json!({"Source": "s", "DetailType": "d", "Detail": string_of(n)});
        let request = |k: usize, n: usize| json!({"Entries": vec![entry(n); k]}).to_string();
        assert!(check("AWSEvents.PutEvents", request(11, 1).as_bytes()).is_some());
        assert_eq!(
            check("AWSEvents.PutEvents", request(10, 1).as_bytes()),
            None
        );
        // Two entries of 2 + n bytes: just under, then exactly at 256 KB (refused: "less than").
        let half = PUT_EVENTS_MAX_BYTES / 2 - 2;
        assert_eq!(
            check("AWSEvents.PutEvents", request(2, half - 1).as_bytes()),
            None
        );
        let refusal = check("AWSEvents.PutEvents", request(2, half).as_bytes()).expect("refused");
        assert_eq!(refusal.code(), "ValidationException");
    }

    #[test]
    fn other_services_and_operations_pass() {
        assert_eq!(check("AmazonSQS.ReceiveMessage", b"{}"), None);
        assert_eq!(check("secretsmanager.GetSecretValue", b"not json"), None);
    }

    fn response(
        body: lambda_http::Body,
        content_type: &str,
    ) -> lambda_http::Response<lambda_http::Body> {
        let mut r = lambda_http::Response::new(body);
        r.headers_mut().insert(
            lambda_http::http::header::CONTENT_TYPE,
            lambda_http::http::HeaderValue::from_str(content_type).expect("header"),
        );
        r
    }

    #[tokio::test]
    async fn a_response_over_6_mb_after_base64_becomes_api_gateways_500() {
        // 4.5 MB of bytes is 6 MB of base64: under the limit as bytes, over it as sent.
        let binary = vec![0_u8; 4_800_000];
        let refused = api_gateway_response(response(
            lambda_http::Body::Binary(binary),
            "application/octet-stream",
        ))
        .await;
        assert_eq!(refused.status(), 500);
        assert_eq!(
            refused.body().as_ref(),
            br#"{"message":"Internal Server Error"}"#
        );

        let text = "x".repeat(4_800_000);
        let passed =
            api_gateway_response(response(lambda_http::Body::Text(text), "application/json")).await;
        assert_eq!(passed.status(), 200);
        assert_eq!(passed.body().as_ref().len(), 4_800_000);
    }
}
