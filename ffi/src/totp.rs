//! The authenticator-app functions of `otpengine_core::totp` over the C ABI:
//! pointer checks and type conversion only, under the same `guard` as the rest.

use std::ffi::{c_char, CStr};
use std::time::Duration;

use otpengine_core::totp::{self, HashAlgorithm, TotpParams};
use otpengine_core::Verdict;

use crate::{call_args, guard, key_call, otp_engine, otp_status, Failure};

/// A whole verdict: what `otp_verify` cannot say (`retry_after_ms` on
/// `OTP_LOCKED`). Written by `otp_verify_totp` on every verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_verdict {
    /// The same status the call returned.
    pub status: otp_status,
    /// On `OTP_MISMATCH`: failures left before the key locks; 0 otherwise.
    pub attempts_left: u32,
    /// On `OTP_LOCKED`: milliseconds until the lockout ends; 0 otherwise.
    pub retry_after_ms: u64,
}

/// TOTP parameters; fill them with `otp_totp_params_default`, then change fields.
/// A NULL `otp_totp_params *` means the defaults wherever one is taken.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_totp_params {
    /// Digits per code, 6..=8 (default 6).
    pub digits: u32,
    /// The time step in seconds, 10..=300 (default 30).
    pub period_s: u32,
    /// `OTP_HASH_SHA1` (default), `OTP_HASH_SHA256` or `OTP_HASH_SHA512`.
    pub algorithm: u32,
    /// Steps before the current one a verify accepts, 0..=10 (default 1).
    pub skew_back: u32,
    /// Steps after the current one a verify accepts, 0..=10 (default 1).
    pub skew_ahead: u32,
}

/// `params` as core's parameters, checked; NULL: the defaults.
///
/// # Safety
/// `params` is NULL or valid for reads of an `otp_totp_params`.
pub(crate) unsafe fn params(params: *const otp_totp_params) -> Result<TotpParams, Failure> {
    // SAFETY: forwarded from the caller.
    let Some(p) = (unsafe { params.as_ref() }) else {
        return Ok(TotpParams::default());
    };
    let params = TotpParams {
        digits: p.digits,
        period: Duration::from_secs(p.period_s.into()),
        algorithm: HashAlgorithm::from_index(p.algorithm.into())?,
        skew_back: p.skew_back,
        skew_ahead: p.skew_ahead,
    };
    params.validate()?;
    Ok(params)
}

/// `len` bytes of secret at `ptr`, after the length is checked (16..=64).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn secret<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { crate::bytes(ptr, len, "secret", false, totp::check_secret_length) }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{name} must not be NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's promise).
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{name} must be UTF-8")))
}

/// [`write_text`], and the text's length with its NUL to `*len_out` (may be
/// NULL) on success and on `OTP_BUFFER_TOO_SMALL`, so a caller can size its
/// buffer from a first call.
///
/// # Safety
/// As [`write_text`]; `len_out` is NULL or valid for a write of a `size_t`.
pub(crate) unsafe fn write_text_with_length(
    text: &str,
    out: *mut c_char,
    out_len: usize,
    len_out: *mut usize,
    name: &str,
) -> Result<otp_status, Failure> {
    // SAFETY: forwarded from the caller.
    let written = unsafe { write_text(text, out, out_len, name) };
    let reports_length = matches!(
        written,
        Ok(_) | Err(Failure(otp_status::OTP_BUFFER_TOO_SMALL, _))
    );
    // SAFETY: forwarded from the caller.
    if let (true, Some(len_out)) = (reports_length, unsafe { len_out.as_mut() }) {
        *len_out = text.len() + 1;
    }
    written
}

/// Writes `text` and a NUL to `out` (`out_len` bytes), or says how much is needed.
///
/// # Safety
/// `out` is NULL or valid for writes of `out_len` bytes.
pub(crate) unsafe fn write_text(
    text: &str,
    out: *mut c_char,
    out_len: usize,
    name: &str,
) -> Result<otp_status, Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{name} must not be NULL")));
    }
    let needed = text.len() + 1;
    if out_len < needed {
        return Err(Failure(
            otp_status::OTP_BUFFER_TOO_SMALL,
            format!("{name}_len must be at least {needed}, got {out_len}"),
        ));
    }
    // SAFETY: `out` is non-NULL and holds at least `needed` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(out.cast::<u8>(), needed) };
    buf[..text.len()].copy_from_slice(text.as_bytes());
    buf[text.len()] = 0;
    Ok(otp_status::OTP_OK)
}

/// Fills `params` with the defaults (6 digits, 30 s, SHA-1, one step of skew
/// each way). NULL: does nothing.
///
/// # Safety
/// `params` is NULL or valid for writes of an `otp_totp_params`.
#[no_mangle]
pub unsafe extern "C" fn otp_totp_params_default(params: *mut otp_totp_params) {
    guard(|| {
        // SAFETY: forwarded from the caller.
        if let Some(params) = unsafe { params.as_mut() } {
            let d = TotpParams::default();
            *params = otp_totp_params {
                digits: d.digits,
                period_s: d.period_secs() as u32,
                algorithm: d.algorithm as u32,
                skew_back: d.skew_back,
                skew_ahead: d.skew_ahead,
            };
        }
        Ok(otp_status::OTP_OK)
    });
}

/// Writes the HOTP code (RFC 4226) of `secret` (16..=64 bytes) at `counter`, with
/// `digits` (6..=8) and `algorithm` (`OTP_HASH_*`), and a NUL, to `code_out`
/// (`digits + 1` bytes at least).
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`.
///
/// # Safety
/// Pointers are NULL or valid for their lengths.
#[no_mangle]
pub unsafe extern "C" fn otp_hotp(
    secret: *const u8,
    secret_len: usize,
    counter: u64,
    digits: u32,
    algorithm: u32,
    code_out: *mut c_char,
    code_out_len: usize,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let secret = unsafe { self::secret(secret, secret_len) }?;
        let algorithm = HashAlgorithm::from_index(algorithm.into())?;
        let code = totp::hotp(secret, counter, digits, algorithm)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_text(code.as_str(), code_out, code_out_len, "code_out") }
    })
}

/// Writes the TOTP code (RFC 6238) of `secret` (16..=64 bytes) at `unix_time_s`
/// (taken as given: 0 is 1970-01-01) under `params` (NULL: the defaults), and a
/// NUL, to `code_out` (`digits + 1` bytes at least).
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`.
///
/// # Safety
/// Pointers are NULL or valid for their lengths; `params` is NULL or valid for
/// reads of an `otp_totp_params`.
#[no_mangle]
pub unsafe extern "C" fn otp_totp(
    secret: *const u8,
    secret_len: usize,
    unix_time_s: u64,
    params: *const otp_totp_params,
    code_out: *mut c_char,
    code_out_len: usize,
) -> otp_status {
    guard(|| {
        // SAFETY (both): forwarded from the caller.
        let secret = unsafe { self::secret(secret, secret_len) }?;
        let params = unsafe { self::params(params) }?;
        let code = totp::totp(secret, unix_time_s, &params)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_text(code.as_str(), code_out, code_out_len, "code_out") }
    })
}

/// Writes the enrolment URI (`otpauth://totp/<issuer>:<account>?secret=...&issuer=
/// ...&algorithm=...&digits=...&period=...`) of `secret` (16..=64 bytes) for
/// `issuer` and `account` (NUL-terminated UTF-8, 1..=255 bytes each) under
/// `params` (NULL: the defaults), and a NUL, to `uri_out`. The URI holds the
/// secret: treat it as one.
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`. On
/// `OTP_OK` and on `OTP_BUFFER_TOO_SMALL` (the one failure that writes an
/// out-parameter), `*uri_len_out` (may be NULL) gets the URI's length including
/// the NUL.
///
/// # Safety
/// Pointers are NULL or valid for their lengths; `issuer` and `account` are NULL
/// or NUL-terminated; `uri_len_out` is NULL or valid for a write of a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn otp_totp_uri(
    secret: *const u8,
    secret_len: usize,
    issuer: *const c_char,
    account: *const c_char,
    params: *const otp_totp_params,
    uri_out: *mut c_char,
    uri_out_len: usize,
    uri_len_out: *mut usize,
) -> otp_status {
    guard(|| {
        // SAFETY (all four): forwarded from the caller.
        let secret = unsafe { self::secret(secret, secret_len) }?;
        let issuer = unsafe { text(issuer, "issuer") }?;
        let account = unsafe { text(account, "account") }?;
        let params = unsafe { self::params(params) }?;
        let uri = zeroize::Zeroizing::new(totp::otpauth_uri(secret, issuer, account, &params)?);
        // SAFETY: forwarded from the caller.
        unsafe { write_text_with_length(&uri, uri_out, uri_out_len, uri_len_out, "uri_out") }
    })
}

/// Writes `text` (`text_len` bytes of UTF-8, 0..=2331; an enrolment URI, say)
/// as a QR code in SVG (black on white, a quiet zone, at least 200 pixels
/// square), and a NUL, to `svg_out`: what an enrolment page shows for an
/// authenticator app to scan. An SVG of an enrolment URI holds the secret.
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`. On
/// `OTP_OK` and on `OTP_BUFFER_TOO_SMALL`, `*svg_len_out` (may be NULL) gets the
/// SVG's length including the NUL.
///
/// # Safety
/// `text` is NULL (only with `text_len` 0) or valid for `text_len` bytes;
/// `svg_out` is NULL or valid for writes of `svg_out_len` bytes; `svg_len_out`
/// is NULL or valid for a write of a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn otp_qr_svg(
    text: *const u8,
    text_len: usize,
    svg_out: *mut c_char,
    svg_out_len: usize,
    svg_len_out: *mut usize,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let bytes =
            unsafe { crate::bytes(text, text_len, "text", true, totp::check_qr_text_length) }?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| Failure::invalid("text must be UTF-8"))?;
        let svg = zeroize::Zeroizing::new(totp::qr_svg(text)?);
        // SAFETY: forwarded from the caller.
        unsafe { write_text_with_length(&svg, svg_out, svg_out_len, svg_len_out, "svg_out") }
    })
}

/// Verifies an authenticator-app code (RFC 6238) for `key` (1..=1024 bytes),
/// computed from `secret` (16..=64 bytes, never kept) at `unix_time_s` (0: this
/// host's clock, UTC) under `params` (NULL: the defaults). `code` is `code_len`
/// bytes, no NUL needed; ASCII spaces and hyphens are ignored.
///
/// Returns `OTP_OK` (verified: this step is now the key's last accepted one),
/// `OTP_REPLAYED` (the right code for a step already used; not counted),
/// `OTP_MISMATCH` (a counted failure), `OTP_LOCKED` (the key's failure budget is
/// spent; the code was not looked at), or an error: `OTP_INVALID_ARGUMENT` (also
/// for an engine whose `max_failures_per_key` is 0: TOTP needs a budget),
/// `OTP_CAPACITY_EXCEEDED`, `OTP_BACKEND_UNAVAILABLE`. On every verdict,
/// `*verdict_out` (may be NULL) gets the status, `attempts_left` on MISMATCH and
/// `retry_after_ms` on LOCKED. TOTP state is apart from the key's random codes.
///
/// # Safety
/// `engine` is NULL or a live handle; pointers are NULL or valid for their
/// lengths; `params` is NULL or valid for reads of an `otp_totp_params`;
/// `verdict_out` is NULL or valid for a write of an `otp_verdict`.
#[no_mangle]
pub unsafe extern "C" fn otp_verify_totp(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    secret: *const u8,
    secret_len: usize,
    code: *const c_char,
    code_len: usize,
    params: *const otp_totp_params,
    unix_time_s: u64,
    verdict_out: *mut otp_verdict,
) -> otp_status {
    // SAFETY: forwarded from the caller; no scopes.
    unsafe {
        otp_verify_totp_scoped(
            engine,
            key,
            key_len,
            secret,
            secret_len,
            code,
            code_len,
            params,
            unix_time_s,
            std::ptr::null(),
            0,
            verdict_out,
        )
    }
}

/// `otp_verify_totp` for a call that belongs to `scopes`, with the scope rules
/// of `otp_verify_scoped`.
///
/// # Safety
/// As `otp_verify_totp`; `scopes` is NULL or valid for `scope_count` `otp_scope`s.
#[no_mangle]
pub unsafe extern "C" fn otp_verify_totp_scoped(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
    secret: *const u8,
    secret_len: usize,
    code: *const c_char,
    code_len: usize,
    params: *const otp_totp_params,
    unix_time_s: u64,
    scopes: *const crate::otp_scope,
    scope_count: usize,
    verdict_out: *mut otp_verdict,
) -> otp_status {
    guard(|| {
        // SAFETY (all): forwarded from the caller.
        let (engine, key, _) = unsafe { call_args(engine, key, key_len, None) }?;
        let secret = unsafe { self::secret(secret, secret_len) }?;
        let params = unsafe { self::params(params) }?;
        let read = unsafe { crate::scope::read(scopes, scope_count) }?;
        let typed = unsafe { crate::typed(code, code_len) }?;
        // Not UTF-8 cannot be a code: an ordinary counted mismatch, as in otp_verify.
        let typed = std::str::from_utf8(typed).unwrap_or("\u{fffd}");
        let at = match unix_time_s {
            0 => None,
            secs => {
                totp::check_unix_time(secs)?;
                Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            }
        };
        let scopes = crate::scope::as_scopes(&read);
        let verdict = engine.verify_totp_scoped(key, secret, typed, &params, at, &scopes)?;
        let verdict = otp_verdict::from_verdict(verdict)?;
        // SAFETY: forwarded from the caller.
        if let Some(out) = unsafe { verdict_out.as_mut() } {
            *out = verdict;
        }
        Ok(verdict.status)
    })
}

impl otp_verdict {
    pub(crate) fn of(status: otp_status) -> Self {
        otp_verdict {
            status,
            attempts_left: 0,
            retry_after_ms: 0,
        }
    }

    /// A core verdict, translated.
    pub(crate) fn from_verdict(verdict: Verdict) -> Result<Self, Failure> {
        Ok(match verdict {
            Verdict::Verified => otp_verdict::of(otp_status::OTP_OK),
            Verdict::Replayed => otp_verdict::of(otp_status::OTP_REPLAYED),
            Verdict::Expired => otp_verdict::of(otp_status::OTP_EXPIRED),
            Verdict::NotFound => otp_verdict::of(otp_status::OTP_NOT_FOUND),
            Verdict::Mismatch { attempts_left } => otp_verdict {
                attempts_left,
                ..otp_verdict::of(otp_status::OTP_MISMATCH)
            },
            Verdict::Locked { retry_after } => otp_verdict {
                retry_after_ms: crate::ms(retry_after),
                ..otp_verdict::of(otp_status::OTP_LOCKED)
            },
            other => {
                return Err(Failure(
                    otp_status::OTP_INTERNAL_ERROR,
                    format!("a verdict this C library does not know: {other:?}"),
                ))
            }
        })
    }
}

/// Lifts the lockout of `key`'s TOTP state and clears its failure count
/// (`otp_unlock` is for its random codes). Returns `OTP_OK` if there was a count,
/// `OTP_NOT_FOUND` if not, or an error. The last accepted step stays.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` is NULL or valid for `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_unlock_totp(
    engine: *const otp_engine,
    key: *const u8,
    key_len: usize,
) -> otp_status {
    // SAFETY: forwarded from the caller.
    unsafe { key_call(engine, key, key_len, |e, k| e.unlock_totp(k)) }
}
