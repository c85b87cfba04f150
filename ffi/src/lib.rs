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
//!
//! The files, each a translation table: `boundary.rs` (the panic guard, the
//! last error, failures as statuses, pointer and length checks), `status.rs`
//! (`otp_status`), `config.rs` (`otp_config`, the in-memory constructor),
//! `calls.rs` (issue, verify, revoke, unlock, stats, the call timeout),
//! `batch.rs` (issue and verify many),
//! `redis.rs` (the Redis constructors), `totp.rs`, `scope.rs`, `message.rs`,
//! `constants.rs` (the numbers of core's enums) and `abi.rs` (the ABI version).

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod abi;
mod batch;
mod constants;
mod message;
mod redis;
mod scope;
mod totp;

pub use abi::{otp_abi_version, OTPENGINE_ABI_VERSION};
pub use batch::{
    otp_batch_error, otp_batch_key, otp_issue_answer, otp_issue_many, otp_verify_item,
    otp_verify_many,
};
pub use constants::*;
pub use redis::{
    otp_engine_new_redis, otp_engine_new_redis_opts, otp_redis_options, otp_redis_options_default,
};

pub use scope::{otp_ip_scope, otp_scope, otp_scope_limit, otp_unlock_scope};
pub use totp::{
    otp_hotp, otp_qr_svg, otp_totp, otp_totp_params, otp_totp_params_default, otp_totp_uri,
    otp_unlock_totp, otp_verdict, otp_verify_totp, otp_verify_totp_scoped,
};

mod boundary;
mod calls;
mod config;
mod status;

pub use boundary::*;
pub use calls::*;
pub use config::*;
pub use status::*;

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
