//! The ABI version: what a program built against one header may rely on in the
//! library it runs with.
//!
//! `libotpengine.so` carries it in its soname (`libotpengine.so.<N>`, set by
//! `ffi/build.rs` from the constant below), so a program linked against one
//! version is never loaded with a library of another: the dynamic loader looks
//! for the file of that exact name. `ffi/abi.lock` lists every public struct and
//! function signature of the current version; the header test fails when one
//! changes without a bump of [`OTPENGINE_ABI_VERSION`]. New functions and new
//! status values are additions, not changes: they keep the version.

/// The ABI major version of this header: bumped with every change of a public
/// struct's layout or a function's signature. The library's soname carries it
/// (`libotpengine.so.<N>`), and [`otp_abi_version`] returns the library's own.
///
/// - 1: the layout before scopes.
/// - 2: `otp_config` gained `scope_limits` and `scope_limit_count`, `otp_issued`
///   gained `scope`; `otp_issue` and `otp_verify` take a `const otp_engine *`.
/// - 3: `otp_stats` gained `not_found`, `capacity_exceeded`, `held` and
///   `replayed`; every call but `otp_engine_free` takes a `const otp_engine *`.
pub const OTPENGINE_ABI_VERSION: u32 = 3;

/// The ABI version the library was built with; a program linked statically (or
/// loading the library by hand) compares it with `OTPENGINE_ABI_VERSION` from
/// the header it was compiled against.
#[no_mangle]
pub extern "C" fn otp_abi_version() -> u32 {
    OTPENGINE_ABI_VERSION
}
