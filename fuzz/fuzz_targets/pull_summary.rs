//! Pull summarising and storage: any JSON a GET pull could answer is summarised without a panic,
//! the streaming summary agrees with the `Value`-based reference, and the stored parts hold
//! exactly the text received.
#![no_main]

use canopy_monitor::domain::pull_data::{prepare, reassemble, summarise, summarise_json, PullJson};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pull) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let summary = summarise("p", &pull);
    assert!(!summary.pull_id.is_empty());
    // The text as received (not re-serialised) is what the fetcher summarises and stores.
    assert_eq!(summarise_json("p", data), summary);
    let mut answer = b"{\"pull\":".to_vec();
    answer.extend_from_slice(data);
    answer.push(b'}');
    let Ok(received) = PullJson::from_answer(answer) else {
        assert!(!pull.is_object(), "an object pull must be accepted");
        return;
    };
    assert_eq!(received.as_bytes(), data.trim_ascii());
    let prepared = prepare("p", &received);
    assert_eq!(reassemble(&prepared.parts, &prepared.sha256).expect("round trip"), pull);
});
