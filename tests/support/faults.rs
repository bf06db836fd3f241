//! Fault injection for AWS clients over the real wire protocol: an SDK interceptor that makes
//! chosen operations fail, either before they are sent (a transport failure: nothing reaches
//! moto) or with a service error answer of the service's own wire format (the SDK parses it as
//! it would AWS's). Faulted requests never reach moto's handlers, so they have no side effect.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use std::sync::{Arc, Mutex};

/// What a faulted request gets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Not sent: the call fails as a transport error would.
    Transport,
    /// A service error answer, as AWS sends it.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
}

impl Fault {
    /// A REST-JSON error (SES v2): the code in `x-amzn-errortype`.
    pub fn rest_json(status: u16, code: &str) -> Self {
        Fault::Answer {
            status,
            headers: vec![
                ("x-amzn-errortype", code.to_owned()),
                ("content-type", "application/json".to_owned()),
            ],
            body: format!(r#"{{"message":"injected {code}"}}"#),
        }
    }

    /// An AWS query-protocol error (SNS).
    pub fn query_xml(status: u16, code: &str) -> Self {
        Fault::Answer {
            status,
            headers: vec![("content-type", "text/xml".to_owned())],
            body: format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>injected {code}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            ),
        }
    }

    /// A JSON 1.1 error (EventBridge): the code in `__type`.
    pub fn json_1_1(status: u16, code: &str) -> Self {
        Fault::Answer {
            status,
            headers: vec![("content-type", "application/x-amz-json-1.1".to_owned())],
            body: format!(r#"{{"__type":"{code}","message":"injected {code}"}}"#),
        }
    }

    /// A JSON 1.0 error (DynamoDB, SQS): the code in `__type`.
    pub fn json_1_0(status: u16, code: &str) -> Self {
        Fault::Answer {
            status,
            headers: vec![("content-type", "application/x-amz-json-1.0".to_owned())],
            body: format!(r#"{{"__type":"{code}","message":"injected {code}"}}"#),
        }
    }
}

/// Which requests a rule hits.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Matched against the `x-amz-target` header, else against `METHOD path?query` and, for
    /// query-protocol services, the form body (`Action=Publish`).
    pub operation: String,
    /// When set, the request body must contain this text (a key, an id).
    pub body_contains: Option<String>,
    /// How many matching requests to fault; `None` for all of them.
    pub times: Option<usize>,
    pub fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Faults injected so far, by rule operation.
    injected: Vec<String>,
}

/// The interceptor; clones share their rules.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector(Arc<Mutex<State>>);

/// Marks a request whose answer must be replaced (from transmit to deserialization).
#[derive(Debug, Clone)]
struct Pending(Fault);

impl aws_smithy_types::config_bag::Storable for Pending {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl FaultInjector {
    pub fn add(&self, rule: Rule) -> &Self {
        self.0.lock().unwrap().rules.push(rule);
        self
    }

    /// Faults `operation` (every time) with `fault`.
    pub fn always(&self, operation: &str, fault: Fault) -> &Self {
        self.add(Rule {
            operation: operation.to_owned(),
            body_contains: None,
            times: None,
            fault,
        })
    }

    /// Removes every rule: calls succeed again.
    pub fn heal(&self) {
        self.0.lock().unwrap().rules.clear();
    }

    /// How many requests were faulted.
    pub fn injected(&self) -> usize {
        self.0.lock().unwrap().injected.len()
    }

    fn take(&self, operation: &str, body: &str) -> Option<Fault> {
        let mut state = self.0.lock().unwrap();
        let index = state.rules.iter().position(|r| {
            operation.contains(&r.operation)
                && r.body_contains.as_ref().is_none_or(|b| body.contains(b))
                && r.times != Some(0)
        })?;
        let rule = &mut state.rules[index];
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
        }
        let (name, fault) = (rule.operation.clone(), rule.fault.clone());
        state.injected.push(name);
        Some(fault)
    }
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.to_owned(),
            None => format!("{} {} {}", request.method(), request.uri(), body),
        };
        match self.take(&operation, &body) {
            None => Ok(()),
            Some(Fault::Transport) => {
                Err(format!("injected transport failure of {operation}").into())
            }
            Some(answer) => {
                // Send it where it changes nothing (moto's own API answers unknown paths with
                // 404); the answer is replaced before the SDK reads it.
                let uri = request.uri().to_owned();
                let origin: String = uri.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                request
                    .set_uri(format!("{origin}/moto-api/fault-injected"))
                    .map_err(|e| format!("fault uri: {e}"))?;
                *request.body_mut() = SdkBody::empty();
                cfg.interceptor_state().store_put(Pending(answer));
                Ok(())
            }
        }
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Pending(Fault::Answer {
            status,
            headers,
            body,
        })) = cfg.load::<Pending>().cloned()
        else {
            return Ok(());
        };
        cfg.interceptor_state().unset::<Pending>();
        let mut response = Response::new(
            StatusCode::try_from(status).map_err(|e| format!("status: {e}"))?,
            SdkBody::from(body),
        );
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        *context.response_mut() = response;
        Ok(())
    }
}
