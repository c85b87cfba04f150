//! The message helpers of `otpengine_core::message` for C: NUL-terminated
//! strings in, texts out through a caller's buffer (as `otp_totp_uri`).

use std::ffi::c_char;
use std::time::Duration;

use otpengine_core::message::{self, SmsEncoding, SmsOptions};

use crate::redis::text as optional_text;
use crate::totp::{text, write_text_with_length};
use crate::{guard, otp_status, out, Failure};

/// The encoding an SMS text needs (`otp_sms_segments`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otp_sms_encoding {
    /// The GSM 03.38 7-bit alphabet (with its extension table): 160 septets in
    /// one segment, 153 a segment in a longer message.
    OTP_SMS_GSM7 = 0,
    /// UCS-2, for any character GSM-7 lacks: 70 UTF-16 units in one segment,
    /// 67 a segment in a longer message.
    OTP_SMS_UCS2 = 1,
}

/// Writes the SMS that carries `code` for `brand`, valid for `ttl_ms`
/// (1000..=86400000), and a NUL, to `text_out`: "Acme: your code is 123456.
/// It expires in 5 minutes. Do not share it." or `template_text` (NULL: that
/// default) with `{code}` (required), `{brand}` and `{minutes}` (whole minutes
/// rounded down; seconds under a minute). `android_app_hash` (NULL: none) adds
/// Google's SMS Retriever hash on a line of its own; `webotp_domain` (NULL:
/// none) adds the origin-bound last line `@example.com #123456` (WICG
/// sms-one-time-codes), which browsers and phone keyboards fill in on that
/// site only. A text longer than one SMS segment is refused unless
/// `allow_multipart` is non-zero.
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`
/// (`otp_last_error` names what is wrong). On `OTP_OK` and on
/// `OTP_BUFFER_TOO_SMALL`, `*text_len_out` (may be NULL) gets the text's length
/// including the NUL.
///
/// # Safety
/// `code` and `brand` are NUL-terminated; `template_text`, `webotp_domain` and
/// `android_app_hash` are NULL or NUL-terminated; `text_out` is NULL or valid
/// for writes of `text_out_len` bytes; `text_len_out` is NULL or valid for a
/// write of a `size_t`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C ABI has no keyword arguments
pub unsafe extern "C" fn otp_sms_text(
    code: *const c_char,
    brand: *const c_char,
    ttl_ms: u64,
    template_text: *const c_char,
    webotp_domain: *const c_char,
    android_app_hash: *const c_char,
    allow_multipart: u8,
    text_out: *mut c_char,
    text_out_len: usize,
    text_len_out: *mut usize,
) -> otp_status {
    guard(|| {
        // SAFETY (all five): forwarded from the caller.
        let code = unsafe { text(code, "code") }?;
        let brand = unsafe { text(brand, "brand") }?;
        let options = SmsOptions {
            template: unsafe { optional_text(template_text, "template_text") }?,
            webotp_domain: unsafe { optional_text(webotp_domain, "webotp_domain") }?,
            android_app_hash: unsafe { optional_text(android_app_hash, "android_app_hash") }?,
            allow_multipart: allow_multipart != 0,
        };
        let sms = message::sms_text(code, brand, Duration::from_millis(ttl_ms), &options)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_text_with_length(&sms, text_out, text_out_len, text_len_out, "text_out") }
    })
}

/// Writes what a voice call says, "Your Acme code is 1, 2, 3, 4, 5, 6. Again:
/// 1, 2, 3, 4, 5, 6.", and a NUL, to `text_out`. Returns and reports as
/// `otp_sms_text`.
///
/// # Safety
/// `code` and `brand` are NUL-terminated; `text_out` and `text_len_out` as for
/// `otp_sms_text`.
#[no_mangle]
pub unsafe extern "C" fn otp_voice_text(
    code: *const c_char,
    brand: *const c_char,
    text_out: *mut c_char,
    text_out_len: usize,
    text_len_out: *mut usize,
) -> otp_status {
    guard(|| {
        // SAFETY (both): forwarded from the caller.
        let code = unsafe { text(code, "code") }?;
        let brand = unsafe { text(brand, "brand") }?;
        let spoken = message::voice_text(code, brand)?;
        // SAFETY: forwarded from the caller.
        unsafe { write_text_with_length(&spoken, text_out, text_out_len, text_len_out, "text_out") }
    })
}

/// Writes the 11-character hash Google's SMS Retriever API looks for, and a
/// NUL (12 bytes), to `hash_out`: from `package_name` (`com.example.app`) and
/// the DER bytes of the app's signing certificate (1..=65536 bytes), by
/// Google's recipe (SHA-256 of the name, a space and the certificate in
/// lowercase hex; the first 9 bytes in base64, cut to 11 characters).
///
/// Returns `OTP_OK`, `OTP_BUFFER_TOO_SMALL` or `OTP_INVALID_ARGUMENT`.
///
/// # Safety
/// `package_name` is NUL-terminated; `signing_certificate` is valid for
/// `signing_certificate_len` bytes; `hash_out` is NULL or valid for writes of
/// `hash_out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn otp_android_app_hash(
    package_name: *const c_char,
    signing_certificate: *const u8,
    signing_certificate_len: usize,
    hash_out: *mut c_char,
    hash_out_len: usize,
) -> otp_status {
    guard(|| {
        // SAFETY (both): forwarded from the caller.
        let package_name = unsafe { text(package_name, "package_name") }?;
        let certificate = unsafe {
            crate::bytes(
                signing_certificate,
                signing_certificate_len,
                "signing_certificate",
                false,
                message::check_certificate_length,
            )
        }?;
        let hash = message::android_app_hash(package_name, certificate)?;
        // SAFETY: forwarded from the caller.
        unsafe { crate::totp::write_text(&hash, hash_out, hash_out_len, "hash_out") }
    })
}

/// Writes the encoding `text` (`text_len` bytes of UTF-8, 0..=65536) needs to
/// `*encoding_out` and the SMS segments it is billed as to `*segments_out`.
/// Returns `OTP_OK` or `OTP_INVALID_ARGUMENT`.
///
/// # Safety
/// `text` is NULL (only with `text_len` 0) or valid for `text_len` bytes;
/// `encoding_out` and `segments_out` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn otp_sms_segments(
    text: *const u8,
    text_len: usize,
    encoding_out: *mut otp_sms_encoding,
    segments_out: *mut u32,
) -> otp_status {
    guard(|| {
        // SAFETY (all three): forwarded from the caller.
        let bytes =
            unsafe { crate::bytes(text, text_len, "text", true, message::check_sms_text_length) }?;
        let encoding_out = unsafe { out(encoding_out, "encoding_out") }?;
        let segments_out = unsafe { out(segments_out, "segments_out") }?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| Failure::invalid("text must be UTF-8"))?;
        let count = message::sms_segments(text);
        *encoding_out = match count.encoding {
            SmsEncoding::Gsm7 => otp_sms_encoding::OTP_SMS_GSM7,
            SmsEncoding::Ucs2 => otp_sms_encoding::OTP_SMS_UCS2,
        };
        // At most 65536 bytes of text: far fewer segments than u32::MAX.
        *segments_out = u32::try_from(count.segments).unwrap_or(u32::MAX);
        Ok(otp_status::OTP_OK)
    })
}
