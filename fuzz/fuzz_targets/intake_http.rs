//! webhook-intake's API Gateway handling, over in-memory adapters: any request gets a response
//! with a JSON body and a status intake documents, never a panic. Half the inputs are signed
//! with the right secret, so parsing, planning and recording are reached too.
#![no_main]

use canopy_monitor::ports::FixedClock;
    use canopy_monitor::fakes::queue::MemoryQueue;
    use canopy_monitor::fakes::store::MemoryStore;
use canopy_monitor::app::intake::{Intake, IntakeConfig};
use canopy_monitor::domain::signature::{sign, SigningSecrets};
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const NOW: i64 = 1_795_000_000;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (header, body) = rest.split_at(split);
    let header = match mode % 4 {
        0 | 1 => sign(body, "whsec_fuzz", NOW),
        _ => String::from_utf8_lossy(header).into_owned(),
    };
    let path = if mode % 8 == 7 { "/other" } else { "/webhooks/canopy" };
    let method = if mode % 16 == 15 { "GET" } else { "POST" };
    let Ok(request) = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example{path}"))
        .header("canopy-signature", header)
        .body(Body::Binary(body.to_vec()))
    else {
        return;
    };
    let request: Request = request;
    let intake = Intake::new(
        MemoryStore::default(),
        MemoryQueue::default(),
        FixedClock::at_unix(NOW),
        SigningSecrets::new(vec!["whsec_fuzz".to_owned()]).expect("secret"),
        IntakeConfig::default(),
    );
    let response = runtime().block_on(webhook_intake::handle(&intake, request));
    let status = response.status().as_u16();
    assert!(
        [200, 400, 401, 404, 405, 413, 500, 503].contains(&status),
        "undocumented status {status}"
    );
    let _: serde_json::Value =
        serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
});
