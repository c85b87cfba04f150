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

/// The header's declarations, one normalised line each (comments and
/// preprocessor lines dropped, whitespace collapsed), by name: every struct,
/// enum and function a program compiles against.
fn declarations(header: &str) -> std::collections::BTreeMap<String, String> {
    let code: String = header
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    // Drop the block comments (the header's preamble, the macro notes).
    let mut plain = String::new();
    let mut rest = code.as_str();
    while let Some(start) = rest.find("/*") {
        plain.push_str(&rest[..start]);
        rest = rest[start..]
            .split_once("*/")
            .map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    // The C++ guard's `extern "C" {` and its `}` enclose the functions.
    let plain = plain.replace("extern \"C\" {", "");
    let mut items = std::collections::BTreeMap::new();
    // The constants (`#define NAME value`), but for the guard and the versions,
    // which change by design.
    for line in header.lines() {
        let Some(rest) = line.strip_prefix("#define ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(' ') else {
            continue;
        };
        if !matches!(name, "OTPENGINE_VERSION" | "OTPENGINE_ABI_VERSION") {
            items.insert(name.to_owned(), format!("#define {name} {}", value.trim()));
        }
    }
    let (mut depth, mut statement) = (0, String::new());
    for c in plain.chars() {
        statement.push(c);
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => statement.clear(), // the C++ guard's end
            '}' => depth -= 1,
            ';' if depth == 0 => {
                let line = statement.split_whitespace().collect::<Vec<_>>().join(" ");
                statement.clear();
                let name = if let Some(values) = line.strip_prefix("enum { ") {
                    // An anonymous enum of constants: named by its first.
                    values
                        .split([' ', '='])
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                } else if line.starts_with("typedef") {
                    line.trim_end_matches(';')
                        .rsplit(' ')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    let before_paren = line.split('(').next().unwrap_or_default();
                    before_paren
                        .rsplit([' ', '*'])
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                };
                items.insert(name, line);
            }
            _ => {}
        }
    }
    items
}

/// Whether a locked declaration still holds: the same text, or for an enum,
/// every value it had still there with its number (new values are additions).
fn still_holds(locked: &str, now: Option<&String>) -> bool {
    let Some(now) = now else { return false };
    if locked == now {
        return true;
    }
    let values = |decl: &str| -> Vec<String> {
        let body = decl.split_once('{').map_or("", |(_, b)| b);
        let body = body.split('}').next().unwrap_or_default();
        body.split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let is_enum = |decl: &str| decl.starts_with("typedef enum") || decl.starts_with("enum {");
    is_enum(locked) && is_enum(now) && values(locked).iter().all(|v| values(now).contains(v))
}

fn abi_lock_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("abi.lock")
}

/// `ffi/abi.lock` holds the ABI version and the declarations it promises. A
/// declaration that changed or went away needs a bump of OTPENGINE_ABI_VERSION
/// (ffi/src/abi.rs), which also renames the soname; an added one does not.
/// `make header` adds new declarations to the lock, and rewrites it after a bump.
#[test]
fn a_changed_struct_or_signature_bumps_the_abi_version() {
    let version = otpengine::OTPENGINE_ABI_VERSION;
    let header = generate();
    assert!(
        header.contains(&format!("#define OTPENGINE_ABI_VERSION {version}\n")),
        "the header declares OTPENGINE_ABI_VERSION {version}"
    );
    let now = declarations(&header);
    assert!(now.contains_key("otp_config") && now.contains_key("otp_issue"));
    let lock = std::fs::read_to_string(abi_lock_path()).unwrap_or_default();
    let mut lines = lock.lines().filter(|l| !l.starts_with('#'));
    let locked_version: Option<u32> = lines
        .next()
        .and_then(|l| l.strip_prefix("abi "))
        .and_then(|n| n.parse().ok());
    let locked: std::collections::BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(name, decl)| (name.to_owned(), decl.to_owned()))
        .collect();
    let changed: Vec<&String> = match locked_version {
        Some(v) if v == version => locked
            .iter()
            .filter(|(name, decl)| !still_holds(decl, now.get(*name)))
            .map(|(name, _)| name)
            .collect(),
        _ => Vec::new(),
    };
    assert!(
        changed.is_empty(),
        "{changed:?} changed or went away under ABI version {version}: a program built against \
         the old header would misread them. Bump OTPENGINE_ABI_VERSION in ffi/src/abi.rs, then run \
         `make header`"
    );
    let mut fresh = format!(
        "# The C ABI's declarations under its version (ffi/src/abi.rs); checked by ffi/tests/header.rs,\n\
         # written by `make header`. A line that changes needs a new version.\nabi {version}\n"
    );
    for (name, decl) in &now {
        fresh.push_str(&format!("{name}: {decl}\n"));
    }
    if std::env::var_os("OTPENGINE_WRITE_HEADER").is_some() {
        std::fs::write(abi_lock_path(), &fresh).expect("writing ffi/abi.lock");
        return;
    }
    assert!(
        lock == fresh,
        "ffi/abi.lock lacks new declarations or an ABI bump: run `make header` and commit it"
    );
}

/// `otp_stats` holds exactly core's fixed counters and gauges
/// (`Stats::fields`), each under core's name: one list, so a counter core
/// adds cannot be missed here.
#[test]
fn otp_stats_has_every_fixed_counter_of_core() {
    let decls = declarations(&generate());
    let stats = &decls["otp_stats"];
    let body = stats.split_once('{').map_or("", |(_, b)| b);
    let body = body.split('}').next().unwrap_or_default();
    let mut fields: Vec<&str> = body
        .split(';')
        .filter_map(|f| f.split_whitespace().last())
        .collect();
    let mut core: Vec<&str> = otpengine_core::Stats::default()
        .fields()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    fields.sort_unstable();
    core.sort_unstable();
    assert_eq!(fields, core, "otp_stats and core's Stats::fields differ");
}
