//! The calls on an engine: issue, verify (with and without scopes), revoke,
//! unlock, the stats, the call timeout and the clock. Each reads its
//! arguments, calls core, and writes core's answer in C's types.

use std::ffi::c_char;
use std::time::Duration;

use otpengine_core::code::MAX_TYPED_LEN;
use otpengine_core::{Engine, Error, Verdict};

use crate::boundary::{call_args, engine, guard, ms, out, typed, Failure};
use crate::config::otp_engine;
use crate::scope::{self, otp_scope};
use crate::status::otp_status;
use crate::totp::{self, otp_verdict};

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
pub(crate) unsafe fn key_call(
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
/// call itself, and lifts it after. It leaves `otp_last_error` as it was.
#[no_mangle]
pub extern "C" fn otp_set_call_timeout_ms(ms: u64) {
    // Not through `guard`: this call cannot fail, and must leave the thread's
    // last error as it was (a wrapper lifts the bound before it reads it).
    let _ = std::panic::catch_unwind(|| {
        otpengine_core::call_timeout::set_call_timeout(Some(Duration::from_millis(ms)));
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
