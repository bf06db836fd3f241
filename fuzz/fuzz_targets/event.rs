//! Webhook body parsing and the dedupe key: any bytes parse or fail cleanly; a parsed body's key
//! survives re-serialisation; a stored copy of a reconnect holds no credential.
#![no_main]

use canopy_monitor::domain::event::{body_for_storage, dedupe_key, parse_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = parse_event(data) else { return };
    assert!(canopy_monitor::domain::ids::is_valid_id(&event.pull_id));
    let value: serde_json::Value = serde_json::from_slice(data).expect("parsed once");
    let again = serde_json::to_vec(&value).expect("serialises");
    assert_eq!(parse_event(&again).expect("reparses").dedupe_key, event.dedupe_key);
    assert_eq!(dedupe_key(&value), event.dedupe_key);
    let stored = body_for_storage(&event, data);
    if let Some(token) = event.reconnect.as_ref().and_then(|l| l.reconnect_token.as_deref()) {
        let back: serde_json::Value = serde_json::from_slice(&stored).expect("stored JSON");
        assert_ne!(back["data"]["reconnect_token"].as_str(), Some(token), "token stored");
    }
});
