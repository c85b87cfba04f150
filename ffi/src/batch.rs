//! The batch calls: many issues or verifies in one call (in memory, the
//! locked part runs back to back; on a standalone Redis, one round trip), each
//! answered on its own, and the per-item messages of this thread's last batch.
//!
//! A batch's own arguments (the engine, the arrays, the shared context, the
//! codes buffer) fail the whole call, as any call's do, and nothing is issued
//! or verified. An item's arguments (a key, a code, an item's context) fail
//! that item alone, with the message the single call would leave in
//! `otp_last_error`, read back with `otp_batch_error`.

use std::cell::RefCell;
use std::ffi::c_char;

use otpengine_core::{Error, Verdict};

use crate::boundary::{context, engine, guard, key, ms, typed, Failure};
use crate::config::otp_engine;
use crate::status::otp_status;
use crate::totp::otp_verdict;

/// One key of an `otp_issue_many` batch.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_batch_key {
    /// The key's bytes (1..=1024 of them); NULL is that key's `OTP_INVALID_ARGUMENT`.
    pub key: *const u8,
    /// The number of bytes at `key`.
    pub key_len: usize,
}

/// One item of an `otp_verify_many` batch: what `otp_verify` takes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_verify_item {
    /// The key (1..=1024 bytes).
    pub key: *const u8,
    /// The number of bytes at `key`.
    pub key_len: usize,
    /// What was typed, `code_len` bytes (no NUL needed).
    pub code: *const c_char,
    /// The number of bytes at `code`.
    pub code_len: usize,
    /// The context (0..=1024 bytes; NULL only with length 0: none).
    pub context: *const u8,
    /// The number of bytes at `context`.
    pub context_len: usize,
}

/// What `otp_issue_many` answers for one key.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_issue_answer {
    /// What `otp_issue` would have returned for this key.
    pub status: otp_status,
    /// On `OTP_OK`: how long the code is valid.
    pub expires_in_ms: u64,
    /// On `OTP_RATE_LIMITED` or `OTP_LOCKED`: how long until an issue would be allowed.
    pub retry_after_ms: u64,
}

impl otp_issue_answer {
    fn of(status: otp_status) -> Self {
        otp_issue_answer {
            status,
            expires_in_ms: 0,
            retry_after_ms: 0,
        }
    }
}

thread_local! {
    /// The messages of this thread's last batch, one per item ("" for an item
    /// that succeeded or answered a verdict).
    static BATCH_ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn set_batch_errors(messages: Vec<String>) {
    // `try_with`: see `set_last_error`.
    let _ = BATCH_ERRORS.try_with(|m| *m.borrow_mut() = messages);
}

/// Issues a code for each of `keys` (`key_count` of them), all bound to
/// `context` (as in `otp_issue`), valid for the engine's ttl, in order: each
/// key answers in `answers_out[i]` exactly what `otp_issue` would have
/// answered for it in turn (a key given twice is issued twice, the second time
/// inside its own cooldown). Key `i`'s code and a NUL go to `codes_out` at
/// `i * code_stride` (an empty string for a key not issued); `code_stride` is
/// at least `code_length + 1`.
///
/// Returns `OTP_OK` when the batch ran, whatever each key's answer; else why
/// it did not (nothing was issued): `OTP_INVALID_ARGUMENT` (NULL engine, keys
/// or out-pointers with `key_count` > 0, a bad context) or
/// `OTP_BUFFER_TOO_SMALL` (`code_stride`). On a standalone Redis the batch is
/// one round trip: if its reply is lost, every key answers
/// `OTP_BACKEND_UNAVAILABLE` (each may or may not have been issued); on a
/// cluster the keys after the first that finds Redis unavailable answer the
/// same, untried. `otp_batch_error(i)` gives key `i`'s message.
///
/// # Safety
/// `keys` is NULL or valid for `key_count` `otp_batch_key`s, each key NULL or
/// valid for its length; `context` as in `otp_issue`; `codes_out` is NULL or
/// valid for writes of `key_count * code_stride` bytes; `answers_out` is NULL
/// or valid for writes of `key_count` `otp_issue_answer`s.
#[no_mangle]
pub unsafe extern "C" fn otp_issue_many(
    engine: *const otp_engine,
    keys: *const otp_batch_key,
    key_count: usize,
    context: *const u8,
    context_len: usize,
    codes_out: *mut c_char,
    code_stride: usize,
    answers_out: *mut otp_issue_answer,
) -> otp_status {
    set_batch_errors(Vec::new());
    guard(|| {
        // SAFETY (all): forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        let context = unsafe { self::context(context, context_len) }?;
        let keys = unsafe { array(keys, key_count, "keys") }?;
        let answers = unsafe { array_mut(answers_out, key_count, "answers_out") }?;
        let needed = engine.code_length() as usize + 1;
        if code_stride < needed {
            return Err(Failure(
                otp_status::OTP_BUFFER_TOO_SMALL,
                format!(
                    "code_stride must be at least {needed} (code_length + 1), got {code_stride}"
                ),
            ));
        }
        let total = key_count.checked_mul(code_stride).ok_or_else(|| {
            Failure::invalid(format!(
                "key_count * code_stride must fit in memory, got {key_count} * {code_stride}"
            ))
        })?;
        let codes = unsafe { array_mut(codes_out.cast::<u8>(), total, "codes_out") }?;

        // Each key's bytes, or the failure the single call would give it.
        let read: Vec<Result<&[u8], Failure>> = keys
            .iter()
            // SAFETY: each key is NULL or valid for its length (the caller's promise).
            .map(|k| unsafe { key(k.key, k.key_len) })
            .collect();
        let valid = read.iter().filter_map(|k| k.as_ref().ok().copied());
        let mut issued = engine.issue_many(valid, context).into_iter();
        let mut messages = vec![String::new(); key_count];
        for (i, key) in read.into_iter().enumerate() {
            let slot = &mut codes[i * code_stride..(i + 1) * code_stride];
            slot[0] = 0;
            let answer = key.map_err(|f| (f, None)).and_then(|_| {
                let answer = issued.next().expect("one answer per readable key");
                answer.map_err(|e| (Failure::from(e.clone()), Some(e)))
            });
            answers[i] = match answer {
                Ok(code) => {
                    slot[..needed - 1].copy_from_slice(code.code.as_bytes());
                    slot[needed - 1] = 0;
                    otp_issue_answer {
                        expires_in_ms: ms(code.expires_in),
                        ..otp_issue_answer::of(otp_status::OTP_OK)
                    }
                }
                Err((Failure(status, message), error)) => {
                    messages[i] = message;
                    let retry_after_ms = match error {
                        Some(Error::RateLimited { retry_after, .. })
                        | Some(Error::Locked { retry_after, .. }) => ms(retry_after),
                        _ => 0,
                    };
                    otp_issue_answer {
                        retry_after_ms,
                        ..otp_issue_answer::of(status)
                    }
                }
            };
        }
        set_batch_errors(messages);
        Ok(otp_status::OTP_OK)
    })
}

/// Verifies each of `items` (`item_count` of them) in order: item `i` answers
/// in `verdicts_out[i]` exactly what `otp_verify_ex` would have for it in
/// turn (a bad item `OTP_INVALID_ARGUMENT`, an outage
/// `OTP_BACKEND_UNAVAILABLE`, as a status of its verdict).
///
/// Returns `OTP_OK` when the batch ran, whatever each item's answer; else
/// `OTP_INVALID_ARGUMENT` (NULL engine, items or `verdicts_out` with
/// `item_count` > 0) and nothing was verified. On Redis, a batch's reply that
/// is lost and a cluster's first outage answer as in `otp_issue_many`.
/// `otp_batch_error(i)` gives item `i`'s message.
///
/// # Safety
/// `items` is NULL or valid for `item_count` `otp_verify_item`s, each pointer
/// in them NULL or valid for its length; `verdicts_out` is NULL or valid for
/// writes of `item_count` `otp_verdict`s.
#[no_mangle]
pub unsafe extern "C" fn otp_verify_many(
    engine: *const otp_engine,
    items: *const otp_verify_item,
    item_count: usize,
    verdicts_out: *mut otp_verdict,
) -> otp_status {
    set_batch_errors(Vec::new());
    guard(|| {
        // SAFETY (all): forwarded from the caller.
        let engine = unsafe { self::engine(engine) }?;
        let items = unsafe { array(items, item_count, "items") }?;
        let verdicts = unsafe { array_mut(verdicts_out, item_count, "verdicts_out") }?;

        // Each item's parts, read in the single call's order, or its failure.
        let read: Vec<Result<Item<'_>, Failure>> = items
            .iter()
            .map(|item| {
                // SAFETY (all): each pointer is NULL or valid for its length.
                let key = unsafe { key(item.key, item.key_len) }?;
                let context = unsafe { context(item.context, item.context_len) }?;
                let typed = unsafe { typed(item.code, item.code_len) }?;
                Ok((key, typed, context))
            })
            .collect();
        let valid = read.iter().filter_map(|i| i.as_ref().ok().copied());
        let mut checked = engine.verify_many(valid).into_iter();
        let mut messages = vec![String::new(); item_count];
        for (i, item) in read.into_iter().enumerate() {
            let verdict = item.and_then(|_| {
                let answer: Result<Verdict, Error> =
                    checked.next().expect("one answer per readable item");
                otp_verdict::from_verdict(answer?)
            });
            verdicts[i] = match verdict {
                Ok(verdict) => verdict,
                Err(Failure(status, message)) => {
                    messages[i] = message;
                    otp_verdict::of(status)
                }
            };
        }
        set_batch_errors(messages);
        Ok(otp_status::OTP_OK)
    })
}

/// Copies the message of item `index` of this thread's last `otp_issue_many`
/// or `otp_verify_many` into `buf`, as `otp_last_error` does (at most
/// `buf_len - 1` bytes and a NUL). Returns the message's full length without
/// the NUL: 0 for an item that was issued or answered a verdict, for an index
/// past the batch, and after a batch that did not run. The messages stay until
/// the thread's next batch call.
///
/// # Safety
/// `buf` is NULL or valid for writes of `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_batch_error(index: usize, buf: *mut c_char, buf_len: usize) -> usize {
    std::panic::catch_unwind(|| {
        BATCH_ERRORS
            .try_with(|m| {
                let messages = m.borrow();
                let message = messages.get(index).map_or("", String::as_str);
                // SAFETY: forwarded from the caller.
                unsafe { crate::boundary::copy_message(message, buf, buf_len) }
            })
            .unwrap_or(0)
    })
    .unwrap_or(0)
}

/// A verify item's key, what was typed, and context.
type Item<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// `len` `T`s at `ptr` (none when `len` is 0, whatever `ptr`).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` `T`s.
unsafe fn array<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "{name} must not be NULL with a count of {len}"
        )));
    }
    // SAFETY: non-NULL and valid for `len` `T`s (the caller's promise), which
    // also bounds `len * size_of::<T>()` by the allocation's size.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable `T`s at `ptr`, as [`array`].
///
/// # Safety
/// `ptr` is NULL or valid for writes of `len` `T`s.
unsafe fn array_mut<'a, T>(ptr: *mut T, len: usize, name: &str) -> Result<&'a mut [T], Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "{name} must not be NULL with a count of {len}"
        )));
    }
    // SAFETY: as in `array`, for writes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}
