//! Random sequences of issue / verify / revoke / unlock / advance against a plain
//! reference model that keeps plaintext codes in a `HashMap` and forgets nothing
//! early. Every answer, `len()` and the stats must agree, and the store's
//! invariants ([`Engine::validate`]) must hold after every step.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::{Alphabet, Clock, Config, Engine, Error, ManualClock, Stats, Verdict};

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
}

/// The engine's semantics, written as plainly as possible.
struct Model {
    c: ModelConfig,
    keys: HashMap<u8, ModelKey>,
    stats: Stats,
    now: u64,
}

#[derive(Clone, Debug)]
struct ModelConfig {
    code_length: u32,
    alphabet: Alphabet,
    ttl: u64,
    max_attempts: u32,
    cooldown: u64,
    max_issues: u32,
    window: u64,
    max_failures: u32,
    lockout: u64,
    codes_per_key: usize,
    capacity: usize,
    shards: u32,
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
        if self.failures > 0 {
            at = at.max(self.last_failure_at + c.lockout);
        }
        at
    }

    fn lockout_left(&self, c: &ModelConfig, now: u64) -> Option<u64> {
        let until = self.last_failure_at + c.lockout;
        (c.max_failures > 0 && self.failures >= c.max_failures && now < until).then(|| until - now)
    }
}

impl Model {
    /// Brings every key up to `now`: expired codes, old failures, forgotten keys.
    fn tick(&mut self) {
        let (c, now) = (&self.c, self.now);
        for k in self.keys.values_mut() {
            if k.failures > 0 && now >= k.last_failure_at + c.lockout {
                k.failures = 0;
            }
            for code in &mut k.codes {
                if code.state == State::Pending && now >= code.expires_at {
                    code.state = State::Expired;
                }
            }
        }
        self.keys.retain(|_, k| k.forget_at(c) > now);
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
                });
            }
        } else if self.keys.len() >= c.capacity {
            self.stats.capacity_exceeded += 1;
            return Err(Error::CapacityExceeded {
                capacity: c.capacity as u64,
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

    fn verify(&mut self, key: u8, typed: &str, context: &[u8]) -> Verdict {
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
            k.failures = 0;
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
            k.failures += 1;
            k.last_failure_at = now;
            left = left.min(c.max_failures.saturating_sub(k.failures));
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
        let had = k.failures > 0;
        k.failures = 0;
        had
    }

    fn expected_stats(&mut self) -> Stats {
        self.tick();
        let mut stats = self.stats;
        stats.live = self
            .keys
            .values()
            .filter(|k| k.codes.iter().any(|x| x.state == State::Pending))
            .count() as u64;
        stats.held = self.keys.len() as u64;
        stats
    }
}

fn canonical(typed: &str, c: &ModelConfig) -> Option<String> {
    let kept: String = typed.chars().filter(|&ch| ch != ' ' && ch != '-').collect();
    let kept = match c.alphabet {
        Alphabet::Digits => kept,
        Alphabet::Alphanumeric => kept.to_ascii_uppercase(),
    };
    let ok = kept.len() == c.code_length as usize
        && kept.bytes().all(|b| c.alphabet.symbols().contains(&b));
    ok.then_some(kept)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Clone, Debug)]
enum Guess {
    Newest,
    Older(usize),
    Wrong,
    Malformed,
    Spaced,
    Lowercase,
}

#[derive(Clone, Debug)]
enum Op {
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
}

fn config_strategy() -> impl Strategy<Value = ModelConfig> {
    (
        (
            4u32..=6,
            prop::bool::ANY,
            1u64..=20,
            1u32..=4,
            prop_oneof![Just(0u64), 1u64..=5],
        ),
        (0u32..=3, 1u64..=30, 0u32..=6, 1u64..=60, 1usize..=4),
        (
            prop_oneof![1usize..=6, 30usize..=64],
            prop_oneof![Just(1u32), Just(2), Just(4)],
        ),
    )
        .prop_map(
            |(
                (len, alnum, ttl, attempts, cooldown),
                (issues, window, failures, lockout, k),
                (capacity, shards),
            )| {
                ModelConfig {
                    code_length: len,
                    alphabet: if alnum {
                        Alphabet::Alphanumeric
                    } else {
                        Alphabet::Digits
                    },
                    ttl: ttl * 1000,
                    max_attempts: attempts,
                    cooldown: cooldown * 1000,
                    max_issues: issues,
                    window: window * 1000,
                    max_failures: failures,
                    lockout: lockout * 1000,
                    codes_per_key: k,
                    capacity,
                    shards,
                }
            },
        )
}

fn op_strategy(keys: u8) -> impl Strategy<Value = Op> {
    let guess = prop_oneof![
        4 => Just(Guess::Newest),
        2 => (1usize..4).prop_map(Guess::Older),
        4 => Just(Guess::Wrong),
        1 => Just(Guess::Malformed),
        1 => Just(Guess::Spaced),
        1 => Just(Guess::Lowercase),
    ];
    let ttl = prop_oneof![3 => Just(None), 1 => (1u64..=30).prop_map(|s| Some(s * 1000))];
    prop_oneof![
        4 => (0..keys, 0u8..3, ttl).prop_map(|(key, context, ttl)| Op::Issue { key, context, ttl }),
        6 => (0..keys, guess, prop_oneof![4 => Just(0u8), 1 => 0u8..3])
            .prop_map(|(key, guess, context)| Op::Verify { key, guess, context }),
        1 => (0..keys).prop_map(|key| Op::Revoke { key }),
        1 => (0..keys).prop_map(|key| Op::Unlock { key }),
        3 => prop_oneof![
            8 => 0u64..=3000,
            8 => 0u64..=70_000,
            // Pauses of days to years, and one just short of the wheel's span (2^36 ms),
            // which once let a clamped timer hide another for a lap.
            1 => (1u64 << 29)..=(1 << 31),
            1 => (1u64 << 35)..=(1 << 37),
            1 => Just((1u64 << 36) - 5_000),
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

fn context(n: u8) -> &'static [u8] {
    [&b""[..], b"EUR 10 to bob", b"EUR 99 to eve"][n as usize]
}

/// What to type for `guess`, from the codes the engine has issued for the key.
fn typed(guess: &Guess, issued: &[String], alphabet: Alphabet) -> String {
    let newest = issued.last().cloned().unwrap_or_else(|| "123456".into());
    match guess {
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
                    return candidate;
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
    }
}

/// `stats_every_step` reads the stats (which runs every due timer) after each op;
/// without it, answers must be exact however far behind the wheels are.
fn run(c: ModelConfig, ops: Vec<Op>, stats_every_step: bool) -> Result<(), TestCaseError> {
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
                prop_assert_eq!(
                    got.as_ref().map(|_| ()).map_err(Clone::clone),
                    want,
                    "{:?}",
                    op
                );
                if let Ok(i) = got {
                    prop_assert_eq!(i.expires_in, ms(ttl.unwrap_or(c.ttl)));
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
                let got = engine.verify(name(key), &typed, context(ctx)).unwrap();
                prop_assert_eq!(
                    got,
                    model.verify(key, &typed, context(ctx)),
                    "{:?} typed {:?}",
                    op,
                    typed
                );
            }
            Op::Revoke { key } => {
                prop_assert_eq!(engine.revoke(name(key)).unwrap(), model.revoke(key))
            }
            Op::Unlock { key } => {
                prop_assert_eq!(engine.unlock(name(key)).unwrap(), model.unlock(key))
            }
            Op::Advance { ms: by } => {
                clock.advance(ms(by));
                model.now += by;
            }
        }
        engine.validate();
        if stats_every_step {
            prop_assert_eq!(engine.stats(), model.expected_stats(), "after {:?}", op);
        }
    }
    prop_assert_eq!(engine.stats(), model.expected_stats());
    prop_assert_eq!(engine.len() as u64, model.expected_stats().live);
    engine.validate();
    Ok(())
}

proptest! {
    // 2000 cases each in CI; PROPTEST_CASES=50000 for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_model_on_few_keys(c in config_strategy(), ops in prop::collection::vec(op_strategy(4), 1..120)) {
        run(c, ops, true)?;
    }

    #[test]
    fn engine_matches_the_model_on_many_keys(c in config_strategy(), ops in prop::collection::vec(op_strategy(60), 1..400)) {
        run(c, ops, false)?;
    }
}
