//! The size of a DynamoDB item as DynamoDB counts it against its 400 KB limit:
//! every attribute name plus its value. moto checks none of this, so a write
//! that stores variable-size data sizes its item here first.
//!
//! The rules (DynamoDB developer guide, "Item sizes"): S is its UTF-8 length; N about one byte
//! per two significant digits plus one; B its bytes; BOOL and NULL one byte; L and M three bytes
//! plus their elements (and, for M, the element names). Where the guide says "approximately",
//! this errs high: one extra byte per element of a list or map and per number's sign.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// DynamoDB's item size limit, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// What a write that stores variable-size data lets an item reach: the rest of the 400 KB is
/// left for later UpdateItem additions (outbox bookkeeping, attempts, marks).
pub const ITEM_BUDGET: usize = 350 * 1024;

/// The size of `item`, in bytes, as DynamoDB counts it.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of one attribute value (without its name).
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + 1 + value_size(v))
                .sum::<usize>()
        }
        // A type this SDK does not know yet: count it as large as its debug text, never as 0.
        other => format!("{other:?}").len(),
    }
}

/// A number: one byte per two significant digits (leading and trailing zeros trimmed), plus
/// one, plus one for a sign.
fn number_size(n: &str) -> usize {
    let mantissa = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1 + usize::from(n.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn strings_count_utf8_bytes_and_names_count_too() {
        let item = HashMap::from([("pk".to_owned(), s("é"))]);
        assert_eq!(item_size(&item), 2 + 2);
        let item = HashMap::from([("a".to_owned(), s(&"x".repeat(1000)))]);
        assert_eq!(item_size(&item), 1001);
    }

    #[test]
    fn numbers_count_significant_digits() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("1000000"), 2, "trailing zeros are trimmed");
        assert_eq!(number_size("0.0012"), 2, "leading zeros are trimmed");
        assert_eq!(number_size("-123"), 4);
        assert_eq!(number_size("1.5e10"), 2);
    }

    #[test]
    fn binaries_booleans_and_containers() {
        assert_eq!(value_size(&AttributeValue::B(Blob::new(vec![0; 300]))), 300);
        assert_eq!(value_size(&AttributeValue::Bool(true)), 1);
        assert_eq!(value_size(&AttributeValue::Null(true)), 1);
        assert_eq!(value_size(&AttributeValue::L(vec![])), 3);
        assert_eq!(
            value_size(&AttributeValue::L(vec![s("ab"), s("c")])),
            3 + 3 + 2
        );
        let map = HashMap::from([("key".to_owned(), s("value"))]);
        assert_eq!(value_size(&AttributeValue::M(map)), 3 + 3 + 1 + 5);
        assert_eq!(
            value_size(&AttributeValue::Ss(vec!["ab".into(), "c".into()])),
            3
        );
    }

    #[test]
    fn a_serde_dynamo_item_sizes_close_to_its_json() {
        let json = serde_json::json!({"pk": "P", "list": [{"a": "xyz", "n": 12345}], "ok": true});
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(json).unwrap();
        // pk 2+1, list 4 + (3 + 1 + (3 + (1+1+3) + (1+1+4))), ok 2+1
        assert_eq!(item_size(&item), 3 + 4 + 3 + 1 + 3 + 5 + 6 + 3);
    }
}
