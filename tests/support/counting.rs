//! Counts the AWS requests a client transmits, by operation, with an SDK interceptor: the
//! figures in the README come from here, not from reading the code.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl RequestCounter {
    /// Counts so far, by operation (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`, ...).
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }

    /// Requests whose operation starts with `prefix` (`DynamoDB` or `AmazonSQS`).
    pub fn total(&self, prefix: &str) -> usize {
        self.snapshot()
            .iter()
            .filter(|(op, _)| op.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {}", request.method(), request.uri()));
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}
