//! The reconnect-api Lambda: builds its adapters once per cold start, then serves requests.

use lambda_http::{service_fn, Error};
use std::convert::Infallible;

fn main() -> Result<(), Error> {
    canopy_monitor::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    canopy_monitor::observability::init_lambda_tracing();
    let aws = canopy_monitor::aws::sdk_config()?;
    let api = reconnect_api::api_from_env(&aws).await?;
    let api = &api;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, Infallible>(reconnect_api::handle(api, request).await)
    }))
    .await
}
