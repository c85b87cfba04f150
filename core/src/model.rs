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
    }

    fn held(&self) -> usize {
        self.keys.len() + self.totp.len()
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
        ..Config::default()
    })
    .expect("valid config");
    let mut model = Model {
        c: c.clone(),
        keys: HashMap::new(),
        totp: HashMap::new(),
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
                let typed_str = String::from_utf8_lossy(&typed).into_owned();
                let at = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
                let got = engine.verify_totp(
                    name(key),
                    TOTP_SECRET,
                    &typed_str,
                    &crate::totp::TotpParams::default(),
                    Some(at),
                );
                let want = model.verify_totp(key, typed_str.as_bytes(), unix_ms);
                // Errors agree by kind (and field); their messages are the engine's.
                let kind = |r: &Result<Verdict, Error>| match r {
                    Ok(v) => format!("{v:?}"),
                    Err(Error::InvalidInput(e)) => format!("invalid {:?}", e.field),
                    Err(e) => format!("{e}"),
                };
                check_eq!(kind(&got), kind(&want), "{:?} typed {:?}", op, typed_str);
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
