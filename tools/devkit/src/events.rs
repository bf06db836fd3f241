//! Sample events (`events/*.json`, API Gateway HTTP API v2 payloads) and their signing.
//! A signature carries its timestamp, so a committed one goes stale: [`resign`] makes a fresh
//! copy, and [`webhook_request`] builds a signed event around any body.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use canopy_monitor::domain::signature::{sign, SIGNATURE_HEADER};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The workspace's `events/` folder.
pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Reads an event file as JSON.
pub fn read_event(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The raw body of an API Gateway v2 event, base64-decoded when flagged.
pub fn event_body(event: &Value) -> Vec<u8> {
    let body = event
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        BASE64.decode(body).unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    }
}

/// Signs the event's body at unix time `timestamp` with `secret`, in place: sets the
/// `canopy-signature` header and the request time.
pub fn resign(event: &mut Value, secret: &str, timestamp: i64) {
    let header = sign(&event_body(event), secret, timestamp);
    event["headers"][SIGNATURE_HEADER] = json!(header);
    event["requestContext"]["timeEpoch"] = json!(timestamp * 1000);
}

/// An API Gateway HTTP API v2 event for `method path` with `body` and `headers`; `path` may
/// carry a query string (`/v1/monitorings?status=ACTIVE`).
pub fn apigw_event(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    // As API Gateway does: decoded values, repeated names joined with commas.
    let mut params = serde_json::Map::new();
    if let Ok(url) = reqwest::Url::parse(&format!("http://local/?{query}")) {
        for (k, v) in url.query_pairs() {
            match params.get_mut(k.as_ref()) {
                Some(Value::String(existing)) => {
                    existing.push(',');
                    existing.push_str(&v);
                }
                _ => {
                    params.insert(k.into_owned(), json!(v));
                }
            }
        }
    }
    let header_map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (BASE64.encode(body), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/canopy",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "local"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "POST /webhooks/canopy",
            "stage": "$default",
            "time": "",
            "timeEpoch": now.unix_timestamp() * 1000
        },
        "body": body,
        "isBase64Encoded": base64
    });
    if !params.is_empty() {
        event["queryStringParameters"] = Value::Object(params);
    }
    event
}

/// The API Gateway v2 event of an HTTP request as a local server received it (`target` is the
/// path with its query string): how the local runner and the tests put functions behind HTTP.
pub fn http_event(
    method: &str,
    target: &str,
    headers: &lambda_http::http::HeaderMap,
    body: &[u8],
) -> Value {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    apigw_event(method, target, &pairs, body)
}

/// A signed webhook delivery of `body` as API Gateway would hand it to the function.
pub fn webhook_request(body: &[u8], secret: &str, timestamp: i64) -> Value {
    let headers = [
        ("content-type".to_owned(), "application/json".to_owned()),
        (SIGNATURE_HEADER.to_owned(), sign(body, secret, timestamp)),
    ];
    apigw_event("POST", "/webhooks/canopy", &headers, body)
}

/// Converts an API Gateway v2 event (JSON) into the request lambda_http hands a handler.
pub fn to_lambda_request(event: Value) -> Result<lambda_http::Request, String> {
    let apigw: ApiGatewayV2httpRequest =
        serde_json::from_value(event).map_err(|e| format!("not an API Gateway v2 event: {e}"))?;
    Ok(lambda_http::Request::from(LambdaRequest::ApiGatewayV2(
        apigw,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bodies_travel_base64_encoded() {
        let body = [0xff_u8, 0x00, 0x10];
        let event = apigw_event("POST", "/webhooks/canopy", &[], &body);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event_body(&event), body);
        let text = apigw_event("POST", "/webhooks/canopy", &[], b"{}");
        assert_eq!(event_body(&text), b"{}");
    }
}
