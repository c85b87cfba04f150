//! Decodes the input as an engine configuration and a sequence of operations
//! (issue, verify with any spelling or arbitrary bytes, revoke, unlock, TOTP
//! verifies and unlocks, advance the clock), runs them against an engine and against the reference model of
//! the property test, and fails on the first answer, `len()` or statistic on
//! which they differ, or on a broken store invariant.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use otpengine_core::model::{run, Guess, ModelConfig, ModelScopeLimit, Op, Respelling, TotpGuess};
use otpengine_core::Alphabet;

/// Keys the operations use: few, so that operations meet on the same key, or
/// (one input in four) enough that a shard's table grows and shrinks under them.
const FEW_KEYS: u8 = 6;
const MANY_KEYS: u8 = 40;
/// The longest lockout (30 days), which outlives a move of the store's epoch.
const LONGEST_LOCKOUT: u64 = 30 * 86_400_000;
/// The longest escalated lockout (365 days).
const LONGEST_MAX_LOCKOUT: u64 = 365 * 86_400_000;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((config, ops, stats_every_step)) = decode(&mut u) else {
        return;
    };
    if let Err(difference) = run(config.clone(), ops, stats_every_step) {
        panic!("{difference}\nconfig: {config:?}");
    }
});

fn decode(u: &mut Unstructured) -> Result<(ModelConfig, Vec<Op>, bool)> {
    let keys = if u.ratio(1, 4)? { MANY_KEYS } else { FEW_KEYS };
    let lockout = if u.ratio(1, 8)? {
        LONGEST_LOCKOUT
    } else {
        u.int_in_range(1..=60)? * 1000
    };
    let config = ModelConfig {
        code_length: u.int_in_range(4..=6)?,
        alphabet: if u.arbitrary()? {
            Alphabet::Alphanumeric
        } else {
            Alphabet::Digits
        },
        ttl: u.int_in_range(1..=20)? * 1000,
        max_attempts: u.int_in_range(1..=4)?,
        cooldown: u.int_in_range(0..=5)? * 1000,
        max_issues: u.int_in_range(0..=3)?,
        window: u.int_in_range(1..=30)? * 1000,
        max_failures: u.int_in_range(0..=6)?,
        lockout,
        escalate: u.arbitrary()?,
        // A multiple of the lockout, or the longest (365 days), whose history
        // outlives several moves of the store's epoch.
        max_lockout: if u.ratio(1, 4)? {
            LONGEST_MAX_LOCKOUT
        } else {
            lockout * u.int_in_range(1..=8)?
        },
        codes_per_key: u.int_in_range(1..=4)?,
        capacity: u.int_in_range(1..=8)? * usize::from(keys / FEW_KEYS),
        shards: 1 << u.int_in_range(0..=2)?,
        scopes: (0..u.int_in_range(0..=3u8)?)
            .map(|_| {
                Ok(ModelScopeLimit {
                    max_issues: u.int_in_range(0..=4)?,
                    issue_window: u.int_in_range(1..=40)? * 1000,
                    max_failures: u.int_in_range(0..=4)?,
                    failure_window: u.int_in_range(1..=40)? * 1000,
                })
            })
            .collect::<Result<_>>()?,
    };
    let stats_every_step = u.arbitrary()?;
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < 500 {
        ops.push(op(u, keys)?);
    }
    Ok((config, ops, stats_every_step))
}

fn op(u: &mut Unstructured, keys: u8) -> Result<Op> {
    let key = u.int_in_range(0..=keys - 1)?;
    Ok(match u.int_in_range(0..=15u8)? {
        12 => Op::IssueScoped {
            key,
            context: u.int_in_range(0..=2)?,
            scopes: scopes(u)?,
        },
        13 => Op::VerifyScoped {
            key,
            guess: guess(u)?,
            context: 0,
            scopes: scopes(u)?,
        },
        14 => Op::VerifyTotpScoped {
            key,
            guess: TotpGuess::Step(u.int_in_range(-2..=2)?),
            scopes: scopes(u)?,
        },
        15 => Op::UnlockScope {
            limit: u.int_in_range(0..=2)?,
            value: u.int_in_range(0..=2)?,
        },
        10 => Op::VerifyTotp {
            key,
            guess: match u.int_in_range(0..=7u8)? {
                0..=5 => TotpGuess::Step(u.int_in_range(-3..=3)?),
                6 => TotpGuess::Spaced(u.int_in_range(-1..=1)?),
                _ => TotpGuess::Raw(u.arbitrary()?),
            },
        },
        11 => Op::UnlockTotp { key },
        0..=2 => Op::Issue {
            key,
            context: u.int_in_range(0..=2)?,
            ttl: if u.ratio(1, 4)? {
                Some(u.int_in_range(1..=30)? * 1000)
            } else {
                None
            },
        },
        3..=6 => Op::Verify {
            key,
            guess: guess(u)?,
            context: if u.ratio(1, 4)? {
                u.int_in_range(0..=2)?
            } else {
                0
            },
        },
        7 => Op::Revoke { key },
        8 => Op::Unlock { key },
        _ => Op::Advance {
            ms: match u.int_in_range(0..=9u8)? {
                0..=6 => u.int_in_range(0..=70_000)?,
                // Days to weeks: the store's epoch moves 40 days after it was set.
                7 => u.int_in_range(1 << 29..=1 << 32)?,
                8 => u.int_in_range(1 << 29..=1 << 31)?,
                _ => u.int_in_range((1 << 36) - 10_000..=1 << 37)?,
            },
        },
    })
}

/// The scopes a call names: (limit, value), some unconfigured (dropped).
fn scopes(u: &mut Unstructured) -> Result<Vec<(u8, u8)>> {
    (0..u.int_in_range(0..=3u8)?)
        .map(|_| Ok((u.int_in_range(0..=2)?, u.int_in_range(0..=2)?)))
        .collect()
}

fn guess(u: &mut Unstructured) -> Result<Guess> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 | 1 => Guess::Newest,
        2 => Guess::Older(u.int_in_range(1..=3)?),
        3 => Guess::Wrong,
        4 => Guess::Malformed,
        5 => Guess::Lowercase,
        6 => {
            let n = u.int_in_range(1..=5)?;
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                changes.push(respelling(u)?);
            }
            Guess::Respelled(changes)
        }
        _ => {
            let n = u.int_in_range(0..=300usize)?;
            Guess::Raw(u.bytes(n.min(u.len()))?.to_vec())
        }
    })
}

fn respelling(u: &mut Unstructured) -> Result<Respelling> {
    let at = u.int_in_range(0..=11)?;
    Ok(match u.int_in_range(0..=5u8)? {
        0 => Respelling::Space(at),
        1 => Respelling::Hyphen(at),
        2 => Respelling::OtherSeparator(at, u.int_in_range(0..=2)?),
        3 => Respelling::FlipCase(at),
        4 => Respelling::LookAlike(at, u.arbitrary()?),
        _ => Respelling::TrailingSpaces(u.int_in_range(240..=270)?),
    })
}
