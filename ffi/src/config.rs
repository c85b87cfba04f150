//! The engine's configuration in C (`otp_config`), its defaults, and the
//! in-memory engine's constructor and destructor: C types in, core's `Config`
//! and `StoreOptions` out; every bound and default is core's.

use std::time::Duration;

use otpengine_core::{Alphabet, Clock, Config, Engine, ManualClock, StoreOptions};

use crate::boundary::{guard, ms, out, Failure};
use crate::scope::{self, otp_scope_limit};
use crate::status::otp_status;

/// An engine. Opaque; safe to share between threads; freed once with `otp_engine_free`.
pub struct otp_engine {
    pub(crate) engine: Engine,
}

/// Engine configuration; fill it with `otp_config_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct otp_config {
    /// Symbols per code, 4..=10 (default 6).
    pub code_length: u32,
    /// `OTP_ALPHABET_DIGITS` (default) or `OTP_ALPHABET_ALPHANUMERIC`.
    pub alphabet: u32,
    /// How long a code is valid, 1000..=86400000 ms (default 300000).
    pub ttl_ms: u64,
    /// Wrong guesses a code survives, 1..=100 (default 5).
    pub max_attempts: u32,
    /// Least time between issues for one key, 0 (off)..=3600000 ms (default 30000).
    pub resend_cooldown_ms: u64,
    /// Issues per key per window, 0 (off)..=1000 (default 5).
    pub max_issues_per_window: u32,
    /// The issue window, 1000..=86400000 ms (default 600000).
    pub issue_window_ms: u64,
    /// Failed verifies per key across codes before a lockout, 0 (off)..=10000 (default 100).
    pub max_failures_per_key: u32,
    /// The first lockout, 1000..=2592000000 ms (default 3600000); with escalation
    /// off, every lockout, and how long a failure is remembered.
    pub lockout_ms: u64,
    /// Codes per key valid at once, 1..=4 (default 1).
    pub codes_per_key: u32,
    /// Keys the engine holds any state for, 1..=4294967296 (default 10000000).
    pub capacity: u64,
    /// Shards, a power of two 1..=65536; 0 picks the default (about 4 per core).
    pub shards: u32,
    /// Non-zero: time moves only by `otp_clock_advance` (for tests).
    pub manual_clock: u32,
    /// With a Redis URL only: how long to wait for a connection to Redis,
    /// 1..=60000 ms; 0 (what `otp_config_default` writes): the engine's default,
    /// 1000. Set without a URL it is refused.
    pub redis_connect_timeout_ms: u64,
    /// With a Redis URL only: how long to wait for Redis to answer a call,
    /// 1..=60000 ms; 0: the engine's default, 1000. A call past it returns
    /// `OTP_BACKEND_UNAVAILABLE`.
    pub redis_response_timeout_ms: u64,
    /// Non-zero (default 1): escalating lockouts. Each time a key spends its
    /// failure budget again before a success or an unlock, its lockout doubles,
    /// up to `max_lockout_ms`; failures are remembered `max_lockout_ms` after the
    /// last, and a year longer once the key has been locked out. 0: every lockout
    /// is `lockout_ms`, and failures are forgotten one lockout after the last.
    pub escalate_lockouts: u32,
    /// The longest escalated lockout, `lockout_ms`..=31536000000 ms (365 days;
    /// default 2592000000, 30 days).
    pub max_lockout_ms: u64,
    /// Limits on the scopes a call may name (`otp_issue_scoped`,
    /// `otp_verify_scoped`): the first `scope_limit_count` entries, names distinct.
    pub scope_limits: [otp_scope_limit; 8],
    /// How many of `scope_limits` are set, 0..=8 (default 0).
    pub scope_limit_count: u32,
}

/// The Redis timeouts of `otp_config`, as given (0: not given).
pub(crate) fn store_timeouts(c: &otp_config) -> StoreOptions {
    let given = |ms: u64| (ms != 0).then(|| Duration::from_millis(ms));
    StoreOptions {
        connect_timeout: given(c.redis_connect_timeout_ms),
        response_timeout: given(c.redis_response_timeout_ms),
        ..StoreOptions::default()
    }
}

pub(crate) fn to_config(c: &otp_config) -> Result<Config, Failure> {
    let defaults = Config::default();
    Ok(Config {
        code_length: c.code_length,
        alphabet: Alphabet::from_index(c.alphabet)?,
        ttl: Duration::from_millis(c.ttl_ms),
        max_attempts: c.max_attempts,
        resend_cooldown: Duration::from_millis(c.resend_cooldown_ms),
        max_issues_per_window: c.max_issues_per_window,
        issue_window: Duration::from_millis(c.issue_window_ms),
        max_failures_per_key: c.max_failures_per_key,
        lockout: Duration::from_millis(c.lockout_ms),
        escalate_lockouts: c.escalate_lockouts != 0,
        max_lockout: Duration::from_millis(c.max_lockout_ms),
        codes_per_key: c.codes_per_key,
        capacity: c.capacity,
        shards: (c.shards != 0).then_some(c.shards),
        clock: if c.manual_clock != 0 {
            Clock::manual(&ManualClock::new())
        } else {
            Clock::system()
        },
        scope_limits: scope::limits(&c.scope_limits, c.scope_limit_count)?,
        ..defaults
    })
}

/// Fills `config` with the defaults (6 digits, 5 min, 5 attempts, 30 s cooldown,
/// 5 issues per 10 min, 100 failures per key then a 1 h lockout doubling up to
/// 30 days, 1 code per key,
/// capacity 10,000,000, default shards, system clock, Redis timeouts of 1 s).
/// NULL: does nothing.
///
/// # Safety
/// `config` is NULL or valid for writes of an `otp_config`.
#[no_mangle]
pub unsafe extern "C" fn otp_config_default(config: *mut otp_config) {
    guard(|| {
        // SAFETY: forwarded from the caller.
        if let Some(config) = unsafe { config.as_mut() } {
            let d = Config::default();
            *config = otp_config {
                code_length: d.code_length,
                alphabet: d.alphabet.index(),
                ttl_ms: ms(d.ttl),
                max_attempts: d.max_attempts,
                resend_cooldown_ms: ms(d.resend_cooldown),
                max_issues_per_window: d.max_issues_per_window,
                issue_window_ms: ms(d.issue_window),
                max_failures_per_key: d.max_failures_per_key,
                lockout_ms: ms(d.lockout),
                codes_per_key: d.codes_per_key,
                capacity: d.capacity,
                shards: 0,
                manual_clock: 0,
                redis_connect_timeout_ms: 0,
                redis_response_timeout_ms: 0,
                escalate_lockouts: d.escalate_lockouts.into(),
                max_lockout_ms: ms(d.max_lockout),
                scope_limits: Default::default(),
                scope_limit_count: 0,
            };
        }
        Ok(otp_status::OTP_OK)
    });
}

/// Builds an engine from `config` and stores its handle in `*engine_out`.
///
/// Returns `OTP_OK`, or `OTP_INVALID_ARGUMENT` for a NULL pointer or a value out
/// of bounds (`otp_last_error` names the field as spelled in `otp_config`, its
/// bounds and the value), in which case `*engine_out` is untouched.
///
/// The engine belongs to the process that uses it: in a child forked after it was
/// built (a pre-fork server's workers), its copy starts empty on its first call
/// there, so codes issued in one process never verify in another. Processes that
/// must share codes use `otp_engine_new_redis`.
///
/// # Safety
/// `config` is NULL or a valid `otp_config`; `engine_out` is NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn otp_engine_new(
    config: *const otp_config,
    engine_out: *mut *mut otp_engine,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let config = unsafe { config.as_ref() }
            .ok_or_else(|| Failure::invalid("config must not be NULL"))?;
        // SAFETY: forwarded from the caller.
        let engine_out = unsafe { out(engine_out, "engine_out") }?;
        let engine = Engine::build(to_config(config)?, store_timeouts(config))?;
        *engine_out = Box::into_raw(Box::new(otp_engine { engine }));
        Ok(otp_status::OTP_OK)
    })
}

/// Frees an engine and everything it holds (for a Redis engine: its connections;
/// the store keeps its state). NULL: does nothing. The handle must not be used
/// again, by any thread.
///
/// # Safety
/// `engine` is NULL or a handle from `otp_engine_new` or `otp_engine_new_redis`
/// not yet freed, with no call on it still running.
#[no_mangle]
pub unsafe extern "C" fn otp_engine_free(engine: *mut otp_engine) {
    guard(|| {
        if !engine.is_null() {
            // SAFETY: the handle came from Box::into_raw in otp_engine_new and is freed once.
            drop(unsafe { Box::from_raw(engine) });
        }
        Ok(otp_status::OTP_OK)
    });
}
