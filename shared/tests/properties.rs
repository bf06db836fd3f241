//! Properties of the two functions every delivery goes through first, the dedupe key and the
//! signature check, over generated bodies, secrets and clocks; and of how a fetched pull is
//! summarised and stored.

use canopy_monitor::domain::event::{dedupe_key, parse_event};
use canopy_monitor::domain::pull_data::{prepare, reassemble, summarise, summarise_json, PullJson};
use canopy_monitor::domain::signature::{sign, verify, SignatureError, SigningSecrets};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Arbitrary JSON: scalars, arrays and objects nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 _\\-\"\\\\é]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Pull-shaped JSON: objects whose keys are often the summarised fields, with values of any
/// type (the summary must read what it knows and tolerate the rest).
fn pull_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z0-9 @.\\\"é]{0,10}".prop_map(Value::String),
    ];
    let key = "(pull_id|status|first_name|last_name|email|mobile_phone|insurance_provider_name|policies|drivers|documents|claims|policy_id|policy_type|total_premium_cents|vehicles|dwellings|[a-z]{1,4})";
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A webhook-shaped body: the required fields plus arbitrary others.
fn body() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-z_]{1,8}", json(), 0..6),
        "[a-z0-9-]{1,20}",
    )
        .prop_map(|(extra, pull)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            m.insert("event_type".into(), Value::from("COMPLETE"));
            m.insert("pull_id".into(), Value::from(pull));
            Value::Object(m)
        })
}

/// `v` as JSON text with object keys in reverse order and white space around every token.
fn render_differently(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push_str("{ ");
            for (i, (k, v)) in m.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n ");
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push_str(" :\t");
                render_differently(v, out);
            }
            out.push_str(" }");
        }
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(" , ");
                }
                render_differently(v, out);
            }
            out.push_str(" ]");
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Paths to every scalar of `v`.
fn leaves(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| leaves(v, [path.clone(), vec![k.clone()]].concat(), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, [path.clone(), vec![i.to_string()]].concat(), out)),
        _ => out.push(path),
    }
}

fn leaf_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match v {
        Value::Object(m) => m.get_mut(k).expect("path"),
        Value::Array(a) => &mut a[k.parse::<usize>().expect("index")],
        _ => unreachable!("a path only crosses containers"),
    })
}

/// A scalar that differs from `v`.
fn other(v: &Value) -> Value {
    match v {
        Value::Null => Value::Bool(false),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => Value::from(n.as_i64().map_or(0, |i| i.wrapping_add(1))),
        Value::String(s) => Value::String(format!("{s}x")),
        _ => Value::Null,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn a_pull_is_summarised_as_the_reference_does_and_stored_as_received(
        fields in prop::collection::btree_map("(pull_id|first_name|email|policies|drivers|claims|[a-z]{1,4})", pull_json(), 0..8)
    ) {
        let pull = Value::Object(fields.into_iter().collect());
        let mut text = String::new();
        render_differently(&pull, &mut text);
        prop_assert_eq!(summarise_json("fallback", text.as_bytes()), summarise("fallback", &pull));
        let received = PullJson::from_answer(format!("{{\"pull\": {text} }}").into_bytes())
            .expect("an object pull");
        prop_assert_eq!(received.as_bytes(), text.as_bytes());
        let prepared = prepare("fallback", &received);
        prop_assert_eq!(reassemble(&prepared.parts, &prepared.sha256).expect("round trip"), pull);
    }


    #[test]
    fn the_dedupe_key_ignores_key_order_and_white_space(body in body()) {
        let mut text = String::new();
        render_differently(&body, &mut text);
        let plain = parse_event(body.to_string().as_bytes()).unwrap();
        let spaced = parse_event(text.as_bytes()).unwrap();
        prop_assert_eq!(&plain.dedupe_key, &spaced.dedupe_key);
        prop_assert_eq!(plain.dedupe_key, dedupe_key(&body));
    }

    #[test]
    fn the_dedupe_key_separates_bodies_that_differ_in_a_value(body in body(), pick in any::<prop::sample::Index>()) {
        let mut paths = Vec::new();
        leaves(&body, Vec::new(), &mut paths);
        let path = pick.get(&paths).clone();
        let mut changed = body.clone();
        let leaf = leaf_mut(&mut changed, &path);
        *leaf = other(leaf);
        prop_assert_ne!(dedupe_key(&body), dedupe_key(&changed), "changed {:?}", path);
    }

    #[test]
    fn a_signature_is_accepted_exactly_within_the_tolerance(
        body in prop::collection::vec(any::<u8>(), 0..512),
        secret in "[a-zA-Z0-9_]{1,40}",
        signed_at in 0i64..4_000_000_000,
        skew in -700i64..700,
        tolerance in 1i64..600,
    ) {
        let secrets = SigningSecrets::new(vec![secret.clone()]).unwrap();
        let header = sign(&body, &secret, signed_at);
        let result = verify(Some(&header), &body, &secrets, signed_at + skew, tolerance);
        if skew.abs() <= tolerance {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert_eq!(result, Err(SignatureError::OutsideTolerance { tolerance }));
        }
    }

    #[test]
    fn a_changed_body_or_another_secret_is_refused(
        body in prop::collection::vec(any::<u8>(), 1..512),
        flip in any::<prop::sample::Index>(),
        secret in "[a-zA-Z0-9_]{1,40}",
        now in 0i64..4_000_000_000,
    ) {
        let header = sign(&body, &secret, now);
        let mut tampered = body.clone();
        tampered[flip.index(body.len())] ^= 0x01;
        let secrets = SigningSecrets::new(vec![secret.clone()]).unwrap();
        prop_assert_eq!(verify(Some(&header), &tampered, &secrets, now, 300), Err(SignatureError::NoMatch));
        let others = SigningSecrets::new(vec![format!("{secret}x")]).unwrap();
        prop_assert_eq!(verify(Some(&header), &body, &others, now, 300), Err(SignatureError::NoMatch));
    }

    #[test]
    fn any_header_is_answered_without_a_panic(header in ".{0,200}", now in any::<i64>()) {
        let secrets = SigningSecrets::new(vec!["s".into()]).unwrap();
        let _ = verify(Some(&header), b"{}", &secrets, now, 300);
    }
}

#[test]
fn an_extreme_timestamp_is_outside_the_tolerance_not_an_overflow() {
    let secrets = SigningSecrets::new(vec!["s".into()]).unwrap();
    for (t, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, 0)] {
        let header = format!("t={t},s=00");
        assert_eq!(
            verify(Some(&header), b"{}", &secrets, now, 300),
            Err(SignatureError::OutsideTolerance { tolerance: 300 })
        );
    }
}
