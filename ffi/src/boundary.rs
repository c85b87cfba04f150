//! The boundary every call crosses: the panic guard and the thread's last
//! error, the failure type and how core's errors become statuses and messages
//! (fields named as C spells them), and the checks on pointers and lengths
//! that come before any slice is formed.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use otpengine_core::code::MAX_TYPED_LEN;
use otpengine_core::{
    check_context_length, check_key_length, DurationUnit, Engine, Error, Field, InvalidInput,
};

use crate::config::otp_engine;
use crate::status::otp_status;

/// A failed call: its status and the message for `otp_last_error`.
pub(crate) struct Failure(pub(crate) otp_status, pub(crate) String);

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
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
pub(crate) fn c_name(field: Field) -> &'static str {
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
pub(crate) fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = message);
}

/// The panic boundary: clears this thread's last error, runs `body`, and turns a
/// failure or a panic into a status (recording its message).
pub(crate) fn guard(body: impl FnOnce() -> Result<otp_status, Failure>) -> otp_status {
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
pub(crate) unsafe fn engine<'a>(engine: *const otp_engine) -> Result<&'a Engine, Failure> {
    // SAFETY: non-NULL handles point to a live `otp_engine` (the caller's promise).
    unsafe { engine.as_ref() }
        .map(|e| &e.engine)
        .ok_or_else(|| Failure::invalid("engine must not be NULL"))
}

/// An out-parameter.
///
/// # Safety
/// `ptr` is NULL or valid for writes of a `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
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
pub(crate) unsafe fn call_args<'a>(
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
pub(crate) unsafe fn key<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes(ptr, len, "key", false, check_key_length) }
}

/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn context<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { bytes(ptr, len, "context", true, check_context_length) }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
        LAST_ERROR
            // SAFETY: forwarded from the caller.
            .try_with(|m| unsafe { copy_message(&m.borrow(), buf, buf_len) })
            .unwrap_or(0)
    })
    .unwrap_or(0)
}

/// Copies `message` into `buf` as `otp_last_error` promises: at most
/// `buf_len - 1` bytes and a NUL, nothing when `buf` is NULL or `buf_len` 0.
/// Returns the message's full length.
///
/// # Safety
/// `buf` is NULL or valid for writes of `buf_len` bytes.
pub(crate) unsafe fn copy_message(message: &str, buf: *mut c_char, buf_len: usize) -> usize {
    if buf.is_null() || buf_len == 0 {
        return message.len();
    }
    let n = message.len().min(buf_len - 1);
    // SAFETY: buf is non-NULL and valid for buf_len > n bytes (the caller's promise).
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n + 1) };
    out[..n].copy_from_slice(&message.as_bytes()[..n]);
    out[n] = 0;
    message.len()
}

/// The library's version, e.g. "0.1.0" (static, never NULL).
#[no_mangle]
pub extern "C" fn otp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
