//! The cold-start baseline: lambda_runtime, no I/O, the event echoed back. Built with the same
//! release profile as the functions, it is what "near a bare runtime" is measured against.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
