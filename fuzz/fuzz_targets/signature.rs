//! The `canopy-signature` header parser and verifier: any header and body is answered without a
//! panic, and a header made by `sign` verifies for its body and no other.
#![no_main]

use canopy_monitor::domain::signature::{sign, verify, SigningSecrets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secrets = SigningSecrets::new(vec!["whsec_fuzz".to_owned()]).expect("secret");
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let now = 1_795_000_000;
    if let Ok(header) = std::str::from_utf8(header) {
        let _ = verify(Some(header), body, &secrets, now, 300);
    }
    let signed = sign(body, "whsec_fuzz", now);
    assert_eq!(verify(Some(&signed), body, &secrets, now, 300), Ok(()));
    let mut other = body.to_vec();
    other.push(b'!');
    assert!(verify(Some(&signed), &other, &secrets, now, 300).is_err());
});
