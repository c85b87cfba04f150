//! The rules of one key, as functions of its state: when everything about it may
//! be forgotten, when its next timer is due, how long a lockout has left, how
//! long an issue must wait, and what a wrong guess spends. `shard.rs` keeps the
//! state and calls these; `redis/lua/common.lua` is the same rules again for the
//! Redis backend, function for function (`forget_at`, `lockout_left`,
//! `rate_wait`, `current`'s forgetting of old failures, and the counted-mismatch
//! branch of `verify.lua`), and the semantic suite runs on both.
//!
//! Ground rules. Times are the shard's milliseconds. A key is remembered while
//! any of these lasts: a code (pending, expired or burned) until its expiry plus
//! its ttl; the cooldown after its last issue; its issue window; its failure
//! history for [`failure_memory`] after the last failure. The newest code's
//! expiry minus its ttl is the key's last issue time, kept after the code is
//! consumed.
//!
//! Escalating lockouts. Each time a key spends its failure budget it takes a
//! *strike*, and its lockout is `lockout` doubled for every strike before this
//! one, up to `max_lockout`. When a lockout ends the key gets a fresh budget but
//! keeps its strikes; a `Verified` or an unlock clears both. Failures without a
//! strike are forgotten `max_lockout` after the last one (so spending 99 of 100
//! and waiting costs as much as the longest lockout); strikes a year after the
//! longest lockout would end (so waiting for them to be forgotten, to climb the
//! cheap first doublings again, costs more than guessing on at the longest
//! lockout: SECURITY.md has the budgets). With escalation off there are no
//! strikes, and failures are forgotten one `lockout` after the last, when the
//! lockout ends.

use crate::clock::Millis;
use crate::digest::CodeDigest;
use crate::policy::Policy;

/// What became of a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CodeState {
    /// No code remembered (consumed, revoked, or never kept).
    Empty,
    /// Issued and not yet used; valid while `now < expires_at`.
    Pending,
    /// Its time is over; remembered so a late typist hears `Expired`.
    Expired,
    /// Its attempts were used up: every guess gets `Locked` until a new issue.
    Burned,
}

/// One code of a key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CodeRecord {
    pub(crate) digest: CodeDigest,
    pub(crate) expires_at: Millis,
    pub(crate) ttl: u32,
    pub(crate) state: CodeState,
}

impl CodeRecord {
    pub(crate) const EMPTY: CodeRecord = CodeRecord {
        digest: CodeDigest(0),
        expires_at: 0,
        ttl: 0,
        state: CodeState::Empty,
    };

    /// When this code may be forgotten: one ttl past its expiry.
    #[inline]
    pub(crate) fn forget_at(&self) -> Millis {
        self.expires_at + Millis::from(self.ttl)
    }
}

/// A key's rate history and failure count: what the rules read besides its codes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// When the key's newest code was issued.
    pub(crate) last_issue_at: Millis,
    /// When the key's issue window started.
    pub(crate) window_start: Millis,
    /// Issues in that window; 0: no window running.
    pub(crate) window_count: u16,
    /// When the key's last counted failure was.
    pub(crate) last_failure_at: Millis,
    /// Counted failures since the last success, the last lockout's end, or
    /// since they were forgotten.
    pub(crate) failures: u16,
    /// Budgets spent since the last success (or since they were forgotten);
    /// always 0 with escalation off.
    pub(crate) strikes: u8,
}

/// The most strikes a key counts: enough to double the shortest lockout (1 s)
/// past the longest `max_lockout` (365 days < 2^25 s).
pub(crate) const MAX_STRIKES: u8 = 31;

/// How long the lockout lasts that a key's `strikes`-th spent budget started.
#[inline]
pub(crate) fn lockout_len(p: &Policy, strikes: u8) -> Millis {
    if !p.escalate || strikes <= 1 {
        return p.lockout;
    }
    let doublings = u32::from(strikes - 1).min(MAX_STRIKES.into());
    p.lockout.saturating_mul(1 << doublings).min(p.max_lockout)
}

/// How long strikes outlive the longest lockout.
pub(crate) const STRIKE_MEMORY: Millis = 365 * 86_400_000;

/// How long after its last failure a key's failure history is remembered.
#[inline]
pub(crate) fn failure_memory(p: &Policy, strikes: u8) -> Millis {
    match (p.escalate, strikes) {
        (false, _) => p.lockout,
        (true, 0) => p.max_lockout,
        (true, _) => p.max_lockout + STRIKE_MEMORY,
    }
}

/// The moment everything about the key may be forgotten.
#[inline]
pub(crate) fn forget_at(
    p: &Policy,
    limits: &Limits,
    codes: impl Iterator<Item = CodeRecord>,
) -> Millis {
    let mut at = codes
        .filter(|c| c.state != CodeState::Empty)
        .map(|c| c.forget_at())
        .max()
        .unwrap_or(0);
    if p.resend_cooldown > 0 {
        at = at.max(limits.last_issue_at + p.resend_cooldown);
    }
    if p.max_issues_per_window > 0 && limits.window_count > 0 {
        at = at.max(limits.window_start + p.issue_window);
    }
    if limits.failures > 0 || limits.strikes > 0 {
        at = at.max(limits.last_failure_at + failure_memory(p, limits.strikes));
    }
    at
}

/// When the key's timer is next due: its earliest pending expiry, else `forget_at`.
#[inline]
pub(crate) fn next_event(codes: impl Iterator<Item = CodeRecord>, forget_at: Millis) -> Millis {
    codes
        .filter(|c| c.state == CodeState::Pending)
        .map(|c| c.expires_at)
        .min()
        .unwrap_or(forget_at)
}

/// The failure count and strikes as of `now`: a fresh budget once a lockout
/// has ended, and nothing once the history is forgotten.
#[inline]
pub(crate) fn failures_now(p: &Policy, limits: &Limits, now: Millis) -> (u16, u8) {
    if limits.failures == 0 && limits.strikes == 0 {
        return (0, 0);
    }
    if now >= limits.last_failure_at + failure_memory(p, limits.strikes) {
        return (0, 0);
    }
    let spent = p.max_failures_per_key > 0 && limits.failures >= p.max_failures_per_key;
    if spent && now >= limits.last_failure_at + lockout_len(p, limits.strikes) {
        return (0, limits.strikes);
    }
    (limits.failures, limits.strikes)
}

/// Time left of the key's lockout, if its failure budget is spent and the
/// lockout has not ended.
#[inline]
pub(crate) fn lockout_left(p: &Policy, limits: &Limits, now: Millis) -> Option<Millis> {
    let until = limits.last_failure_at + lockout_len(p, limits.strikes);
    (p.max_failures_per_key > 0 && limits.failures >= p.max_failures_per_key && now < until)
        .then(|| until - now)
}

/// Time until an issue for the key would be allowed (the larger of the cooldown's
/// and the full window's waits); 0 if it is allowed now.
#[inline]
pub(crate) fn rate_wait(p: &Policy, limits: &Limits, now: Millis) -> Millis {
    let mut wait = 0;
    let cooldown_end = limits.last_issue_at + p.resend_cooldown;
    if p.resend_cooldown > 0 && now < cooldown_end {
        wait = cooldown_end - now;
    }
    let window_end = limits.window_start + p.issue_window;
    if p.max_issues_per_window > 0
        && limits.window_count >= p.max_issues_per_window
        && now < window_end
    {
        wait = wait.max(window_end - now);
    }
    wait
}

/// A counted wrong guess: spends one of the codes' attempts and, with a failure
/// budget, one failure of the key's (the one that spends the budget is a
/// strike). Returns the wrong guesses left before the codes burn or the key
/// locks, whichever is first; 0: this guess burned them.
#[inline]
pub(crate) fn fail(p: &Policy, attempts_left: &mut u8, limits: &mut Limits, now: Millis) -> u32 {
    *attempts_left = attempts_left.saturating_sub(1);
    let mut left = u32::from(*attempts_left);
    if p.max_failures_per_key > 0 {
        limits.failures = limits.failures.saturating_add(1);
        limits.last_failure_at = now;
        if p.escalate && limits.failures == p.max_failures_per_key {
            limits.strikes = (limits.strikes + 1).min(MAX_STRIKES);
        }
        left = left.min(u32::from(
            p.max_failures_per_key.saturating_sub(limits.failures),
        ));
    }
    left
}
