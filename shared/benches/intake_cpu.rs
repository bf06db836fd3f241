//! The CPU of intake without I/O: verify the signature, parse the body, derive the dedupe key
//! and plan the state updates and work, for each sample event in `events/` and for 2 KB and
//! 100 KB MONITORING_EVENTS bodies. Run with `cargo bench -p canopy-monitor --bench intake_cpu`;
//! criterion prints the time per event.

use canopy_monitor::domain::event::parse_event;
use canopy_monitor::domain::plan::{plan_event, PlanConfig};
use canopy_monitor::domain::signature::{sign, verify, SigningSecrets};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;

const SECRET: &str = "whsec_bench";
const NOW: i64 = 1_795_000_000;

/// The bodies of the sample API Gateway events, by file name.
fn sample_bodies() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("events/")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            if !name.starts_with("webhook-") {
                return None;
            }
            let event: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some((name, event["body"].as_str()?.as_bytes().to_vec()))
        })
        .collect();
    out.sort();
    out
}

/// A MONITORING_EVENTS body of about `bytes`, its size made of change entries.
fn large_body(bytes: usize) -> Vec<u8> {
    let change = json!({"schema": "Vehicle", "type": "UPDATED",
        "before": {"vin": "1HGCM82633A004352", "premium_cents": 120_000, "coverages": ["BI", "PD", "COLL"]},
        "after": {"vin": "1HGCM82633A004352", "premium_cents": 125_500, "coverages": ["BI", "PD", "COLL", "COMP"]}});
    let per = change.to_string().len() + 1;
    let changes: Vec<Value> = (0..bytes / per).map(|_| change.clone()).collect();
    json!({"event_type": "MONITORING_EVENTS", "pull_id": "7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61",
           "widget_id": "w", "team_id": "t", "status": "SUCCESS", "is_monitored": true,
           "monitoring": {"monitoring_id": "b7a3c1e2-5d4f-4e6a-8b9c-0d1e2f3a4b5c", "initial_pull_id": "59ced597-b48f-49e3-9756-799e4c6f79a0"},
           "data": {"type": "POLICY_CHANGED", "changes": changes, "documents": []}})
    .to_string()
    .into_bytes()
}

/// Everything intake computes for one delivery before its first I/O.
fn intake_cpu(header: &str, body: &[u8], secrets: &SigningSecrets, config: &PlanConfig) -> usize {
    verify(Some(header), body, secrets, NOW, 300).expect("signed");
    let event = parse_event(body).expect("parses");
    let plan = plan_event(&event, None, "2026-11-27T00:00:00.000Z", config);
    plan.work.len() + event.dedupe_key.len()
}

fn bench(c: &mut Criterion) {
    let secrets = SigningSecrets::new(vec![SECRET.to_owned()]).expect("secret");
    let config = PlanConfig::default();
    let mut group = c.benchmark_group("intake_cpu");
    let mut bodies = sample_bodies();
    bodies.push(("monitoring-events-2KB".to_owned(), large_body(2 * 1024)));
    bodies.push(("monitoring-events-100KB".to_owned(), large_body(100 * 1024)));
    for (name, body) in &bodies {
        let header = sign(body, SECRET, NOW);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(name.as_str(), body.len()),
            body,
            |b, body| b.iter(|| intake_cpu(black_box(&header), black_box(body), &secrets, &config)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
