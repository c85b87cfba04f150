//! The status every call returns, its numbers (stable; a retired one is never
//! reused) and what `otp_status_str` says of each.

use std::ffi::c_char;

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
