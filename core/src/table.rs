//! The index from a key's hash to its slot: an open-addressing table whose every
//! probe group is one 64-byte cache line holding both the tags and the slot
//! indices, so a lookup that hits in its home group costs one memory access
//! before the slot itself (a `hashbrown::HashTable<u32>` keeps its control bytes
//! and its buckets in two arrays: two dependent misses).
//!
//! # Layout
//! A group holds 12 entries: 12 tag bytes (0: empty; else the hash's top 7 bits
//! with the high bit set), an overflow count, and 12 `u32` slot indices. A key's
//! home group comes from the hash's low bits; when it is full, the key goes to
//! the next group with room (linear probing over groups), and every group passed
//! over counts one more overflow. A lookup stops at the first group whose
//! overflow count is zero, so a miss is as cheap as a hit and deletion needs no
//! tombstones (the scheme of Facebook's F14 tables).
//!
//! # Ground rules
//! - Every stored index is in exactly one entry, reachable from its home group by
//!   passing only groups whose overflow count includes it.
//! - The table grows (doubling, rehashing every entry) past 5/6 full and shrinks
//!   below 1/4 full, so probe sequences stay short and memory follows the load.

use std::mem;

/// Entries per group: 12 tags + 1 overflow byte + 3 spare bytes + 12 × 4 bytes = 64.
const GROUP_SLOTS: usize = 12;
/// Fewest groups a non-empty table has.
const MIN_GROUPS: usize = 1;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Group {
    tags: [u8; GROUP_SLOTS],
    /// Entries whose probe passed this group, saturating at 255 (then the group
    /// is never a probe's end, which is slower but still right).
    overflow: u8,
    _spare: [u8; 3],
    indices: [u32; GROUP_SLOTS],
}

const _: () = assert!(mem::size_of::<Group>() == 64);

impl Group {
    const EMPTY: Group = Group {
        tags: [0; GROUP_SLOTS],
        overflow: 0,
        _spare: [0; 3],
        indices: [0; GROUP_SLOTS],
    };

    fn free_entry(&self) -> Option<usize> {
        self.tags.iter().position(|&t| t == 0)
    }
}

/// Hash of a key to the index of its slot.
#[derive(Default)]
pub(crate) struct IndexTable {
    groups: Vec<Group>,
    len: usize,
}

fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

impl IndexTable {
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated.
    pub(crate) fn allocation_size(&self) -> usize {
        self.groups.capacity() * mem::size_of::<Group>()
    }

    fn mask(&self) -> usize {
        self.groups.len() - 1
    }

    /// The index stored under `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, eq)
            .map(|(g, e)| self.groups[g].indices[e])
    }

    /// Where the entry for `hash` satisfying `eq` lives: (group, entry).
    #[inline]
    fn position(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<(usize, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        let (tag, mask) = (tag(hash), self.mask());
        let mut g = hash as usize & mask;
        for _ in 0..self.groups.len() {
            let group = &self.groups[g];
            for (e, &t) in group.tags.iter().enumerate() {
                if t == tag && eq(group.indices[e]) {
                    return Some((g, e));
                }
            }
            if group.overflow == 0 {
                return None;
            }
            g = (g + 1) & mask;
        }
        None
    }

    /// Stores `index` under `hash`; the caller guarantees no entry for the same key
    /// exists. `rehash` gives the hash of a stored index, for growing.
    pub(crate) fn insert(&mut self, hash: u64, index: u32, rehash: impl Fn(u32) -> u64) {
        if (self.len + 1) * 6 > self.groups.len() * GROUP_SLOTS * 5 {
            let groups = (self.groups.len() * 2).max(MIN_GROUPS);
            self.resize(groups, &rehash);
        }
        self.place(hash, index);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, index: u32) {
        let mask = self.mask();
        let mut g = hash as usize & mask;
        loop {
            let group = &mut self.groups[g];
            if let Some(e) = group.free_entry() {
                group.tags[e] = tag(hash);
                group.indices[e] = index;
                return;
            }
            group.overflow = group.overflow.saturating_add(1);
            g = (g + 1) & mask;
        }
    }

    /// Removes the entry storing exactly `index` under `hash`.
    ///
    /// # Panics
    /// If there is none: a broken invariant of the shard.
    pub(crate) fn remove(&mut self, hash: u64, index: u32, rehash: impl Fn(u32) -> u64) {
        let (found, e) = self
            .position(hash, |i| i == index)
            .expect("every slot is in the table");
        self.groups[found].tags[e] = 0;
        // The groups passed over on the way to `found` count it no more.
        let mask = self.mask();
        let mut g = hash as usize & mask;
        while g != found {
            let overflow = &mut self.groups[g].overflow;
            if *overflow != u8::MAX {
                *overflow -= 1;
            }
            g = (g + 1) & mask;
        }
        self.len -= 1;
        if self.groups.len() > MIN_GROUPS && self.len * 4 < self.groups.len() * GROUP_SLOTS {
            let groups = (self.groups.len() / 2).max(MIN_GROUPS);
            self.resize(groups, &rehash);
        }
    }

    /// Points the entry storing `old` under `hash` at `new` instead.
    pub(crate) fn replace(&mut self, hash: u64, old: u32, new: u32) {
        let (g, e) = self
            .position(hash, |i| i == old)
            .expect("every slot is in the table");
        self.groups[g].indices[e] = new;
    }

    fn resize(&mut self, groups: usize, rehash: &impl Fn(u32) -> u64) {
        debug_assert!(groups.is_power_of_two());
        let old = mem::replace(&mut self.groups, vec![Group::EMPTY; groups]);
        for group in &old {
            for (e, &t) in group.tags.iter().enumerate() {
                if t != 0 {
                    let index = group.indices[e];
                    self.place(rehash(index), index);
                }
            }
        }
    }

    /// Checks the ground rules against the true hash of every stored index; for
    /// tests. Returns the indices stored.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self, rehash: impl Fn(u32) -> u64) -> Vec<u32> {
        let mut stored = Vec::new();
        let mut overflow = vec![0usize; self.groups.len()];
        for (g, group) in self.groups.iter().enumerate() {
            for (e, &t) in group.tags.iter().enumerate() {
                if t == 0 {
                    continue;
                }
                let index = group.indices[e];
                let hash = rehash(index);
                assert_eq!(t, tag(hash), "tag of index {index}");
                let mut h = hash as usize & self.mask();
                while h != g {
                    overflow[h] += 1;
                    h = (h + 1) & self.mask();
                }
                stored.push(index);
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            assert_eq!(
                usize::from(group.overflow),
                overflow[g].min(255),
                "overflow count of group {g}"
            );
        }
        assert_eq!(stored.len(), self.len);
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Index -> hash for the test; few distinct hashes force long probe runs.
    fn hash_of(index: u32, spread: u64) -> u64 {
        let h = u64::from(index % spread as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }

    proptest! {
        /// Inserts, removes and relocations against a `HashMap`: every stored
        /// index is found under its hash, nothing else is, and the overflow
        /// counts are exact after every step.
        #[test]
        fn matches_a_hash_map(
            ops in prop::collection::vec((0u8..3, 0u32..400), 1..600),
            spread in prop_oneof![Just(3u64), Just(40), Just(1 << 20)],
        ) {
            let mut table = IndexTable::default();
            // index -> present; relocation moves an index to a fresh number
            // with the same hash, as the shard's swap-remove does.
            let mut model: HashMap<u32, ()> = HashMap::new();
            let h = |i: u32| hash_of(i, spread);
            // Miri runs this a thousand times slower: a prefix still covers
            // growth, probing runs and removal.
            let steps = if cfg!(miri) { 60 } else { ops.len() };
            for (op, i) in ops.into_iter().take(steps) {
                match op {
                    0 if !model.contains_key(&i) => {
                        table.insert(h(i), i, h);
                        model.insert(i, ());
                    }
                    1 if model.contains_key(&i) => {
                        table.remove(h(i), i, h);
                        model.remove(&i);
                    }
                    2 if model.contains_key(&i) => {
                        // Same hash class, a number no op uses.
                        let new = i + spread as u32 * (400 / spread as u32 + 1);
                        if !model.contains_key(&new) {
                            table.replace(h(i), i, new);
                            model.remove(&i);
                            model.insert(new, ());
                        }
                    }
                    _ => {}
                }
                let mut stored = table.validate(h);
                stored.sort_unstable();
                let mut want: Vec<u32> = model.keys().copied().collect();
                want.sort_unstable();
                prop_assert_eq!(&stored, &want);
                for &i in &want {
                    prop_assert_eq!(table.find(h(i), |j| j == i), Some(i));
                }
                prop_assert_eq!(table.find(h(7777), |j| j == 7777), None);
            }
        }
    }

    #[test]
    fn grows_and_shrinks_with_the_load() {
        let n: u32 = if cfg!(miri) { 3_000 } else { 100_000 };
        let mut table = IndexTable::default();
        let h = |i: u32| hash_of(i, 1 << 30);
        for i in 0..n {
            table.insert(h(i), i, h);
        }
        let grown = table.allocation_size();
        // At most 2 × 64 bytes per 10 entries: the table is over 5/12 full.
        assert!(grown <= n as usize * 64 * 2 / 10, "{grown} bytes for {n}");
        for i in 0..n - 10 {
            table.remove(h(i), i, h);
        }
        assert!(table.allocation_size() <= 4 * 64, "shrunk to a few groups");
        for i in n - 10..n {
            assert_eq!(table.find(h(i), |j| j == i), Some(i));
        }
    }
}
