//! The C functions of a Redis engine across an outage: every call made while
//! the server is down is `OTP_BACKEND_UNAVAILABLE` with a message naming the
//! server, none is `OTP_OK`, and the same handle works again once the server is
//! back. (The C programs in tests/c cover the constructor against the shared
//! servers; this test needs a server of its own to stop.)

#[path = "../../core/tests/common/servers.rs"]
mod common;

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use otpengine::*;

const SECRET: &[u8] = b"otpengine ffi test secret, 32 b.";

fn last_error() -> String {
    let mut buf = [0u8; 512];
    // SAFETY: buf is valid for its length.
    let n = unsafe { otp_last_error(buf.as_mut_ptr().cast(), buf.len()) };
    String::from_utf8_lossy(&buf[..n.min(511)]).into_owned()
}

fn issue(engine: *mut otp_engine, key: &str, code: &mut [u8; 16]) -> otp_status {
    // SAFETY: key and code are valid for their lengths; issued_out may be NULL.
    unsafe {
        otp_issue(
            engine,
            key.as_ptr(),
            key.len(),
            ptr::null(),
            0,
            0,
            code.as_mut_ptr().cast::<c_char>(),
            code.len(),
            ptr::null_mut(),
        )
    }
}

fn verify(engine: *mut otp_engine, key: &str, code: &[u8; 16]) -> otp_status {
    // SAFETY: code holds a NUL-terminated code written by otp_issue.
    let typed = unsafe { CStr::from_ptr(code.as_ptr().cast()) }.to_bytes();
    // SAFETY: all pointers are valid for their lengths.
    unsafe {
        otp_verify(
            engine,
            key.as_ptr(),
            key.len(),
            typed.as_ptr().cast(),
            typed.len(),
            ptr::null(),
            0,
            ptr::null_mut(),
        )
    }
}

#[test]
fn calls_during_an_outage_are_backend_unavailable_and_the_handle_recovers() {
    let Some(mut server) = common::OwnServer::start() else {
        return;
    };
    let url = CString::new(server.url()).unwrap();
    let mut config = otp_config::default();
    // SAFETY: config is valid for writes.
    unsafe { otp_config_default(&mut config) };
    config.resend_cooldown_ms = 0;
    config.redis_connect_timeout_ms = 300;
    config.redis_response_timeout_ms = 300;
    let mut engine = ptr::null_mut();
    // SAFETY: every pointer is valid; SECRET for its length.
    let status = unsafe {
        otp_engine_new_redis(
            &config,
            url.as_ptr(),
            SECRET.as_ptr(),
            SECRET.len(),
            &mut engine,
        )
    };
    assert_eq!(status, otp_status::OTP_OK, "{}", last_error());

    let mut code = [0u8; 16];
    assert_eq!(issue(engine, "alice", &mut code), otp_status::OTP_OK);
    server.kill();
    let unavailable = otp_status::OTP_BACKEND_UNAVAILABLE;
    let named = format!("redis at 127.0.0.1:{}", server.port());
    assert_eq!(verify(engine, "alice", &code), unavailable);
    assert!(last_error().starts_with(&named), "{}", last_error());
    let mut other = [0u8; 16];
    assert_eq!(issue(engine, "bob", &mut other), unavailable);
    // SAFETY: the key is valid for its length.
    unsafe {
        assert_eq!(otp_revoke(engine, b"alice".as_ptr(), 5), unavailable);
        assert_eq!(otp_unlock(engine, b"alice".as_ptr(), 5), unavailable);
    }
    let mut stats = otp_stats::default();
    // SAFETY: stats is valid for writes.
    assert_eq!(
        unsafe { otp_engine_stats(engine, &mut stats) },
        otp_status::OTP_OK
    );
    assert_eq!((stats.issued, stats.unavailable), (1, 4));

    server.restart();
    // Nothing was persisted: the code is gone, and the handle works again.
    assert_eq!(verify(engine, "alice", &code), otp_status::OTP_NOT_FOUND);
    assert_eq!(issue(engine, "alice", &mut code), otp_status::OTP_OK);
    assert_eq!(verify(engine, "alice", &code), otp_status::OTP_OK);
    // SAFETY: engine came from otp_engine_new_redis and is freed once.
    unsafe { otp_engine_free(engine) };
}
