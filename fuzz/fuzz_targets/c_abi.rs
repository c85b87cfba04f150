//! Drives the C ABI with arbitrary bytes for keys, codes and contexts, arbitrary
//! lengths up to past the limits, buffers of every size, NULL where the header
//! allows it to be checked, and arbitrary configurations; the TOTP calls with
//! arbitrary secrets, parameters and times. Every call must return
//! one of its documented statuses (never `OTP_INTERNAL_ERROR`, a caught panic),
//! write nothing past the lengths it was given, and leave the engine usable.
//! Built with AddressSanitizer by `make fuzz`.

#![no_main]

use std::ffi::c_char;
use std::ptr;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use otpengine::{
    otp_batch_key, otp_clock_advance, otp_config, otp_config_default, otp_engine, otp_engine_free,
    otp_engine_new, otp_engine_stats, otp_hotp, otp_ip_scope, otp_issue, otp_issue_answer,
    otp_issue_many, otp_issue_scoped, otp_issued, otp_last_error, otp_revoke, otp_scope, otp_stats,
    otp_status, otp_status_str, otp_totp, otp_totp_params, otp_totp_uri, otp_unlock,
    otp_unlock_scope, otp_unlock_totp, otp_verdict, otp_verify, otp_verify_item, otp_verify_many,
    otp_verify_scoped, otp_verify_totp,
};

/// Scope names the calls use: configured by `perturb` (sometimes), or not.
const SCOPE_NAMES: [&[u8]; 4] = [b"ip\0", b"t\0", b"zz\0", b"\0"];

/// Bytes written after every output buffer, checked to be untouched.
const CANARY: u8 = 0xA5;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = exercise(&mut u);
});

fn exercise(u: &mut Unstructured) -> Result<()> {
    let mut config = default_config();
    perturb(u, &mut config)?;
    let mut engine: *mut otp_engine = ptr::null_mut();
    // SAFETY: `config` is a valid otp_config and `engine` a valid out-pointer.
    let status = unsafe { otp_engine_new(&config, &mut engine) };
    expect(
        status,
        &[otp_status::OTP_OK, otp_status::OTP_INVALID_ARGUMENT],
        "new",
    );
    if status != otp_status::OTP_OK {
        assert!(engine.is_null(), "a failed otp_engine_new writes no handle");
        assert_ne!(last_error_len(), 0, "a refused config says why");
        return Ok(());
    }
    let result = calls(u, engine);
    // SAFETY: `engine` came from otp_engine_new and is freed once.
    unsafe { otp_engine_free(engine) };
    result
}

fn calls(u: &mut Unstructured, engine: *mut otp_engine) -> Result<()> {
    let mut last_code: Vec<u8> = Vec::new();
    while !u.is_empty() {
        match u.int_in_range(0..=11u8)? {
            0 | 1 => {
                let key = bytes(u)?;
                let context = bytes(u)?;
                let ttl_ms = match u.int_in_range(0..=3u8)? {
                    0 => 0,
                    1 => u.int_in_range(1000..=86_400_000)?,
                    _ => u.arbitrary()?,
                };
                let code_len = u.int_in_range(0..=16usize)?;
                let mut code = vec![CANARY; code_len + 8];
                let mut issued = otp_issued::default();
                // SAFETY: every pointer is NULL or valid for the length passed with it.
                let status = unsafe {
                    otp_issue(
                        engine,
                        key.ptr(),
                        key.len,
                        context.ptr(),
                        context.len,
                        ttl_ms,
                        if code_len == 0 && u.arbitrary()? {
                            ptr::null_mut()
                        } else {
                            code.as_mut_ptr().cast::<c_char>()
                        },
                        code_len,
                        if u.arbitrary()? {
                            ptr::null_mut()
                        } else {
                            &mut issued
                        },
                    )
                };
                use otp_status::*;
                expect(
                    status,
                    &[
                        OTP_OK,
                        OTP_RATE_LIMITED,
                        OTP_LOCKED,
                        OTP_CAPACITY_EXCEEDED,
                        OTP_BUFFER_TOO_SMALL,
                        OTP_INVALID_ARGUMENT,
                    ],
                    "issue",
                );
                assert!(
                    code[code_len..].iter().all(|&b| b == CANARY),
                    "otp_issue wrote past code_out_len"
                );
                if status == OTP_OK {
                    let end = code.iter().position(|&b| b == 0).expect("NUL-terminated");
                    last_code = code[..end].to_vec();
                }
            }
            2 => {
                let key = bytes(u)?;
                let context = bytes(u)?;
                let typed = if u.arbitrary()? {
                    Input::from(last_code.clone())
                } else {
                    bytes(u)?
                };
                let mut attempts_left = u32::MAX;
                // SAFETY: every pointer is NULL or valid for the length passed with it.
                let status = unsafe {
                    otp_verify(
                        engine,
                        key.ptr(),
                        key.len,
                        typed.ptr().cast::<c_char>(),
                        typed.len,
                        context.ptr(),
                        context.len,
                        if u.arbitrary()? {
                            ptr::null_mut()
                        } else {
                            &mut attempts_left
                        },
                    )
                };
                use otp_status::*;
                expect(
                    status,
                    &[
                        OTP_OK,
                        OTP_MISMATCH,
                        OTP_LOCKED,
                        OTP_EXPIRED,
                        OTP_NOT_FOUND,
                        OTP_INVALID_ARGUMENT,
                    ],
                    "verify",
                );
            }
            3 => {
                let key = bytes(u)?;
                // SAFETY: the key pointer is NULL or valid for its length.
                let status = if u.arbitrary()? {
                    unsafe { otp_revoke(engine, key.ptr(), key.len) }
                } else {
                    unsafe { otp_unlock(engine, key.ptr(), key.len) }
                };
                use otp_status::*;
                expect(
                    status,
                    &[OTP_OK, OTP_NOT_FOUND, OTP_INVALID_ARGUMENT],
                    "revoke/unlock",
                );
            }
            4 => {
                let ms = u.arbitrary()?;
                // SAFETY: `engine` is a live handle.
                let status = unsafe { otp_clock_advance(engine, ms) };
                expect(status, &[otp_status::OTP_OK], "clock_advance");
            }
            5 => {
                // A batch of up to 4 keys, then a verify of the same keys with
                // the last code or anything, strides and counts of every size.
                let count = u.int_in_range(0..=4usize)?;
                let inputs = (0..count).map(|_| bytes(u)).collect::<Result<Vec<_>>>()?;
                let keys: Vec<otp_batch_key> = inputs
                    .iter()
                    .map(|k| otp_batch_key {
                        key: k.ptr(),
                        key_len: k.len,
                    })
                    .collect();
                let context = bytes(u)?;
                let stride = u.int_in_range(0..=16usize)?;
                let mut codes = vec![CANARY; count * stride + 8];
                let mut answers = vec![
                    otp_issue_answer {
                        status: otp_status::OTP_INTERNAL_ERROR,
                        expires_in_ms: 0,
                        retry_after_ms: 0,
                    };
                    count
                ];
                // SAFETY: every pointer is NULL or valid for the length passed with it.
                let status = unsafe {
                    otp_issue_many(
                        engine,
                        keys.as_ptr(),
                        count,
                        context.ptr(),
                        context.len,
                        codes.as_mut_ptr().cast::<c_char>(),
                        stride,
                        answers.as_mut_ptr(),
                    )
                };
                use otp_status::*;
                expect(
                    status,
                    &[OTP_OK, OTP_BUFFER_TOO_SMALL, OTP_INVALID_ARGUMENT],
                    "issue_many",
                );
                assert!(
                    codes[count * stride..].iter().all(|&b| b == CANARY),
                    "otp_issue_many wrote past key_count * code_stride"
                );
                if status == OTP_OK {
                    for answer in &answers {
                        expect(
                            answer.status,
                            &[
                                OTP_OK,
                                OTP_RATE_LIMITED,
                                OTP_LOCKED,
                                OTP_CAPACITY_EXCEEDED,
                                OTP_INVALID_ARGUMENT,
                            ],
                            "issue_many's answer",
                        );
                    }
                }
                let typed = Input::from(last_code.clone());
                let items: Vec<otp_verify_item> = inputs
                    .iter()
                    .map(|k| otp_verify_item {
                        key: k.ptr(),
                        key_len: k.len,
                        code: typed.ptr().cast::<c_char>(),
                        code_len: typed.len,
                        context: context.ptr(),
                        context_len: context.len,
                    })
                    .collect();
                let mut verdicts = vec![otp_verdict_of_nothing(); count];
                // SAFETY: as above.
                let status = unsafe {
                    otp_verify_many(engine, items.as_ptr(), count, verdicts.as_mut_ptr())
                };
                expect(status, &[OTP_OK], "verify_many");
                for verdict in &verdicts {
                    expect(
                        verdict.status,
                        &[
                            OTP_OK,
                            OTP_MISMATCH,
                            OTP_LOCKED,
                            OTP_EXPIRED,
                            OTP_NOT_FOUND,
                            OTP_INVALID_ARGUMENT,
                        ],
                        "verify_many's verdict",
                    );
                }
            }
            6 => {
                let key = bytes(u)?;
                let secret = bytes(u)?;
                let typed = bytes(u)?;
                let params = totp_params(u)?;
                let mut verdict = otp_verdict {
                    status: otp_status::OTP_INTERNAL_ERROR,
                    attempts_left: 0,
                    retry_after_ms: 0,
                };
                // SAFETY: every pointer is NULL or valid for the length passed with it.
                let status = unsafe {
                    if u.arbitrary()? {
                        otp_unlock_totp(engine, key.ptr(), key.len)
                    } else {
                        otp_verify_totp(
                            engine,
                            key.ptr(),
                            key.len,
                            secret.ptr(),
                            secret.len,
                            typed.ptr().cast::<c_char>(),
                            typed.len,
                            params.as_ref().map_or(ptr::null(), |p| p),
                            u.arbitrary()?,
                            if u.arbitrary()? {
                                ptr::null_mut()
                            } else {
                                &mut verdict
                            },
                        )
                    }
                };
                use otp_status::*;
                expect(
                    status,
                    &[
                        OTP_OK,
                        OTP_MISMATCH,
                        OTP_LOCKED,
                        OTP_REPLAYED,
                        OTP_NOT_FOUND,
                        OTP_CAPACITY_EXCEEDED,
                        OTP_INVALID_ARGUMENT,
                    ],
                    "verify_totp/unlock_totp",
                );
            }
            7 => {
                let secret = bytes(u)?;
                let params = totp_params(u)?;
                let out_len = u.int_in_range(0..=12usize)?;
                let mut out = vec![CANARY; out_len + 8];
                // SAFETY: every pointer is NULL or valid for the length passed with it.
                let status = unsafe {
                    if u.arbitrary()? {
                        otp_hotp(
                            secret.ptr(),
                            secret.len,
                            u.arbitrary()?,
                            u.arbitrary()?,
                            u.arbitrary()?,
                            out.as_mut_ptr().cast::<c_char>(),
                            out_len,
                        )
                    } else {
                        otp_totp(
                            secret.ptr(),
                            secret.len,
                            u.arbitrary()?,
                            params.as_ref().map_or(ptr::null(), |p| p),
                            out.as_mut_ptr().cast::<c_char>(),
                            out_len,
                        )
                    }
                };
                use otp_status::*;
                expect(
                    status,
                    &[OTP_OK, OTP_BUFFER_TOO_SMALL, OTP_INVALID_ARGUMENT],
                    "hotp/totp",
                );
                assert!(
                    out[out_len..].iter().all(|&b| b == CANARY),
                    "otp_hotp/otp_totp wrote past code_out_len"
                );
            }
            8 => {
                let secret = bytes(u)?;
                let params = totp_params(u)?;
                let text = |u: &mut Unstructured| -> Result<Option<std::ffi::CString>> {
                    if u.ratio(1, 8)? {
                        return Ok(None);
                    }
                    let raw: Vec<u8> = u.arbitrary()?;
                    let raw: Vec<u8> = raw.into_iter().map(|b| b.max(1)).collect();
                    Ok(Some(std::ffi::CString::new(raw).expect("no NUL")))
                };
                let (issuer, account) = (text(u)?, text(u)?);
                let out_len = u.int_in_range(0..=300usize)?;
                let mut out = vec![CANARY; out_len + 8];
                let mut needed = usize::MAX;
                // SAFETY: every pointer is NULL or valid for the length passed with it;
                // the strings are NUL-terminated.
                let status = unsafe {
                    otp_totp_uri(
                        secret.ptr(),
                        secret.len,
                        issuer.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
                        account.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
                        params.as_ref().map_or(ptr::null(), |p| p),
                        out.as_mut_ptr().cast::<c_char>(),
                        out_len,
                        &mut needed,
                    )
                };
                use otp_status::*;
                expect(
                    status,
                    &[OTP_OK, OTP_BUFFER_TOO_SMALL, OTP_INVALID_ARGUMENT],
                    "totp_uri",
                );
                assert!(
                    out[out_len..].iter().all(|&b| b == CANARY),
                    "otp_totp_uri wrote past uri_out_len"
                );
                if status == OTP_BUFFER_TOO_SMALL {
                    assert!(needed > out_len, "the length needed is reported");
                }
            }
            9 => {
                // A scoped issue or verify, with scopes named from a small set
                // (some configured, some not) and arbitrary values and counts.
                let key = bytes(u)?;
                let values: Vec<Input> = (0..u.int_in_range(0..=9usize)?)
                    .map(|_| bytes(u))
                    .collect::<Result<_>>()?;
                let scopes: Vec<otp_scope> = values
                    .iter()
                    .map(|value| {
                        Ok(otp_scope {
                            name: SCOPE_NAMES[u.int_in_range(0..=SCOPE_NAMES.len() - 1)?]
                                .as_ptr()
                                .cast(),
                            value: value.ptr(),
                            value_len: value.len,
                        })
                    })
                    .collect::<Result<_>>()?;
                let (scopes_ptr, count) = if u.ratio(1, 8)? {
                    (ptr::null(), u.int_in_range(0..=2usize)?)
                } else {
                    (scopes.as_ptr(), scopes.len())
                };
                use otp_status::*;
                if u.arbitrary()? {
                    let mut code = [CANARY; 16];
                    let mut issued = otp_issued::default();
                    // SAFETY: every pointer is NULL or valid for the length passed with it.
                    let status = unsafe {
                        otp_issue_scoped(
                            engine,
                            key.ptr(),
                            key.len,
                            ptr::null(),
                            0,
                            0,
                            scopes_ptr,
                            count,
                            code.as_mut_ptr().cast(),
                            12,
                            &mut issued,
                        )
                    };
                    expect(
                        status,
                        &[
                            OTP_OK,
                            OTP_RATE_LIMITED,
                            OTP_LOCKED,
                            OTP_CAPACITY_EXCEEDED,
                            OTP_INVALID_ARGUMENT,
                        ],
                        "issue_scoped",
                    );
                    assert!(
                        code[12..].iter().all(|&b| b == CANARY),
                        "wrote past code_out_len"
                    );
                    assert_eq!(issued.scope[31], 0, "the scope name is NUL-terminated");
                    if status == OTP_OK {
                        let end = code.iter().position(|&b| b == 0).expect("NUL-terminated");
                        last_code = code[..end].to_vec();
                    }
                } else {
                    let mut verdict = otp_verdict {
                        status: otp_status::OTP_INTERNAL_ERROR,
                        attempts_left: 0,
                        retry_after_ms: 0,
                    };
                    // SAFETY: every pointer is NULL or valid for the length passed with it.
                    let status = unsafe {
                        otp_verify_scoped(
                            engine,
                            key.ptr(),
                            key.len,
                            last_code.as_ptr().cast(),
                            last_code.len(),
                            ptr::null(),
                            0,
                            scopes_ptr,
                            count,
                            &mut verdict,
                        )
                    };
                    expect(
                        status,
                        &[
                            OTP_OK,
                            OTP_MISMATCH,
                            OTP_LOCKED,
                            OTP_EXPIRED,
                            OTP_NOT_FOUND,
                            OTP_CAPACITY_EXCEEDED,
                            OTP_INVALID_ARGUMENT,
                        ],
                        "verify_scoped",
                    );
                }
            }
            10 => {
                let mut text: Vec<u8> = bytes(u)?.bytes.unwrap_or_default();
                text.retain(|&b| b != 0);
                text.push(0);
                let value = bytes(u)?;
                let name = SCOPE_NAMES[u.int_in_range(0..=SCOPE_NAMES.len() - 1)?];
                // SAFETY: `name` is NUL-terminated; `value` NULL or valid for its length.
                let status = unsafe {
                    otp_unlock_scope(engine, name.as_ptr().cast(), value.ptr(), value.len)
                };
                use otp_status::*;
                expect(
                    status,
                    &[OTP_OK, OTP_NOT_FOUND, OTP_INVALID_ARGUMENT],
                    "unlock_scope",
                );
                let out_len = u.int_in_range(0..=64usize)?;
                let mut out = vec![CANARY; out_len + 8];
                // SAFETY: `text` is NUL-terminated; `out` valid for out_len bytes.
                let status =
                    unsafe { otp_ip_scope(text.as_ptr().cast(), out.as_mut_ptr().cast(), out_len) };
                expect(
                    status,
                    &[OTP_OK, OTP_BUFFER_TOO_SMALL, OTP_INVALID_ARGUMENT],
                    "ip_scope",
                );
                assert!(
                    out[out_len..].iter().all(|&b| b == CANARY),
                    "wrote past out_len"
                );
            }
            _ => {
                let mut stats = std::mem::MaybeUninit::<otp_stats>::zeroed();
                // SAFETY: `engine` is a live handle, `stats` valid for a write.
                let status = unsafe { otp_engine_stats(engine, stats.as_mut_ptr()) };
                expect(status, &[otp_status::OTP_OK], "stats");
            }
        }
    }
    Ok(())
}

/// A verdict no call answers, to see that each is written.
fn otp_verdict_of_nothing() -> otp_verdict {
    otp_verdict {
        status: otp_status::OTP_INTERNAL_ERROR,
        attempts_left: u32::MAX,
        retry_after_ms: u64::MAX,
    }
}

/// TOTP parameters: NULL (the defaults), valid ones, or any integers.
fn totp_params(u: &mut Unstructured) -> Result<Option<otp_totp_params>> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(otp_totp_params {
            digits: u.int_in_range(6..=8)?,
            period_s: u.int_in_range(10..=300)?,
            algorithm: u.int_in_range(0..=2)?,
            skew_back: u.int_in_range(0..=10)?,
            skew_ahead: u.int_in_range(0..=10)?,
        }),
        _ => Some(otp_totp_params {
            digits: u.arbitrary()?,
            period_s: u.arbitrary()?,
            algorithm: u.arbitrary()?,
            skew_back: u.arbitrary()?,
            skew_ahead: u.arbitrary()?,
        }),
    })
}

/// Bytes with a length to pass: sometimes NULL (length 0 or not), sometimes
/// past the 1024-byte limits.
struct Input {
    bytes: Option<Vec<u8>>,
    len: usize,
}

impl Input {
    fn ptr(&self) -> *const u8 {
        self.bytes.as_ref().map_or(ptr::null(), |b| b.as_ptr())
    }
}

impl From<Vec<u8>> for Input {
    fn from(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Input {
            bytes: Some(bytes),
            len,
        }
    }
}

fn bytes(u: &mut Unstructured) -> Result<Input> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => Input {
            bytes: None,
            len: if u.arbitrary()? { 0 } else { u.arbitrary()? },
        },
        1 => Input::from(vec![
            u.arbitrary::<u8>()?;
            u.int_in_range(1000..=1100usize)?
        ]),
        _ => {
            let n = u.int_in_range(0..=24usize)?;
            Input::from(u.bytes(n.min(u.len()))?.to_vec())
        }
    })
}

fn default_config() -> otp_config {
    let mut config = std::mem::MaybeUninit::<otp_config>::zeroed();
    // SAFETY: `config` is valid for a write of an otp_config.
    unsafe { otp_config_default(config.as_mut_ptr()) };
    // SAFETY: otp_config_default wrote every field.
    unsafe { config.assume_init() }
}

/// Sets a few fields to arbitrary values, in range or not; always a manual
/// clock, so that the fuzzer controls time.
fn perturb(u: &mut Unstructured, c: &mut otp_config) -> Result<()> {
    c.manual_clock = 1;
    c.shards = 1 << u.int_in_range(0..=3)?;
    for _ in 0..u.int_in_range(0..=4u8)? {
        match u.int_in_range(0..=14u8)? {
            0 => c.code_length = u.arbitrary()?,
            1 => c.alphabet = u.arbitrary()?,
            2 => c.ttl_ms = u.arbitrary()?,
            3 => c.max_attempts = u.arbitrary()?,
            4 => c.resend_cooldown_ms = u.arbitrary()?,
            5 => c.max_issues_per_window = u.arbitrary()?,
            6 => c.issue_window_ms = u.arbitrary()?,
            7 => c.max_failures_per_key = u.arbitrary()?,
            8 => c.lockout_ms = u.arbitrary()?,
            9 => c.codes_per_key = u.arbitrary()?,
            10 => c.capacity = u.int_in_range(0..=16)?,
            11 => c.escalate_lockouts = u.arbitrary()?,
            12 => c.max_lockout_ms = u.arbitrary()?,
            13 => {
                // Scope limits named "ip" and "t", any budgets and windows, any count.
                for (k, name) in [&b"ip"[..], b"t"].iter().enumerate() {
                    let limit = &mut c.scope_limits[k];
                    for (slot, &b) in limit.name.iter_mut().zip(name.iter()) {
                        *slot = b as c_char;
                    }
                    limit.max_issues = u.int_in_range(0..=3)?;
                    limit.issue_window_ms = u.int_in_range(0..=60_000)?;
                    limit.max_failures = u.int_in_range(0..=3)?;
                    limit.failure_window_ms = u.int_in_range(0..=60_000)?;
                }
                c.scope_limit_count = u.int_in_range(0..=9)?;
            }
            _ => c.shards = u.arbitrary()?,
        }
    }
    Ok(())
}

fn expect(status: otp_status, allowed: &[otp_status], call: &str) {
    if !allowed.contains(&status) {
        let mut message = vec![0u8; 512];
        // SAFETY: `message` is valid for writes of its length.
        let n = unsafe { otp_last_error(message.as_mut_ptr().cast(), message.len()) };
        message.truncate(n.min(511));
        panic!(
            "{call} returned {status:?}, not one of {allowed:?}: {}",
            String::from_utf8_lossy(&message)
        );
    }
    // Every status has a text.
    assert!(!otp_status_str(otpengine::otp_status_arg(status as u32)).is_null());
}

fn last_error_len() -> usize {
    // SAFETY: a NULL buffer with length 0 asks only for the length.
    unsafe { otp_last_error(ptr::null_mut(), 0) }
}
