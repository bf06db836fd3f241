//! Benchmark (not a test): time and memory of `changes::diff` on generated pulls of growing
//! size against a changed copy (premiums raised, a coverage limit changed, a vehicle dropped
//! and one added, every tenth vehicle re-issued with a new id so that it matches by VIN, the
//! vehicles reordered). Heap figures come from a counting allocator: the peak of live bytes
//! while `diff` runs, above what the two parsed pulls already hold.
//!
//! Run: `cargo bench -p integration-tests --bench diff`.

use canopy_monitor::domain::changes::diff;
use canopy_sim::fixtures::{sample_pull, PullSize};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn changed(pull: &Value) -> Value {
    let mut after = pull.clone();
    for policy in after["policies"].as_array_mut().into_iter().flatten() {
        if let Some(p) = policy["total_premium_cents"].as_i64() {
            policy["total_premium_cents"] = json!(p + 1234);
        }
        if let Some(vehicles) = policy["vehicles"].as_array_mut() {
            if !vehicles.is_empty() {
                vehicles.remove(0);
                vehicles.reverse();
                for (i, v) in vehicles.iter_mut().enumerate() {
                    if i % 10 == 0 {
                        v["vehicle_id"] = json!(format!("reissued-{i}"));
                    }
                }
                if let Some(c) = vehicles[0]["coverages"].get_mut(0) {
                    c["per_person_limit_cents"] = json!(12_345_600);
                }
                vehicles.push(
                    json!({"vehicle_id": "veh-new", "vin": "5YJ3E1EA7KF317000", "coverages": []}),
                );
            }
        }
    }
    after
}

fn main() {
    println!("| vehicles / documents | pull JSON | changes | diff time (best of 5) | diff peak heap | both pulls parsed |");
    println!("|---|---|---|---|---|---|");
    for (vehicles, documents) in [(2, 2), (300, 300), (3000, 3000)] {
        let pull = sample_pull(
            "p-bench",
            PullSize {
                vehicles,
                documents,
            },
        );
        let json_bytes = serde_json::to_vec(&pull).map_or(0, |j| j.len());
        let after = changed(&pull);
        let held = LIVE.load(Ordering::Relaxed);
        let mut best = f64::INFINITY;
        let mut peak_above = 0;
        let mut count = 0;
        for _ in 0..5 {
            PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
            let base = LIVE.load(Ordering::Relaxed);
            let start = Instant::now();
            let set = diff(&pull, &after);
            best = best.min(start.elapsed().as_secs_f64() * 1000.0);
            peak_above = peak_above.max(PEAK.load(Ordering::Relaxed) - base);
            count = set.changes.len();
        }
        println!(
            "| {vehicles} / {documents} | {:.2} MB | {count} | {best:.2} ms | {:.2} MiB | {:.1} MiB |",
            json_bytes as f64 / 1e6,
            peak_above as f64 / 1048576.0,
            held as f64 / 1048576.0,
        );
    }
}
