//! Write sharding for index partition keys that every write would otherwise share.
//!
//! A DynamoDB partition (of a table or of an index) takes about 1,000 write units a second, and
//! an index partition that cannot keep up throttles writes to the table itself. A key such as
//! "the day a webhook arrived", "events waiting to be published" or "monitorings that are
//! ACTIVE" would put every such write into one partition, so each of them is suffixed with a
//! shard number derived from the item's own id: `<key>#<shard>`. Readers query every shard (in
//! parallel) and merge. With [`SHARDS`] = 16, 2,000 writes a second spread to about 125 per
//! shard, an eighth of a partition's capacity, leaving room for uneven hashing and bursts.

/// How many shards each sharded key has. Changing it changes where items are written: readers
/// would miss the items written under the old count, so it is a constant, not a setting.
pub const SHARDS: u32 = 16;

/// The shard of an item, from its own stable id (a dedupe key, a monitoring id, an item key):
/// the same id always lands in the same shard, different ids spread evenly.
pub fn shard_of(id: &str) -> u32 {
    let digest = crate::domain::crypto::sha256(id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

/// `<key>#<shard>`: the sharded partition key of the item `id` under `key`.
pub fn sharded_key(key: &str, id: &str) -> String {
    shard_key(key, shard_of(id))
}

/// `<key>#<shard>` for one shard number (two digits, so keys sort by shard).
pub fn shard_key(key: &str, shard: u32) -> String {
    format!("{key}#{shard:02}")
}

/// Every sharded partition key of `key`, for a reader that must see them all.
pub fn all_shard_keys(key: &str) -> impl Iterator<Item = String> + '_ {
    (0..SHARDS).map(move |shard| shard_key(key, shard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn an_id_always_lands_in_the_same_shard() {
        assert_eq!(sharded_key("PENDING", "abc"), sharded_key("PENDING", "abc"));
        assert!(sharded_key("2026-12-02", "x").starts_with("2026-12-02#"));
        assert_eq!(all_shard_keys("K").count(), SHARDS as usize);
        assert!(all_shard_keys("K").any(|k| k == sharded_key("K", "any id")));
    }

    #[test]
    fn ids_spread_evenly_over_the_shards() {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for i in 0..16_000 {
            *counts.entry(shard_of(&format!("id-{i}"))).or_default() += 1;
        }
        assert_eq!(counts.len(), SHARDS as usize);
        // 1,000 expected per shard; a uniform hash stays well within +-15 %.
        assert!(
            counts.values().all(|&c| (850..=1150).contains(&c)),
            "{counts:?}"
        );
    }
}
