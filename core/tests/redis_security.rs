//! The connection's security against real servers (started by
//! `scripts/with-redis.sh`): TLS with a CA file and with client certificates,
//! passwords and ACL users in the URL or apart from it, and how each mistake
//! fails closed, naming its cause, within the timeout, and never showing a
//! password. The semantic suite runs over TLS and as the ACL user too
//! (semantics.rs, `redis_tls` and `redis_acl`).

#![cfg(feature = "redis")]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use otpengine_core::{Config, Engine, Error, Field, RedisOptions, Verdict};

const TIMEOUT: Duration = Duration::from_millis(500);

fn config() -> Config {
    Config {
        reaper_interval: None,
        ..Config::default()
    }
}

/// Options with short timeouts, so that a hang would show as a slow test.
fn quick(options: RedisOptions) -> RedisOptions {
    RedisOptions {
        connect_timeout: TIMEOUT,
        response_timeout: TIMEOUT,
        ..options
    }
}

/// Builds an engine that must fail closed: `Unavailable`, well within the
/// timeouts, with a reason that contains every one of `causes`; returns it.
fn refused(options: RedisOptions, causes: &[&str]) -> String {
    let start = Instant::now();
    let result = Engine::new_redis(config(), quick(options));
    let took = start.elapsed();
    let Err(Error::Unavailable { reason, .. }) = result else {
        panic!(
            "expected Unavailable, got {:?}",
            result.map(|_| "an engine")
        );
    };
    assert!(
        took < 4 * TIMEOUT,
        "failed closed only after {took:?}: {reason}"
    );
    for cause in causes {
        assert!(
            reason.to_lowercase().contains(cause),
            "{reason:?} does not name {cause:?}"
        );
    }
    reason
}

/// An engine that must work: one code issued and verified.
fn works(options: RedisOptions) {
    let engine = Engine::new_redis(config(), quick(options)).expect("an engine");
    let code = engine.issue("alice", "").unwrap().code;
    assert_eq!(
        engine.verify("alice", &code, "").unwrap(),
        Verdict::Verified
    );
}

fn have_servers() -> bool {
    [common::TLS, common::MTLS, common::AUTH]
        .iter()
        .all(|var| common::redis_url(var).is_some())
}

fn path(var: &str) -> Option<PathBuf> {
    Some(common::var(var).into())
}

#[test]
fn tls_with_the_ca_file_works_and_any_other_ca_fails_closed_naming_the_certificate() {
    if !have_servers() {
        return;
    }
    let tls = common::var(common::TLS);
    works(RedisOptions {
        ca_file: path(common::TLS_CA),
        ..common::options(&tls, "tls")
    });
    refused(
        RedisOptions {
            ca_file: path(common::TLS_OTHER_CA),
            ..common::options(&tls, "tls")
        },
        &["tls handshake", "certificate"],
    );
    // Without a CA file the system's roots are used, and they do not know the test CA.
    refused(
        common::options(&tls, "tls"),
        &["tls handshake", "certificate"],
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    if !have_servers() {
        return;
    }
    works(common::mtls_options("mtls"));
    let without = RedisOptions {
        client_cert: None,
        client_key: None,
        ..common::mtls_options("mtls")
    };
    refused(without, &["tls handshake", "certificate"]);
}

#[test]
fn a_plaintext_client_against_the_tls_port_fails_closed_in_time() {
    if !have_servers() {
        return;
    }
    let plain = common::var(common::TLS).replacen("rediss://", "redis://", 1);
    refused(common::options(&plain, "plain"), &["rediss://"]);
}

#[test]
fn passwords_in_the_url_or_apart_work_and_wrong_ones_fail_closed_naming_authentication() {
    if !have_servers() {
        return;
    }
    let url = common::var(common::AUTH);
    let password = common::var(common::AUTH_PASSWORD);
    let (user, user_password) = (
        common::var(common::ACL_USER),
        common::var(common::ACL_PASSWORD),
    );
    let with_userinfo =
        |userinfo: &str| url.replacen("redis://", &format!("redis://{userinfo}@"), 1);
    works(common::options(
        &with_userinfo(&format!(":{password}")),
        "auth",
    ));
    works(common::options(
        &with_userinfo(&format!("{user}:{user_password}")),
        "auth",
    ));
    works(RedisOptions {
        password: Some(password.clone().into()),
        ..common::options(&url, "auth")
    });
    works(common::acl_options("acl"));

    let reason = refused(common::options(&url, "auth"), &["authentication"]);
    assert!(!reason.contains(&password));
    let wrong = "wrong-password-hunter2";
    for options in [
        common::options(&with_userinfo(&format!(":{wrong}")), "auth"),
        common::options(&with_userinfo(&format!("{user}:{wrong}")), "auth"),
        RedisOptions {
            username: Some(user.clone()),
            password: Some(wrong.to_string().into()),
            ..common::options(&url, "auth")
        },
    ] {
        let debug = format!("{options:?}");
        assert!(!debug.contains(wrong), "Debug shows the password: {debug}");
        let reason = refused(options, &["authentication"]);
        assert!(
            !reason.contains(wrong),
            "the error shows the password: {reason}"
        );
    }
}

#[test]
fn tls_files_are_checked_before_anything_is_opened() {
    if !have_servers() {
        return;
    }
    let invalid = |options: RedisOptions| match Engine::new_redis(config(), options) {
        Err(Error::InvalidInput(e)) => (e.field, e.to_string()),
        other => panic!(
            "expected InvalidInput, got {:?}",
            other.map(|_| "an engine")
        ),
    };
    let (field, message) = invalid(RedisOptions {
        ca_file: path(common::TLS_CA),
        ..common::options(&common::var(common::STANDALONE), "plain")
    });
    assert_eq!(field, Field::RedisCaFile);
    assert!(message.contains("rediss://"), "{message}");
    let (field, message) = invalid(RedisOptions {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..common::options(&common::var(common::TLS), "tls")
    });
    assert_eq!(field, Field::RedisCaFile);
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    let (field, _) = invalid(RedisOptions {
        client_key: None,
        ..common::mtls_options("mtls")
    });
    assert_eq!(field, Field::RedisClientKey);
    let (field, message) = invalid(common::options(
        &format!("{}#insecure", common::var(common::TLS)),
        "tls",
    ));
    assert_eq!(field, Field::RedisUrl);
    assert!(message.contains("cannot be turned off"), "{message}");
}
