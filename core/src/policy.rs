//! Configuration: what a user sets, its bounds and defaults, and the validated
//! [`Policy`] the engine runs on (durations in milliseconds, counts narrowed to
//! the widths the store keeps).

use std::time::Duration;

use crate::clock::{ceil_millis, Clock, Millis};
use crate::code::{Alphabet, MAX_CODE_LENGTH, MIN_CODE_LENGTH};
use crate::digest::{DigestAlgorithm, Secret};
use crate::error::{Constraint, Field, Got, InvalidInput};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Bounds of [`Config::ttl`] and of per-call ttl overrides.
pub const TTL_RANGE: (Duration, Duration) = (SECOND, DAY);
/// Bounds of [`Config::max_attempts`].
pub const MAX_ATTEMPTS_RANGE: (u32, u32) = (1, 100);
/// Bounds of [`Config::resend_cooldown`]; zero turns the cooldown off.
pub const RESEND_COOLDOWN_RANGE: (Duration, Duration) = (Duration::ZERO, HOUR);
/// Bounds of [`Config::max_issues_per_window`]; zero turns the window limit off.
pub const MAX_ISSUES_PER_WINDOW_RANGE: (u32, u32) = (0, 1000);
/// Bounds of [`Config::issue_window`].
pub const ISSUE_WINDOW_RANGE: (Duration, Duration) = (SECOND, DAY);
/// Bounds of [`Config::max_failures_per_key`]; zero turns the failure budget off.
pub const MAX_FAILURES_PER_KEY_RANGE: (u32, u32) = (0, 10_000);
/// Bounds of [`Config::lockout`].
pub const LOCKOUT_RANGE: (Duration, Duration) = (SECOND, Duration::from_secs(30 * 86_400));
/// Bounds of [`Config::max_lockout`] (and never below [`Config::lockout`]).
pub const MAX_LOCKOUT_RANGE: (Duration, Duration) = (SECOND, Duration::from_secs(365 * 86_400));
/// Bounds of [`Config::codes_per_key`].
pub const CODES_PER_KEY_RANGE: (u32, u32) = (1, 4);
/// Bounds of [`Config::capacity`].
pub const CAPACITY_RANGE: (u64, u64) = (1, 1 << 32);
/// Bounds of [`Config::shards`] (also a power of two).
pub const SHARDS_RANGE: (u32, u32) = (1, 65_536);
/// Bounds of [`Config::reaper_interval`].
pub const REAPER_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_millis(1), HOUR);
/// Bounds of the Redis backend's connect and response timeouts
/// (`RedisOptions::connect_timeout` and `response_timeout`, feature `redis`).
pub const REDIS_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), MINUTE);
/// Longest key, in bytes (keys must not be empty).
pub const MAX_KEY_LEN: usize = 1024;
/// Longest context, in bytes (empty is the same as none).
pub const MAX_CONTEXT_LEN: usize = 1024;

/// Everything an engine can be told. Start from [`Config::default`] and change
/// what you need:
///
/// ```
/// use std::time::Duration;
/// use otpengine_core::{Alphabet, Config};
///
/// let config = Config {
///     alphabet: Alphabet::Alphanumeric,
///     ttl: Duration::from_secs(120),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Symbols per code, 4..=10. Default 6.
    pub code_length: u32,
    /// Digits (default) or the unambiguous 32-symbol alphanumeric alphabet.
    pub alphabet: Alphabet,
    /// How long a code stays valid, 1 s..=24 h. Default 5 min.
    pub ttl: Duration,
    /// Failed verifies a code survives before it is burned, 1..=100. Default 5.
    pub max_attempts: u32,
    /// Least time between two issues for one key, 0 (off)..=1 h. Default 30 s.
    pub resend_cooldown: Duration,
    /// Issues allowed per key per window, 0 (off)..=1000. Default 5.
    pub max_issues_per_window: u32,
    /// Length of the issue window, 1 s..=24 h. Default 10 min.
    pub issue_window: Duration,
    /// Consecutive failed verifies of a key, across its codes, before the key is
    /// locked out, 0 (off)..=10,000. Default 100, the NIST SP 800-63B upper bound.
    pub max_failures_per_key: u32,
    /// How long a key stays locked out after it first spends its failure budget,
    /// 1 s..=30 days. Default 1 h. With escalation off, also how long a failure
    /// is remembered.
    pub lockout: Duration,
    /// Escalating lockouts (default on): each time a key spends its failure
    /// budget again before a `Verified` or an unlock, its lockout doubles, up to
    /// [`Config::max_lockout`]. Failures are remembered for `max_lockout` after
    /// the last one, and once the key has been locked out, for a year more, so
    /// the budget cannot be waited out (SECURITY.md has the numbers).
    /// Off: every lockout is `lockout` long, and failures are forgotten one
    /// `lockout` after the last.
    pub escalate_lockouts: bool,
    /// The longest an escalated lockout lasts, `lockout`..=365 days (at least
    /// 1 s). Default 30 days. Unused with escalation off.
    pub max_lockout: Duration,
    /// Codes per key that stay valid at once, 1..=4. Default 1: a new issue replaces
    /// the old code. With K > 1 the last K codes stay valid, each until its own expiry.
    pub codes_per_key: u32,
    /// Keys the engine holds any state for, 1..=2^32. Default 10,000,000.
    pub capacity: u64,
    /// Number of shards, a power of two in 1..=65536; `None` picks a power of two
    /// near four per core.
    pub shards: Option<u32>,
    /// System monotonic clock (default) or a [`ManualClock`](crate::ManualClock).
    pub clock: Clock,
    /// Secret for key ids and code digests; `None` draws a random one per engine.
    /// Give one only when several engines must agree on digests.
    pub secret: Option<Secret>,
    /// PRF behind the digests. Default SipHash-2-4.
    pub digest: DigestAlgorithm,
    /// Limits on scopes a call may name (a client address, a phone prefix, a
    /// tenant, the whole service), up to 8 with distinct names: see
    /// [`crate::scope`]. Default none.
    pub scope_limits: Vec<crate::scope::ScopeLimit>,
    /// How often a background thread sweeps idle shards for expired entries,
    /// 1 ms..=1 h; `None` runs no thread (operations still reclaim as they go).
    /// Default 1 s.
    pub reaper_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            code_length: 6,
            alphabet: Alphabet::Digits,
            ttl: 5 * MINUTE,
            max_attempts: 5,
            resend_cooldown: 30 * SECOND,
            max_issues_per_window: 5,
            issue_window: 10 * MINUTE,
            max_failures_per_key: 100,
            lockout: HOUR,
            escalate_lockouts: true,
            max_lockout: 30 * DAY,
            codes_per_key: 1,
            capacity: 10_000_000,
            shards: None,
            clock: Clock::system(),
            secret: None,
            digest: DigestAlgorithm::SipHash24,
            scope_limits: Vec::new(),
            reaper_interval: Some(SECOND),
        }
    }
}

impl Config {
    /// Checks every field against its bounds; the error names the first bad one.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Policy::from_config(self).map(|_| ())
    }

    /// The shard count `shards: None` picks on this machine: the power of two at or
    /// above four per core.
    pub fn default_shards() -> u32 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * 4).next_power_of_two().min(SHARDS_RANGE.1 as usize) as u32
    }
}

/// A validated configuration in the units the store works in.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub code_length: u32,
    pub alphabet: Alphabet,
    pub ttl: Millis,
    pub max_attempts: u8,
    pub resend_cooldown: Millis,
    pub max_issues_per_window: u16,
    pub issue_window: Millis,
    pub max_failures_per_key: u16,
    pub lockout: Millis,
    /// Escalating lockouts on (see `rules::lockout_len`).
    pub escalate: bool,
    pub max_lockout: Millis,
    pub codes_per_key: u8,
    pub capacity: u64,
    pub shards: u32,
    /// The scope limits, in the order configured.
    pub scopes: Vec<crate::scope::ScopePolicy>,
}

impl Policy {
    pub(crate) fn from_config(c: &Config) -> Result<Self, InvalidInput> {
        count(
            Field::CodeLength,
            c.code_length,
            (MIN_CODE_LENGTH, MAX_CODE_LENGTH),
        )?;
        let ttl = check_ttl(c.ttl)?;
        count(Field::MaxAttempts, c.max_attempts, MAX_ATTEMPTS_RANGE)?;
        let resend_cooldown = duration(
            Field::ResendCooldown,
            c.resend_cooldown,
            RESEND_COOLDOWN_RANGE,
        )?;
        count(
            Field::MaxIssuesPerWindow,
            c.max_issues_per_window,
            MAX_ISSUES_PER_WINDOW_RANGE,
        )?;
        let issue_window = duration(Field::IssueWindow, c.issue_window, ISSUE_WINDOW_RANGE)?;
        count(
            Field::MaxFailuresPerKey,
            c.max_failures_per_key,
            MAX_FAILURES_PER_KEY_RANGE,
        )?;
        let lockout = duration(Field::Lockout, c.lockout, LOCKOUT_RANGE)?;
        let max_lockout = duration(Field::MaxLockout, c.max_lockout, MAX_LOCKOUT_RANGE)?;
        if c.escalate_lockouts && c.max_lockout < c.lockout {
            // The bound that matters here is the configured lockout.
            duration(
                Field::MaxLockout,
                c.max_lockout,
                (c.lockout, MAX_LOCKOUT_RANGE.1),
            )?;
        }
        count(Field::CodesPerKey, c.codes_per_key, CODES_PER_KEY_RANGE)?;
        if !(CAPACITY_RANGE.0..=CAPACITY_RANGE.1).contains(&c.capacity) {
            return Err(InvalidInput {
                field: Field::Capacity,
                constraint: Constraint::Range {
                    min: CAPACITY_RANGE.0,
                    max: CAPACITY_RANGE.1,
                },
                got: Got::Int(c.capacity),
            });
        }
        let shards = match c.shards {
            None => Config::default_shards(),
            Some(n) if n.is_power_of_two() && (SHARDS_RANGE.0..=SHARDS_RANGE.1).contains(&n) => n,
            Some(n) => {
                return Err(InvalidInput {
                    field: Field::Shards,
                    constraint: Constraint::PowerOfTwo {
                        min: SHARDS_RANGE.0.into(),
                        max: SHARDS_RANGE.1.into(),
                    },
                    got: Got::Int(n.into()),
                })
            }
        };
        if let Some(interval) = c.reaper_interval {
            duration(Field::ReaperInterval, interval, REAPER_INTERVAL_RANGE)?;
        }
        let scopes = crate::scope::check_limits(&c.scope_limits)?;
        Ok(Policy {
            code_length: c.code_length,
            alphabet: c.alphabet,
            ttl,
            max_attempts: c.max_attempts as u8,
            resend_cooldown,
            max_issues_per_window: c.max_issues_per_window as u16,
            issue_window,
            max_failures_per_key: c.max_failures_per_key as u16,
            lockout,
            escalate: c.escalate_lockouts,
            max_lockout,
            codes_per_key: c.codes_per_key as u8,
            capacity: c.capacity,
            shards,
            scopes,
        })
    }
}

/// The bounds of a configuration field (or of a call's ttl), for front ends that
/// must reject a value before it can be put in a [`Config`] (a negative number,
/// say); `None` for fields that are not numbers.
pub fn constraint(field: Field) -> Option<Constraint> {
    let count = |(min, max): (u32, u32)| Constraint::Range {
        min: min.into(),
        max: max.into(),
    };
    let span = |(min, max): (Duration, Duration)| Constraint::DurationRange { min, max };
    Some(match field {
        Field::CodeLength => count((MIN_CODE_LENGTH, MAX_CODE_LENGTH)),
        Field::Ttl => span(TTL_RANGE),
        Field::MaxAttempts => count(MAX_ATTEMPTS_RANGE),
        Field::ResendCooldown => span(RESEND_COOLDOWN_RANGE),
        Field::MaxIssuesPerWindow => count(MAX_ISSUES_PER_WINDOW_RANGE),
        Field::IssueWindow => span(ISSUE_WINDOW_RANGE),
        Field::MaxFailuresPerKey => count(MAX_FAILURES_PER_KEY_RANGE),
        Field::Lockout => span(LOCKOUT_RANGE),
        Field::MaxLockout => span(MAX_LOCKOUT_RANGE),
        Field::CodesPerKey => count(CODES_PER_KEY_RANGE),
        Field::Capacity => Constraint::Range {
            min: CAPACITY_RANGE.0,
            max: CAPACITY_RANGE.1,
        },
        Field::Shards => Constraint::PowerOfTwo {
            min: SHARDS_RANGE.0.into(),
            max: SHARDS_RANGE.1.into(),
        },
        Field::ReaperInterval => span(REAPER_INTERVAL_RANGE),
        Field::RedisConnectTimeout | Field::RedisResponseTimeout => span(REDIS_TIMEOUT_RANGE),
        Field::TotpDigits => count(crate::totp::DIGITS_RANGE),
        Field::TotpPeriod => span(crate::totp::PERIOD_RANGE),
        Field::TotpSkewBack | Field::TotpSkewAhead => count(crate::totp::SKEW_RANGE),
        _ => return None,
    })
}

/// Checks a duration against the bounds of `field`; the error names the field.
pub(crate) fn check_duration_of(
    field: Field,
    value: Duration,
    bounds: (Duration, Duration),
) -> Result<Millis, InvalidInput> {
    duration(field, value, bounds)
}

/// Checks a ttl (configured or per call) and returns it in milliseconds.
pub(crate) fn check_ttl(ttl: Duration) -> Result<Millis, InvalidInput> {
    duration(Field::Ttl, ttl, TTL_RANGE)
}

pub(crate) fn count(field: Field, value: u32, (min, max): (u32, u32)) -> Result<(), InvalidInput> {
    // Bounds come from the same constants as `constraint(field)`.
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(InvalidInput {
        field,
        constraint: Constraint::Range {
            min: min.into(),
            max: max.into(),
        },
        got: Got::Int(value.into()),
    })
}

fn duration(
    field: Field,
    value: Duration,
    (min, max): (Duration, Duration),
) -> Result<Millis, InvalidInput> {
    if (min..=max).contains(&value) {
        return Ok(ceil_millis(value));
    }
    Err(InvalidInput {
        field,
        constraint: Constraint::DurationRange { min, max },
        got: Got::Duration(value),
    })
}

/// Checks a key's length (1..=1024 bytes). Front ends that receive a pointer and a
/// length call this before they form a slice.
pub fn check_key_length(len: usize) -> Result<(), InvalidInput> {
    length(Field::Key, len, 1, MAX_KEY_LEN)
}

/// Checks a context's length (0..=1024 bytes).
pub fn check_context_length(len: usize) -> Result<(), InvalidInput> {
    length(Field::Context, len, 0, MAX_CONTEXT_LEN)
}

pub(crate) fn check_key(key: &[u8]) -> Result<(), InvalidInput> {
    check_key_length(key.len())
}

pub(crate) fn check_context(context: &[u8]) -> Result<(), InvalidInput> {
    check_context_length(context.len())
}

fn length(field: Field, len: usize, min: usize, max: usize) -> Result<(), InvalidInput> {
    if (min..=max).contains(&len) {
        return Ok(());
    }
    Err(InvalidInput {
        field,
        constraint: Constraint::Length { min, max },
        got: Got::Bytes(len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: Config) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = Config::default();
        let p = Policy::from_config(&c).unwrap();
        assert_eq!((p.code_length, p.alphabet), (6, Alphabet::Digits));
        assert_eq!(p.ttl, 300_000);
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.resend_cooldown, 30_000);
        assert_eq!((p.max_issues_per_window, p.issue_window), (5, 600_000));
        assert_eq!((p.max_failures_per_key, p.lockout), (100, 3_600_000));
        assert_eq!((p.codes_per_key, p.capacity), (1, 10_000_000));
        assert!(p.shards.is_power_of_two());
    }

    #[test]
    fn every_bound_is_checked_and_named() {
        let d = Config::default;
        assert_eq!(
            err(Config {
                code_length: 3,
                ..d()
            }),
            "code_length must be between 4 and 10, got 3"
        );
        assert_eq!(
            err(Config {
                code_length: 11,
                ..d()
            }),
            "code_length must be between 4 and 10, got 11"
        );
        assert_eq!(
            err(Config {
                ttl: Duration::ZERO,
                ..d()
            }),
            "ttl must be between 1s and 24h, got 0s"
        );
        assert_eq!(
            err(Config {
                ttl: DAY + SECOND,
                ..d()
            }),
            "ttl must be between 1s and 24h, got 86401s"
        );
        assert_eq!(
            err(Config {
                max_attempts: 0,
                ..d()
            }),
            "max_attempts must be between 1 and 100, got 0"
        );
        assert_eq!(
            err(Config {
                resend_cooldown: HOUR + SECOND,
                ..d()
            }),
            "resend_cooldown must be between 0s and 1h, got 3601s"
        );
        assert_eq!(
            err(Config {
                max_issues_per_window: 1001,
                ..d()
            }),
            "max_issues_per_window must be between 0 and 1000, got 1001"
        );
        assert_eq!(
            err(Config {
                issue_window: Duration::from_millis(999),
                ..d()
            }),
            "issue_window must be between 1s and 24h, got 999ms"
        );
        assert_eq!(
            err(Config {
                max_failures_per_key: 10_001,
                ..d()
            }),
            "max_failures_per_key must be between 0 and 10000, got 10001"
        );
        assert_eq!(
            err(Config {
                lockout: 31 * DAY,
                ..d()
            }),
            "lockout must be between 1s and 30d, got 31d"
        );
        assert_eq!(
            err(Config {
                codes_per_key: 5,
                ..d()
            }),
            "codes_per_key must be between 1 and 4, got 5"
        );
        assert_eq!(
            err(Config { capacity: 0, ..d() }),
            "capacity must be between 1 and 4294967296, got 0"
        );
        assert_eq!(
            err(Config {
                shards: Some(3),
                ..d()
            }),
            "shards must be a power of two between 1 and 65536, got 3"
        );
        assert_eq!(
            err(Config {
                shards: Some(1 << 17),
                ..d()
            }),
            "shards must be a power of two between 1 and 65536, got 131072"
        );
        assert_eq!(
            err(Config {
                reaper_interval: Some(Duration::ZERO),
                ..d()
            }),
            "reaper_interval must be between 1ms and 1h, got 0s"
        );
    }

    #[test]
    fn bounds_themselves_are_accepted() {
        let d = Config::default;
        for c in [
            Config {
                code_length: 4,
                ttl: SECOND,
                max_attempts: 1,
                ..d()
            },
            Config {
                code_length: 10,
                ttl: DAY,
                max_attempts: 100,
                ..d()
            },
            Config {
                resend_cooldown: Duration::ZERO,
                max_issues_per_window: 0,
                max_failures_per_key: 0,
                ..d()
            },
            Config {
                resend_cooldown: HOUR,
                max_issues_per_window: 1000,
                issue_window: DAY,
                ..d()
            },
            Config {
                lockout: 30 * DAY,
                codes_per_key: 4,
                capacity: 1 << 32,
                shards: Some(65_536),
                ..d()
            },
            Config {
                capacity: 1,
                shards: Some(1),
                ..d()
            },
        ] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn keys_and_contexts_are_bounded() {
        assert_eq!(
            check_key(b"").unwrap_err().to_string(),
            "key must be between 1 and 1024 bytes long, got 0 bytes"
        );
        assert!(check_key(&[0; 1024]).is_ok());
        assert!(check_key(&[0; 1025]).is_err());
        assert!(check_context(b"").is_ok());
        assert_eq!(
            check_context(&[0; 1025]).unwrap_err().to_string(),
            "context must be at most 1024 bytes long, got 1025 bytes"
        );
    }
}
