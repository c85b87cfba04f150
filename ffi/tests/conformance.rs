//! tests/conformance.txt through the C ABI: each bad configuration is refused
//! with `OTP_INVALID_ARGUMENT` and a message naming the field as C spells it.
//! (The Go and Python suites read the same file.)

use std::ffi::{c_char, CString};

use otpengine::{
    otp_config, otp_config_default, otp_engine, otp_engine_new_redis_opts, otp_last_error,
    otp_status,
};

struct Case {
    name: String,
    settings: Vec<(String, String)>,
    c_field: String,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance.txt");
    std::fs::read_to_string(path)
        .expect("tests/conformance.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let settings = cols[1]
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            Case {
                name: cols[0].to_owned(),
                settings,
                c_field: cols[2].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_bad_configuration_names_its_field_as_c_spells_it() {
    let cases = cases();
    assert!(cases.len() >= 10, "the table is read");
    for case in cases {
        let mut config = std::mem::MaybeUninit::<otp_config>::zeroed();
        // SAFETY: valid for a write of an otp_config.
        unsafe { otp_config_default(config.as_mut_ptr()) };
        // SAFETY: otp_config_default wrote every field.
        let mut c = unsafe { config.assume_init() };
        let (mut url, mut secret) = (None, Vec::new());
        for (key, value) in &case.settings {
            let int = || value.parse::<u64>().expect("a number");
            match key.as_str() {
                "ttl_ms" => c.ttl_ms = int(),
                "code_length" => c.code_length = int() as u32,
                "max_attempts" => c.max_attempts = int() as u32,
                "shards" => c.shards = int() as u32,
                "lockout_ms" => c.lockout_ms = int(),
                "max_lockout_ms" => c.max_lockout_ms = int(),
                "redis_response_timeout_ms" => c.redis_response_timeout_ms = int(),
                "scope_name" => {
                    c.scope_limit_count = 1;
                    for (slot, b) in c.scope_limits[0].name.iter_mut().zip(value.bytes()) {
                        *slot = b as c_char;
                    }
                }
                "scope_max_issues" => c.scope_limits[0].max_issues = int() as u32,
                "scope_issue_window_ms" => c.scope_limits[0].issue_window_ms = int(),
                "redis_url" => url = Some(CString::new(value.as_str()).unwrap()),
                "secret" => secret = value.as_bytes().to_vec(),
                other => panic!("{}: a setting this test does not know: {other}", case.name),
            }
        }
        let mut engine: *mut otp_engine = std::ptr::null_mut();
        let secret_ptr = if secret.is_empty() {
            std::ptr::null()
        } else {
            secret.as_ptr()
        };
        // SAFETY: every pointer is valid or NULL as the header allows.
        let status = unsafe {
            otp_engine_new_redis_opts(
                &c,
                url.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
                secret_ptr,
                secret.len(),
                std::ptr::null(),
                &mut engine,
            )
        };
        assert_eq!(status, otp_status::OTP_INVALID_ARGUMENT, "{}", case.name);
        let mut buf = vec![0u8; 512];
        // SAFETY: buf is valid for its length.
        let n = unsafe { otp_last_error(buf.as_mut_ptr().cast(), buf.len()) };
        let message = String::from_utf8_lossy(&buf[..n.min(511)]).into_owned();
        assert!(
            message.starts_with(&format!("{} must", case.c_field)),
            "{}: {message}",
            case.name
        );
    }
}
