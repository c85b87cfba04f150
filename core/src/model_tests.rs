//! Random sequences of issue / verify / revoke / unlock / advance, run against
//! the reference model in `model.rs`. Every answer, `len()` and the stats must
//! agree, and the store's invariants ([`crate::Engine`]'s `validate`) must hold
//! after every step.

use proptest::prelude::*;

use crate::model::{run, Guess, ModelConfig, Op, Respelling};
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
