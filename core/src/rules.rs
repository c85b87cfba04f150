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
//! its ttl; the cooldown after its last issue; its issue window; its failures
//! until one lockout after the last. The newest code's expiry minus its ttl is
//! the key's last issue time, kept after the code is consumed.

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
    /// Counted failures since the last success (or since they were forgotten).
    pub(crate) failures: u16,
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
    if limits.failures > 0 {
        at = at.max(limits.last_failure_at + p.lockout);
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

/// The failure count as of `now`: forgotten one lockout after the last failure.
#[inline]
pub(crate) fn failures_now(p: &Policy, limits: &Limits, now: Millis) -> u16 {
    if limits.failures > 0 && now >= limits.last_failure_at + p.lockout {
        0
    } else {
        limits.failures
    }
}

/// Time left of the key's lockout, if its failure budget is spent and the
/// lockout has not ended.
#[inline]
pub(crate) fn lockout_left(p: &Policy, limits: &Limits, now: Millis) -> Option<Millis> {
    let until = limits.last_failure_at + p.lockout;
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
/// budget, one failure of the key's. Returns the wrong guesses left before the
/// codes burn or the key locks, whichever is first; 0: this guess burned them.
#[inline]
pub(crate) fn fail(
    p: &Policy,
    attempts_left: &mut u8,
    failures: &mut u16,
    last_failure_at: &mut Millis,
    now: Millis,
) -> u32 {
    *attempts_left = attempts_left.saturating_sub(1);
    let mut left = u32::from(*attempts_left);
    if p.max_failures_per_key > 0 {
        *failures = failures.saturating_add(1);
        *last_failure_at = now;
        left = left.min(u32::from(p.max_failures_per_key.saturating_sub(*failures)));
    }
    left
}
