//! One shard of the store: the keys whose hash picks it, their rows, its timer
//! wheel and its code generator, all behind one lock held by [`crate::Engine`].
//!
//! # Layout
//! A key's whole state is one 48-byte [`Slot`] stored inline in an
//! open-addressing [`Table`], so a call finds the key and reads everything the
//! rules need in one cache line (sometimes two adjacent ones). Times in a slot
//! are 32-bit millisecond offsets from the shard's `epoch`; older codes (with
//! `codes_per_key > 1`) live in a side map keyed by the row's hash, touched only
//! when a row says it has some; so do failure histories that outgrow the row
//! (strikes, or a last failure older than the row's times reach). The wheel
//! holds lazy timers naming rows by hash (see `wheel.rs`), because rows move.
//!
//! # Ground rules
//! - Every row is, between operations, due in the wheel at its `timer_at` (a
//!   timer with its hash and that deadline exists), and `timer_at` is no later
//!   than [`Shard::next_event`] (the earliest pending code's expiry, else the
//!   moment the row may be forgotten), or than now for a row already overdue,
//!   nor than an hour ahead. A row that fires
//!   early is simply rescheduled; one that would fire late gets an earlier timer
//!   at once, and its later one goes stale.
//! - A timer is stale when its row is gone or its deadline is not the row's
//!   `timer_at`; a stale timer is dropped when it fires. The wheel is rebuilt from
//!   the rows when stale timers outnumber the rows plus 1024, so it stays within
//!   twice the rows.
//! - A row exists while anything about its key must be remembered: a code
//!   (pending, expired or burned) until its expiry plus its ttl; the cooldown and
//!   window of its last issues; its failure history for `rules::failure_memory`
//!   after the last failure. After that it is removed and its capacity returned.
//! - A row whose key has nothing left to remember may be kept, reset, as a
//!   *spare* for the same key's next issue, until its timer fires: consuming a code
//!   and issuing the next one for the same key then costs no deletion, insertion
//!   or new timer. Spares answer exactly like absent keys, are not counted in
//!   `held()`, and keep their capacity reservation; they are made only while the
//!   engine is under half full, and a full engine drops them all before refusing
//!   a new key.
//! - `live` counts rows with at least one code in state `Pending`. A pending code
//!   past its deadline is turned into `Expired` when the wheel fires or when an
//!   operation finds it, whichever comes first; deadlines themselves are always
//!   checked exactly, so the wheel's timing never changes a verdict.
//! - Every time stored in a row that still matters is at or after `epoch` and
//!   within 32 bits of it: nothing else matters for longer than [`RELEVANCE`]
//!   (the longest lockout without escalation), and the epoch moves up to
//!   `now - RELEVANCE` once `now` is [`REBASE_AFTER`] past it, shifting every
//!   row (times that no longer matter become the epoch itself) and rebuilding
//!   the wheel. A failure history, which may matter for up to two years with
//!   escalating lockouts, leaves the row for `Shard::histories` (absolute
//!   times) before a rebase would cut its time; so does any history with
//!   strikes, which the row has no bits for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use subtle::Choice;

use crate::clock::Millis;
use crate::code::{Code, CodeSource};
use crate::digest::{CodeDigest, CodeDigestPrefix};
use crate::policy::Policy;
use crate::rules::{self, CodeRecord, CodeState, Limits};
use crate::stats::Counters;
use crate::table::{Row, RowAt, Table};
use crate::totp::TotpCheck;
use crate::wheel::{Timer, Wheel};

/// Most timers an ordinary operation processes before doing its own work, so a
/// mass expiry is spread over many calls instead of stalling one.
pub(crate) const OP_BUDGET: usize = 32;

const DAY: Millis = 86_400_000;
/// The longest a time stored in a row matters: the longest lockout after a
/// key's last failure without escalation (30 days; every other duration is at
/// most a day). Longer failure histories live in `Shard::histories`.
pub(crate) const RELEVANCE: Millis = 30 * DAY;
/// How far `now` may run ahead of the epoch before it is moved: leaves room in
/// 32 bits (49.7 days) for a day's ttl and the timer horizon ahead of `now`.
pub(crate) const REBASE_AFTER: Millis = 40 * DAY;
/// Timers are set no further ahead than this; a row with a later event fires
/// early and is rescheduled. Keeps `timer_at` within 32 bits, and a stale timer
/// in the wheel for at most this long.
const TIMER_HORIZON: Millis = 3_600_000;
/// "No timer yet": a row being created.
const NO_TIMER: u32 = u32::MAX;
/// Stale timers tolerated beyond the rows before the wheel is rebuilt.
const STALE_TIMERS: usize = 1024;

/// What is shared by all shards of one engine.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    /// Rows held across all shards, against `policy.capacity`.
    pub(crate) held: crossbeam_utils::CachePadded<AtomicU64>,
}

impl Shared {
    /// Takes one row of the capacity; false when the engine is full.
    pub(crate) fn reserve(&self) -> bool {
        let capacity = self.policy.capacity;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < capacity).then_some(held + 1)
            })
            .is_ok()
    }
}

/// Everything the engine holds for one key: 40 bytes, one row of the table.
/// Times are offsets from the shard's epoch; the counters and states share one
/// word (see [`Packed`]).
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The key's table hash (from its key id); 0: an empty row.
    hash: u64,
    /// The newest code's digest.
    digest: CodeDigest,
    /// The newest code's expiry; minus its ttl, when it was issued (the
    /// cooldown's start, kept after the code is consumed or revoked, because the
    /// cooldown outlives the code).
    expires_at: u32,
    /// The deadline of the row's live timer.
    timer_at: u32,
    window_start: u32,
    last_failure_at: u32,
    packed: Packed,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 40);

/// A row's small fields in one word, each as wide as its bound needs:
///
/// | bits | field | bound |
/// |---|---|---|
/// | 0..27 | the newest code's ttl, ms | 24 h < 2^27 |
/// | 27..37 | issues in the window (0: no window running) | 1000 < 2^10 |
/// | 37..51 | counted failures | 10,000 < 2^14 |
/// | 51..58 | wrong guesses left for the pending codes | 100 < 2^7 |
/// | 58..60 | the newest code's [`CodeState`] | 4 states |
/// | 60 | a spare row (see the ground rules) | |
/// | 61 | older codes in `Shard::older` | |
/// | 62 | a TOTP row: `digest` holds the last accepted step plus one (0: none); the newest code's expiry is when it was accepted and its ttl how long it must be remembered from then | |
/// | 63 | the failure history is in `Shard::histories` (the row's `last_failure_at` is unused) | |
#[derive(Clone, Copy, Debug, Default)]
struct Packed(u64);

macro_rules! packed_field {
    ($(#[$getter:meta])* $get:ident, $set:ident, $ty:ty, $shift:expr, $bits:expr) => {
        $(#[$getter])*
        #[inline]
        fn $get(self) -> $ty {
            ((self.0 >> $shift) & ((1 << $bits) - 1)) as $ty
        }

        #[inline]
        fn $set(&mut self, value: $ty) {
            let mask: u64 = ((1 << $bits) - 1) << $shift;
            debug_assert!(
                u64::from(value) < 1 << $bits,
                "{} fits its bits",
                stringify!($get)
            );
            self.0 = (self.0 & !mask) | (u64::from(value) << $shift & mask);
        }
    };
}

impl Packed {
    packed_field!(ttl, set_ttl, u32, 0, 27);
    packed_field!(window_count, set_window_count, u16, 27, 10);
    packed_field!(failures, set_failures, u16, 37, 14);
    packed_field!(attempts_left, set_attempts_left, u8, 51, 7);
    packed_field!(state_bits, set_state_bits, u8, 58, 2);
    packed_field!(spare_bit, set_spare_bit, u8, 60, 1);
    packed_field!(older_bit, set_older_bit, u8, 61, 1);
    packed_field!(
        // Read only by the invariant checks; written by every TOTP verify.
        #[cfg_attr(not(any(test, feature = "model")), allow(dead_code))]
        totp_bit,
        set_totp_bit,
        u8,
        62,
        1
    );
    packed_field!(history_bit, set_history_bit, u8, 63, 1);

    #[inline]
    fn state(self) -> CodeState {
        match self.state_bits() {
            0 => CodeState::Empty,
            1 => CodeState::Pending,
            2 => CodeState::Expired,
            _ => CodeState::Burned,
        }
    }

    #[inline]
    fn set_state(&mut self, state: CodeState) {
        self.set_state_bits(state as u8);
    }
}

impl Row for Slot {
    const EMPTY: Slot = Slot::new(0);
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl Slot {
    const fn new(hash: u64) -> Self {
        Slot {
            hash,
            digest: CodeDigest(0),
            expires_at: 0,
            timer_at: NO_TIMER,
            window_start: 0,
            last_failure_at: 0,
            packed: Packed(0),
        }
    }

    #[inline]
    fn issued_at(&self) -> u32 {
        self.expires_at.saturating_sub(self.packed.ttl())
    }

    #[inline]
    fn state(&self) -> CodeState {
        self.packed.state()
    }

    #[inline]
    fn newest(&self, epoch: Millis) -> CodeRecord {
        CodeRecord {
            digest: self.digest,
            expires_at: epoch + Millis::from(self.expires_at),
            ttl: self.packed.ttl(),
            state: self.state(),
        }
    }

    /// The key's rate history and failure count, as the rules read them.
    #[inline]
    fn limits(&self, epoch: Millis) -> Limits {
        Limits {
            last_issue_at: epoch + Millis::from(self.issued_at()),
            window_start: epoch + Millis::from(self.window_start),
            window_count: self.packed.window_count(),
            last_failure_at: epoch + Millis::from(self.last_failure_at),
            failures: self.packed.failures(),
            strikes: 0,
        }
    }

    #[inline]
    fn is_spare(&self) -> bool {
        self.packed.spare_bit() != 0
    }

    #[inline]
    fn has_older(&self) -> bool {
        self.packed.older_bit() != 0
    }

    #[inline]
    fn has_history(&self) -> bool {
        self.packed.history_bit() != 0
    }
}

/// The part of a key's failure history that does not fit its row: kept for
/// keys with strikes, or whose last failure is older than the epoch.
#[derive(Clone, Copy, Debug)]
struct History {
    last_failure_at: Millis,
    strikes: u8,
}

/// What a shard holds for a key, as of now.
enum Lookup {
    /// A row with state to remember, at this position.
    Held(RowAt),
    /// A spare row: the key is forgotten, but its row can be reused.
    Spare(RowAt),
    /// Nothing.
    Absent,
}

/// What an issue asks of a shard, prepared before its lock is taken.
pub(crate) struct IssueRequest {
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
    Replayed,
}

/// Bytes a shard holds, by structure.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ShardMemory {
    pub(crate) table: usize,
    pub(crate) older: usize,
    pub(crate) histories: usize,
    pub(crate) wheel: usize,
}

pub(crate) struct Shard {
    table: Table<Slot>,
    /// Older codes of rows whose older-codes bit is set, newest first, by row hash.
    older: HashMap<u64, [CodeRecord; 3]>,
    /// Failure histories of rows whose history bit is set, by row hash.
    histories: HashMap<u64, History>,
    wheel: Wheel,
    codes: CodeSource,
    /// What the rows' and the wheel's 32-bit times count from.
    epoch: Millis,
    /// The latest time any call brought into this shard: a call that read the
    /// clock before waiting for the lock never moves the shard's time back.
    now: Millis,
    live: u64,
    /// Spare rows (see the ground rules).
    spares: usize,
    /// Whether the last call counted a failure (read by the scoped calls,
    /// which count it on their scopes too).
    failed: bool,
    pub(crate) counters: Counters,
}

impl Shard {
    pub(crate) fn new(now: Millis) -> Self {
        Shard {
            table: Table::default(),
            older: HashMap::new(),
            histories: HashMap::new(),
            wheel: Wheel::new(0),
            codes: CodeSource::new(),
            epoch: now,
            now,
            live: 0,
            spares: 0,
            failed: false,
            counters: Counters::default(),
        }
    }

    /// Whether the last call counted a failure against the key (a mismatch, or
    /// the failure that burned its code or locked it).
    pub(crate) fn counted_failure(&self) -> bool {
        self.failed
    }

    /// What the key's own limits say to an issue now, without counting it: the
    /// lockout's or the rate limit's wait, if one refuses. A scoped issue asks
    /// this first, to weigh the key's wait against its scopes'.
    pub(crate) fn issue_refusal(
        &mut self,
        shared: &Shared,
        hash: u64,
        now: Millis,
    ) -> Option<Refusal> {
        let p = &shared.policy;
        let now = self.begin(shared, now);
        let i = self.current(shared, hash, now)?;
        if let Some(left) = self.lockout_left(p, i, now) {
            return Some(Refusal::Locked(left));
        }
        let wait = self.rate_wait(p, i, now);
        (wait > 0).then_some(Refusal::RateLimited(wait))
    }

    /// The key's own lockout, if any: a verify refused by a scope's lockout
    /// answers the longer of the two waits.
    pub(crate) fn key_lockout_left(
        &mut self,
        shared: &Shared,
        hash: u64,
        now: Millis,
    ) -> Option<Millis> {
        let now = self.begin(shared, now);
        let i = self.current(shared, hash, now)?;
        self.lockout_left(&shared.policy, i, now)
    }

    /// Keys with a pending code, as of the last time this shard's timers ran.
    pub(crate) fn live(&self) -> u64 {
        self.live
    }

    /// Keys this shard holds any state for.
    pub(crate) fn held(&self) -> usize {
        self.table.len() - self.spares
    }

    /// Rows, spares included: what this shard has reserved against the capacity.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn reserved(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn memory(&self) -> ShardMemory {
        let older_entry = std::mem::size_of::<(u64, [CodeRecord; 3])>() + 1;
        let history_entry = std::mem::size_of::<(u64, History)>() + 1;
        ShardMemory {
            table: self.table.allocation_size(),
            older: self.older.capacity() * older_entry,
            histories: self.histories.capacity() * history_entry,
            wheel: self.wheel.memory_bytes(),
        }
    }

    /// Where the table's rows are (see [`crate::table::prefetch_home`]).
    pub(crate) fn extent(&self) -> (usize, usize) {
        self.table.extent()
    }

    /// Starts loading the row of `hash` in a table whose extent was `(base, rows)`.
    pub(crate) fn prefetch(base: usize, rows: usize, hash: u64) {
        crate::table::prefetch_home::<Slot>(base, rows, hash);
    }

    /// Runs up to `budget` due timers; returns how many ran.
    pub(crate) fn reclaim(&mut self, shared: &Shared, now: Millis, budget: usize) -> usize {
        let now = self.advance_to(now);
        let now32 = self.offset(now);
        let mut ran = 0;
        while ran < budget {
            let Some(timer) = self.wheel.pop_due(now32) else {
                break;
            };
            ran += 1;
            let Some(i) = self.table.find(timer.hash()) else {
                continue; // stale: the row is gone
            };
            if self.slot(i).timer_at != timer.at {
                continue; // stale: the row has another timer
            }
            if !self.slot(i).is_spare() {
                self.forget_old_failures(&shared.policy, i, now);
                self.expire_due_codes(i, now);
                let forget_at = self.forget_at(&shared.policy, i);
                if forget_at > now {
                    let when = self.next_event(i, forget_at);
                    self.schedule(i, when, now);
                    continue;
                }
            }
            // A timer that finds nothing left to remember frees the row for good.
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
        let i = match self.lookup(shared, req.hash, now) {
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
                // A forgotten key: its spare row is as good as a new one.
                self.spares -= 1;
                self.slot_mut(i).packed.set_spare_bit(0);
                i
            }
            Lookup::Absent => {
                if !shared.reserve() {
                    if count_full {
                        self.counters.capacity_exceeded += 1;
                    }
                    return Err(Refusal::Full);
                }
                self.table.insert(Slot::new(req.hash))
            }
        };

        let code = self.codes.generate(p.alphabet, p.code_length);
        let digest = req.prefix.finish(code.as_bytes());

        let was_live = self.is_live(i);
        self.push_older(p, i);
        let (issued_at, expires_at) = (self.offset(now), self.offset(now + req.ttl));
        let slot = self.slot_mut(i);
        slot.digest = digest;
        slot.expires_at = expires_at;
        slot.packed.set_ttl(req.ttl as u32);
        slot.packed.set_state(CodeState::Pending);
        slot.packed.set_attempts_left(p.max_attempts);
        if p.max_issues_per_window > 0 {
            let window_end = Millis::from(slot.window_start) + p.issue_window;
            let count = slot.packed.window_count();
            if count == 0 || Millis::from(issued_at) >= window_end {
                slot.window_start = issued_at;
                slot.packed.set_window_count(1);
            } else {
                slot.packed.set_window_count(count + 1);
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
        hash: u64,
        guess: Option<CodeDigest>,
        now: Millis,
    ) -> Outcome {
        let p = &shared.policy;
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, now) else {
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
        if self.slot(i).state() == CodeState::Burned {
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
            self.clear_failures(i);
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
    fn fail(&mut self, p: &Policy, i: RowAt, now: Millis) -> Outcome {
        self.failed = true;
        let mut limits = self.limits(i);
        let mut attempts = self.slot(i).packed.attempts_left();
        let attempts_left = rules::fail(p, &mut attempts, &mut limits, now);
        self.slot_mut(i).packed.set_attempts_left(attempts);
        self.store_failures(i, &limits);
        if attempts_left > 0 {
            self.counters.mismatched += 1;
            return Outcome::Mismatch(attempts_left);
        }
        self.clear_codes(i, CodeState::Burned);
        self.counters.locked += 1;
        Outcome::Locked(self.lockout_left(p, i, now).unwrap_or(0))
    }

    /// A TOTP verify: accepts the latest matched step after the key's last accepted
    /// one; a match at or before it is a replay; no match is a counted failure.
    /// While the key is locked out the match is not looked at.
    pub(crate) fn verify_totp(
        &mut self,
        shared: &Shared,
        hash: u64,
        check: &TotpCheck,
        now: Millis,
        count_full: bool,
    ) -> Result<Outcome, Refusal> {
        let p = &shared.policy;
        let now = self.begin(shared, now);
        let i = match self.lookup(shared, hash, now) {
            Lookup::Held(i) => i,
            Lookup::Spare(i) => {
                self.spares -= 1;
                self.slot_mut(i).packed.set_spare_bit(0);
                i
            }
            Lookup::Absent => {
                if !shared.reserve() {
                    // A full engine could not remember the step or count the
                    // failure: it refuses to look at the code.
                    if count_full {
                        self.counters.capacity_exceeded += 1;
                    }
                    return Err(Refusal::Full);
                }
                self.table.insert(Slot::new(hash))
            }
        };
        self.slot_mut(i).packed.set_totp_bit(1);
        if let Some(left) = self.lockout_left(p, i, now) {
            self.counters.locked += 1;
            self.settle(shared, i, now);
            return Ok(Outcome::Locked(left));
        }
        // Steps are stored plus one, so that 0 means none was accepted.
        let last = self.slot(i).digest.0;
        let newest_match = (0..21u32)
            .rev()
            .find(|&b| check.matched & (1 << b) != 0)
            .map(|b| check.first_step + u64::from(b) + 1);
        let outcome = match newest_match {
            Some(step) if step > last => {
                // Remembered until the later of what the previous step needed and
                // what this one needs, as an expired code issued now whose ttl
                // runs to then (as redis/lua/verify_totp.lua keeps it).
                let newest = self.slot(i).newest(self.epoch);
                let before = match newest.state {
                    CodeState::Empty => 0,
                    _ => newest.forget_at(),
                };
                let until = before.max(now + check.replay_for(step - 1));
                let accepted_at = self.offset(now);
                let slot = self.slot_mut(i);
                slot.digest = CodeDigest(step);
                slot.expires_at = accepted_at;
                slot.packed.set_ttl((until - now) as u32);
                slot.packed.set_state(CodeState::Expired);
                self.clear_failures(i);
                self.counters.verified += 1;
                Outcome::Verified
            }
            Some(_) => {
                self.counters.replayed += 1;
                Outcome::Replayed
            }
            None => self.fail_totp(p, i, now),
        };
        self.settle(shared, i, now);
        Ok(outcome)
    }

    /// A counted wrong TOTP code: one failure of the key's budget.
    fn fail_totp(&mut self, p: &Policy, i: RowAt, now: Millis) -> Outcome {
        self.failed = true;
        let mut limits = self.limits(i);
        // TOTP codes have no per-code attempts: only the key's budget counts
        // (which verify_totp requires to be on).
        let mut attempts = u8::MAX;
        rules::fail(p, &mut attempts, &mut limits, now);
        let left = u32::from(p.max_failures_per_key.saturating_sub(limits.failures));
        self.store_failures(i, &limits);
        if left > 0 {
            self.counters.mismatched += 1;
            return Outcome::Mismatch(left);
        }
        self.counters.locked += 1;
        Outcome::Locked(self.lockout_left(p, i, now).unwrap_or(0))
    }

    /// Drops the key's codes; `true` if one of them was still pending.
    pub(crate) fn revoke(&mut self, shared: &Shared, hash: u64, now: Millis) -> bool {
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, now) else {
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

    /// Lifts a lockout and clears the failure history (count and strikes);
    /// `true` if there was one to clear.
    pub(crate) fn unlock(&mut self, shared: &Shared, hash: u64, now: Millis) -> bool {
        let now = self.begin(shared, now);
        let Some(i) = self.current(shared, hash, now) else {
            return false;
        };
        let limits = self.limits(i);
        let had_failures = limits.failures > 0 || limits.strikes > 0;
        self.clear_failures(i);
        self.settle(shared, i, now);
        had_failures
    }

    /// Every operation starts here: time never runs backwards within a shard, and
    /// some due timers are run so that expiry keeps pace with the traffic.
    fn begin(&mut self, shared: &Shared, now: Millis) -> Millis {
        self.failed = false;
        let now = self.advance_to(now);
        if !self.wheel.none_due(self.offset(now)) {
            self.reclaim(shared, now, OP_BUDGET);
        }
        now
    }

    fn advance_to(&mut self, now: Millis) -> Millis {
        self.now = self.now.max(now);
        if self.now - self.epoch >= REBASE_AFTER {
            self.rebase();
        }
        self.now
    }

    /// Moves the epoch up to `now - RELEVANCE` (see the ground rules).
    fn rebase(&mut self) {
        let epoch = self.now - RELEVANCE;
        let by = epoch - self.epoch;
        let shift = |t: &mut u32| *t = Millis::from(*t).saturating_sub(by) as u32;
        for slot in self.table.rows_mut() {
            let cut = Millis::from(slot.last_failure_at) < by;
            if cut && slot.packed.failures() > 0 && !slot.has_history() {
                // A failure older than the new epoch may still count (escalating
                // lockouts remember up to two years): keep its absolute time.
                let last_failure_at = self.epoch + Millis::from(slot.last_failure_at);
                let history = History {
                    last_failure_at,
                    strikes: 0,
                };
                self.histories.insert(slot.hash, history);
                slot.packed.set_history_bit(1);
            }
            // The ttl stays: an issue time that no longer matters may become
            // the epoch (expiry minus ttl saturates at 0).
            shift(&mut slot.expires_at);
            shift(&mut slot.timer_at);
            shift(&mut slot.window_start);
            shift(&mut slot.last_failure_at);
        }
        self.epoch = epoch;
        self.rebuild_wheel();
    }

    /// A new wheel with exactly one timer per row, at its `timer_at`.
    fn rebuild_wheel(&mut self) {
        let mut wheel = Wheel::new(self.offset(self.now));
        for slot in self.table.rows() {
            wheel.insert(Timer::new(slot.hash, slot.timer_at));
        }
        self.wheel = wheel;
    }

    /// `t` as an offset from the epoch; `t` is at or after it and within 32 bits
    /// (see the ground rules).
    #[inline]
    fn offset(&self, t: Millis) -> u32 {
        debug_assert!(t >= self.epoch && t - self.epoch <= Millis::from(u32::MAX));
        (t - self.epoch) as u32
    }

    #[inline]
    fn slot(&self, i: RowAt) -> &Slot {
        self.table.get(i)
    }

    #[inline]
    fn slot_mut(&mut self, i: RowAt) -> &mut Slot {
        self.table.get_mut(i)
    }

    /// The key's row as of `now`, if it holds anything: past failures and codes
    /// brought up to date, and `None` if everything about the key is due to be
    /// forgotten (the wheel may not have got to it yet; answers never depend on
    /// when it does).
    fn current(&mut self, shared: &Shared, hash: u64, now: Millis) -> Option<RowAt> {
        match self.lookup(shared, hash, now) {
            Lookup::Held(i) => Some(i),
            Lookup::Spare(_) | Lookup::Absent => None,
        }
    }

    /// [`Shard::current`], telling a spare row apart from none.
    fn lookup(&mut self, shared: &Shared, hash: u64, now: Millis) -> Lookup {
        let Some(i) = self.table.find(hash) else {
            return Lookup::Absent;
        };
        if self.slot(i).is_spare() {
            return Lookup::Spare(i);
        }
        self.forget_old_failures(&shared.policy, i, now);
        self.expire_due_codes(i, now);
        if self.newest_pending(&shared.policy, i, now) {
            return Lookup::Held(i);
        }
        if self.forget_at(&shared.policy, i) <= now {
            return match self.forget(shared, i, now) {
                Some(spare) => Lookup::Spare(spare),
                None => Lookup::Absent,
            };
        }
        Lookup::Held(i)
    }

    /// Forgets row `i`'s key: keeps the row as a spare while the engine is under
    /// half full (returning it), else removes it.
    fn forget(&mut self, shared: &Shared, i: RowAt, now: Millis) -> Option<RowAt> {
        debug_assert!(
            !self.is_live(i),
            "a row with a pending code is never forgotten"
        );
        if shared.held.load(Ordering::Relaxed) >= shared.policy.capacity / 2 {
            self.remove_slot(shared, i);
            return None;
        }
        self.free_older(i);
        self.free_history(i);
        let slot = self.slot_mut(i);
        *slot = Slot {
            timer_at: slot.timer_at,
            ..Slot::new(slot.hash)
        };
        slot.packed.set_spare_bit(1);
        if slot.timer_at == NO_TIMER {
            // Every row has a timer; a spare's removes it when it fires.
            self.schedule(i, now, now);
        }
        self.spares += 1;
        Some(i)
    }

    /// Removes every spare row: a full engine makes room before refusing a key.
    pub(crate) fn drop_spares(&mut self, shared: &Shared) {
        if self.spares == 0 {
            return;
        }
        self.table.retain(|slot| !slot.is_spare());
        shared.held.fetch_sub(self.spares as u64, Ordering::Relaxed);
        self.spares = 0;
    }

    /// Reschedules row `i` after a change, or forgets it when nothing about its key
    /// needs remembering any more. `i` may name another row afterwards.
    fn settle(&mut self, shared: &Shared, i: RowAt, now: Millis) {
        self.expire_due_codes(i, now);
        let next = if self.newest_pending(&shared.policy, i, now) {
            // A pending code is the next event (no forgetting before it).
            self.next_event(i, Millis::MAX)
        } else {
            let forget_at = self.forget_at(&shared.policy, i);
            if forget_at <= now {
                self.forget(shared, i, now);
                return;
            }
            self.next_event(i, forget_at)
        };
        let when = next.min(now + TIMER_HORIZON);
        if self.slot(i).timer_at <= self.offset(when) {
            // Scheduled no later than needed: leave it. If it fires early, this
            // runs again then and moves it on; nearly every call (a new code, a
            // consumed one) pushes the event later.
            return;
        }
        self.schedule(i, when, now);
    }

    /// Gives row `i` a new live timer at `when` (at most the horizon past `now`);
    /// any timer it had goes stale.
    fn schedule(&mut self, i: RowAt, when: Millis, now: Millis) {
        let at = self.offset(when.min(now + TIMER_HORIZON));
        let slot = self.slot_mut(i);
        slot.timer_at = at;
        let timer = Timer::new(slot.hash, at);
        self.wheel.insert(timer);
        self.bound_stale_timers();
    }

    /// Rebuilds the wheel once stale timers outnumber the rows by [`STALE_TIMERS`]:
    /// O(rows) after at least that many stale timers, so O(1) each.
    fn bound_stale_timers(&mut self) {
        if self.wheel.len() > 2 * self.table.len() + STALE_TIMERS {
            self.rebuild_wheel();
        }
    }

    #[inline]
    fn next_event(&self, i: RowAt, forget_at: Millis) -> Millis {
        let slot = self.slot(i);
        if !slot.has_older() {
            return rules::next_event(std::iter::once(slot.newest(self.epoch)), forget_at);
        }
        rules::next_event(self.codes(i), forget_at)
    }

    /// Whether row `i`'s newest code is pending (its expiry brought up to date):
    /// then the key is not to be forgotten yet, as a code is remembered until a
    /// ttl past its expiry, which is still to come. The shortcut that spares
    /// the common calls [`Shard::forget_at`]; debug builds check that it agrees.
    #[inline]
    fn newest_pending(&self, p: &Policy, i: RowAt, now: Millis) -> bool {
        let pending = self.slot(i).state() == CodeState::Pending;
        debug_assert!(!pending || self.forget_at(p, i) > now);
        pending
    }

    #[inline]
    fn forget_at(&self, p: &Policy, i: RowAt) -> Millis {
        let slot = self.slot(i);
        let limits = self.limits(i);
        if !slot.has_older() {
            // The common case, without the older codes' iterator.
            return rules::forget_at(p, &limits, std::iter::once(slot.newest(self.epoch)));
        }
        rules::forget_at(p, &limits, self.codes(i))
    }

    #[inline]
    fn forget_old_failures(&mut self, p: &Policy, i: RowAt, now: Millis) {
        let slot = self.slot(i);
        if slot.packed.failures() == 0 && !slot.has_history() {
            return; // no failures and no strikes (they live in the history): nothing to forget
        }
        let mut limits = self.limits(i);
        let now_counts = rules::failures_now(p, &limits, now);
        if now_counts != (limits.failures, limits.strikes) {
            (limits.failures, limits.strikes) = now_counts;
            self.store_failures(i, &limits);
        }
    }

    #[inline]
    fn lockout_left(&self, p: &Policy, i: RowAt, now: Millis) -> Option<Millis> {
        rules::lockout_left(p, &self.limits(i), now)
    }

    #[inline]
    fn rate_wait(&self, p: &Policy, i: RowAt, now: Millis) -> Millis {
        rules::rate_wait(p, &self.limits(i), now)
    }

    /// Row `i`'s rate history and failure history, wherever the latter is kept.
    #[inline]
    fn limits(&self, i: RowAt) -> Limits {
        let slot = self.slot(i);
        let mut limits = slot.limits(self.epoch);
        if slot.has_history() {
            self.read_history(slot.hash, &mut limits);
        }
        limits
    }

    /// The side map's part of a history: out of line, since a key a real user
    /// is using never has one, and every call reads the limits several times.
    #[cold]
    #[inline(never)]
    fn read_history(&self, hash: u64, limits: &mut Limits) {
        let history = self.histories[&hash];
        limits.last_failure_at = history.last_failure_at;
        limits.strikes = history.strikes;
    }

    /// Writes row `i`'s failure history back: in the row when it fits (no
    /// strikes, a time within the row's reach), else in `histories`.
    fn store_failures(&mut self, i: RowAt, limits: &Limits) {
        if limits.failures == 0 && limits.strikes == 0 {
            self.clear_failures(i);
            return;
        }
        let epoch = self.epoch;
        let slot = self.table.get_mut(i);
        slot.packed.set_failures(limits.failures);
        if limits.strikes == 0 && limits.last_failure_at >= epoch {
            slot.last_failure_at = (limits.last_failure_at - epoch) as u32;
            self.free_history(i);
            return;
        }
        slot.packed.set_history_bit(1);
        let history = History {
            last_failure_at: limits.last_failure_at,
            strikes: limits.strikes,
        };
        self.histories.insert(slot.hash, history);
    }

    /// A success or an unlock: no failures, no strikes.
    fn clear_failures(&mut self, i: RowAt) {
        self.slot_mut(i).packed.set_failures(0);
        self.free_history(i);
    }

    fn free_history(&mut self, i: RowAt) {
        let slot = self.table.get_mut(i);
        if !slot.has_history() {
            return;
        }
        slot.packed.set_history_bit(0);
        self.histories.remove(&slot.hash);
        if self.histories.capacity() >= 64 && self.histories.len() * 4 < self.histories.capacity() {
            self.histories.shrink_to(self.histories.len() * 2);
        }
    }

    #[inline]
    fn is_live(&self, i: RowAt) -> bool {
        let slot = self.slot(i);
        slot.state() == CodeState::Pending
            || slot.has_older()
                && self.older[&slot.hash]
                    .iter()
                    .any(|c| c.state == CodeState::Pending)
    }

    /// Updates `live` after row `i` changed; `was_live` is what it was before.
    #[inline]
    fn relive(&mut self, i: RowAt, was_live: bool) {
        match (was_live, self.is_live(i)) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
    }

    /// Turns pending codes whose time is over into expired ones, in place.
    #[inline]
    fn expire_due_codes(&mut self, i: RowAt, now: Millis) {
        let expire = |state: &mut CodeState, expires_at: Millis| {
            let due = *state == CodeState::Pending && now >= expires_at;
            if due {
                *state = CodeState::Expired;
            }
            due
        };
        let epoch = self.epoch;
        let slot = self.table.get_mut(i);
        let mut state = slot.state();
        let mut expired = expire(&mut state, epoch + Millis::from(slot.expires_at));
        slot.packed.set_state(state);
        if slot.has_older() {
            let older = self.older.get_mut(&slot.hash).expect("flagged older codes");
            for c in older {
                expired |= expire(&mut c.state, c.expires_at);
            }
        }
        // Something expired, so the key had a pending code: it is live no longer
        // unless another one is still pending.
        if expired && !self.is_live(i) {
            self.live -= 1;
        }
    }

    /// Sets every code of row `i` to `state` (`Empty`: forgotten; `Burned`: the
    /// newest stands for all of them) and drops the older ones.
    fn clear_codes(&mut self, i: RowAt, state: CodeState) {
        let was_live = self.is_live(i);
        self.free_older(i);
        self.slot_mut(i).packed.set_state(state);
        self.relive(i, was_live);
    }

    /// Makes room for a new newest code: with `codes_per_key > 1` the current
    /// newest becomes the first of the older codes (dropping the oldest).
    fn push_older(&mut self, p: &Policy, i: RowAt) {
        let newest = self.slot(i).newest(self.epoch);
        let keep = matches!(newest.state, CodeState::Pending | CodeState::Expired);
        if p.codes_per_key == 1 || !keep {
            self.free_older(i);
            return;
        }
        let slot = self.table.get_mut(i);
        slot.packed.set_older_bit(1);
        let codes = self
            .older
            .entry(slot.hash)
            .or_insert([CodeRecord::EMPTY; 3]);
        let kept = usize::from(p.codes_per_key) - 1;
        codes.copy_within(0..kept - 1, 1);
        codes[0] = newest;
    }

    /// The key's codes, newest first; with one code per key, just the newest.
    #[inline(always)]
    fn codes(&self, i: RowAt) -> impl Iterator<Item = CodeRecord> + '_ {
        let slot = self.slot(i);
        let older: &[CodeRecord] = if slot.has_older() {
            &self.older[&slot.hash]
        } else {
            &[]
        };
        std::iter::once(slot.newest(self.epoch)).chain(older.iter().copied())
    }

    fn free_older(&mut self, i: RowAt) {
        let slot = self.table.get_mut(i);
        if !slot.has_older() {
            return;
        }
        slot.packed.set_older_bit(0);
        self.older.remove(&slot.hash);
        if self.older.capacity() >= 64 && self.older.len() * 4 < self.older.capacity() {
            self.older.shrink_to(self.older.len() * 2);
        }
    }

    /// Deletes row `i` (its timer goes stale) and returns its capacity.
    fn remove_slot(&mut self, shared: &Shared, i: RowAt) {
        debug_assert!(
            !self.is_live(i),
            "a row with a pending code is never forgotten"
        );
        if self.slot(i).is_spare() {
            self.spares -= 1;
        }
        self.free_older(i);
        self.free_history(i);
        self.table.remove(i);
        shared.held.fetch_sub(1, Ordering::Relaxed);
        self.bound_stale_timers();
    }

    /// Checks every ground rule; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&mut self, shared: &Shared) {
        self.table.validate();
        self.wheel.validate();
        let timers: std::collections::HashSet<Timer> = self.wheel.timers().collect();
        assert!(
            self.wheel.len() <= 2 * self.table.len() + STALE_TIMERS + 1,
            "stale timers are bounded: {} timers for {} rows",
            self.wheel.len(),
            self.table.len()
        );
        let positions: Vec<RowAt> = self
            .table
            .rows()
            .map(|s| self.table.find(s.hash).expect("found"))
            .collect();
        for i in positions {
            let slot = *self.slot(i);
            assert!(
                timers.contains(&Timer::new(slot.hash, slot.timer_at)),
                "row {i:?} has a live timer at its timer_at"
            );
            assert!(
                Millis::from(slot.timer_at) <= self.now - self.epoch + TIMER_HORIZON,
                "row {i:?}'s timer is within the horizon"
            );
            if slot.is_spare() {
                assert_eq!(slot.state(), CodeState::Empty, "spare {i:?} holds no code");
                assert!(!slot.has_older(), "spare {i:?} holds no older codes");
                assert!(!slot.has_history(), "spare {i:?} holds no failure history");
                assert_eq!(
                    (slot.packed.failures(), slot.packed.window_count()),
                    (0, 0),
                    "spare {i:?} holds no counts"
                );
                continue;
            }
            if slot.packed.totp_bit() == 1 {
                assert!(!slot.has_older(), "TOTP row {i:?} holds no older codes");
                assert_ne!(
                    slot.state(),
                    CodeState::Pending,
                    "TOTP row {i:?} holds no pending code"
                );
            }
            // A row already overdue (a move of the epoch clamps timers to it)
            // only needs a timer that is due now.
            let due = self.next_event(i, self.forget_at(&shared.policy, i));
            assert!(
                self.epoch + Millis::from(slot.timer_at) <= due.max(self.now),
                "row {i:?} is scheduled no later than its next event"
            );
            assert_eq!(slot.has_older(), self.older.contains_key(&slot.hash));
            assert_eq!(slot.has_history(), self.histories.contains_key(&slot.hash));
            if slot.has_history() {
                let history = self.histories[&slot.hash];
                assert!(
                    slot.packed.failures() > 0 || history.strikes > 0,
                    "row {i:?}'s side history holds something"
                );
            }
        }
        assert_eq!(
            self.older.len(),
            self.table.rows().filter(|s| s.has_older()).count()
        );
        assert_eq!(
            self.histories.len(),
            self.table.rows().filter(|s| s.has_history()).count()
        );
        let live = self
            .table
            .rows()
            .filter(|s| {
                let i = self.table.find(s.hash).expect("found");
                self.is_live(i)
            })
            .count();
        assert_eq!(self.live, live as u64, "live count");
        let spares = self.table.rows().filter(|s| s.is_spare()).count();
        assert_eq!(self.spares, spares, "spare count");
    }
}
