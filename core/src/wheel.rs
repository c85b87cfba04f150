//! A hierarchical timing wheel (Varghese and Lauck, 1987) over index-linked nodes.
//!
//! Six levels of 64 slots; a slot of level `L` spans 64^L milliseconds, so the wheel
//! reaches 2^36 ms (about 795 days) ahead, well past the longest deadline the engine
//! sets (a 30-day lockout). Following tokio's timer, a deadline `when` goes to level
//! `ilog2(elapsed ^ when) / 6`, slot `(when >> 6L) % 64`; each level keeps a `u64`
//! bitmap of occupied slots searched with `trailing_zeros`; a slot is taken whole
//! when its time comes, and its entries either fall due or move down a level.
//!
//! The nodes are not owned here: they live in the shard's slot array and are
//! linked by `u32` index through [`Link`] and [`Pos`], reached via [`Nodes`]. No
//! pointer, no allocation, no `unsafe`; a slot is moved in the array with
//! [`Wheel::relocate`].
//!
//! # Ground rules
//! - A node is in exactly one list: a level slot, the due list, or none
//!   (`Pos::NONE`); its `Pos` says which, so removal is O(1).
//! - A node in a level slot has `when > elapsed`; a node in the due list has
//!   `when <= elapsed`. `elapsed` only moves to the start of a slot being taken,
//!   or to `now` when no occupied slot starts at or before `now`, so a slot is
//!   never passed over.
//! - Entries are never handed out early: a node is popped only from the due list.
//! - A deadline more than the wheel's span past `elapsed` (possible only after a
//!   pause of years, or a manual clock jump) is clamped into the top level; the
//!   top slot that holds `elapsed` is then searched last, because what it holds
//!   is a lap ahead, and when nothing else is scheduled `elapsed` jumps straight
//!   to the earliest deadline rather than lap by lap.

use std::mem;

/// "No node": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// Deadlines further than this from `elapsed` are clamped into the top level.
const MAX_SPAN: u64 = 1 << (SLOT_BITS * LEVELS as u32);

/// Which list a node is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos(u16);

impl Pos {
    /// In no list.
    pub(crate) const NONE: Pos = Pos(u16::MAX);
    const DUE: Pos = Pos(u16::MAX - 1);

    fn slot(level: usize, slot: usize) -> Pos {
        Pos((level * SLOTS + slot) as u16)
    }

    fn level_slot(self) -> Option<(usize, usize)> {
        (self.0 < (LEVELS * SLOTS) as u16)
            .then_some((self.0 as usize / SLOTS, self.0 as usize % SLOTS))
    }
}

/// A node's deadline and its neighbours in its list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    pub(crate) when: u64,
    pub(crate) next: u32,
    pub(crate) prev: u32,
}

impl Link {
    pub(crate) const UNLINKED: Link = Link {
        when: 0,
        next: NIL,
        prev: NIL,
    };
}

/// Access to the nodes' links, wherever they are stored.
pub(crate) trait Nodes {
    fn link(&mut self, node: u32) -> &mut Link;
    fn pos(&mut self, node: u32) -> &mut Pos;
}

/// The wheel of one shard.
pub(crate) struct Wheel {
    /// Time up to which slots have been processed.
    elapsed: u64,
    /// No deadline in the wheel is earlier than this (a cheap early-out for `pop_due`).
    earliest: u64,
    occupied: [u64; LEVELS],
    heads: [[u32; SLOTS]; LEVELS],
    /// Nodes whose deadline has passed, not yet handed out.
    due: u32,
    len: usize,
}

impl Wheel {
    /// An empty wheel whose time starts at `now`.
    pub(crate) fn new(now: u64) -> Self {
        Wheel {
            elapsed: now,
            earliest: u64::MAX,
            occupied: [0; LEVELS],
            heads: [[NIL; SLOTS]; LEVELS],
            due: NIL,
            len: 0,
        }
    }

    /// Bytes the wheel itself occupies (its nodes live elsewhere).
    pub(crate) fn memory_bytes(&self) -> usize {
        mem::size_of::<Self>()
    }

    /// Schedules `node`, which must be in no list, at `when`.
    pub(crate) fn insert<N: Nodes + ?Sized>(&mut self, nodes: &mut N, node: u32, when: u64) {
        debug_assert_eq!(
            *nodes.pos(node),
            Pos::NONE,
            "node {node} is already scheduled"
        );
        nodes.link(node).when = when;
        let pos = if when <= self.elapsed {
            Pos::DUE
        } else {
            let level = level_for(self.elapsed, when);
            Pos::slot(
                level,
                ((when >> (SLOT_BITS as usize * level)) as usize) % SLOTS,
            )
        };
        self.push(nodes, node, pos);
        self.earliest = self.earliest.min(when);
    }

    /// Takes `node` out of whatever list it is in (nothing if none).
    pub(crate) fn remove<N: Nodes + ?Sized>(&mut self, nodes: &mut N, node: u32) {
        let pos = *nodes.pos(node);
        if pos == Pos::NONE {
            return;
        }
        let Link { next, prev, .. } = *nodes.link(node);
        if prev != NIL {
            nodes.link(prev).next = next;
        } else {
            *self.head(pos) = next;
            if next == NIL {
                if let Some((level, slot)) = pos.level_slot() {
                    self.occupied[level] &= !(1 << slot);
                }
            }
        }
        if next != NIL {
            nodes.link(next).prev = prev;
        }
        *nodes.link(node) = Link {
            when: nodes.link(node).when,
            next: NIL,
            prev: NIL,
        };
        *nodes.pos(node) = Pos::NONE;
        self.len -= 1;
    }

    /// The node stored at index `from` now lives at `to` (its link and pos moved with
    /// it); points its neighbours, or its list head, at the new index.
    pub(crate) fn relocate<N: Nodes + ?Sized>(&mut self, nodes: &mut N, from: u32, to: u32) {
        let pos = *nodes.pos(to);
        if pos == Pos::NONE {
            return;
        }
        let Link { next, prev, .. } = *nodes.link(to);
        if prev != NIL {
            nodes.link(prev).next = to;
        } else {
            debug_assert_eq!(*self.head(pos), from);
            *self.head(pos) = to;
        }
        if next != NIL {
            nodes.link(next).prev = to;
        }
    }

    /// Hands out one node whose deadline is at or before `now`, taking it out of the
    /// wheel, or `None` when there is none. Cascades higher levels as time passes.
    pub(crate) fn pop_due<N: Nodes + ?Sized>(&mut self, nodes: &mut N, now: u64) -> Option<u32> {
        loop {
            if self.due != NIL {
                let node = self.due;
                self.remove(nodes, node);
                return Some(node);
            }
            if now < self.earliest {
                if self.occupied == [0; LEVELS] {
                    // Nothing is scheduled: time may move up to now, so that a later
                    // insert is placed relative to the present, not the distant past.
                    self.elapsed = self.elapsed.max(now);
                }
                return None;
            }
            match self.next_expiration() {
                Some((level, slot, deadline)) if deadline <= now => {
                    self.take_slot(nodes, level, slot, deadline, now)
                }
                next => {
                    // Nothing starts at or before `now`: time may move up to it.
                    self.earliest = next.map_or(u64::MAX, |(_, _, deadline)| deadline);
                    self.elapsed = self.elapsed.max(now);
                    return None;
                }
            }
        }
    }

    /// The first occupied slot: lower levels hold earlier deadlines than higher ones.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let slot_range = 1u64 << (SLOT_BITS as usize * level);
            let level_range = slot_range << SLOT_BITS;
            let now_slot = self.elapsed / slot_range;
            let mut rotated = occupied.rotate_right((now_slot % SLOTS as u64) as u32);
            if level == LEVELS - 1 && rotated & 1 == 1 && rotated != 1 {
                // The top slot holding `elapsed` only has clamped entries, a whole lap
                // ahead: every other occupied top slot comes first.
                rotated &= !1;
            }
            let slot = (rotated.trailing_zeros() as u64 + now_slot) % SLOTS as u64;
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot * slot_range;
            if deadline <= self.elapsed {
                // Only a clamped top-level entry can sit behind `elapsed`: next lap.
                deadline += level_range;
            }
            Some((level, slot as usize, deadline))
        })
    }

    fn take_slot<N: Nodes + ?Sized>(
        &mut self,
        nodes: &mut N,
        level: usize,
        slot: usize,
        deadline: u64,
        now: u64,
    ) {
        let mut node = mem::replace(&mut self.heads[level][slot], NIL);
        self.occupied[level] &= !(1 << slot);
        self.elapsed = deadline;
        if self.occupied == [0; LEVELS] {
            // Nothing else is scheduled, so no slot can be passed over: jump straight
            // to the earliest deadline taken (or to now), instead of one top-level
            // lap at a time after a long pause.
            let mut earliest = u64::MAX;
            let mut n = node;
            while n != NIL {
                let link = *nodes.link(n);
                earliest = earliest.min(link.when);
                n = link.next;
            }
            self.elapsed = self.elapsed.max(earliest.min(now));
        }
        while node != NIL {
            let Link { when, next, .. } = *nodes.link(node);
            *nodes.pos(node) = Pos::NONE;
            self.len -= 1;
            nodes.link(node).prev = NIL;
            self.insert(nodes, node, when);
            node = next;
        }
    }

    fn push<N: Nodes + ?Sized>(&mut self, nodes: &mut N, node: u32, pos: Pos) {
        let head = *self.head(pos);
        *nodes.link(node) = Link {
            when: nodes.link(node).when,
            next: head,
            prev: NIL,
        };
        if head != NIL {
            nodes.link(head).prev = node;
        }
        *self.head(pos) = node;
        *nodes.pos(node) = pos;
        if let Some((level, slot)) = pos.level_slot() {
            self.occupied[level] |= 1 << slot;
        }
        self.len += 1;
    }

    fn head(&mut self, pos: Pos) -> &mut u32 {
        match pos.level_slot() {
            Some((level, slot)) => &mut self.heads[level][slot],
            None => {
                debug_assert_eq!(pos, Pos::DUE);
                &mut self.due
            }
        }
    }

    /// Checks every ground rule; for tests. Returns the number of nodes linked.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate<N: Nodes + ?Sized>(&mut self, nodes: &mut N) -> usize {
        let mut count = 0;
        let mut lists = vec![(Pos::DUE, self.due)];
        for level in 0..LEVELS {
            for slot in 0..SLOTS {
                let head = self.heads[level][slot];
                let occupied = self.occupied[level] & (1 << slot) != 0;
                assert_eq!(
                    occupied,
                    head != NIL,
                    "occupancy bit of level {level} slot {slot}"
                );
                lists.push((Pos::slot(level, slot), head));
            }
        }
        for (pos, head) in lists {
            let mut prev = NIL;
            let mut node = head;
            while node != NIL {
                assert_eq!(
                    *nodes.pos(node),
                    pos,
                    "node {node} is in the list its pos names"
                );
                let link = *nodes.link(node);
                assert_eq!(link.prev, prev, "back link of node {node}");
                match pos.level_slot() {
                    Some(_) => assert!(
                        link.when > self.elapsed,
                        "a node in a level slot is in the future"
                    ),
                    None => assert!(link.when <= self.elapsed, "a due node is due"),
                }
                assert!(self.earliest <= link.when || pos == Pos::DUE);
                count += 1;
                prev = node;
                node = link.next;
            }
        }
        assert_eq!(count, self.len);
        count
    }
}

/// The level whose slots separate `elapsed` from `when`.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = ((elapsed ^ when) | (SLOTS as u64 - 1)).min(MAX_SPAN - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Nodes in a plain vector, as the shard keeps them.
    struct Plain(Vec<(Link, Pos)>);

    impl Plain {
        fn new(n: usize) -> Self {
            Plain(vec![(Link::UNLINKED, Pos::NONE); n])
        }
    }

    impl Nodes for Plain {
        fn link(&mut self, node: u32) -> &mut Link {
            &mut self.0[node as usize].0
        }
        fn pos(&mut self, node: u32) -> &mut Pos {
            &mut self.0[node as usize].1
        }
    }

    fn drain(wheel: &mut Wheel, nodes: &mut Plain, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(n) = wheel.pop_due(nodes, now) {
            out.push(n);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn levels_follow_the_highest_differing_bits() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, MAX_SPAN - 1), 5);
        assert_eq!(level_for(0, MAX_SPAN * 4), 5, "clamped");
    }

    #[test]
    fn nodes_fire_exactly_at_their_deadline_across_levels() {
        let deadlines = [
            1u64,
            63,
            64,
            65,
            130,
            4095,
            4096,
            300_000,
            3_600_000,
            2_592_000_000,
        ];
        let mut nodes = Plain::new(deadlines.len());
        let mut wheel = Wheel::new(0);
        for (i, &when) in deadlines.iter().enumerate() {
            wheel.insert(&mut nodes, i as u32, when);
        }
        wheel.validate(&mut nodes);
        for (i, &when) in deadlines.iter().enumerate() {
            assert!(
                drain(&mut wheel, &mut nodes, when - 1).is_empty(),
                "nothing before {when}"
            );
            wheel.validate(&mut nodes);
            assert_eq!(
                drain(&mut wheel, &mut nodes, when),
                vec![i as u32],
                "at {when}"
            );
            wheel.validate(&mut nodes);
        }
        assert_eq!(wheel.len, 0);
    }

    #[test]
    fn removal_and_relocation_keep_lists_whole() {
        let mut nodes = Plain::new(4);
        let mut wheel = Wheel::new(0);
        for i in 0..3 {
            wheel.insert(&mut nodes, i, 100);
        }
        wheel.remove(&mut nodes, 1);
        wheel.validate(&mut nodes);
        // Move node 2 to index 3, as a swap-remove does.
        nodes.0[3] = nodes.0[2];
        nodes.0[2] = (Link::UNLINKED, Pos::NONE);
        wheel.relocate(&mut nodes, 2, 3);
        wheel.validate(&mut nodes);
        assert_eq!(drain(&mut wheel, &mut nodes, 100), vec![0, 3]);
    }

    #[test]
    fn a_jump_far_past_the_span_still_fires_everything() {
        let mut nodes = Plain::new(2);
        let mut wheel = Wheel::new(0);
        wheel.insert(&mut nodes, 0, 10);
        assert_eq!(drain(&mut wheel, &mut nodes, 10 * MAX_SPAN), vec![0]);
        // Inserted while elapsed lags far behind: clamped, then cascades down.
        wheel.insert(&mut nodes, 1, 30 * MAX_SPAN);
        wheel.validate(&mut nodes);
        assert!(drain(&mut wheel, &mut nodes, 30 * MAX_SPAN - 1).is_empty());
        assert_eq!(drain(&mut wheel, &mut nodes, 30 * MAX_SPAN), vec![1]);
    }

    #[test]
    fn a_clamped_entry_hides_no_other_top_level_entry() {
        // Found in review: after a long idle, node 0 (just past the span) is clamped
        // into the top slot that holds `elapsed`; node 1 sits in top slot 63. The
        // clamped slot was found first, its lap-ahead deadline let `elapsed` jump
        // past slot 63, and node 1 fired a lap (795 days) late.
        let mut nodes = Plain::new(2);
        let mut wheel = Wheel::new(0);
        let now = MAX_SPAN - 5_000;
        wheel.insert(&mut nodes, 0, now + 5_000);
        wheel.insert(&mut nodes, 1, now + 1_000);
        wheel.validate(&mut nodes);
        assert_eq!(drain(&mut wheel, &mut nodes, now + 1_000), vec![1]);
        wheel.validate(&mut nodes);
        assert_eq!(drain(&mut wheel, &mut nodes, now + 5_000), vec![0]);
    }

    #[test]
    fn a_lagging_wheel_hides_no_entry_behind_a_clamped_one() {
        // The same through a wheel that lags because node 0 was not yet taken out.
        let mut nodes = Plain::new(3);
        let mut wheel = Wheel::new(0);
        wheel.insert(&mut nodes, 0, 10);
        let now = MAX_SPAN - 5_000;
        wheel.insert(&mut nodes, 1, now + 5_000);
        wheel.insert(&mut nodes, 2, now + 1_000);
        wheel.validate(&mut nodes);
        assert_eq!(drain(&mut wheel, &mut nodes, now + 1_000), vec![0, 2]);
        wheel.validate(&mut nodes);
        assert_eq!(drain(&mut wheel, &mut nodes, now + 5_000), vec![1]);
    }

    #[test]
    fn a_jump_of_millions_of_years_takes_few_steps() {
        let mut nodes = Plain::new(1);
        let mut wheel = Wheel::new(0);
        wheel.insert(&mut nodes, 0, 1 << 61);
        // Counted in cascades, not seconds: lap by lap this was ~2^25 of them.
        let mut steps = 0;
        while wheel.next_expiration().is_some_and(|(_, _, d)| d < 1 << 61) && steps < 100 {
            let (level, slot, deadline) = wheel.next_expiration().unwrap();
            wheel.take_slot(&mut nodes, level, slot, deadline, 1 << 61);
            steps += 1;
        }
        assert!(steps < 20, "{steps} cascades");
        assert_eq!(drain(&mut wheel, &mut nodes, 1 << 61), vec![0]);
    }

    proptest! {
        /// Against a plain list: after any inserts, removals and advances, exactly the
        /// nodes whose deadline has passed have been handed out, each once.
        #[test]
        fn matches_a_plain_list(ops in prop::collection::vec((0u8..3, 0u32..32, 0u64..200_000), 1..300)) {
            let mut nodes = Plain::new(32);
            let mut wheel = Wheel::new(0);
            let mut model: Vec<Option<u64>> = vec![None; 32];
            let mut now = 0u64;
            for (op, node, value) in ops {
                match op {
                    0 => {
                        wheel.remove(&mut nodes, node);
                        let when = now + 1 + value;
                        wheel.insert(&mut nodes, node, when);
                        model[node as usize] = Some(when);
                    }
                    1 => {
                        wheel.remove(&mut nodes, node);
                        model[node as usize] = None;
                    }
                    _ => {
                        now += value % 5000;
                        let fired = drain(&mut wheel, &mut nodes, now);
                        let expected: Vec<u32> = (0..32u32)
                            .filter(|&n| model[n as usize].is_some_and(|w| w <= now))
                            .collect();
                        prop_assert_eq!(fired, expected);
                        for m in &mut model {
                            if m.is_some_and(|w| w <= now) {
                                *m = None;
                            }
                        }
                    }
                }
                wheel.validate(&mut nodes);
            }
        }
    }
}
