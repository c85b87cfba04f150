//! Gives libotpengine.so the soname `libotpengine.so.<ABI version>`, the version
//! read from `src/abi.rs` (the one place it is written), so the dynamic loader
//! never pairs a program with a library of another ABI.

use std::fs;

fn main() {
    println!("cargo:rerun-if-changed=src/abi.rs");
    let source = fs::read_to_string("src/abi.rs").expect("reading src/abi.rs");
    let version: u32 = source
        .lines()
        .find_map(|line| line.strip_prefix("pub const OTPENGINE_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|n| n.parse().ok())
        .expect("src/abi.rs declares `pub const OTPENGINE_ABI_VERSION: u32 = <N>;`");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms; macOS would take -install_name, Windows has no soname.
    if !matches!(os.as_str(), "macos" | "ios" | "windows") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libotpengine.so.{version}");
    }
}
