//! Key names in Redis, and the hash slots they fall in.
//!
//! # Layout
//! With namespace `otpengine` (the default) and a key whose key id is the 128-bit
//! keyed digest `k` (its 16 bytes, binary: a name of 28 bytes, which Redis
//! keeps in a 32-byte allocation where 32 hex digits would take 48):
//!
//! | Redis key | type | holds |
//! |---|---|---|
//! | `otpengine:{k}` | string | everything about the key, packed: its codes (digests only), attempts, rate history, failures |
//! | `otpengine:held` | sorted set | with `exact_counts`, standalone server: every key id with state, scored by the time it may be forgotten |
//! | `otpengine:live` | sorted set | with `exact_counts`, standalone server: every key id with a pending code, scored by its last pending expiry |
//! | `otpengine:{i-N}:held`, `…:live` | sorted sets | with `exact_counts`, cluster: the same, one pair per hash slot |
//!
//! The hash tag `{k}` puts all of a key's state in one slot, so its script runs
//! unchanged on Redis Cluster. The indexes must be written by the same script,
//! and a cluster script may only touch keys of one slot, so on a cluster each
//! slot has its own index pair under a tag chosen to hash to that slot
//! ([`slot_tag`]); a standalone server has one pair for the whole namespace,
//! which is what lets a script count every key held and enforce the capacity.
//! A binary key id may itself hold a `}`, which ends the hash tag early (or a
//! `}` first, which leaves it empty and the whole name hashed): the slot is
//! always computed from the whole name by Redis's own rule ([`key_slot`]), so
//! the indexes follow the state wherever it falls.

use std::sync::OnceLock;

use crate::digest::KeyId;

/// Hash slots of Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// Names the Redis keys of one engine's namespace.
#[derive(Clone, Debug)]
pub(crate) struct KeySpace {
    namespace: String,
    cluster: bool,
    /// The indexes are kept (`RedisOptions::exact_counts`): only then do the
    /// calls name them, so only then are their names made.
    indexed: bool,
}

/// The Redis keys a call touches.
pub(crate) struct KeyNames {
    /// The key's state (one packed string), `{ns}:{<key id>}`.
    pub(crate) state: Vec<u8>,
    /// The sorted set of key ids with state, by forget time (empty: no indexes).
    pub(crate) held: String,
    /// The sorted set of key ids with a pending code, by last pending expiry
    /// (empty: no indexes).
    pub(crate) live: String,
}

impl KeySpace {
    pub(crate) fn new(namespace: &str, cluster: bool, indexed: bool) -> Self {
        KeySpace {
            namespace: namespace.to_string(),
            cluster,
            indexed,
        }
    }

    pub(crate) fn names(&self, key_id: KeyId) -> KeyNames {
        let ns = &self.namespace;
        let mut state = Vec::with_capacity(ns.len() + 2 + 16 + 1);
        state.extend_from_slice(ns.as_bytes());
        state.extend_from_slice(b":{");
        state.extend_from_slice(&key_id.0[0].to_be_bytes());
        state.extend_from_slice(&key_id.0[1].to_be_bytes());
        state.push(b'}');
        let (held, live) = if !self.indexed {
            // Not sent: no index names to format on every call.
            (String::new(), String::new())
        } else if self.cluster {
            let tag = slot_tag(key_slot(&state));
            (
                format!("{ns}:{{{tag}}}:held"),
                format!("{ns}:{{{tag}}}:live"),
            )
        } else {
            (format!("{ns}:held"), format!("{ns}:live"))
        };
        KeyNames { state, held, live }
    }

    /// Every `(held, live)` index pair of the namespace: one, or one per slot.
    pub(crate) fn index_pairs(&self) -> Vec<(String, String)> {
        let ns = &self.namespace;
        if !self.cluster {
            return vec![(format!("{ns}:held"), format!("{ns}:live"))];
        }
        (0..SLOTS)
            .map(|s| {
                let tag = slot_tag(s);
                (
                    format!("{ns}:{{{tag}}}:held"),
                    format!("{ns}:{{{tag}}}:live"),
                )
            })
            .collect()
    }
}

/// The cluster hash slot of the Redis key `name`, as Redis computes it: of the
/// bytes between the first `{` and the first `}` after it when there are any,
/// else of the whole name.
pub(crate) fn key_slot(name: &[u8]) -> u16 {
    if let Some(open) = name.iter().position(|&b| b == b'{') {
        let rest = &name[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return slot(&rest[..close]);
            }
        }
    }
    slot(name)
}

/// The cluster hash slot of a Redis key that has no hash tag, or of a tag's
/// content: CRC16-XMODEM modulo 16384, as Redis Cluster computes it.
pub(crate) fn slot(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS
}

/// A short hash tag (`i-N`) that falls in slot `s`: the first `N` from 0 up whose
/// tag hashes there. Found for all slots at once, the first time one is needed
/// (about 170,000 CRCs, a few milliseconds), and the same in every process.
pub(crate) fn slot_tag(s: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n = 0u64;
        while missing > 0 {
            let tag = format!("i-{n}");
            let entry = &mut tags[usize::from(slot(tag.as_bytes()))];
            if entry.is_empty() {
                *entry = tag;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    &tags[usize::from(s)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // From the Redis Cluster specification: CRC16-XMODEM("123456789") = 0x31C3.
        assert_eq!(slot(b"123456789"), 0x31C3 % SLOTS);
        // Redis answers CLUSTER KEYSLOT foo with 12182 and bar with 5061.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
    }

    #[test]
    fn every_slot_has_a_tag_that_hashes_to_it() {
        for s in 0..SLOTS {
            assert_eq!(slot(slot_tag(s).as_bytes()), s);
        }
    }

    #[test]
    fn key_slots_follow_redis_hash_tags() {
        // CLUSTER KEYSLOT answers: a tag is hashed alone; an empty or unclosed
        // one leaves the whole name hashed; only the first tag counts.
        assert_eq!(key_slot(b"{foo}bar"), slot(b"foo"));
        assert_eq!(key_slot(b"x{foo}{bar}"), slot(b"foo"));
        assert_eq!(key_slot(b"{}foo"), slot(b"{}foo"));
        assert_eq!(key_slot(b"foo{bar"), slot(b"foo{bar"));
        assert_eq!(key_slot(b"foo{{bar}}"), slot(b"{bar"));
    }

    #[test]
    fn a_key_and_its_cluster_indexes_share_a_slot() {
        let id = KeyId([0x0102_0304_0506_0708, 0x090a_0b0c_0d0e_0f10]);
        let names = KeySpace::new("otp", true, true).names(id);
        let mut want = b"otp:{".to_vec();
        want.extend_from_slice(&(1..=16).collect::<Vec<u8>>());
        want.push(b'}');
        assert_eq!(names.state, want);
        assert_eq!(key_slot(names.held.as_bytes()), key_slot(&names.state));
        assert_eq!(key_slot(names.live.as_bytes()), key_slot(&names.state));
        // A key id holding a `}` (here first, so the tag is empty and the whole
        // name is hashed): the indexes still land in the state's slot.
        let brace = KeyId([u64::from(b'}') << 56, 7]);
        let names = KeySpace::new("otp", true, true).names(brace);
        assert_eq!(key_slot(names.held.as_bytes()), key_slot(&names.state));
        assert_eq!(key_slot(&names.state), slot(&names.state));
        let standalone = KeySpace::new("otp", false, true).names(id);
        assert_eq!(
            (standalone.held.as_str(), standalone.live.as_str()),
            ("otp:held", "otp:live")
        );
    }
}
