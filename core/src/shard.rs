//! One shard of the store: the keys whose hash picks it, their slots, its timer
//! wheel and its code generator, all behind one lock held by [`crate::Engine`].
//!
//! # Layout
//! Slots live densely in a `Vec` (removal swaps the last slot into the hole), and
//! an [`IndexTable`] maps a key's hash to its slot index: one 64-byte group per
//! probe holds the tags and the indices together, so a lookup costs one cache
//! miss for the index and one for the slot. Keeping the big slots out of the
//! table means its empty entries cost 5 bytes, not a slot's 80, and the slot
//! array never has holes that are resident but unused.
//!
//! # Ground rules
//! - Every slot is in the table once and, between operations, scheduled in the
//!   wheel once, no later than [`Shard::next_event`] (the earliest pending code's
//!   expiry, else the moment the slot may be forgotten). A slot that fires early
//!   is simply rescheduled; one that would fire late is moved at once.
//! - A slot exists while anything about its key must be remembered: a code
//!   (pending, expired or burned) until its expiry plus its ttl; the cooldown and
//!   window of its last issues; its failure count until one lockout after the last
//!   failure. After that it is removed and its capacity returned.
//! - A slot whose key has nothing left to remember may be kept, reset, as a
//!   *spare* (`ttl == 0`) for the same key's next issue, until its timer fires.
//!   Consuming a code and issuing the next one for the same key then costs no
//!   table removal and insertion, no wheel unlinking (whose neighbours are random
//!   cache lines) and no slot relocation. Spares are answered exactly like
//!   absent keys, are not counted in `held()`, and keep their capacity
//!   reservation; they are made only while the engine is under half full, and a
//!   full engine drops them all before refusing a new key.
//! - `live` counts slots with at least one code in state `Pending`. A pending code
//!   past its deadline is turned into `Expired` when the wheel fires or when an
//!   operation finds it, whichever comes first; deadlines themselves are always
//!   checked exactly, so the wheel's timing never changes a verdict.
//! - The newest code's `expires_at - ttl` is the key's last issue time, kept even
//!   after the code is consumed or revoked, because the cooldown outlives the code.

use std::sync::atomic::{AtomicU64, Ordering};

use subtle::Choice;

use crate::clock::Millis;
use crate::code::{Code, CodeSource};
use crate::digest::{CodeDigest, CodeDigestPrefix, KeyId};
use crate::policy::Policy;
use crate::rules::{self, CodeRecord, CodeState, Limits};
use crate::stats::Counters;
use crate::table::IndexTable;
use crate::wheel::{Link, Nodes, Pos, Wheel, NIL};

/// Most timers an ordinary operation processes before doing its own work, so a
/// mass expiry is spread over many calls instead of stalling one.
pub(crate) const OP_BUDGET: usize = 32;

/// What is shared by all shards of one engine.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    /// Slots held across all shards, against `policy.capacity`.
    pub(crate) held: crossbeam_utils::CachePadded<AtomicU64>,
    /// Per-engine random hash of key ids: the table layout stays unpredictable
    /// even to someone who knows the digest secret.
    pub(crate) hasher: ahash::RandomState,
}

impl Shared {
    pub(crate) fn hash(&self, key_id: KeyId) -> u64 {
        self.hasher.hash_one(key_id.0)
    }

    fn reserve(&self) -> bool {
        let capacity = self.policy.capacity;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < capacity).then_some(held + 1)
            })
            .is_ok()
    }
}

/// Older codes of a key when `codes_per_key > 1`, newest first.
struct OlderCodes {
    owner: u32,
    codes: [CodeRecord; 3],
}

/// Everything the engine holds for one key: 80 bytes.
///
/// `ttl == 0` marks a spare (see the ground rules): a slot that holds a code
/// always has a ttl of at least a second.
struct Slot {
    key_id: KeyId,
    link: Link,
    pos: Pos,
    // The newest code, flattened (a nested record would cost padding).
    digest: CodeDigest,
    expires_at: Millis,
    ttl: u32,
    state: CodeState,
    /// Wrong guesses left for the key's pending codes together.
    attempts_left: u8,
    /// Index into `Shard::older`, or `NIL`.
    older: u32,
    window_start: Millis,
    /// Issues in the window that started at `window_start`; 0: no window running.
    window_count: u16,
    last_failure_at: Millis,
    failures: u16,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 80);

impl Slot {
    fn new(key_id: KeyId) -> Self {
        Slot {
            key_id,
            link: Link::UNLINKED,
            pos: Pos::NONE,
            digest: CodeDigest(0),
            expires_at: 0,
            ttl: 0,
            state: CodeState::Empty,
            attempts_left: 0,
            older: NIL,
            window_start: 0,
            window_count: 0,
            last_failure_at: 0,
            failures: 0,
        }
    }

    fn newest(&self) -> CodeRecord {
        CodeRecord {
            digest: self.digest,
            expires_at: self.expires_at,
            ttl: self.ttl,
            state: self.state,
        }
    }

    fn set_newest(&mut self, r: CodeRecord) {
        self.digest = r.digest;
        self.expires_at = r.expires_at;
        self.ttl = r.ttl;
        self.state = r.state;
    }

    fn last_issue_at(&self) -> Millis {
        self.expires_at - Millis::from(self.ttl)
    }

    /// The key's rate history and failure count, as the rules read them.
    fn limits(&self) -> Limits {
        Limits {
            last_issue_at: self.last_issue_at(),
            window_start: self.window_start,
            window_count: self.window_count,
            last_failure_at: self.last_failure_at,
            failures: self.failures,
        }
    }

    fn is_spare(&self) -> bool {
        self.ttl == 0
    }
}

/// What a shard holds for a key, as of now.
enum Lookup {
    /// A slot with state to remember.
    Held(u32),
    /// A spare slot: the key is forgotten, but its slot can be reused.
    Spare(u32),
    /// Nothing.
    Absent,
}

impl Nodes for Vec<Slot> {
    fn link(&mut self, node: u32) -> &mut Link {
        &mut self[node as usize].link
    }
    fn pos(&mut self, node: u32) -> &mut Pos {
        &mut self[node as usize].pos
    }
}

/// What an issue asks of a shard, prepared before its lock is taken.
pub(crate) struct IssueRequest {
    pub(crate) key_id: KeyId,
    pub(crate) hash: u64,
    pub(crate) prefix: CodeDigestPrefix,
    pub(crate) ttl: Millis,
}

/// Why a shard did not issue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    RateLimited(Millis),
    Locked(Millis),
    Full,
}

/// A shard's answer to a verify.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Verified,
    Mismatch(u32),
    Locked(Millis),
    Expired,
    NotFound,
}

/// Bytes a shard holds, by structure.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ShardMemory {
    pub(crate) table: usize,
    pub(crate) slots: usize,
    pub(crate) older: usize,
    pub(crate) wheel: usize,
}

pub(crate) struct Shard {
    table: IndexTable,
    slots: Vec<Slot>,
    older: Vec<OlderCodes>,
    wheel: Wheel,
    codes: CodeSource,
    /// The latest time any call brought into this shard: a call that read the
    /// clock before waiting for the lock never moves the shard's time back.
    now: Millis,
    live: u64,
    /// Spare slots (see the ground rules).
    spares: usize,
    pub(crate) counters: Counters,
}

impl Shard {
    pub(crate) fn new(now: Millis) -> Self {
        Shard {
            table: IndexTable::default(),
            slots: Vec::new(),
            older: Vec::new(),
            wheel: Wheel::new(now),
            codes: CodeSource::new(),
            now,
            live: 0,
            spares: 0,
            counters: Counters::default(),
        }
    }

    /// Keys with a pending code, as of the last time this shard's timers ran.
    pub(crate) fn live(&self) -> u64 {
        self.live
    }

    /// Keys this shard holds any state for.
    pub(crate) fn held(&self) -> usize {
        self.slots.len() - self.spares
    }

    /// Slots, spares included: what this shard has reserved against the capacity.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn reserved(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn memory(&self) -> ShardMemory {
        ShardMemory {
            table: self.table.allocation_size(),
            slots: self.slots.capacity() * std::mem::size_of::<Slot>(),
            older: self.older.capacity() * std::mem::size_of::<OlderCodes>(),
            wheel: self.wheel.memory_bytes(),
        }
    }

    /// Runs up to `budget` due timers; returns how many ran.
    pub(crate) fn reclaim(&mut self, shared: &Shared, now: Millis, budget: usize) -> usize {
        let now = self.advance_to(now);
        let mut ran = 0;
        while ran < budget {
            let Some(i) = self.wheel.pop_due(&mut self.slots, now) else {
                break;
            };
            ran += 1;
            if !self.slots[i as usize].is_spare() {
                self.forget_old_failures(&shared.policy, i, now);
                self.expire_due_codes(i, now);
                if self.forget_at(&shared.policy, i) > now {
                    self.settle(shared, i, now);
                    continue;
                }
            }
            // A timer that finds nothing left to remember frees the slot for good.
            self.remove_slot(shared, i);
        }
        ran
    }

    pub(crate) fn issue(
        &mut self,
        shared: &Shared,
        req: &IssueRequest,
        now: Millis,
        count_full: bool,
    ) -> Result<Code, Refusal> {
        let p = &shared.policy;
        let now = self.begin(shared, now);
        let i = match self.lookup(shared, req.hash, req.key_id, now) {
            Lookup::Held(i) => {
                if let Some(left) = self.lockout_left(p, i, now) {
                    self.counters.locked += 1;
                    return Err(Refusal::Locked(left));
                }
                let wait = self.rate_wait(p, i, now);
                if wait > 0 {
                    self.counters.rate_limited += 1;
                    return Err(Refusal::RateLimited(wait));
                }
                i
            }
            Lookup::Spare(i) => {
                // A forgotten key: its spare slot is as good as a new one.
                self.spares -= 1;
                i
            }
            Lookup::Absent => {
                if self.slots.len() >= NIL as usize || !shared.reserve() {
                    if count_full {
                        self.counters.capacity_exceeded += 1;
                    }
                    return Err(Refusal::Full);
                }
                self.insert_slot(shared, req.key_id, req.hash)
            }
        };

        let code = self.codes.generate(p.alphabet, p.code_length);
        let record = CodeRecord {
            digest: req.prefix.finish(code.as_bytes()),
            expires_at: now + req.ttl,
            ttl: req.ttl as u32,
            state: CodeState::Pending,
        };

        let was_live = self.is_live(i);
        self.push_older(p, i);
        let slot = &mut self.slots[i as usize];
        slot.set_newest(record);
        slot.attempts_left = p.max_attempts;
        if p.max_issues_per_window > 0 {
            if slot.window_count == 0 || now >= slot.window_start + p.issue_window {
                slot.window_start = now;
                slot.window_count = 1;
            } else {
                slot.window_count += 1;
            }
        }
        self.relive(i, was_live);
        self.counters.issued += 1;
        self.settle(shared, i, now);
        Ok(code)
    }

    /// `guess` is the digest of the normalised code typed, or `None` when what was
    /// typed cannot be a code (a counted mismatch all the same).
    pub(crate) fn verify(
        &mut self,
        shared: &Shared,
        key_id: KeyId,
        hash: u64,
        guess: Option<CodeDigest>,
        now: Millis,
    ) -> Outcome {
        let p = &shared.policy;
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, key_id, now) else {
            self.counters.not_found += 1;
            return Outcome::NotFound;
        };
        if let Some(left) = self.lockout_left(p, i, now) {
            self.counters.locked += 1;
            return Outcome::Locked(left);
        }
        if self.codes(i).all(|c| c.state == CodeState::Empty) {
            self.counters.not_found += 1;
            return Outcome::NotFound;
        }
        if self.slots[i as usize].state == CodeState::Burned {
            self.counters.locked += 1;
            return Outcome::Locked(0);
        }

        // Compare against every code, in constant time, before deciding anything.
        let well_formed = Choice::from(guess.is_some() as u8);
        let guess = guess.unwrap_or_default();
        let (mut hit_pending, mut hit_expired) = (Choice::from(0), Choice::from(0));
        let mut any_pending = false;
        for c in self.codes(i) {
            let hit = c.digest.ct_eq(guess) & well_formed;
            match c.state {
                CodeState::Pending => {
                    any_pending = true;
                    hit_pending |= hit;
                }
                CodeState::Expired => hit_expired |= hit,
                CodeState::Empty | CodeState::Burned => {}
            }
        }

        let outcome = if bool::from(hit_pending) {
            self.clear_codes(i, CodeState::Empty);
            self.slots[i as usize].failures = 0;
            self.counters.verified += 1;
            Outcome::Verified
        } else if !any_pending || bool::from(hit_expired) {
            self.counters.expired += 1;
            Outcome::Expired
        } else {
            self.fail(p, i, now)
        };
        self.settle(shared, i, now);
        outcome
    }

    /// A counted wrong guess (`rules::fail`), and what it answers.
    fn fail(&mut self, p: &Policy, i: u32, now: Millis) -> Outcome {
        let slot = &mut self.slots[i as usize];
        let attempts_left = rules::fail(
            p,
            &mut slot.attempts_left,
            &mut slot.failures,
            &mut slot.last_failure_at,
            now,
        );
        if attempts_left > 0 {
            self.counters.mismatched += 1;
            return Outcome::Mismatch(attempts_left);
        }
        self.clear_codes(i, CodeState::Burned);
        self.counters.locked += 1;
        Outcome::Locked(self.lockout_left(p, i, now).unwrap_or(0))
    }

    /// Drops the key's codes; `true` if one of them was still pending.
    pub(crate) fn revoke(
        &mut self,
        shared: &Shared,
        key_id: KeyId,
        hash: u64,
        now: Millis,
    ) -> bool {
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, key_id, now) else {
            return false;
        };
        let had_pending = self.is_live(i);
        self.clear_codes(i, CodeState::Empty);
        if had_pending {
            self.counters.revoked += 1;
        }
        self.settle(shared, i, now);
        had_pending
    }

    /// Lifts a lockout and clears the failure count; `true` if there was one to clear.
    pub(crate) fn unlock(
        &mut self,
        shared: &Shared,
        key_id: KeyId,
        hash: u64,
        now: Millis,
    ) -> bool {
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, key_id, now) else {
            return false;
        };
        let had_failures = self.slots[i as usize].failures > 0;
        self.slots[i as usize].failures = 0;
        self.settle(shared, i, now);
        had_failures
    }

    /// Every operation starts here: time never runs backwards within a shard, and
    /// some due timers are run so that expiry keeps pace with the traffic.
    fn begin(&mut self, shared: &Shared, now: Millis) -> Millis {
        let now = self.advance_to(now);
        self.reclaim(shared, now, OP_BUDGET);
        now
    }

    fn advance_to(&mut self, now: Millis) -> Millis {
        self.now = self.now.max(now);
        self.now
    }

    /// The key's slot as of `now`, if it holds anything: past failures and codes
    /// brought up to date, and `None` if everything about the key is due to be
    /// forgotten (the wheel may not have got to it yet; answers never depend on
    /// when it does).
    fn current(&mut self, shared: &Shared, hash: u64, key_id: KeyId, now: Millis) -> Option<u32> {
        match self.lookup(shared, hash, key_id, now) {
            Lookup::Held(i) => Some(i),
            Lookup::Spare(_) | Lookup::Absent => None,
        }
    }

    /// [`Shard::current`], telling a spare slot apart from none.
    fn lookup(&mut self, shared: &Shared, hash: u64, key_id: KeyId, now: Millis) -> Lookup {
        let Some(i) = self.find(hash, key_id) else {
            return Lookup::Absent;
        };
        if self.slots[i as usize].is_spare() {
            return Lookup::Spare(i);
        }
        self.forget_old_failures(&shared.policy, i, now);
        self.expire_due_codes(i, now);
        if self.forget_at(&shared.policy, i) <= now {
            return match self.forget(shared, i, now) {
                Some(spare) => Lookup::Spare(spare),
                None => Lookup::Absent,
            };
        }
        Lookup::Held(i)
    }

    /// Forgets slot `i`'s key: keeps the slot as a spare while the engine is under
    /// half full (returning it), else removes it.
    fn forget(&mut self, shared: &Shared, i: u32, now: Millis) -> Option<u32> {
        debug_assert!(
            !self.is_live(i),
            "a slot with a pending code is never forgotten"
        );
        if shared.held.load(Ordering::Relaxed) >= shared.policy.capacity / 2 {
            self.remove_slot(shared, i);
            return None;
        }
        self.free_older(i);
        let slot = &mut self.slots[i as usize];
        let (link, pos) = (slot.link, slot.pos);
        *slot = Slot {
            link,
            pos,
            ..Slot::new(slot.key_id)
        };
        if pos == Pos::NONE {
            // Every slot has a timer; a spare's removes it when it fires.
            self.wheel.insert(&mut self.slots, i, now);
        }
        self.spares += 1;
        Some(i)
    }

    /// Removes every spare slot: a full engine makes room before refusing a key.
    pub(crate) fn drop_spares(&mut self, shared: &Shared) {
        // Downwards, so the slot that `swap_remove` moves into a hole was seen.
        for i in (0..self.slots.len() as u32).rev() {
            if self.spares == 0 {
                break;
            }
            if self.slots[i as usize].is_spare() {
                self.remove_slot(shared, i);
            }
        }
    }

    fn find(&self, hash: u64, key_id: KeyId) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |i| slots[i as usize].key_id == key_id)
    }

    fn insert_slot(&mut self, shared: &Shared, key_id: KeyId, hash: u64) -> u32 {
        let i = self.slots.len() as u32;
        self.slots.push(Slot::new(key_id));
        let slots = &self.slots;
        self.table
            .insert(hash, i, |j| shared.hash(slots[j as usize].key_id));
        i
    }

    /// Reschedules slot `i` after a change, or removes it when nothing about its key
    /// needs remembering any more. `i` may name another slot afterwards.
    fn settle(&mut self, shared: &Shared, i: u32, now: Millis) {
        self.expire_due_codes(i, now);
        let forget_at = self.forget_at(&shared.policy, i);
        if forget_at <= now {
            self.forget(shared, i, now);
            return;
        }
        let when = self.next_event(i, forget_at);
        let slot = &self.slots[i as usize];
        if slot.pos != Pos::NONE && slot.link.when <= when {
            // Scheduled no later than needed: leave it. If it fires early, this
            // runs again then and moves it on. Moving it now would cost a removal
            // and an insertion, each touching random neighbours' cache lines, on
            // nearly every call (a new code, a consumed one, both push the event
            // later).
            return;
        }
        self.wheel.remove(&mut self.slots, i);
        self.wheel.insert(&mut self.slots, i, when);
    }

    fn next_event(&self, i: u32, forget_at: Millis) -> Millis {
        rules::next_event(self.codes(i), forget_at)
    }

    fn forget_at(&self, p: &Policy, i: u32) -> Millis {
        rules::forget_at(p, &self.slots[i as usize].limits(), self.codes(i))
    }

    fn forget_old_failures(&mut self, p: &Policy, i: u32, now: Millis) {
        let slot = &mut self.slots[i as usize];
        slot.failures = rules::failures_now(p, &slot.limits(), now);
    }

    fn lockout_left(&self, p: &Policy, i: u32, now: Millis) -> Option<Millis> {
        rules::lockout_left(p, &self.slots[i as usize].limits(), now)
    }

    fn rate_wait(&self, p: &Policy, i: u32, now: Millis) -> Millis {
        rules::rate_wait(p, &self.slots[i as usize].limits(), now)
    }

    fn is_live(&self, i: u32) -> bool {
        self.codes(i).any(|c| c.state == CodeState::Pending)
    }

    /// Updates `live` after slot `i` changed; `was_live` is what it was before.
    fn relive(&mut self, i: u32, was_live: bool) {
        match (was_live, self.is_live(i)) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
    }

    /// Turns pending codes whose time is over into expired ones, in place.
    fn expire_due_codes(&mut self, i: u32, now: Millis) {
        let expire = |state: &mut CodeState, expires_at: Millis| {
            let due = *state == CodeState::Pending && now >= expires_at;
            if due {
                *state = CodeState::Expired;
            }
            due
        };
        let slot = &mut self.slots[i as usize];
        let mut expired = expire(&mut slot.state, slot.expires_at);
        if slot.older != NIL {
            for c in &mut self.older[slot.older as usize].codes {
                expired |= expire(&mut c.state, c.expires_at);
            }
        }
        // Something expired, so the key had a pending code: it is live no longer
        // unless another one is still pending.
        if expired && !self.is_live(i) {
            self.live -= 1;
        }
    }

    /// Sets every code of slot `i` to `state` (`Empty`: forgotten; `Burned`: the
    /// newest stands for all of them) and drops the older ones.
    fn clear_codes(&mut self, i: u32, state: CodeState) {
        let was_live = self.is_live(i);
        self.free_older(i);
        self.slots[i as usize].state = state;
        self.relive(i, was_live);
    }

    /// Makes room for a new newest code: with `codes_per_key > 1` the current
    /// newest becomes the first of the older codes (dropping the oldest).
    fn push_older(&mut self, p: &Policy, i: u32) {
        let newest = self.slots[i as usize].newest();
        let keep = matches!(newest.state, CodeState::Pending | CodeState::Expired);
        if p.codes_per_key == 1 || !keep {
            self.free_older(i);
            return;
        }
        let older = self.slots[i as usize].older;
        let o = if older == NIL {
            self.older.push(OlderCodes {
                owner: i,
                codes: [CodeRecord::EMPTY; 3],
            });
            let o = (self.older.len() - 1) as u32;
            self.slots[i as usize].older = o;
            o
        } else {
            older
        };
        let kept = usize::from(p.codes_per_key) - 1;
        let codes = &mut self.older[o as usize].codes;
        codes.copy_within(0..kept - 1, 1);
        codes[0] = newest;
    }

    /// The key's codes, newest first; with one code per key, just the newest.
    fn codes(&self, i: u32) -> impl Iterator<Item = CodeRecord> + '_ {
        let slot = &self.slots[i as usize];
        let older: &[CodeRecord] = match slot.older {
            NIL => &[],
            o => &self.older[o as usize].codes,
        };
        std::iter::once(slot.newest()).chain(older.iter().copied())
    }

    fn free_older(&mut self, i: u32) {
        let o = std::mem::replace(&mut self.slots[i as usize].older, NIL);
        if o == NIL {
            return;
        }
        self.older.swap_remove(o as usize);
        if let Some(moved) = self.older.get(o as usize) {
            self.slots[moved.owner as usize].older = o;
        }
        shrink_vec(&mut self.older);
    }

    fn remove_slot(&mut self, shared: &Shared, i: u32) {
        debug_assert!(
            !self.is_live(i),
            "a slot with a pending code is never forgotten"
        );
        if self.slots[i as usize].is_spare() {
            self.spares -= 1;
        }
        self.wheel.remove(&mut self.slots, i);
        self.free_older(i);
        let hash = shared.hash(self.slots[i as usize].key_id);
        let slots = &self.slots;
        self.table
            .remove(hash, i, |j| shared.hash(slots[j as usize].key_id));
        let last = (self.slots.len() - 1) as u32;
        self.slots.swap_remove(i as usize);
        if i != last {
            let moved = &self.slots[i as usize];
            let hash = shared.hash(moved.key_id);
            let older = moved.older;
            self.table.replace(hash, last, i);
            self.wheel.relocate(&mut self.slots, last, i);
            if older != NIL {
                self.older[older as usize].owner = i;
            }
        }
        shared.held.fetch_sub(1, Ordering::Relaxed);
        shrink_vec(&mut self.slots);
    }

    /// Checks every ground rule; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&mut self, shared: &Shared) {
        assert_eq!(self.table.len(), self.slots.len());
        let slots = &self.slots;
        self.table
            .validate(|j| shared.hash(slots[j as usize].key_id));
        for (i, slot) in self.slots.iter().enumerate() {
            let found = self.find(shared.hash(slot.key_id), slot.key_id);
            assert_eq!(found, Some(i as u32), "slot {i} is found through the table");
            assert_ne!(slot.pos, Pos::NONE, "slot {i} is scheduled");
            if slot.is_spare() {
                assert_eq!(slot.state, CodeState::Empty, "spare {i} holds no code");
                assert_eq!(slot.older, NIL, "spare {i} holds no older codes");
                assert_eq!(
                    (slot.failures, slot.window_count),
                    (0, 0),
                    "spare {i} holds no counts"
                );
                continue;
            }
            let due = self.next_event(i as u32, self.forget_at(&shared.policy, i as u32));
            assert!(
                slot.link.when <= due,
                "slot {i} is scheduled no later than its next event"
            );
            if slot.older != NIL {
                assert_eq!(self.older[slot.older as usize].owner, i as u32);
            }
        }
        assert_eq!(
            self.older.len(),
            self.slots.iter().filter(|s| s.older != NIL).count()
        );
        let live = (0..self.slots.len() as u32)
            .filter(|&i| self.is_live(i))
            .count();
        assert_eq!(self.live, live as u64, "live count");
        let spares = self.slots.iter().filter(|s| s.is_spare()).count();
        assert_eq!(self.spares, spares, "spare count");
        let linked = self.wheel.validate(&mut self.slots);
        assert_eq!(linked, self.slots.len(), "every slot is in the wheel once");
    }
}

fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.capacity() >= 64 && v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}
