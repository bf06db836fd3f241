//! Pull summarising and storage: any JSON a GET pull could answer is summarised without a panic,
//! and its stored parts reassemble to the same value.
#![no_main]

use canopy_monitor::pull_data::{prepare, reassemble, summarise};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pull) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let summary = summarise("p", &pull);
    assert!(!summary.pull_id.is_empty());
    let prepared = prepare("p", &pull);
    assert_eq!(reassemble(&prepared.parts, &prepared.sha256).expect("round trip"), pull);
});
