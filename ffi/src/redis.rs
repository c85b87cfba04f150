//! Engines over Redis: `otp_engine_new_redis`, and `otp_engine_new_redis_opts`
//! with the options a managed Redis needs (TLS files, credentials apart from
//! the URL, the key namespace), as `otpengine_core::RedisOptions` has them.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use otpengine_core::digest::check_secret_length;
use otpengine_core::{Engine, StoreOptions, Zeroizing};

use crate::{
    bytes, guard, otp_config, otp_engine, otp_status, out, store_timeouts, to_config, Failure,
};

/// What `otp_engine_new_redis_opts` takes besides the URL and secret. Fill it
/// with `otp_redis_options_default` (every field NULL: not given), then set
/// what you need. Strings are NUL-terminated UTF-8 and are copied: they need
/// to live only during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct otp_redis_options {
    /// Prefix of every Redis key the engine writes (1..=64 printable ASCII
    /// characters without `{`, `}` or spaces); NULL: `otpengine`.
    pub key_namespace: *const c_char,
    /// PEM file of the CA that signs the server's certificate (a `rediss://`
    /// URL only); NULL: the system's roots.
    pub ca_file: *const c_char,
    /// PEM files of a client certificate and its key, for servers that require
    /// mutual TLS; both or neither.
    pub client_cert: *const c_char,
    /// The key of `client_cert`.
    pub client_key: *const c_char,
    /// ACL user; overrides the URL's. NULL: the URL's, if any.
    pub username: *const c_char,
    /// Password; overrides the URL's; never shown in an error. NULL: the URL's,
    /// if any.
    pub password: *const c_char,
    /// Non-zero: start even on a server whose `maxmemory-policy` evicts keys
    /// (an evicted key is a lost lockout or replay guard). 0 (default): such a
    /// server is refused with `OTP_INVALID_ARGUMENT` naming `accept_eviction`.
    pub accept_eviction: u32,
    /// Non-zero: keep the store's key indexes, so that `live` in `otp_stats`
    /// counts and a standalone server enforces `capacity` (they cost more
    /// than half of each key's memory). 0 (default): `live` reads 0 and
    /// `maxmemory` bounds the store.
    pub exact_counts: u32,
}

/// Fills `options` with every field NULL: nothing beyond the URL. NULL: does
/// nothing.
///
/// # Safety
/// `options` is NULL or valid for writes of an `otp_redis_options`.
#[no_mangle]
pub unsafe extern "C" fn otp_redis_options_default(options: *mut otp_redis_options) {
    guard(|| {
        // SAFETY: forwarded from the caller.
        if let Some(options) = unsafe { options.as_mut() } {
            *options = otp_redis_options {
                key_namespace: std::ptr::null(),
                ca_file: std::ptr::null(),
                client_cert: std::ptr::null(),
                client_key: std::ptr::null(),
                username: std::ptr::null(),
                password: std::ptr::null(),
                accept_eviction: 0,
                exact_counts: 0,
            };
        }
        Ok(otp_status::OTP_OK)
    });
}

/// Builds an engine whose state lives in Redis, shared with every engine built
/// over the same server with the same secret (the instances of one service),
/// and stores its handle in `*engine_out`. Every other call is the same as for
/// an engine from `otp_engine_new`. The same as `otp_engine_new_redis_opts`
/// with NULL options.
///
/// `url` (NUL-terminated) is `redis://[user:password@]host:port[/db]`,
/// `rediss://...` over TLS, `redis+unix:///path`, or a cluster as
/// `redis+cluster://host:port,host:port,...` (`rediss+cluster://` over TLS).
/// `secret` is `secret_len` bytes, 16..=1024, the same on every instance: key
/// ids and code digests are keyed with it. Of `config`, `capacity` holds on a
/// standalone server only, `shards` is unused, and the `redis_*_timeout_ms`
/// fields apply.
///
/// Returns `OTP_OK`; `OTP_INVALID_ARGUMENT` for a NULL pointer, a bad URL or
/// secret, or a value out of bounds (`otp_last_error` names it); or
/// `OTP_BACKEND_UNAVAILABLE` when Redis cannot be reached now (`otp_last_error`
/// names the server and why: unreachable, TLS handshake, authentication). On
/// failure `*engine_out` is untouched.
///
/// # Safety
/// `config` is NULL or a valid `otp_config`; `url` is NULL or a NUL-terminated
/// string; `secret` is NULL or valid for `secret_len` bytes; `engine_out` is
/// NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn otp_engine_new_redis(
    config: *const otp_config,
    url: *const c_char,
    secret: *const u8,
    secret_len: usize,
    engine_out: *mut *mut otp_engine,
) -> otp_status {
    // SAFETY: forwarded from the caller; NULL options are allowed.
    unsafe {
        otp_engine_new_redis_opts(
            config,
            url,
            secret,
            secret_len,
            std::ptr::null(),
            engine_out,
        )
    }
}

/// `otp_engine_new_redis` with `options` (NULL: none): the TLS files, the user
/// and password apart from the URL, the key namespace. With `url` NULL it
/// builds an in-memory engine, keyed by `secret` if one is given (NULL with
/// length 0: none); a Redis option or timeout set without a URL is then
/// `OTP_INVALID_ARGUMENT` naming it. Which settings go together is the
/// engine's rule (`Engine::build`), the same in every language. A file that cannot be
/// read, or TLS files with a plain URL, is `OTP_INVALID_ARGUMENT` naming the
/// field; a certificate the server or client refuses, or a wrong password, is
/// `OTP_BACKEND_UNAVAILABLE` naming the cause.
///
/// # Safety
/// As `otp_engine_new_redis`; `options` is NULL or a valid `otp_redis_options`
/// whose strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn otp_engine_new_redis_opts(
    config: *const otp_config,
    url: *const c_char,
    secret: *const u8,
    secret_len: usize,
    options: *const otp_redis_options,
    engine_out: *mut *mut otp_engine,
) -> otp_status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let config = unsafe { config.as_ref() }
            .ok_or_else(|| Failure::invalid("config must not be NULL"))?;
        // SAFETY: forwarded from the caller.
        let url = unsafe { text(url, "url") }?;
        // SAFETY: forwarded from the caller.
        let secret = unsafe { bytes(secret, secret_len, "secret", true, check_secret_length) }?;
        // SAFETY: forwarded from the caller.
        let engine_out = unsafe { out(engine_out, "engine_out") }?;
        let mut store = StoreOptions {
            redis_url: url.map(str::to_string),
            secret: (!secret.is_empty()).then(|| Zeroizing::new(secret.to_vec())),
            ..store_timeouts(config)
        };
        // SAFETY: forwarded from the caller.
        if let Some(options) = unsafe { options.as_ref() } {
            // SAFETY (each): the caller's promise that every string is NULL or
            // NUL-terminated.
            let path = |ptr, name| unsafe { text(ptr, name) }.map(|t| t.map(PathBuf::from));
            store.namespace =
                unsafe { text(options.key_namespace, "key_namespace") }?.map(str::to_string);
            store.ca_file = path(options.ca_file, "ca_file")?;
            store.client_cert = path(options.client_cert, "client_cert")?;
            store.client_key = path(options.client_key, "client_key")?;
            store.username = unsafe { text(options.username, "username") }?.map(str::to_string);
            store.password = unsafe { text(options.password, "password") }?
                .map(|p| Zeroizing::new(p.to_string()));
            store.accept_eviction = options.accept_eviction != 0;
            store.exact_counts = options.exact_counts != 0;
        }
        let engine = Engine::build(to_config(config)?, store)?;
        *engine_out = Box::into_raw(Box::new(otp_engine { engine }));
        Ok(otp_status::OTP_OK)
    })
}

/// An optional NUL-terminated UTF-8 string: `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or NUL-terminated.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's promise).
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{name} must be UTF-8")))?;
    Ok(Some(text))
}
