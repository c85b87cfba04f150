//! The reference model of the engine's semantics, and a runner that drives an
//! engine and the model with the same operations and reports the first answer
//! on which they differ. The property test (`model_tests.rs`) and the fuzz
//! target `fuzz_targets/ops.rs` generate the operations.
//!
//! The model keeps plaintext codes in a `HashMap` and forgets nothing early: it
//! is the engine's semantics written as plainly as possible. Not part of the
//! public API (compiled for tests and with the `model` feature only).

#![allow(missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use crate::code::MAX_TYPED_LEN;
use crate::scope::Scope;
use crate::{Alphabet, Clock, Config, Engine, Error, ManualClock, Stats, Verdict};

/// Returns `Err` naming the step when the two sides differ.
macro_rules! check_eq {
    ($got:expr, $want:expr $(,)?) => {
        check_eq!($got, $want, "")
    };
    ($got:expr, $want:expr, $($what:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "engine answered {:?}, the model {:?}: {}",
                got,
                want,
                format!($($what)+)
            ));
        }
    }};
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Expired,
    Burned,
}

#[derive(Clone, Debug)]
struct ModelCode {
    code: String,
    context: Vec<u8>,
    expires_at: u64,
    ttl: u64,
    state: State,
}

#[derive(Clone, Debug, Default)]
struct ModelKey {
    /// Newest first; consumed or revoked codes are simply gone.
    codes: Vec<ModelCode>,
    attempts_left: u32,
    last_issue_at: u64,
    window_start: u64,
    window_count: u32,
    failures: u32,
    last_failure_at: u64,
    /// Budgets spent since the last success (escalation only).
    strikes: u32,
    /// When the lockout that the last spent budget started ends.
    locked_until: u64,
}

/// The engine's semantics, written as plainly as possible.
pub struct Model {
    c: ModelConfig,
    keys: HashMap<u8, ModelKey>,
    /// TOTP state, a key of its own per key: the last accepted step is its one
    /// code (the step in `code`, remembered as an expired code accepted at
    /// `expires_at` with a ttl that runs as long as a replay could be accepted).
    totp: HashMap<u8, ModelKey>,
    /// Scope values with a count in a running window, by (limit, value).
    scopes: HashMap<(u8, u8), ModelScope>,
    scope_rate_limited: [u64; 8],
    scope_locked: [u64; 8],
    /// Whether the last verify was a counted failure.
    failed: bool,
    stats: Stats,
    now: u64,
}

/// The TOTP secret of every model key, and the wall time of the model's time 0.
pub const TOTP_SECRET: &[u8] = b"model totp secret, 32 bytes long";
const TOTP_EPOCH_SECS: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub code_length: u32,
    pub alphabet: Alphabet,
    pub ttl: u64,
    pub max_attempts: u32,
    pub cooldown: u64,
    pub max_issues: u32,
    pub window: u64,
    pub max_failures: u32,
    pub lockout: u64,
    pub escalate: bool,
    pub max_lockout: u64,
    pub codes_per_key: usize,
    pub capacity: usize,
    pub shards: u32,
    /// Scope limits, named "s0", "s1", ... in order.
    pub scopes: Vec<ModelScopeLimit>,
}

/// A scope limit of the model: counts and windows in ms (a window is unused
/// when its count is 0).
#[derive(Clone, Copy, Debug)]
pub struct ModelScopeLimit {
    pub max_issues: u32,
    pub issue_window: u64,
    pub max_failures: u32,
    pub failure_window: u64,
}

/// One scope value's windows.
#[derive(Clone, Copy, Debug, Default)]
struct ModelScope {
    issue_start: u64,
    issues: u32,
    failure_start: u64,
    failures: u32,
}

impl ModelScope {
    fn forget_at(&self, l: &ModelScopeLimit) -> u64 {
        let mut at = 0;
        if self.issues > 0 {
            at = self.issue_start + l.issue_window;
        }
        if self.failures > 0 {
            at = at.max(self.failure_start + l.failure_window);
        }
        at
    }

    fn issue_wait(&self, l: &ModelScopeLimit, now: u64) -> u64 {
        let end = self.issue_start + l.issue_window;
        if l.max_issues > 0 && self.issues >= l.max_issues && now < end {
            end - now
        } else {
            0
        }
    }

    fn lockout_left(&self, l: &ModelScopeLimit, now: u64) -> u64 {
        let end = self.failure_start + l.failure_window;
        if l.max_failures > 0 && self.failures >= l.max_failures && now < end {
            end - now
        } else {
            0
        }
    }
}

/// Counts one event in a fixed window.
fn count_in_window(start: &mut u64, count: &mut u32, window: u64, now: u64) {
    if *count == 0 || now >= *start + window {
        *start = now;
        *count = 1;
    } else {
        *count += 1;
    }
}

/// The name of the model's `n`-th scope limit.
fn scope_name(n: u8) -> String {
    format!("s{n}")
}

/// The value of the model's `n`-th scope value.
fn scope_value(n: u8) -> Vec<u8> {
    format!("value-{n}").into_bytes()
}

impl ModelKey {
    fn forget_at(&self, c: &ModelConfig) -> u64 {
        let mut at = self
            .codes
            .iter()
            .map(|x| x.expires_at + x.ttl)
            .max()
            .unwrap_or(0);
        if c.cooldown > 0 {
            at = at.max(self.last_issue_at + c.cooldown);
        }
        if c.max_issues > 0 && self.window_count > 0 {
            at = at.max(self.window_start + c.window);
        }
        if self.failures > 0 || self.strikes > 0 {
            at = at.max(self.last_failure_at + c.failure_memory(self.strikes));
        }
        at
    }

    fn lockout_left(&self, c: &ModelConfig, now: u64) -> Option<u64> {
        let until = self.locked_until;
        (c.max_failures > 0 && self.failures >= c.max_failures && now < until).then(|| until - now)
    }

    /// Old failures as of `now`: all forgotten after the failure memory; a fresh
    /// budget (strikes kept) once a lockout has ended.
    fn age_failures(&mut self, c: &ModelConfig, now: u64) {
        if now >= self.last_failure_at + c.failure_memory(self.strikes) {
            self.failures = 0;
            self.strikes = 0;
        } else if c.max_failures > 0 && self.failures >= c.max_failures && now >= self.locked_until
        {
            self.failures = 0;
        }
    }

    /// A counted failure; returns the failures left in the budget.
    fn count_failure(&mut self, c: &ModelConfig, now: u64) -> u32 {
        self.failures += 1;
        self.last_failure_at = now;
        if self.failures == c.max_failures {
            let mut length = c.lockout;
            if c.escalate {
                self.strikes += 1;
                for _ in 1..self.strikes {
                    length = (length * 2).min(c.max_lockout);
                }
            }
            self.locked_until = now + length;
        }
        c.max_failures.saturating_sub(self.failures)
    }

    fn clear_failures(&mut self) {
        self.failures = 0;
        self.strikes = 0;
    }
}

impl ModelConfig {
    /// How long after the last failure a key's failures are remembered: with
    /// escalation, the longest lockout, and a year more once it has a strike.
    fn failure_memory(&self, strikes: u32) -> u64 {
        if !self.escalate {
            self.lockout
        } else if strikes == 0 {
            self.max_lockout
        } else {
            self.max_lockout + 365 * 86_400_000
        }
    }
}

impl Model {
    /// Brings every key up to `now`: expired codes, old failures, forgotten keys.
    fn tick(&mut self) {
        let (c, now) = (&self.c, self.now);
        for k in self.keys.values_mut() {
            k.age_failures(c, now);
            for code in &mut k.codes {
                if code.state == State::Pending && now >= code.expires_at {
                    code.state = State::Expired;
                }
            }
        }
        for k in self.totp.values_mut() {
            k.age_failures(c, now);
        }
        self.keys.retain(|_, k| k.forget_at(c) > now);
        self.totp.retain(|_, k| k.forget_at(c) > now);
        self.scopes
            .retain(|(limit, _), s| s.forget_at(&c.scopes[usize::from(*limit)]) > now);
    }

    fn held(&self) -> usize {
        self.keys.len() + self.totp.len() + self.scopes.len()
    }

    /// The longest wait among `key_wait` and the waits `wait` gives for the
    /// call's scopes (`None`: the key's, which wins ties).
    fn longest(
        &self,
        key_wait: u64,
        scopes: &[(u8, u8)],
        wait: impl Fn(&ModelScope, &ModelScopeLimit) -> u64,
    ) -> (u64, Option<u8>) {
        let mut answer = (key_wait, None);
        for &(limit, value) in scopes {
            let l = &self.c.scopes[usize::from(limit)];
            let w = self.scopes.get(&(limit, value)).map_or(0, |s| wait(s, l));
            if w > answer.0 {
                answer = (w, Some(limit));
            }
        }
        answer
    }

    /// Scope values of `scopes` with a budget on the side `counts` names that
    /// hold nothing yet: the rows counting there would add.
    fn new_scope_rows(
        &self,
        scopes: &[(u8, u8)],
        counts: impl Fn(&ModelScopeLimit) -> bool,
    ) -> usize {
        scopes
            .iter()
            .filter(|&&(limit, value)| {
                counts(&self.c.scopes[usize::from(limit)])
                    && !self.scopes.contains_key(&(limit, value))
            })
            .count()
    }

    fn issue_scoped(
        &mut self,
        key: u8,
        context: &[u8],
        scopes: &[(u8, u8)],
        code: Option<&str>,
    ) -> Result<(), Error> {
        if scopes.is_empty() {
            return self.issue(key, context, None, code);
        }
        self.tick();
        let (c, now) = (self.c.clone(), self.now);
        let mut key_wait = 0;
        if let Some(k) = self.keys.get(&key) {
            if let Some(left) = k.lockout_left(&c, now) {
                self.stats.locked += 1;
                return Err(Error::Locked {
                    retry_after: ms(left),
                });
            }
            if c.cooldown > 0 && now < k.last_issue_at + c.cooldown {
                key_wait = k.last_issue_at + c.cooldown - now;
            }
            if c.max_issues > 0 && k.window_count >= c.max_issues && now < k.window_start + c.window
            {
                key_wait = key_wait.max(k.window_start + c.window - now);
            }
        }
        let (wait, by) = self.longest(key_wait, scopes, |s, l| s.issue_wait(l, now));
        if wait > 0 {
            self.stats.rate_limited += 1;
            if let Some(limit) = by {
                self.scope_rate_limited[usize::from(limit)] += 1;
            }
            return Err(Error::RateLimited {
                retry_after: ms(wait),
                scope: by.map(scope_name),
            });
        }
        let new_rows = self.new_scope_rows(scopes, |l| l.max_issues > 0)
            + usize::from(!self.keys.contains_key(&key));
        if self.held() + new_rows > c.capacity {
            self.stats.capacity_exceeded += 1;
            return Err(Error::CapacityExceeded {
                capacity: c.capacity as u64,
                out_of_memory: None,
            });
        }
        self.issue(key, context, None, code)?;
        for &(limit, value) in scopes {
            let l = c.scopes[usize::from(limit)];
            if l.max_issues > 0 {
                let s = self.scopes.entry((limit, value)).or_default();
                count_in_window(&mut s.issue_start, &mut s.issues, l.issue_window, now);
            }
        }
        Ok(())
    }

    /// A scoped verify of either kind: `verify` is the key's own.
    fn verify_scoped(
        &mut self,
        scopes: &[(u8, u8)],
        key_lockout: impl Fn(&Model) -> u64,
        key_is_new: impl Fn(&Model) -> bool,
        verify: impl FnOnce(&mut Model) -> Result<Verdict, Error>,
    ) -> Result<Verdict, Error> {
        self.tick();
        let key_is_new = key_is_new(self);
        let (c, now) = (self.c.clone(), self.now);
        self.failed = false;
        let (wait, by) = self.longest(0, scopes, |s, l| s.lockout_left(l, now));
        if let Some(limit) = by {
            self.stats.locked += 1;
            self.scope_locked[usize::from(limit)] += 1;
            return Ok(Verdict::Locked {
                retry_after: ms(wait.max(key_lockout(self))),
            });
        }
        let new_rows = self.new_scope_rows(scopes, |l| l.max_failures > 0);
        if new_rows > 0 && self.held() + new_rows + usize::from(key_is_new) > c.capacity {
            self.stats.capacity_exceeded += 1;
            return Err(Error::CapacityExceeded {
                capacity: c.capacity as u64,
                out_of_memory: None,
            });
        }
        let verdict = verify(self)?;
        if self.failed {
            for &(limit, value) in scopes {
                let l = c.scopes[usize::from(limit)];
                if l.max_failures > 0 {
                    let s = self.scopes.entry((limit, value)).or_default();
                    count_in_window(&mut s.failure_start, &mut s.failures, l.failure_window, now);
                }
            }
        }
        Ok(verdict)
    }

    fn unlock_scope(&mut self, limit: u8, value: u8) -> bool {
        self.tick();
        self.scopes.remove(&(limit, value)).is_some()
    }

    /// `verify_totp` with the default parameters at wall time `unix_ms`.
    fn verify_totp(&mut self, key: u8, typed: &[u8], unix_ms: u64) -> Result<Verdict, Error> {
        self.tick();
        let (c, now) = (self.c.clone(), self.now);
        if c.max_failures == 0 {
            return Err(Error::InvalidInput(crate::InvalidInput {
                field: crate::Field::MaxFailuresPerKey,
                constraint: crate::Constraint::Format(""),
                got: crate::Got::Int(0),
            }));
        }
        if !self.totp.contains_key(&key) && self.held() >= c.capacity {
            self.stats.capacity_exceeded += 1;
            return Err(Error::CapacityExceeded {
                capacity: c.capacity as u64,
                out_of_memory: None,
            });
        }
        let k = self.totp.entry(key).or_default();
        if let Some(left) = k.lockout_left(&c, now) {
            self.stats.locked += 1;
            return Ok(Verdict::Locked {
                retry_after: ms(left),
            });
        }
        let p = crate::totp::TotpParams::default();
        let now_step = unix_ms / 1000 / 30;
        let typed = totp_canonical(typed);
        let newest_match = (now_step - 1..=now_step + 1)
            .filter(|&s| {
                let code = crate::totp::hotp(TOTP_SECRET, s, p.digits, p.algorithm).unwrap();
                typed.as_deref() == Some(code.as_str())
            })
            .max();
        let last = k.codes.first().map(|x| x.code.parse::<u64>().unwrap());
        match newest_match {
            Some(step) if last.is_none_or(|last| step > last) => {
                let before = k.codes.first().map_or(0, |x| x.expires_at + x.ttl);
                let replay_for = ((step + 11) * 30_000).saturating_sub(unix_ms);
                let until = before.max(now + replay_for);
                k.codes = vec![ModelCode {
                    code: step.to_string(),
                    context: Vec::new(),
                    expires_at: now,
                    ttl: until - now,
                    state: State::Expired,
                }];
                k.last_issue_at = now;
                k.clear_failures();
                self.stats.verified += 1;
                Ok(Verdict::Verified)
            }
            Some(_) => {
                self.stats.replayed += 1;
                Ok(Verdict::Replayed)
            }
            None => {
                self.failed = true;
                let left = k.count_failure(&c, now);
                if left > 0 {
                    self.stats.mismatched += 1;
                    Ok(Verdict::Mismatch {
                        attempts_left: left,
                    })
                } else {
                    self.stats.locked += 1;
                    Ok(Verdict::Locked {
                        retry_after: ms(k.locked_until - now),
                    })
                }
            }
        }
    }

    fn unlock_totp(&mut self, key: u8) -> bool {
        self.tick();
        let Some(k) = self.totp.get_mut(&key) else {
            return false;
        };
        let had = k.failures > 0 || k.strikes > 0;
        k.clear_failures();
        had
    }

    fn issue(
        &mut self,
        key: u8,
        context: &[u8],
        ttl: Option<u64>,
        code: Option<&str>,
    ) -> Result<(), Error> {
        self.tick();
        let (c, now) = (self.c.clone(), self.now);
        if let Some(k) = self.keys.get(&key) {
            if let Some(left) = k.lockout_left(&c, now) {
                self.stats.locked += 1;
                return Err(Error::Locked {
                    retry_after: ms(left),
                });
            }
            let mut wait = 0;
            if c.cooldown > 0 && now < k.last_issue_at + c.cooldown {
                wait = k.last_issue_at + c.cooldown - now;
            }
            if c.max_issues > 0 && k.window_count >= c.max_issues && now < k.window_start + c.window
            {
                wait = wait.max(k.window_start + c.window - now);
            }
            if wait > 0 {
                self.stats.rate_limited += 1;
                return Err(Error::RateLimited {
                    retry_after: ms(wait),
                    scope: None,
                });
            }
        } else if self.held() >= c.capacity {
            self.stats.capacity_exceeded += 1;
            return Err(Error::CapacityExceeded {
                capacity: c.capacity as u64,
                out_of_memory: None,
            });
        }
        let code = code.expect("the engine issued when the model says it must");
        let k = self.keys.entry(key).or_default();
        let ttl = ttl.unwrap_or(c.ttl);
        let new = ModelCode {
            code: code.to_string(),
            context: context.to_vec(),
            expires_at: now + ttl,
            ttl,
            state: State::Pending,
        };
        if k.codes.first().is_some_and(|x| x.state != State::Burned) {
            k.codes.insert(0, new);
            k.codes.truncate(c.codes_per_key);
        } else {
            k.codes = vec![new];
        }
        k.attempts_left = c.max_attempts;
        k.last_issue_at = now;
        if c.max_issues > 0 {
            if k.window_count == 0 || now >= k.window_start + c.window {
                k.window_start = now;
                k.window_count = 1;
            } else {
                k.window_count += 1;
            }
        }
        self.stats.issued += 1;
        Ok(())
    }

    fn verify(&mut self, key: u8, typed: &[u8], context: &[u8]) -> Verdict {
        self.tick();
        let (c, now) = (self.c.clone(), self.now);
        let Some(k) = self.keys.get_mut(&key) else {
            self.stats.not_found += 1;
            return Verdict::NotFound;
        };
        if let Some(left) = k.lockout_left(&c, now) {
            self.stats.locked += 1;
            return Verdict::Locked {
                retry_after: ms(left),
            };
        }
        if k.codes.is_empty() {
            self.stats.not_found += 1;
            return Verdict::NotFound;
        }
        if k.codes[0].state == State::Burned {
            self.stats.locked += 1;
            return Verdict::Locked {
                retry_after: Duration::ZERO,
            };
        }
        let typed = canonical(typed, &c);
        let hit = |x: &ModelCode, state| {
            x.state == state && typed.as_deref() == Some(x.code.as_str()) && x.context == context
        };
        if k.codes.iter().any(|x| hit(x, State::Pending)) {
            k.codes.clear();
            k.clear_failures();
            self.stats.verified += 1;
            return Verdict::Verified;
        }
        if !k.codes.iter().any(|x| x.state == State::Pending)
            || k.codes.iter().any(|x| hit(x, State::Expired))
        {
            self.stats.expired += 1;
            return Verdict::Expired;
        }
        self.failed = true;
        k.attempts_left -= 1;
        let mut left = k.attempts_left;
        if c.max_failures > 0 {
            left = left.min(k.count_failure(&c, now));
        }
        if left > 0 {
            self.stats.mismatched += 1;
            return Verdict::Mismatch {
                attempts_left: left,
            };
        }
        k.codes.truncate(1);
        k.codes[0].state = State::Burned;
        self.stats.locked += 1;
        Verdict::Locked {
            retry_after: ms(k.lockout_left(&c, now).unwrap_or(0)),
        }
    }

    fn revoke(&mut self, key: u8) -> bool {
        self.tick();
        let Some(k) = self.keys.get_mut(&key) else {
            return false;
        };
        let had = k.codes.iter().any(|x| x.state == State::Pending);
        k.codes.clear();
        if had {
            self.stats.revoked += 1;
        }
        had
    }

    fn unlock(&mut self, key: u8) -> bool {
        self.tick();
        let Some(k) = self.keys.get_mut(&key) else {
            return false;
        };
        let had = k.failures > 0 || k.strikes > 0;
        k.clear_failures();
        had
    }

    fn expected_stats(&mut self) -> Stats {
        self.tick();
        let mut stats = self.stats.clone();
        stats.live = self
            .keys
            .values()
            .filter(|k| k.codes.iter().any(|x| x.state == State::Pending))
            .count() as u64;
        stats.held = self.held() as u64;
        stats.scopes = (0..self.c.scopes.len())
            .map(|k| crate::ScopeStats {
                name: scope_name(k as u8),
                rate_limited: self.scope_rate_limited[k],
                locked: self.scope_locked[k],
            })
            .collect();
        stats
    }
}

/// A TOTP code as typed, canonical: ASCII spaces and hyphens dropped, then six
/// ASCII digits or nothing.
fn totp_canonical(typed: &[u8]) -> Option<String> {
    if typed.len() > MAX_TYPED_LEN {
        return None;
    }
    let kept: Vec<u8> = typed
        .iter()
        .copied()
        .filter(|&b| b != b' ' && b != b'-')
        .collect();
    (kept.len() == 6 && kept.iter().all(u8::is_ascii_digit))
        .then(|| String::from_utf8(kept).expect("digits"))
}

/// The documented rule: ASCII spaces and hyphens dropped, letters upper-cased for
/// the alphanumeric alphabet, nothing else changed; over 256 bytes typed is never
/// a code.
fn canonical(typed: &[u8], c: &ModelConfig) -> Option<String> {
    if typed.len() > MAX_TYPED_LEN {
        return None;
    }
    let kept: Vec<u8> = typed
        .iter()
        .copied()
        .filter(|&b| b != b' ' && b != b'-')
        .collect();
    let kept = match c.alphabet {
        Alphabet::Digits => kept,
        Alphabet::Alphanumeric => kept.to_ascii_uppercase(),
    };
    let ok = kept.len() == c.code_length as usize
        && kept.iter().all(|b| c.alphabet.symbols().contains(b));
    ok.then(|| String::from_utf8(kept).expect("alphabet symbols are ASCII"))
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Clone, Debug)]
pub enum Guess {
    /// The newest code issued for the key.
    Newest,
    /// The n-th code before the newest.
    Older(usize),
    /// Same shape, equal to no code issued for the key.
    Wrong,
    /// The newest code with one symbol too many.
    Malformed,
    /// The newest code with spaces and a hyphen.
    Spaced,
    /// The newest code in lower case.
    Lowercase,
    /// The newest code respelled by `Respelling`: separators, case, look-alikes.
    Respelled(Vec<Respelling>),
    /// Arbitrary bytes.
    Raw(Vec<u8>),
}

/// One change to how a code is typed, at a position taken modulo its length.
#[derive(Clone, Debug)]
pub enum Respelling {
    /// Insert an ASCII space.
    Space(usize),
    /// Insert an ASCII hyphen.
    Hyphen(usize),
    /// Insert a tab, a no-break space (U+00A0) or an en dash (U+2013): not ignored.
    OtherSeparator(usize, u8),
    /// Flip the case of an ASCII letter.
    FlipCase(usize),
    /// Replace a digit by its full-width (U+FF10..) or Arabic-Indic (U+0660..) form.
    LookAlike(usize, bool),
    /// Append this many spaces (past 256 bytes typed, never a code).
    TrailingSpaces(usize),
}

#[derive(Clone, Debug)]
pub enum Op {
    Issue {
        key: u8,
        context: u8,
        ttl: Option<u64>,
    },
    Verify {
        key: u8,
        guess: Guess,
        context: u8,
    },
    Revoke {
        key: u8,
    },
    Unlock {
        key: u8,
    },
    Advance {
        ms: u64,
    },
    VerifyTotp {
        key: u8,
        guess: TotpGuess,
    },
    UnlockTotp {
        key: u8,
    },
    /// An issue naming scopes: (limit, value) pairs, limits distinct and
    /// configured (the runner drops the others).
    IssueScoped {
        key: u8,
        context: u8,
        scopes: Vec<(u8, u8)>,
    },
    VerifyScoped {
        key: u8,
        guess: Guess,
        context: u8,
        scopes: Vec<(u8, u8)>,
    },
    VerifyTotpScoped {
        key: u8,
        guess: TotpGuess,
        scopes: Vec<(u8, u8)>,
    },
    UnlockScope {
        limit: u8,
        value: u8,
    },
}

/// What a TOTP verify types.
#[derive(Clone, Debug)]
pub enum TotpGuess {
    /// The code of the current step plus this many steps.
    Step(i8),
    /// The code of a step, with a hyphen in it.
    Spaced(i8),
    /// Arbitrary bytes.
    Raw(Vec<u8>),
}

fn context(n: u8) -> &'static [u8] {
    [&b""[..], b"EUR 10 to bob", b"EUR 99 to eve"][n as usize]
}

/// What to type for `guess`, from the codes the engine has issued for the key.
fn typed(guess: &Guess, issued: &[String], alphabet: Alphabet) -> Vec<u8> {
    let newest = issued.last().cloned().unwrap_or_else(|| "123456".into());
    let text = match guess {
        Guess::Newest => newest,
        Guess::Older(n) => issued.iter().rev().nth(*n).cloned().unwrap_or(newest),
        Guess::Wrong => {
            // Same shape, equal to no code ever issued for the key.
            let symbols = alphabet.symbols();
            let mut bytes = newest.into_bytes();
            for step in 1.. {
                let i = step % bytes.len();
                let at = symbols.iter().position(|&s| s == bytes[i]).unwrap_or(0);
                bytes[i] = symbols[(at + 1) % symbols.len()];
                let candidate = String::from_utf8(bytes.clone()).unwrap();
                if !issued.contains(&candidate) {
                    return candidate.into_bytes();
                }
            }
            unreachable!()
        }
        Guess::Malformed => format!("{newest}7"),
        Guess::Spaced => {
            let (a, b) = newest.split_at(2);
            format!(" {a}-{b} ")
        }
        Guess::Lowercase => newest.to_lowercase(),
        Guess::Respelled(changes) => return respell(newest, changes),
        Guess::Raw(bytes) => return bytes.clone(),
    };
    text.into_bytes()
}

fn respell(code: String, changes: &[Respelling]) -> Vec<u8> {
    let mut chars: Vec<String> = code.chars().map(String::from).collect();
    let at = |i: usize, chars: &Vec<String>| i % (chars.len() + 1);
    for change in changes {
        match *change {
            Respelling::Space(i) => chars.insert(at(i, &chars), " ".into()),
            Respelling::Hyphen(i) => chars.insert(at(i, &chars), "-".into()),
            Respelling::OtherSeparator(i, which) => {
                let sep = ["\t", "\u{a0}", "\u{2013}"][usize::from(which) % 3];
                chars.insert(at(i, &chars), sep.into());
            }
            Respelling::FlipCase(i) => {
                let c = &mut chars[i % code.len()];
                *c = if c.chars().all(|x| x.is_ascii_lowercase()) {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            Respelling::LookAlike(i, full_width) => {
                let c = &mut chars[i % code.len()];
                if let Some(d) = c.chars().next().and_then(|x| x.to_digit(10)) {
                    let base = if full_width { 0xFF10 } else { 0x0660 };
                    *c = char::from_u32(base + d)
                        .expect("a digit's look-alike")
                        .into();
                }
            }
            Respelling::TrailingSpaces(n) => chars.push(" ".repeat(n % 400)),
        }
    }
    chars.concat().into_bytes()
}

/// The code a TOTP guess types at wall time `unix_ms`.
fn totp_typed(guess: &TotpGuess, unix_ms: u64) -> String {
    let step_code = |d: i8| {
        let step = (unix_ms / 1000 / 30).saturating_add_signed(d.into());
        crate::totp::hotp(TOTP_SECRET, step, 6, crate::totp::HashAlgorithm::Sha1)
            .unwrap()
            .to_string()
    };
    let typed: Vec<u8> = match guess {
        TotpGuess::Step(d) => step_code(*d).into_bytes(),
        TotpGuess::Spaced(d) => {
            let code = step_code(*d);
            format!("{}-{}", &code[..3], &code[3..]).into_bytes()
        }
        TotpGuess::Raw(bytes) => bytes.clone(),
    };
    String::from_utf8_lossy(&typed).into_owned()
}

/// Errors agree by kind (and field); their messages are the engine's.
fn kind(r: &Result<Verdict, Error>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(Error::InvalidInput(e)) => format!("invalid {:?}", e.field),
        Err(e) => format!("{e}"),
    }
}

/// An op's scopes that a call may name: configured limits, each once.
fn usable(scopes: &[(u8, u8)], configured: usize) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &(limit, value) in scopes {
        if usize::from(limit) < configured && !out.iter().any(|&(l, _)| l == limit) {
            out.push((limit, value));
        }
    }
    out
}

/// The names and values of a call's scopes, owned for the call.
struct ScopeArgs(Vec<(String, Vec<u8>)>);

impl ScopeArgs {
    fn of(scopes: &[(u8, u8)]) -> Self {
        ScopeArgs(
            scopes
                .iter()
                .map(|&(limit, value)| (scope_name(limit), scope_value(value)))
                .collect(),
        )
    }

    /// The call's scopes, as the engine takes them.
    fn scopes(&self) -> Vec<Scope<'_>> {
        self.0.iter().map(|(n, v)| Scope::new(n, v)).collect()
    }
}

/// `stats_every_step` reads the stats (which runs every due timer) after each op;
/// without it, answers must be exact however far behind the wheels are.
pub fn run(c: ModelConfig, ops: Vec<Op>, stats_every_step: bool) -> Result<(), String> {
    let clock = ManualClock::new();
    let engine = Engine::new(Config {
        code_length: c.code_length,
        alphabet: c.alphabet,
        ttl: ms(c.ttl),
        max_attempts: c.max_attempts,
        resend_cooldown: ms(c.cooldown),
        max_issues_per_window: c.max_issues,
        issue_window: ms(c.window),
        max_failures_per_key: c.max_failures,
        lockout: ms(c.lockout),
        escalate_lockouts: c.escalate,
        max_lockout: ms(c.max_lockout),
        codes_per_key: c.codes_per_key as u32,
        capacity: c.capacity as u64,
        shards: Some(c.shards),
        clock: Clock::manual(&clock),
        reaper_interval: None,
        scope_limits: c
            .scopes
            .iter()
            .enumerate()
            .map(|(n, l)| crate::scope::ScopeLimit {
                name: scope_name(n as u8),
                max_issues: l.max_issues,
                issue_window: ms(l.issue_window),
                max_failures: l.max_failures,
                failure_window: ms(l.failure_window),
            })
            .collect(),
        ..Config::default()
    })
    .expect("valid config");
    let mut model = Model {
        c: c.clone(),
        keys: HashMap::new(),
        totp: HashMap::new(),
        scopes: HashMap::new(),
        scope_rate_limited: [0; 8],
        scope_locked: [0; 8],
        failed: false,
        stats: Stats::default(),
        now: 0,
    };
    let mut issued: HashMap<u8, Vec<String>> = HashMap::new();
    let name = |key: u8| format!("user-{key}");

    for op in ops {
        match op.clone() {
            Op::Issue {
                key,
                context: ctx,
                ttl,
            } => {
                let got = match ttl {
                    Some(t) => engine.issue_with_ttl(name(key), context(ctx), ms(t)),
                    None => engine.issue(name(key), context(ctx)),
                };
                let code = got.as_ref().ok().map(|i| i.code.to_string());
                let want = model.issue(key, context(ctx), ttl, code.as_deref());
                check_eq!(
                    got.as_ref().map(|_| ()).map_err(Clone::clone),
                    want,
                    "{:?}",
                    op
                );
                if let Ok(i) = got {
                    check_eq!(i.expires_in, ms(ttl.unwrap_or(c.ttl)));
                    issued.entry(key).or_default().push(i.code.to_string());
                }
            }
            Op::Verify {
                key,
                ref guess,
                context: ctx,
            } => {
                let codes = issued.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                let typed = typed(guess, codes, c.alphabet);
                let got = engine
                    .verify(name(key), &typed, context(ctx))
                    .expect("keys and contexts are valid");
                check_eq!(
                    got,
                    model.verify(key, &typed, context(ctx)),
                    "{:?} typed {:?}",
                    op,
                    String::from_utf8_lossy(&typed)
                );
            }
            Op::Revoke { key } => {
                check_eq!(engine.revoke(name(key)).unwrap(), model.revoke(key))
            }
            Op::Unlock { key } => {
                check_eq!(engine.unlock(name(key)).unwrap(), model.unlock(key))
            }
            Op::Advance { ms: by } => {
                clock.advance(ms(by));
                model.now += by;
            }
            Op::VerifyTotp { key, ref guess } => {
                let unix_ms = TOTP_EPOCH_SECS * 1000 + model.now;
                let typed_str = totp_typed(guess, unix_ms);
                let at = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
                let got = engine.verify_totp(
                    name(key),
                    TOTP_SECRET,
                    &typed_str,
                    &crate::totp::TotpParams::default(),
                    Some(at),
                );
                let want = model.verify_totp(key, typed_str.as_bytes(), unix_ms);
                check_eq!(kind(&got), kind(&want), "{:?} typed {:?}", op, typed_str);
            }
            Op::VerifyTotpScoped {
                key,
                ref guess,
                ref scopes,
            } => {
                let scopes = usable(scopes, c.scopes.len());
                let owned = ScopeArgs::of(&scopes);
                let call = owned.scopes();
                let unix_ms = TOTP_EPOCH_SECS * 1000 + model.now;
                let typed_str = totp_typed(guess, unix_ms);
                let at = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
                let got = engine.verify_totp_scoped(
                    name(key),
                    TOTP_SECRET,
                    &typed_str,
                    &crate::totp::TotpParams::default(),
                    Some(at),
                    &call,
                );
                let now = model.now;
                let cfg = model.c.clone();
                // A TOTP verify without a failure budget is refused first, as a
                // bad argument.
                let want = if cfg.max_failures == 0 {
                    model.verify_totp(key, typed_str.as_bytes(), unix_ms)
                } else {
                    model.verify_scoped(
                        &scopes,
                        |m| {
                            m.totp
                                .get(&key)
                                .and_then(|k| k.lockout_left(&cfg, now))
                                .unwrap_or(0)
                        },
                        |m| !m.totp.contains_key(&key),
                        |m| m.verify_totp(key, typed_str.as_bytes(), unix_ms),
                    )
                };
                check_eq!(kind(&got), kind(&want), "{:?} typed {:?}", op, typed_str);
            }
            Op::IssueScoped {
                key,
                context: ctx,
                ref scopes,
            } => {
                let scopes = usable(scopes, c.scopes.len());
                let owned = ScopeArgs::of(&scopes);
                let call = owned.scopes();
                let got = engine.issue_scoped(name(key), context(ctx), None, &call);
                let code = got.as_ref().ok().map(|i| i.code.to_string());
                let want = model.issue_scoped(key, context(ctx), &scopes, code.as_deref());
                check_eq!(
                    got.as_ref().map(|_| ()).map_err(Clone::clone),
                    want,
                    "{:?}",
                    op
                );
                if let Ok(i) = got {
                    issued.entry(key).or_default().push(i.code.to_string());
                }
            }
            Op::VerifyScoped {
                key,
                ref guess,
                context: ctx,
                ref scopes,
            } => {
                let scopes = usable(scopes, c.scopes.len());
                let owned = ScopeArgs::of(&scopes);
                let call = owned.scopes();
                let codes = issued.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                let typed = typed(guess, codes, c.alphabet);
                let got = engine.verify_scoped(name(key), &typed, context(ctx), &call);
                let now = model.now;
                let cfg = model.c.clone();
                let want = model.verify_scoped(
                    &scopes,
                    |m| {
                        m.keys
                            .get(&key)
                            .and_then(|k| k.lockout_left(&cfg, now))
                            .unwrap_or(0)
                    },
                    |_| false,
                    |m| Ok(m.verify(key, &typed, context(ctx))),
                );
                check_eq!(
                    got,
                    want,
                    "{:?} typed {:?}",
                    op,
                    String::from_utf8_lossy(&typed)
                );
            }
            Op::UnlockScope { limit, value } => {
                if usize::from(limit) < c.scopes.len() {
                    check_eq!(
                        engine
                            .unlock_scope(&scope_name(limit), scope_value(value))
                            .unwrap(),
                        model.unlock_scope(limit, value)
                    );
                }
            }
            Op::UnlockTotp { key } => {
                check_eq!(
                    engine.unlock_totp(name(key)).unwrap(),
                    model.unlock_totp(key)
                )
            }
        }
        engine.validate();
        if stats_every_step {
            check_eq!(engine.stats(), model.expected_stats(), "after {:?}", op);
        }
    }
    check_eq!(engine.stats(), model.expected_stats());
    check_eq!(engine.len() as u64, model.expected_stats().live);
    engine.validate();
    Ok(())
}
