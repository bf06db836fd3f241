//! The reconnect-api Lambda: builds its adapters once per cold start, then serves requests.

use lambda_http::Error;

fn main() -> Result<(), Error> {
    canopy_monitor::runtime::start::block_on(run())?
}

async fn run() -> Result<(), Error> {
    let metrics = canopy_monitor::runtime::observability::init_lambda()?;
    let aws = canopy_monitor::adapters::aws::sdk_config()?;
    let api = reconnect_api::api_from_env(&aws).await?;
    let api = &api;
    canopy_monitor::runtime::observability::run_http(metrics, move |request| async move {
        Ok::<_, Error>(reconnect_api::handle(api, request).await)
    })
    .await
}
