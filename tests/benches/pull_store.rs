//! Benchmark (not a test): time and peak memory to parse, prepare and store pulls of growing
//! size. Parse and prepare run in-process; store and read-back run against the moto server
//! named by CANOPY_MONITOR_TEST_ENDPOINT when it is set (moto's speed, not DynamoDB's).
//!
//! Run: `scripts/bench.sh` (starts moto), or `cargo bench -p integration-tests --bench pull_store`.

use canopy_monitor::adapters::dynamo::DynamoStore;
use canopy_monitor::domain::pull_data::prepare;
use canopy_monitor::ports::store::PullDataStore;
use canopy_sim::fixtures::{sample_pull, PullSize};
use serde_json::{json, Value};
use std::time::Instant;

/// Peak resident set size of this process so far, from /proc (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

#[tokio::main]
async fn main() {
    let store = match std::env::var("CANOPY_MONITOR_TEST_ENDPOINT") {
        Ok(endpoint) => {
            let aws = devkit::local_aws_config(&endpoint);
            let table = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            devkit::resources::create_table(&aws_sdk_dynamodb::Client::new(&aws), &table)
                .await
                .expect("table");
            Some(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table))
        }
        Err(_) => None,
    };
    println!("pull size (vehicles/documents) | JSON MB | parse ms | prepare ms (summary+gzip+split) | gzip KB | parts | store ms (moto) | read ms (moto) | peak RSS MiB so far");
    for (vehicles, documents) in [(2, 3), (500, 500), (3000, 3000), (10_000, 10_000)] {
        let pull = sample_pull(
            "bench",
            PullSize {
                vehicles,
                documents,
            },
        );
        let answer = serde_json::to_vec(&json!({"success": true, "pull": pull})).expect("json");
        drop(pull);
        let (parse_ms, parsed) = best_of(5, || {
            canopy_monitor::domain::pull_data::PullJson::from_answer(answer.clone()).expect("parse")
        });
        let (prepare_ms, prepared) = best_of(5, || prepare("bench", &parsed));
        let (store_ms, read_ms) = match &store {
            Some(store) => {
                let pull_id = format!("bench-{vehicles}");
                let start = Instant::now();
                store
                    .store_pull_data(&pull_id, "v1", &prepared, "2026-11-26T00:00:00.000Z")
                    .await
                    .expect("store");
                let store_ms = start.elapsed().as_secs_f64() * 1000.0;
                let start = Instant::now();
                let back = store
                    .get_pull_data(&pull_id)
                    .await
                    .expect("read")
                    .expect("stored");
                let read_ms = start.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(
                    serde_json::to_vec(&back.pull).expect("json"),
                    serde_json::to_vec(
                        &serde_json::from_slice::<Value>(parsed.as_bytes()).expect("json")
                    )
                    .expect("json"),
                    "round trip"
                );
                (format!("{store_ms:.0}"), format!("{read_ms:.0}"))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{vehicles}/{documents} | {:.2} | {parse_ms:.1} | {prepare_ms:.1} | {} | {} | {store_ms} | {read_ms} | {:.1}",
            answer.len() as f64 / 1e6,
            prepared.gzip_bytes / 1024,
            prepared.parts.len(),
            peak_rss_mib()
        );
    }
}
