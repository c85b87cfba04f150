//! include/otpengine.h is what cbindgen makes of ffi/src/lib.rs today, and its
//! version macro matches Cargo.toml. `make header` rewrites it.

use std::path::PathBuf;

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

fn header_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/otpengine.h")
}

#[test]
fn the_committed_header_is_fresh() {
    let fresh = generate();
    if std::env::var_os("OTPENGINE_WRITE_HEADER").is_some() {
        std::fs::write(header_path(), &fresh).expect("writing include/otpengine.h");
        return;
    }
    let committed = std::fs::read_to_string(header_path()).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/otpengine.h is stale: run `make header` and commit it"
    );
}

#[test]
fn the_header_version_is_the_crate_version() {
    let expected = format!(
        "#define OTPENGINE_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        generate().contains(&expected),
        "update OTPENGINE_VERSION in ffi/cbindgen.toml"
    );
}
