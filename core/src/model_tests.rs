//! Random sequences of issue / verify / revoke / unlock / advance, run against
//! the reference model in `model.rs`. Every answer, `len()` and the stats must
//! agree, and the store's invariants ([`crate::Engine`]'s `validate`) must hold
//! after every step.

use proptest::prelude::*;

use crate::model::{run, Guess, ModelConfig, ModelScopeLimit, Op, Respelling, TotpGuess};
use crate::Alphabet;

fn config_strategy() -> impl Strategy<Value = ModelConfig> {
    (
        (
            4u32..=6,
            prop::bool::ANY,
            1u64..=20,
            1u32..=4,
            prop_oneof![Just(0u64), 1u64..=5],
        ),
        (
            0u32..=3,
            1u64..=30,
            0u32..=6,
            // The longest lockout (30 days) outlives a move of the store's epoch.
            prop_oneof![7 => 1u64..=60, 1 => Just(30 * 86_400)],
            1usize..=4,
        ),
        (
            prop_oneof![1usize..=6, 30usize..=64],
            prop_oneof![Just(1u32), Just(2), Just(4)],
            // Escalation, and max_lockout as a multiple of lockout (0: 365 days,
            // a history that outlives several moves of the epoch).
            any::<bool>(),
            prop_oneof![3 => 1u64..=8, 1 => Just(0)],
        ),
        prop::collection::vec(scope_limit(), 0..=3),
    )
        .prop_map(
            |(
                (len, alnum, ttl, attempts, cooldown),
                (issues, window, failures, lockout, k),
                (capacity, shards, escalate, max_lockout),
                scopes,
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
                    escalate,
                    max_lockout: match max_lockout {
                        0 => 365 * 86_400_000,
                        factor => lockout * 1000 * factor,
                    },
                    codes_per_key: k,
                    capacity,
                    shards,
                    scopes,
                }
            },
        )
}

/// A scope limit with small budgets and windows, so that they fill and end.
fn scope_limit() -> impl Strategy<Value = ModelScopeLimit> {
    (0u32..=4, 1u64..=40, 0u32..=4, 1u64..=40).prop_map(
        |(max_issues, issue_window, max_failures, failure_window)| ModelScopeLimit {
            max_issues,
            issue_window: issue_window * 1000,
            max_failures,
            failure_window: failure_window * 1000,
        },
    )
}

/// The scopes a call names: (limit, value), some unconfigured (dropped).
fn scopes() -> impl Strategy<Value = Vec<(u8, u8)>> {
    prop::collection::vec((0u8..3, 0u8..3), 0..=3)
}

/// Ways to type a code that must verify exactly when the canonical spelling
/// would, and never twice (the class of CVE-2025-6014).
fn respelling() -> impl Strategy<Value = Respelling> {
    prop_oneof![
        (0usize..12).prop_map(Respelling::Space),
        (0usize..12).prop_map(Respelling::Hyphen),
        (0usize..12, 0u8..3).prop_map(|(i, w)| Respelling::OtherSeparator(i, w)),
        (0usize..12).prop_map(Respelling::FlipCase),
        (0usize..12, any::<bool>()).prop_map(|(i, f)| Respelling::LookAlike(i, f)),
        (240usize..270).prop_map(Respelling::TrailingSpaces),
    ]
}

fn totp_guess() -> impl Strategy<Value = TotpGuess> {
    prop_oneof![
        6 => (-3i8..=3).prop_map(TotpGuess::Step),
        1 => (-1i8..=1).prop_map(TotpGuess::Spaced),
        1 => prop::collection::vec(any::<u8>(), 0..10).prop_map(TotpGuess::Raw),
    ]
}

fn op_strategy(keys: u8) -> impl Strategy<Value = Op> {
    let guess = prop_oneof![
        4 => Just(Guess::Newest),
        2 => (1usize..4).prop_map(Guess::Older),
        4 => Just(Guess::Wrong),
        1 => Just(Guess::Malformed),
        1 => Just(Guess::Spaced),
        1 => Just(Guess::Lowercase),
        2 => prop::collection::vec(respelling(), 1..6).prop_map(Guess::Respelled),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Guess::Raw),
    ];
    let ttl = prop_oneof![3 => Just(None), 1 => (1u64..=30).prop_map(|s| Some(s * 1000))];
    let scoped = prop_oneof![
        3 => (0..keys, 0u8..3, scopes())
            .prop_map(|(key, context, scopes)| Op::IssueScoped { key, context, scopes }),
        4 => (0..keys, guess.clone(), scopes())
            .prop_map(|(key, guess, scopes)| Op::VerifyScoped { key, guess, context: 0, scopes }),
        1 => (0..keys, totp_guess(), scopes())
            .prop_map(|(key, guess, scopes)| Op::VerifyTotpScoped { key, guess, scopes }),
        1 => (0u8..3, 0u8..3).prop_map(|(limit, value)| Op::UnlockScope { limit, value }),
    ];
    prop_oneof![
        4 => scoped,
        4 => (0..keys, 0u8..3, ttl).prop_map(|(key, context, ttl)| Op::Issue { key, context, ttl }),
        6 => (0..keys, guess, prop_oneof![4 => Just(0u8), 1 => 0u8..3])
            .prop_map(|(key, guess, context)| Op::Verify { key, guess, context }),
        1 => (0..keys).prop_map(|key| Op::Revoke { key }),
        1 => (0..keys).prop_map(|key| Op::Unlock { key }),
        2 => (0..keys, totp_guess()).prop_map(|(key, guess)| Op::VerifyTotp { key, guess }),
        1 => (0..keys).prop_map(|key| Op::UnlockTotp { key }),
        3 => prop_oneof![
            8 => 0u64..=3000,
            8 => 0u64..=70_000,
            // Pauses of days to years, and one just short of the wheel's span (2^36 ms),
            // which once let a clamped timer hide another for a lap.
            1 => (1u64 << 29)..=(1 << 31),
            // Days to weeks: the store's epoch moves 40 days after it was set.
            1 => (1u64 << 31)..=(1 << 32),
            1 => (1u64 << 35)..=(1 << 37),
            1 => Just((1u64 << 36) - 5_000),
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    // 2000 cases each in CI; PROPTEST_CASES=50000 for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_model_on_few_keys(c in config_strategy(), ops in prop::collection::vec(op_strategy(4), 1..120)) {
        run(c, ops, true).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn engine_matches_the_model_on_many_keys(c in config_strategy(), ops in prop::collection::vec(op_strategy(60), 1..400)) {
        run(c, ops, false).map_err(TestCaseError::fail)?;
    }
}

/// The new pieces of the store, each driven to its edge with the invariants
/// checked after every step: the epoch moving while state must survive it,
/// tables growing and shrinking under pending timers, timers that fire for a row
/// that moved or was forgotten and made again, and stale timers kept bounded.
mod store {
    use std::time::Duration;

    use crate::{Clock, Config, Engine, Error, ManualClock, Verdict};

    const DAY: Duration = Duration::from_secs(86_400);

    fn engine(clock: &ManualClock, config: Config) -> Engine {
        Engine::new(Config {
            clock: Clock::manual(clock),
            reaper_interval: None,
            ..config
        })
        .unwrap()
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A 30-day lockout and a pending code both outlive two moves of the epoch
    /// (at 40 days past it), to the millisecond.
    #[test]
    fn state_survives_the_epoch_moving() {
        let clock = ManualClock::new();
        let e = engine(
            &clock,
            Config {
                lockout: 30 * DAY,
                max_failures_per_key: 2,
                shards: Some(1),
                ..Config::default()
            },
        );
        clock.advance(35 * DAY);
        e.issue("locked", "").unwrap();
        assert!(matches!(
            e.verify("locked", "000000", "").unwrap(),
            Verdict::Mismatch { .. }
        ));
        assert!(matches!(
            e.verify("locked", "000001", "").unwrap(),
            Verdict::Locked { .. }
        ));
        // The lockout ends at 65 days. The epoch is 0 until now passes 40 days,
        // then moves to now - 30 days; a code issued just before that must verify
        // just after.
        clock.advance(5 * DAY - ms(60_000));
        let code = e.issue("pending", "").unwrap().code;
        e.validate();
        clock.advance(ms(120_000));
        assert_eq!(
            e.verify("pending", code.as_str(), ""),
            Ok(Verdict::Verified)
        );
        e.validate();
        // 40 days and a minute; 10 days on, at 50, the epoch moves again.
        clock.advance(10 * DAY);
        let left = 15 * DAY - ms(60_000);
        assert_eq!(
            e.issue("locked", ""),
            Err(Error::Locked { retry_after: left }),
            "the lockout's end did not move"
        );
        e.validate();
        clock.advance(left - ms(1));
        assert!(
            matches!(e.issue("locked", ""), Err(Error::Locked { retry_after }) if retry_after == ms(1))
        );
        clock.advance(ms(1));
        assert!(
            e.issue("locked", "").is_ok(),
            "the lockout ends when it said"
        );
        e.validate();
        // A jump of years moves the epoch past everything at once.
        clock.advance(4000 * DAY);
        assert!(e.issue("pending", "").is_ok());
        e.validate();
        assert_eq!(e.stats().held, 1, "the locked key is long forgotten");
    }

    /// Ten thousand keys make every shard's table grow by quarters and then
    /// shrink by halves while each key has a timer pending; every answer stays
    /// right and every row keeps a live timer through every move.
    #[test]
    fn tables_resize_under_pending_timers() {
        let clock = ManualClock::new();
        let e = engine(
            &clock,
            Config {
                ttl: Duration::from_secs(1200),
                shards: Some(2),
                ..Config::default()
            },
        );
        let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let codes: Vec<_> = keys.iter().map(|k| e.issue(k, "").unwrap().code).collect();
        e.validate();
        for (k, c) in keys.iter().zip(&codes).skip(100) {
            assert_eq!(e.verify(k, c.as_str(), "").unwrap(), Verdict::Verified);
        }
        e.validate();
        // Past the window and cooldown of the consumed ones: their rows go, the
        // tables shrink, and the first hundred still verify.
        clock.advance(Duration::from_secs(601));
        assert_eq!(e.stats().held, 100, "{:?}", e.stats());
        e.validate();
        for (k, c) in keys.iter().zip(&codes).take(100) {
            assert_eq!(e.verify(k, c.as_str(), "").unwrap(), Verdict::Verified);
        }
        e.validate();
    }

    /// A key forgotten and made again before its old timer fires: the old timer
    /// finds a row with another deadline and does nothing to it.
    #[test]
    fn an_old_timer_leaves_a_new_row_of_its_key_alone() {
        let clock = ManualClock::new();
        // Capacity 2: at half full a forgotten key's row is deleted, not kept spare.
        let e = engine(
            &clock,
            Config {
                capacity: 2,
                resend_cooldown: Duration::ZERO,
                max_issues_per_window: 0,
                shards: Some(1),
                ..Config::default()
            },
        );
        let first = e.issue("a", "").unwrap().code;
        assert_eq!(
            e.verify("a", first.as_str(), "").unwrap(),
            Verdict::Verified
        );
        assert_eq!(e.stats().held, 0, "deleted, not spare");
        clock.advance(Duration::from_secs(100));
        let second = e.issue("a", "").unwrap().code;
        e.validate();
        clock.advance(Duration::from_secs(201)); // past the first code's expiry timer
        assert_eq!(e.stats().live, 1, "the old timer expired nothing");
        e.validate();
        assert_eq!(
            e.verify("a", second.as_str(), "").unwrap(),
            Verdict::Verified
        );
        e.validate();
    }

    /// Each round moves a key's next event earlier than its timer (a new code
    /// after a failure pushed the timer out to the lockout's end), leaving one
    /// stale timer; the wheel is rebuilt before they outnumber the rows by more
    /// than the slack.
    #[test]
    fn stale_timers_stay_bounded() {
        let clock = ManualClock::new();
        let e = engine(
            &clock,
            Config {
                resend_cooldown: Duration::ZERO,
                max_issues_per_window: 0,
                ttl: Duration::from_secs(1),
                lockout: Duration::from_secs(3000),
                max_failures_per_key: 10_000,
                shards: Some(1),
                ..Config::default()
            },
        );
        for round in 0..3000 {
            e.issue("k", "").unwrap();
            assert!(
                matches!(
                    e.verify("k", "------", "").unwrap(),
                    Verdict::Mismatch { .. }
                ),
                "round {round}"
            );
            clock.advance(Duration::from_secs(1)); // the code expires: the timer moves to the lockout's end
            let _ = e.stats();
            if round % 500 == 0 {
                e.validate();
            }
        }
        e.validate();
    }
}
