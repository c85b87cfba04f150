//! The C ABI of otpengine: `libotpengine.so` / `libotpengine.a` and `include/otpengine.h`.
//!
//! This crate holds no rules of its own: it checks pointers, turns C types into
//! core types and core answers into status codes. Its ground rules:
//!
//! - Every entry point runs inside `guard`, which catches panics (a panic is a
//!   bug: the call returns `OTP_INTERNAL_ERROR` and the engine stays usable) and
//!   records the failure's message for [`otp_last_error`].
//! - Pointers are checked for NULL, and lengths are checked against the engine's
//!   bounds, before any slice is formed; a slice never covers more than the
//!   engine would read.
//! - Integers that stand for enums (`otp_status`, the alphabet) are read as
//!   integers and matched, never transmuted.
//! - Out-parameters are written only when the call succeeded (for `otp_issue`,
//!   also on `OTP_RATE_LIMITED` and `OTP_LOCKED`, which fill `retry_after_ms`).

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod abi;
mod constants;
mod message;
mod redis;
mod scope;
mod totp;

pub use abi::{otp_abi_version, OTPENGINE_ABI_VERSION};
pub use constants::*;
pub use redis::{
    otp_engine_new_redis, otp_engine_new_redis_opts, otp_redis_options, otp_redis_options_default,
};

pub use scope::{otp_ip_scope, otp_scope, otp_scope_limit, otp_unlock_scope};
pub use totp::{
    otp_hotp, otp_qr_svg, otp_totp, otp_totp_params, otp_totp_params_default, otp_totp_uri,
    otp_unlock_totp, otp_verdict, otp_verify_totp, otp_verify_totp_scoped,
};

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use otpengine_core::code::MAX_TYPED_LEN;
use otpengine_core::{
    check_context_length, check_key_length, Alphabet, Clock, Config, DurationUnit, Engine, Error,
    Field, InvalidInput, ManualClock, StoreOptions, Verdict,
};

/// The result of every call. Numbers are stable; a retired one is never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum otp_status {
    /// issue: code written; verify: right code, now consumed; revoke: revoked; unlock: unlocked.
    OTP_OK = 0,
    /// verify: wrong code or context; attempts remain.
    OTP_MISMATCH = 1,
    /// verify: attempts used up, code burned; issue/verify: key locked out, see retry_after_ms.
    OTP_LOCKED = 2,
    /// verify: the code's time is over.
    OTP_EXPIRED = 3,
    /// verify/revoke/unlock: no pending code (or nothing to unlock) for this key.
    OTP_NOT_FOUND = 4,
    /// issue: refused by cooldown or window; see retry_after_ms.
    OTP_RATE_LIMITED = 5,
    /// issue: store full.
    OTP_CAPACITY_EXCEEDED = 6,
    /// NULL where not allowed, bad length, bad config value; see otp_last_error.
    OTP_INVALID_ARGUMENT = 7,
    /// code_out too short; nothing was issued.
    OTP_BUFFER_TOO_SMALL = 8,
    /// A bug (caught panic); the engine stays usable.
    OTP_INTERNAL_ERROR = 9,
    /// An engine made by `otp_engine_new_redis` could not reach Redis, or Redis did
    /// not answer within `redis_response_timeout_ms`; see otp_last_error. Never a
    /// verdict: nothing was verified. The engine reconnects by itself.
    OTP_BACKEND_UNAVAILABLE = 10,
    /// otp_verify_totp: the right code for a time step at or before the last one
    /// this key accepted (a code works once); not counted as a failure.
    OTP_REPLAYED = 11,
}

impl otp_status {
    /// Every status, in the order of their numbers.
    const ALL: [otp_status; 12] = [
        otp_status::OTP_OK,
        otp_status::OTP_MISMATCH,
        otp_status::OTP_LOCKED,
        otp_status::OTP_EXPIRED,
        otp_status::OTP_NOT_FOUND,
        otp_status::OTP_RATE_LIMITED,
        otp_status::OTP_CAPACITY_EXCEEDED,
        otp_status::OTP_INVALID_ARGUMENT,
        otp_status::OTP_BUFFER_TOO_SMALL,
        otp_status::OTP_INTERNAL_ERROR,
        otp_status::OTP_BACKEND_UNAVAILABLE,
        otp_status::OTP_REPLAYED,
    ];

    /// The status numbered `number`, if there is one.
    fn from_number(number: u32) -> Option<otp_status> {
        Self::ALL.into_iter().find(|s| *s as u32 == number)
    }

    /// What `otp_status_str` says of it, NUL-terminated.
    fn text(self) -> &'static [u8] {
        match self {
            otp_status::OTP_OK => b"ok\0",
            otp_status::OTP_MISMATCH => b"mismatch: wrong code or context\0",
            otp_status::OTP_LOCKED => b"locked: attempts used up or key locked out\0",
            otp_status::OTP_EXPIRED => b"expired\0",
            otp_status::OTP_NOT_FOUND => b"not found: no pending code for this key\0",
            otp_status::OTP_RATE_LIMITED => b"rate limited\0",
            otp_status::OTP_CAPACITY_EXCEEDED => b"capacity exceeded\0",
            otp_status::OTP_INVALID_ARGUMENT => b"invalid argument\0",
            otp_status::OTP_BUFFER_TOO_SMALL => b"buffer too small\0",
            otp_status::OTP_INTERNAL_ERROR => b"internal error\0",
            otp_status::OTP_BACKEND_UNAVAILABLE => {
                b"backend unavailable: Redis could not be reached or did not answer in time\0"
            }
            otp_status::OTP_REPLAYED => b"replayed: this authenticator code was already used\0",
        }
    }
}

/// An `otp_status` as C passes it: any integer, matched rather than trusted.
/// (The header names it `otp_status`; see cbindgen.toml.)
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct otp_status_arg(pub u32);

/// An engine. Opaque; safe to share between threads; freed once with `otp_engine_free`.
pub struct otp_engine {
    engine: Engine,
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

/// What `otp_issue` reports besides the code.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct otp_issued {
    /// On `OTP_OK`: how long the code is valid.
    pub expires_in_ms: u64,
    /// On `OTP_RATE_LIMITED` or `OTP_LOCKED`: how long until an issue would be allowed.
    pub retry_after_ms: u64,
    /// On `OTP_RATE_LIMITED`: the name of the scope whose limit gave the wait,
    /// NUL-terminated; empty when it was the key's own cooldown or window.
    pub scope: [c_char; 32],
}

/// Counters of answers since the engine was built, and the keys with a pending code now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct otp_stats {
    /// Codes issued.
    pub issued: u64,
    /// Verifies answered `OTP_OK`.
    pub verified: u64,
    /// Verifies answered `OTP_MISMATCH`.
    pub mismatched: u64,
    /// Issues and verifies answered `OTP_LOCKED`.
    pub locked: u64,
    /// Verifies answered `OTP_EXPIRED`.
    pub expired: u64,
    /// Issues answered `OTP_RATE_LIMITED`.
    pub rate_limited: u64,
    /// Revokes that dropped a pending code.
    pub revoked: u64,
    /// Keys with a pending code now (for a Redis engine: in the whole store).
    pub live: u64,
    /// Calls answered `OTP_BACKEND_UNAVAILABLE`.
    pub unavailable: u64,
    /// Verifies answered `OTP_NOT_FOUND`.
    pub not_found: u64,
    /// Issues (and TOTP verifies) answered `OTP_CAPACITY_EXCEEDED`.
    pub capacity_exceeded: u64,
    /// Keys (and scope values) the engine holds any state for now, against
    /// its capacity (for a Redis engine: in the whole store, with exact counts).
    pub held: u64,
    /// TOTP verifies answered `OTP_REPLAYED`.
    pub replayed: u64,
}

/// A failed call: its status and the message for `otp_last_error`.
struct Failure(otp_status, String);

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure(otp_status::OTP_INVALID_ARGUMENT, message.into())
    }
}

impl From<InvalidInput> for Failure {
    fn from(e: InvalidInput) -> Self {
        // Every C duration is in milliseconds but the TOTP period, `period_s`.
        let unit = match e.field {
            Field::TotpPeriod => DurationUnit::Seconds,
            _ => DurationUnit::Millis,
        };
        Failure::invalid(e.render(c_name(e.field), unit))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match e {
            Error::InvalidInput(e) => return e.into(),
            Error::RateLimited { .. } => otp_status::OTP_RATE_LIMITED,
            Error::Locked { .. } => otp_status::OTP_LOCKED,
            Error::CapacityExceeded { .. } => otp_status::OTP_CAPACITY_EXCEEDED,
            Error::NotManualClock => otp_status::OTP_INVALID_ARGUMENT,
            Error::Unavailable { .. } => otp_status::OTP_BACKEND_UNAVAILABLE,
            _ => otp_status::OTP_INTERNAL_ERROR,
        };
        Failure(status, e.to_string())
    }
}

/// The name of a field as `otp_config` and the function parameters spell it.
fn c_name(field: Field) -> &'static str {
    match field {
        Field::Ttl => "ttl_ms",
        Field::ResendCooldown => "resend_cooldown_ms",
        Field::IssueWindow => "issue_window_ms",
        Field::Lockout => "lockout_ms",
        Field::MaxLockout => "max_lockout_ms",
        Field::RedisUrl => "url",
        Field::RedisConnectTimeout => "redis_connect_timeout_ms",
        Field::RedisResponseTimeout => "redis_response_timeout_ms",
        Field::RedisNamespace => "key_namespace",
        Field::RedisCaFile => "ca_file",
        Field::RedisClientCert => "client_cert",
        Field::RedisClientKey => "client_key",
        Field::RedisUsername => "username",
        Field::RedisPassword => "password",
        Field::RedisAcceptEviction => "accept_eviction",
        Field::RedisExactCounts => "exact_counts",
        Field::TotpPeriod => "period_s",
        Field::Template => "template_text",
        Field::ScopeLimits => "scope_limit_count",
        Field::ScopeName => "scope_limits[].name",
        Field::ScopeMaxIssues => "scope_limits[].max_issues",
        Field::ScopeIssueWindow => "scope_limits[].issue_window_ms",
        Field::ScopeMaxFailures => "scope_limits[].max_failures",
        Field::ScopeFailureWindow => "scope_limits[].failure_window_ms",
        Field::Scopes => "scopes",
        Field::ScopeValue => "scopes[].value_len",
        Field::IpAddress => "addr",
        other => other.name(),
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records this thread's last error. `try_with`: during thread or process exit
/// (an `atexit` handler, a thread-local destructor) the slot may already be gone,
/// and then the message is dropped rather than the process aborted.
fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = message);
}

/// The panic boundary: clears this thread's last error, runs `body`, and turns a
/// failure or a panic into a status (recording its message).
fn guard(body: impl FnOnce() -> Result<otp_status, Failure>) -> otp_status {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        set_last_error(String::new());
        body()
    }));
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(Failure(status, message))) => {
            set_last_error(message);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!(
                "internal error (a bug in otpengine, please report it): {what}"
            ));
            otp_status::OTP_INTERNAL_ERROR
        }
    }
}

/// The engine behind a handle.
///
/// # Safety
/// `engine` is NULL or a handle from `otp_engine_new` or `otp_engine_new_redis` not yet freed.
unsafe fn engine<'a>(engine: *const otp_engine) -> Result<&'a Engine, Failure> {
    // SAFETY: non-NULL handles point to a live `otp_engine` (the caller's promise).
    unsafe { engine.as_ref() }
        .map(|e| &e.engine)
        .ok_or_else(|| Failure::invalid("engine must not be NULL"))
}

/// An out-parameter.
///
/// # Safety
/// `ptr` is NULL or valid for writes of a `T`.
unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: non-NULL out-pointers are valid for writes (the caller's promise).
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{name} must not be NULL")))
}

/// `len` bytes at `ptr`, after `check` has accepted the length.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
    null_when_empty: bool,
    check: fn(usize) -> Result<(), InvalidInput>,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if null_when_empty && len == 0 {
            Ok(&[])
        } else {
            Err(Failure::invalid(if null_when_empty {
                format!("{name} may be NULL only with {name}_len 0, got {name}_len {len}")
            } else {
                format!("{name} must not be NULL")
            }))
        };
    }
    check(len)?;
    // SAFETY: `ptr` is non-NULL and valid for `len` bytes (the caller's promise), and
    // `len` is at most 1024 after `check`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The engine and key every keyed call starts with, and the context when the call
/// has one (`None`: it has none).
///
/// # Safety
/// As [`engine`] and [`bytes`].
unsafe fn call_args<'a>(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    context: Option<(*const u8, usize)>,
) -> Result<(&'a Engine, &'a [u8], &'a [u8]), Failure> {
    // SAFETY (all three): forwarded from the caller.
    let engine = unsafe { self::engine(engine) }?;
    let key = unsafe { self::key(key, key_len) }?;
    let context = match context {
        Some((ptr, len)) => unsafe { self::context(ptr, len) }?,
        None => &[],
    };
    Ok((engine, key, context))
}

/// # Safety
/// As [`bytes`].
unsafe fn key<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes(ptr, len, "key", false, check_key_length) }
}

/// # Safety
/// As [`bytes`].
unsafe fn context<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes(ptr, len, "context", true, check_context_length) }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

fn to_config(c: &otp_config) -> Result<Config, Failure> {
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

/// Issues a code for `key` (1..=1024 bytes), bound to `context` (0..=1024 bytes;
/// NULL only with length 0, which means no context), valid for `ttl_ms`
/// (0: the engine's ttl; else 1000..=86400000). The code and a NUL are written to
/// `code_out`, which must hold `code_length + 1` bytes.
///
/// Returns `OTP_OK`; `OTP_RATE_LIMITED` or `OTP_LOCKED` with `retry_after_ms` in
/// `*issued_out`; `OTP_CAPACITY_EXCEEDED`; `OTP_BUFFER_TOO_SMALL` (checked first:
/// nothing was issued); or `OTP_INVALID_ARGUMENT`. `issued_out` may be NULL.
///
/// # Safety
/// Pointers are NULL or valid for their lengths (`code_out` for writes of
/// `code_out_len` bytes, `issued_out` for a write of an `otp_issued`).
#[no_mangle]
pub unsafe extern "C" fn otp_issue(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    ttl_ms: u64,
    code_out: *mut c_char,
    code_out_len: usize,
    issued_out: *mut otp_issued,
) -> otp_status {
    // SAFETY: forwarded from the caller; no scopes.
    unsafe {
        otp_issue_scoped(
            engine,
            key,
            key_len,
            context,
            context_len,
            ttl_ms,
            std::ptr::null(),
            0,
            code_out,
            code_out_len,
            issued_out,
        )
    }
}

/// `otp_issue` for a key that belongs to `scopes` (`scope_count` of them,
/// 0..=8; NULL only with 0): allowed only when the key's own limits and every
/// named scope's allow it, then counted on each. `OTP_RATE_LIMITED` gives the
/// longest wait among the limits that refuse in `retry_after_ms`, and the
/// scope that gives it in `issued_out->scope` (empty: the key's own). A name
/// with no configured limit, or named twice, is `OTP_INVALID_ARGUMENT` and
/// counts nothing.
///
/// # Safety
/// As `otp_issue`; `scopes` is NULL or valid for `scope_count` `otp_scope`s.
#[no_mangle]
pub unsafe extern "C" fn otp_issue_scoped(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    ttl_ms: u64,
    scopes: *const otp_scope,
    scope_count: usize,
    code_out: *mut c_char,
    code_out_len: usize,
    issued_out: *mut otp_issued,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (engine, key, context) =
            unsafe { call_args(engine, key, key_len, Some((context, context_len))) }?;
        // SAFETY: forwarded from the caller.
        let read = unsafe { scope::read(scopes, scope_count) }?;
        if code_out.is_null() {
            return Err(Failure::invalid("code_out must not be NULL"));
        }
        let needed = engine.code_length() as usize + 1;
        if code_out_len < needed {
            return Err(Failure(
                otp_status::OTP_BUFFER_TOO_SMALL,
                format!(
                    "code_out_len must be at least {needed} (code_length + 1), got {code_out_len}"
                ),
            ));
        }
        let ttl = (ttl_ms != 0).then(|| Duration::from_millis(ttl_ms));
        let result = engine.issue_scoped(key, context, ttl, &scope::as_scopes(&read));
        let (status, report) = match result {
            Ok(issued) => {
                // SAFETY: code_out is non-NULL and holds at least code_length + 1 bytes.
                let buf = unsafe { std::slice::from_raw_parts_mut(code_out.cast::<u8>(), needed) };
                buf[..needed - 1].copy_from_slice(issued.code.as_bytes());
                buf[needed - 1] = 0;
                let report = otp_issued {
                    expires_in_ms: ms(issued.expires_in),
                    ..otp_issued::default()
                };
                (Ok(otp_status::OTP_OK), Some(report))
            }
            Err(
                ref e @ Error::RateLimited {
                    retry_after,
                    ref scope,
                    ..
                },
            ) => {
                let mut report = otp_issued {
                    retry_after_ms: ms(retry_after),
                    ..otp_issued::default()
                };
                scope::set_fixed_string(&mut report.scope, scope.as_deref().unwrap_or(""));
                (Err(Failure::from(e.clone())), Some(report))
            }
            Err(e @ Error::Locked { retry_after, .. }) => {
                let report = otp_issued {
                    retry_after_ms: ms(retry_after),
                    ..otp_issued::default()
                };
                (Err(Failure::from(e)), Some(report))
            }
            Err(e) => (Err(Failure::from(e)), None),
        };
        // SAFETY: forwarded from the caller.
        if let (Some(report), Some(issued_out)) = (report, unsafe { issued_out.as_mut() }) {
            *issued_out = report;
        }
        status
    })
}

/// Checks `code` (`code_len` bytes, no NUL needed) for `key` with `context`.
///
/// Returns `OTP_OK` (right code, now consumed), `OTP_MISMATCH`, `OTP_LOCKED`,
/// `OTP_EXPIRED`, `OTP_NOT_FOUND`, or `OTP_INVALID_ARGUMENT` (NULL key or code,
/// bad length). Anything typed that is not a code is a counted `OTP_MISMATCH`.
/// `*attempts_left_out` (may be NULL) gets the wrong guesses left on
/// `OTP_MISMATCH`, and 0 on the other verdicts.
///
/// # Safety
/// Pointers are NULL or valid for their lengths; `attempts_left_out` is NULL or
/// valid for a write of a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn otp_verify(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    code: *const c_char,
    code_len: usize,
    context: *const u8,
    context_len: usize,
    attempts_left_out: *mut u32,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (engine, key, context) =
            unsafe { call_args(engine, key, key_len, Some((context, context_len))) }?;
        if code.is_null() {
            return Err(Failure::invalid("code must not be NULL"));
        }
        // The engine reads no more than MAX_TYPED_LEN bytes; one more marks "too long".
        // SAFETY: code is non-NULL and valid for code_len bytes; we cover at most that.
        let typed = unsafe {
            std::slice::from_raw_parts(code.cast::<u8>(), code_len.min(MAX_TYPED_LEN + 1))
        };
        let verdict = engine.verify(key, typed, context)?;
        let (status, attempts_left) = match verdict {
            Verdict::Verified => (otp_status::OTP_OK, 0),
            Verdict::Mismatch { attempts_left } => (otp_status::OTP_MISMATCH, attempts_left),
            Verdict::Locked { .. } => (otp_status::OTP_LOCKED, 0),
            Verdict::Expired => (otp_status::OTP_EXPIRED, 0),
            Verdict::NotFound => (otp_status::OTP_NOT_FOUND, 0),
            other => {
                return Err(Failure(
                    otp_status::OTP_INTERNAL_ERROR,
                    format!("a verdict this C library does not know: {other:?}"),
                ))
            }
        };
        // SAFETY: forwarded from the caller.
        if let Some(out) = unsafe { attempts_left_out.as_mut() } {
            *out = attempts_left;
        }
        Ok(status)
    })
}

/// `otp_verify` answering in a whole `otp_verdict` (may be NULL): the status it
/// returns, the attempts left on `OTP_MISMATCH`, and on `OTP_LOCKED` how long
/// until the lockout ends (`retry_after_ms`; 0 for a burned code, which a new
/// issue replaces).
///
/// # Safety
/// As `otp_verify`; `verdict_out` is NULL or valid for a write of an `otp_verdict`.
#[no_mangle]
pub unsafe extern "C" fn otp_verify_ex(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    code: *const c_char,
    code_len: usize,
    context: *const u8,
    context_len: usize,
    verdict_out: *mut otp_verdict,
) -> otp_status {
    // SAFETY: forwarded from the caller; no scopes.
    unsafe {
        otp_verify_scoped(
            engine,
            key,
            key_len,
            code,
            code_len,
            context,
            context_len,
            std::ptr::null(),
            0,
            verdict_out,
        )
    }
}

/// `otp_verify` for a call that belongs to `scopes` (as in `otp_issue_scoped`),
/// answering in `*verdict_out` (may be NULL; the returned status is its
/// `status`). A scope that has spent its failure budget answers `OTP_LOCKED`
/// with `retry_after_ms` without the code being looked at; a counted mismatch
/// counts on the key and on every scope with a failure budget; a success
/// resets the key's count, not a scope's.
///
/// # Safety
/// As `otp_verify`; `scopes` as in `otp_issue_scoped`; `verdict_out` is NULL or
/// valid for a write of an `otp_verdict`.
#[no_mangle]
pub unsafe extern "C" fn otp_verify_scoped(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    code: *const c_char,
    code_len: usize,
    context: *const u8,
    context_len: usize,
    scopes: *const otp_scope,
    scope_count: usize,
    verdict_out: *mut otp_verdict,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (engine, key, context) =
            unsafe { call_args(engine, key, key_len, Some((context, context_len))) }?;
        // SAFETY: forwarded from the caller.
        let read = unsafe { scope::read(scopes, scope_count) }?;
        // SAFETY: forwarded from the caller.
        let typed = unsafe { typed(code, code_len) }?;
        let verdict = engine.verify_scoped(key, typed, context, &scope::as_scopes(&read))?;
        let verdict = otp_verdict::from_verdict(verdict)?;
        // SAFETY: forwarded from the caller.
        if let Some(out) = unsafe { verdict_out.as_mut() } {
            *out = verdict;
        }
        Ok(verdict.status)
    })
}

/// What was typed, `len` bytes (no NUL needed): the engine reads no more than
/// MAX_TYPED_LEN bytes, and one more marks "too long".
///
/// # Safety
/// `code` is NULL or valid for `len` bytes.
pub(crate) unsafe fn typed<'a>(code: *const c_char, len: usize) -> Result<&'a [u8], Failure> {
    if code.is_null() {
        return Err(Failure::invalid("code must not be NULL"));
    }
    // SAFETY: code is non-NULL and valid for len bytes; we cover at most that.
    Ok(unsafe { std::slice::from_raw_parts(code.cast::<u8>(), len.min(MAX_TYPED_LEN + 1)) })
}

/// Drops the key's codes. Returns `OTP_OK` if one was pending, `OTP_NOT_FOUND` if
/// not, or `OTP_INVALID_ARGUMENT`. Rate limits and failure counts stay.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` is NULL or valid for `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_revoke(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
) -> otp_status {
    // SAFETY: forwarded from the caller.
    unsafe { key_call(engine, key, key_len, |e, k| e.revoke(k)) }
}

/// Lifts the key's lockout and clears its failure count. Returns `OTP_OK` if there
/// was one, `OTP_NOT_FOUND` if not, or `OTP_INVALID_ARGUMENT`.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` is NULL or valid for `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_unlock(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
) -> otp_status {
    // SAFETY: forwarded from the caller.
    unsafe { key_call(engine, key, key_len, |e, k| e.unlock(k)) }
}

/// Revoke and unlock: a key in; `OTP_OK` if there was something to do, else
/// `OTP_NOT_FOUND`.
///
/// # Safety
/// As [`call_args`].
unsafe fn key_call(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    op: fn(&Engine, &[u8]) -> Result<bool, Error>,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (engine, key, _) = unsafe { call_args(engine, key, key_len, None) }?;
        Ok(match op(engine, key)? {
            true => otp_status::OTP_OK,
            false => otp_status::OTP_NOT_FOUND,
        })
    })
}

/// Bounds how long this thread's later calls on any Redis engine wait for
/// Redis: `ms` when it is shorter than the engine's `redis_response_timeout_ms`
/// (a longer one changes nothing); 0 lifts the bound. It stays until changed.
/// A call past it returns `OTP_BACKEND_UNAVAILABLE`, as on any timeout (a
/// verify that timed out may still have run). For callers with a deadline of
/// their own: Go sets it from a `context.Context` in the same cgo call as the
/// call itself, and lifts it after.
#[no_mangle]
pub extern "C" fn otp_set_call_timeout_ms(ms: u64) {
    guard(|| {
        otpengine_core::call_timeout::set_call_timeout(Some(Duration::from_millis(ms)));
        Ok(otp_status::OTP_OK)
    });
}

/// Writes the engine's stats in the Prometheus text format (every counter
/// `otpengine_<name>_total`, `otpengine_rate_limited_total` with a `scope`
/// label per refusing scope, the gauges) and a NUL to `text_out`, and the
/// length with the NUL to `*text_len_out` (may be NULL), also on
/// `OTP_BUFFER_TOO_SMALL`, so a caller can size its buffer from a first call.
///
/// # Safety
/// `engine` is NULL or a live handle; `text_out` is NULL or valid for writes of
/// `text_out_len` bytes; `text_len_out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otp_prometheus(
    engine: *const otp_engine,
    text_out: *mut c_char,
    text_out_len: usize,
    text_len_out: *mut usize,
) -> otp_status {
    guard(|| {
        // SAFETY (both): forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        let text = engine.stats().to_prometheus();
        unsafe {
            totp::write_text_with_length(&text, text_out, text_out_len, text_len_out, "text_out")
        }
    })
}

/// Writes the engine's counters to `*stats_out`. Returns `OTP_OK` or
/// `OTP_INVALID_ARGUMENT` (NULL pointer).
///
/// # Safety
/// `engine` is NULL or a live handle; `stats_out` is NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn otp_engine_stats(
    engine: *const otp_engine,
    stats_out: *mut otp_stats,
) -> otp_status {
    guard(|| {
        // SAFETY (both): forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        let stats_out = unsafe { out(stats_out, "stats_out") }?;
        let s = engine.stats();
        *stats_out = otp_stats {
            issued: s.issued,
            verified: s.verified,
            mismatched: s.mismatched,
            locked: s.locked,
            expired: s.expired,
            rate_limited: s.rate_limited,
            revoked: s.revoked,
            live: s.live,
            unavailable: s.unavailable,
            not_found: s.not_found,
            capacity_exceeded: s.capacity_exceeded,
            held: s.held,
            replayed: s.replayed,
        };
        Ok(otp_status::OTP_OK)
    })
}

/// A cheap health check for readiness probes: `OTP_OK` when the engine's store
/// answers now (always, in memory; one `PING` of the server, or of every
/// primary of a cluster), `OTP_BACKEND_UNAVAILABLE` when it does not
/// (`otp_last_error` names the server and why), `OTP_INVALID_ARGUMENT` for a
/// NULL engine. Counts in no statistic.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn otp_ping(engine: *const otp_engine) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        engine.ping()?;
        Ok(otp_status::OTP_OK)
    })
}

/// Moves a manual clock forward by `ms`. Returns `OTP_OK`, or
/// `OTP_INVALID_ARGUMENT` for a NULL engine or one built without `manual_clock`.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn otp_clock_advance(engine: *const otp_engine, ms: u64) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        engine.advance_clock(Duration::from_millis(ms))?;
        Ok(otp_status::OTP_OK)
    })
}

/// A static, NUL-terminated description of `status`, never NULL; "unknown status"
/// for a number that is not an `otp_status`.
#[no_mangle]
pub extern "C" fn otp_status_str(status: otp_status_arg) -> *const c_char {
    let text: &'static [u8] = match otp_status::from_number(status.0) {
        Some(status) => status.text(),
        None => b"unknown status\0",
    };
    text.as_ptr().cast()
}

/// Copies this thread's last error message into `buf`: at most `buf_len - 1`
/// bytes and a NUL (truncating, like `snprintf`). Returns the message's full
/// length without the NUL, 0 if the last call on this thread did not fail.
/// `buf` may be NULL only with `buf_len` 0 (to ask for the length).
///
/// # Safety
/// `buf` is NULL or valid for writes of `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_last_error(buf: *mut c_char, buf_len: usize) -> usize {
    // Not run through `guard`, which would clear the message it is asked for.
    catch_unwind(|| {
        let copied = LAST_ERROR.try_with(|m| {
            let message = m.borrow();
            if buf.is_null() || buf_len == 0 {
                return message.len();
            }
            let n = message.len().min(buf_len - 1);
            // SAFETY: buf is non-NULL and valid for buf_len > n bytes (the caller's promise).
            let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n + 1) };
            out[..n].copy_from_slice(&message.as_bytes()[..n]);
            out[n] = 0;
            message.len()
        });
        copied.unwrap_or(0)
    })
    .unwrap_or(0)
}

/// The library's version, e.g. "0.1.0" (static, never NULL).
#[no_mangle]
pub extern "C" fn otp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = [0u8; 256];
        // SAFETY: buf is valid for its length.
        let n = unsafe { otp_last_error(buf.as_mut_ptr().cast(), buf.len()) };
        String::from_utf8_lossy(&buf[..n.min(255)]).into_owned()
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_a_message() {
        let status = guard(|| panic!("boom"));
        assert_eq!(status, otp_status::OTP_INTERNAL_ERROR);
        let message = last_error();
        assert!(
            message.contains("internal error") && message.contains("boom"),
            "{message}"
        );
        // The next call clears it.
        assert_eq!(guard(|| Ok(otp_status::OTP_OK)), otp_status::OTP_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn unknown_status_numbers_are_matched_not_transmuted() {
        // SAFETY: otp_status_str returns a static NUL-terminated string.
        let text = |n| unsafe { std::ffi::CStr::from_ptr(otp_status_str(otp_status_arg(n))) };
        assert_eq!(text(42).to_str().unwrap(), "unknown status");
        assert_eq!(text(u32::MAX).to_str().unwrap(), "unknown status");
        assert_eq!(text(0).to_str().unwrap(), "ok");
    }
}
