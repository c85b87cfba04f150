//! A hierarchical timing wheel (Varghese and Lauck, 1987) of lazily checked timers.
//!
//! Six levels of 64 slots over a shard's 32-bit milliseconds (offsets from its
//! epoch); a slot of level `L` spans 64^L milliseconds, so the wheel reaches past
//! every 32-bit time and never clamps. Following tokio's timer, a deadline `at`
//! goes to level `ilog2(elapsed ^ at) / 6`, slot `(at >> 6L) % 64`; each level
//! keeps a `u64` bitmap of occupied slots searched with `trailing_zeros`; a slot
//! is taken whole when its time comes, and its timers either fall due or move
//! down a level.
//!
//! # Lazy timers
//! A [`Timer`] names its key by the key's table hash and carries its deadline; it
//! is not linked to the key's row. The table's rows move (on growth and shrink,
//! and when Robin Hood insertion or backward-shift deletion pass them), and a row
//! that moves would otherwise have to fix its neighbours in the wheel, each a
//! random cache line. Instead a key whose next event moves earlier gets a second
//! timer and keeps the first; a key that is forgotten leaves its timer behind.
//! When a timer fires the shard looks the hash up and acts only if the row is
//! there and due (its `timer_at` has come): a stale timer costs one lookup, once.
//!
//! # Ground rules
//! - A timer is in exactly one list: a level slot or the due list.
//! - A timer in a level slot has `at > elapsed`; a timer in the due list has
//!   `at <= elapsed`. `elapsed` only moves to the start of a slot being taken,
//!   or to `now` when no occupied slot starts at or before `now`, so a slot is
//!   never passed over, and timers are never handed out early.

use std::mem;

const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;

/// A key's timer: its table hash (split in halves so a timer takes 12 bytes, not
/// 16) and its deadline in the shard's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Timer {
    hash_lo: u32,
    hash_hi: u32,
    /// The deadline.
    pub(crate) at: u32,
}

const _: () = assert!(mem::size_of::<Timer>() == 12);

impl Timer {
    pub(crate) fn new(hash: u64, at: u32) -> Self {
        Timer {
            hash_lo: hash as u32,
            hash_hi: (hash >> 32) as u32,
            at,
        }
    }

    pub(crate) fn hash(self) -> u64 {
        u64::from(self.hash_hi) << 32 | u64::from(self.hash_lo)
    }
}

/// The wheel of one shard.
pub(crate) struct Wheel {
    /// Time up to which slots have been processed.
    elapsed: u32,
    /// No deadline in the wheel is earlier than this (a cheap early-out for
    /// `pop_due`); `u64::MAX`: none is known.
    earliest: u64,
    occupied: [u64; LEVELS],
    /// `LEVELS * SLOTS` lists, allocated with the first timer (an idle shard of
    /// an engine with thousands of shards holds none).
    lists: Vec<Vec<Timer>>,
    /// Timers whose deadline has passed, not yet handed out.
    due: Vec<Timer>,
    len: usize,
}

impl Wheel {
    /// An empty wheel whose time starts at `now`.
    pub(crate) fn new(now: u32) -> Self {
        Wheel {
            elapsed: now,
            earliest: u64::MAX,
            occupied: [0; LEVELS],
            lists: Vec::new(),
            due: Vec::new(),
            len: 0,
        }
    }

    /// Timers held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the wheel occupies, by allocated capacity.
    pub(crate) fn memory_bytes(&self) -> usize {
        let timers: usize =
            self.lists.iter().map(Vec::capacity).sum::<usize>() + self.due.capacity();
        mem::size_of::<Self>()
            + self.lists.capacity() * mem::size_of::<Vec<Timer>>()
            + timers * mem::size_of::<Timer>()
    }

    /// Schedules `timer`.
    pub(crate) fn insert(&mut self, timer: Timer) {
        self.len += 1;
        self.earliest = self.earliest.min(u64::from(timer.at));
        if timer.at <= self.elapsed {
            self.due.push(timer);
            return;
        }
        if self.lists.is_empty() {
            self.lists = (0..LEVELS * SLOTS).map(|_| Vec::new()).collect();
        }
        let level = level_for(self.elapsed, timer.at);
        let slot = (timer.at >> (SLOT_BITS as usize * level)) as usize % SLOTS;
        self.lists[level * SLOTS + slot].push(timer);
        self.occupied[level] |= 1 << slot;
    }

    /// True when [`Wheel::pop_due`] would hand out nothing at `now` and change
    /// nothing: no due timer, none before the earliest deadline, and timers
    /// held (an empty wheel moves its time up to `now`). Inlined into every
    /// call of a shard, which then skips the timer loop.
    #[inline]
    pub(crate) fn none_due(&self, now: u32) -> bool {
        self.due.is_empty() && u64::from(now) < self.earliest && self.len > 0
    }

    /// Hands out one timer whose deadline is at or before `now`, taking it out of
    /// the wheel, or `None` when there is none. Cascades higher levels as time passes.
    pub(crate) fn pop_due(&mut self, now: u32) -> Option<Timer> {
        loop {
            if let Some(timer) = self.due.pop() {
                self.len -= 1;
                if self.due.is_empty() {
                    release(&mut self.due);
                }
                if self.len == 0 {
                    self.lists = Vec::new();
                    self.earliest = u64::MAX;
                }
                return Some(timer);
            }
            if u64::from(now) < self.earliest {
                if self.len == 0 {
                    // Nothing is scheduled: time may move up to now, so that a later
                    // insert is placed relative to the present.
                    self.elapsed = self.elapsed.max(now);
                }
                return None;
            }
            match self.next_expiration() {
                Some((level, slot, deadline)) if deadline <= u64::from(now) => {
                    self.take_slot(level, slot, deadline as u32, now)
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

    /// The first occupied slot and when it starts: lower levels hold earlier
    /// deadlines than higher ones.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let elapsed = u64::from(self.elapsed);
        (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let slot_range = 1u64 << (SLOT_BITS as usize * level);
            let level_range = slot_range << SLOT_BITS;
            let now_slot = elapsed / slot_range;
            let rotated = occupied.rotate_right((now_slot % SLOTS as u64) as u32);
            let slot = (rotated.trailing_zeros() as u64 + now_slot) % SLOTS as u64;
            let level_start = elapsed & !(level_range - 1);
            let mut deadline = level_start + slot * slot_range;
            if deadline <= elapsed {
                deadline += level_range;
            }
            Some((level, slot as usize, deadline))
        })
    }

    fn take_slot(&mut self, level: usize, slot: usize, deadline: u32, now: u32) {
        let timers = mem::take(&mut self.lists[level * SLOTS + slot]);
        self.occupied[level] &= !(1 << slot);
        self.elapsed = deadline;
        if self.occupied == [0; LEVELS] {
            // Nothing else is scheduled, so no slot can be passed over: jump straight
            // to the earliest deadline taken (or to now).
            let earliest = timers.iter().map(|t| t.at).min().unwrap_or(now);
            self.elapsed = self.elapsed.max(earliest.min(now));
        }
        self.len -= timers.len();
        for timer in timers {
            self.insert(timer);
        }
    }

    /// Every timer held, for the shard's check of its rows; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn timers(&self) -> impl Iterator<Item = Timer> + '_ {
        self.lists.iter().flatten().chain(&self.due).copied()
    }

    /// Checks every ground rule; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self) {
        let mut count = self.due.len();
        for t in &self.due {
            assert!(t.at <= self.elapsed, "a due timer is due");
        }
        for (i, list) in self.lists.iter().enumerate() {
            let (level, slot) = (i / SLOTS, i % SLOTS);
            assert_eq!(
                self.occupied[level] & (1 << slot) != 0,
                !list.is_empty(),
                "occupancy bit of level {level} slot {slot}"
            );
            for t in list {
                assert!(
                    t.at > self.elapsed,
                    "a timer in a level slot is in the future"
                );
                assert!(self.earliest <= u64::from(t.at));
            }
            count += list.len();
        }
        if self.lists.is_empty() {
            assert_eq!(self.occupied, [0; LEVELS]);
        }
        assert_eq!(count, self.len);
    }
}

/// Frees a drained list's memory when it had grown large: a mass expiry gives
/// its memory back.
fn release(list: &mut Vec<Timer>) {
    if list.capacity() > 64 {
        *list = Vec::new();
    }
}

/// The level whose slots separate `elapsed` from `at`.
fn level_for(elapsed: u32, at: u32) -> usize {
    let masked = u64::from(elapsed ^ at) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(wheel: &mut Wheel, now: u32) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(t) = wheel.pop_due(now) {
            assert!(t.at <= now, "never early");
            out.push(t.hash());
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
        assert_eq!(level_for(0, u32::MAX), 5);
    }

    #[test]
    fn timers_fire_exactly_at_their_deadline_across_levels() {
        let deadlines = [
            1u32,
            63,
            64,
            65,
            130,
            4095,
            4096,
            300_000,
            3_600_000,
            2_592_000_000,
            u32::MAX,
        ];
        let mut wheel = Wheel::new(0);
        for (i, &at) in deadlines.iter().enumerate() {
            wheel.insert(Timer::new(i as u64 | 1 << 40, at));
        }
        wheel.validate();
        for (i, &at) in deadlines.iter().enumerate() {
            assert!(drain(&mut wheel, at - 1).is_empty(), "nothing before {at}");
            assert_eq!(drain(&mut wheel, at), vec![i as u64 | 1 << 40], "at {at}");
            wheel.validate();
        }
        assert_eq!(wheel.len(), 0);
        assert!(
            wheel.memory_bytes() <= mem::size_of::<Wheel>() + 64 * mem::size_of::<Timer>(),
            "memory given back"
        );
    }

    #[test]
    fn a_jump_to_the_end_of_time_fires_everything_in_few_steps() {
        let mut wheel = Wheel::new(5);
        for i in 0..1000u32 {
            wheel.insert(Timer::new(u64::from(i), 6 + i * 4_000_000));
        }
        assert_eq!(drain(&mut wheel, u32::MAX).len(), 1000);
    }

    proptest! {
        /// Inserts and advances against a plain list: every timer fires at the
        /// first `pop_due` at or after its deadline, never before.
        #[test]
        fn matches_a_plain_list(ops in prop::collection::vec((any::<bool>(), 0u32..200_000), 1..300)) {
            let mut wheel = Wheel::new(0);
            let mut now = 0u32;
            let mut pending: Vec<(u64, u32)> = Vec::new();
            for (n, (insert, x)) in ops.into_iter().enumerate() {
                if insert {
                    let at = now.saturating_add(x % 100_000);
                    wheel.insert(Timer::new(n as u64, at));
                    pending.push((n as u64, at));
                } else {
                    now = now.saturating_add(x);
                    let mut want: Vec<u64> =
                        pending.iter().filter(|p| p.1 <= now).map(|p| p.0).collect();
                    want.sort_unstable();
                    pending.retain(|p| p.1 > now);
                    prop_assert_eq!(drain(&mut wheel, now), want);
                }
                wheel.validate();
                prop_assert_eq!(wheel.len(), pending.len());
            }
        }
    }
}
