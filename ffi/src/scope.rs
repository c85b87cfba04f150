//! Scopes in C: `otp_scope_limit` in `otp_config`, `otp_scope` for the calls
//! that name them, `otp_issue_scoped`, `otp_verify_scoped`,
//! `otp_verify_totp_scoped`, `otp_unlock_scope` and `otp_ip_scope`. Every rule
//! is core's (`otpengine_core::scope`); this file reads C strings and arrays.

use std::ffi::{c_char, CStr};

use otpengine_core::scope::{
    self, check_scope_count, check_scope_limit_count, check_scope_value_length, Scope, ScopeLimit,
    MAX_SCOPE_LIMITS,
};

use crate::totp::write_text;
use crate::{bytes, guard, otp_status, Failure};

/// One scope's budgets in `otp_config.scope_limits`: the `name` a call gives in
/// `otp_scope.name` (1..=31 bytes of `[a-z0-9_-]`, NUL-terminated), issues per
/// `issue_window_ms` and failed verifies per `failure_window_ms` for each of its
/// values (0: no limit; a window is 1000..=86400000 ms, unused when its count is 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct otp_scope_limit {
    /// The scope's name, NUL-terminated.
    pub name: [c_char; 32],
    /// Length of the issue window, ms.
    pub issue_window_ms: u64,
    /// Length of the failure window, ms.
    pub failure_window_ms: u64,
    /// Issues allowed per value per issue window, 0 (no limit)..=1000000000.
    pub max_issues: u32,
    /// Failed verifies per value per failure window before every verify naming
    /// it answers `OTP_LOCKED`, 0 (no limit)..=1000000000. Suits narrow scopes
    /// (an address, a tenant): on a broad one an attacker could lock everyone out.
    pub max_failures: u32,
}

const _: () = assert!(std::mem::size_of::<otp_scope_limit>() == 56, "no padding");

/// A scope a call belongs to: the `name` of a configured `otp_scope_limit`
/// (NUL-terminated) and this call's value of it, `value_len` bytes (0..=1024;
/// `value` may be NULL only when `value_len` is 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_scope {
    /// The scope's name.
    pub name: *const c_char,
    /// The value (an address from `otp_ip_scope`, a phone prefix, a tenant id).
    pub value: *const u8,
    /// Bytes in `value`.
    pub value_len: usize,
}

/// The configured limits of `otp_config`, as core takes them.
pub(crate) fn limits(
    configured: &[otp_scope_limit; 8],
    count: u32,
) -> Result<Vec<ScopeLimit>, Failure> {
    let count = count as usize;
    check_scope_limit_count(count)?;
    configured[..count.min(MAX_SCOPE_LIMITS)]
        .iter()
        .enumerate()
        .map(|(k, limit)| {
            let name = fixed_string(&limit.name).ok_or_else(|| {
                Failure::invalid(format!(
                    "scope_limits[{k}].name must end with a NUL within its 32 bytes"
                ))
            })?;
            Ok(ScopeLimit {
                name,
                max_issues: limit.max_issues,
                issue_window: std::time::Duration::from_millis(limit.issue_window_ms),
                max_failures: limit.max_failures,
                failure_window: std::time::Duration::from_millis(limit.failure_window_ms),
            })
        })
        .collect()
}

/// The text of a NUL-terminated `char[N]`, or `None` without a NUL.
fn fixed_string(chars: &[c_char]) -> Option<String> {
    let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).collect();
    let end = bytes.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// Writes `text` into a `char[32]` (the refusing scope's name in `otp_issued`).
pub(crate) fn set_fixed_string(out: &mut [c_char; 32], text: &str) {
    *out = [0; 32];
    for (slot, byte) in out.iter_mut().zip(text.bytes().take(31)) {
        *slot = byte as c_char;
    }
}

/// The names (owned, for the call) and values of a call's scopes.
///
/// # Safety
/// `scopes` is NULL or valid for reads of `count` `otp_scope`s, each with a
/// NUL-terminated `name` and `value` valid for `value_len` bytes.
pub(crate) unsafe fn read<'a>(
    scopes: *const otp_scope,
    count: usize,
) -> Result<Vec<(String, &'a [u8])>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if scopes.is_null() {
        return Err(Failure::invalid(format!(
            "scopes may be NULL only with scope_count 0, got scope_count {count}"
        )));
    }
    check_scope_count(count)?;
    // SAFETY: non-NULL and valid for `count` entries (the caller's promise), at most 8.
    let scopes = unsafe { std::slice::from_raw_parts(scopes, count) };
    scopes
        .iter()
        .map(|s| {
            // SAFETY: forwarded from the caller.
            let name = unsafe { short_name(s.name, "scopes[].name") }?;
            // SAFETY: forwarded from the caller.
            let value = unsafe {
                bytes(
                    s.value,
                    s.value_len,
                    "value",
                    true,
                    check_scope_value_length,
                )
            }?;
            Ok((name, value))
        })
        .collect()
}

/// A scope's name: a NUL-terminated string read no further than 32 bytes
/// (names are at most 31), so a `char[32]` passed without its NUL is an error
/// rather than a read past it. `what` is how the error names it.
///
/// # Safety
/// `name` is NULL or points to bytes readable up to its NUL or 32 bytes.
unsafe fn short_name(name: *const c_char, what: &str) -> Result<String, Failure> {
    if name.is_null() {
        return Err(Failure::invalid(format!("{what} must not be NULL")));
    }
    let mut bytes = Vec::with_capacity(32);
    for at in 0..32 {
        // SAFETY: within the NUL-terminated string or its first 32 bytes.
        let byte = unsafe { *name.add(at) } as u8;
        if byte == 0 {
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.push(byte);
    }
    Err(Failure::invalid(format!(
        "{what} must end with a NUL within 32 bytes (scope names are 1 to 31 bytes)"
    )))
}

/// The read scopes as core's `Scope`s.
pub(crate) fn as_scopes<'a>(read: &'a [(String, &'a [u8])]) -> Vec<Scope<'a>> {
    read.iter()
        .map(|(name, value)| Scope::new(name, *value))
        .collect()
}

/// Lifts the failure lockout of the scope `name` = `value` (`value_len` bytes)
/// and clears its counts. Returns `OTP_OK` if it had a count in a running
/// window, `OTP_NOT_FOUND` if not, `OTP_INVALID_ARGUMENT` (an unconfigured
/// name, a NULL pointer, a value over 1024 bytes) or `OTP_BACKEND_UNAVAILABLE`.
///
/// # Safety
/// `engine` is NULL or a live handle; `name` is NULL or NUL-terminated;
/// `value` is NULL or valid for `value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_unlock_scope(
    engine: *const crate::otp_engine,
    name: *const c_char,
    value: *const u8,
    value_len: usize,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let engine = unsafe { crate::engine(engine) }?;
        // SAFETY: forwarded from the caller.
        let name = unsafe { short_name(name, "name") }?;
        // SAFETY: forwarded from the caller.
        let value = unsafe { bytes(value, value_len, "value", true, check_scope_value_length) }?;
        Ok(match engine.unlock_scope(&name, value)? {
            true => otp_status::OTP_OK,
            false => otp_status::OTP_NOT_FOUND,
        })
    })
}

/// Writes the scope value for a client address (NUL-terminated) to `out`: an
/// IPv4 address as its `/32` ("203.0.113.7/32"), an IPv6 one masked to its
/// `/64` ("2001:db8:1:2::/64"); 64 bytes always suffice. Returns `OTP_OK`,
/// `OTP_INVALID_ARGUMENT` (not an address, NULL) or `OTP_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `addr` is NULL or NUL-terminated; `out` is NULL or valid for `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_ip_scope(
    addr: *const c_char,
    out: *mut c_char,
    out_len: usize,
) -> otp_status {
    guard(|| {
        if addr.is_null() {
            return Err(Failure::invalid("addr must not be NULL"));
        }
        // SAFETY: a NUL-terminated string (the caller's promise).
        let addr = unsafe { CStr::from_ptr(addr) }.to_string_lossy();
        let value = scope::ip_scope(&addr)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_text(&value, out, out_len, "out") }
    })
}
