//! The Redis backend beyond the semantic suite (which runs on it as well, see
//! semantics.rs): several instances over one store, failure and recovery,
//! timeouts, the clock, and what Redis holds. Against real servers started by
//! `scripts/with-redis.sh`; skipped loudly without them.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ::redis::{Commands, Connection};
use otpengine_core::{
    Clock, Config, Engine, Error, Field, ManualClock, RedisOptions, Secret, Verdict,
};

use common::{OwnServer, CLUSTER, STANDALONE};

const S: Duration = Duration::from_secs(1);

fn no_limits(c: &mut Config) {
    c.resend_cooldown = Duration::ZERO;
    c.max_issues_per_window = 0;
    c.max_failures_per_key = 0;
}

fn config(clock: &ManualClock, tune: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config {
        clock: Clock::manual(clock),
        reaper_interval: None,
        ..Config::default()
    };
    tune(&mut c);
    c
}

/// Two engines over one store, as two instances of a service would be: same
/// server, namespace and secret, one clock.
fn two_instances(url: &str, tune: fn(&mut Config)) -> (Engine, Engine, ManualClock) {
    let clock = ManualClock::new();
    let options = common::options(url, "pair");
    let a = Engine::new_redis(config(&clock, tune), options.clone()).unwrap();
    let b = Engine::new_redis(config(&clock, tune), options).unwrap();
    (a, b, clock)
}

fn wrong(code: &str) -> String {
    code.bytes()
        .map(|b| if b == b'9' { '0' } else { (b + 1) as char })
        .collect()
}

fn connection(url: &str) -> Connection {
    ::redis::Client::open(url)
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Runs `test` against the standalone server and the cluster.
fn on_both(test: impl Fn(&str)) {
    for var in [STANDALONE, CLUSTER] {
        if let Some(url) = common::redis_url(var) {
            test(&url);
        }
    }
}

#[test]
fn a_code_issued_by_one_instance_verifies_once_on_the_other() {
    on_both(|url| {
        let (a, b, _) = two_instances(url, no_limits);
        let code = a.issue("alice", "EUR 10").unwrap().code;
        assert_eq!(
            b.verify("alice", &code, "EUR 10").unwrap(),
            Verdict::Verified
        );
        assert_eq!(
            a.verify("alice", &code, "EUR 10").unwrap(),
            Verdict::NotFound
        );
        // Revoke on one, seen by the other.
        let code = b.issue("bob", "").unwrap().code;
        assert!(a.revoke("bob").unwrap());
        assert_eq!(b.verify("bob", &code, "").unwrap(), Verdict::NotFound);
    });
}

#[test]
fn attempts_and_limits_are_counted_across_instances() {
    on_both(|url| {
        let (a, b, clock) = two_instances(url, |c| {
            c.max_failures_per_key = 6;
            c.lockout = 60 * S;
        });
        let code = a.issue("alice", "").unwrap().code;
        let guesses = [&a, &b, &a, &b];
        for (left, engine) in (1..=4).rev().zip(guesses) {
            assert_eq!(
                engine.verify("alice", wrong(&code), "").unwrap(),
                Verdict::Mismatch {
                    attempts_left: left
                }
            );
        }
        assert_eq!(
            b.verify("alice", wrong(&code), "").unwrap(),
            Verdict::Locked {
                retry_after: Duration::ZERO
            },
            "the fifth wrong guess burns the code, whichever instance hears it"
        );
        assert!(matches!(
            a.verify("alice", &code, "").unwrap(),
            Verdict::Locked { .. }
        ));
        // The cooldown set by a's issue holds on b.
        assert!(matches!(
            b.issue("alice", ""),
            Err(Error::RateLimited { retry_after, .. }) if retry_after == 30 * S
        ));
        clock.advance(30 * S);
        let code = b.issue("alice", "").unwrap().code;
        // Five failures spent of six: the next wrong guess, anywhere, locks the key.
        assert_eq!(
            a.verify("alice", wrong(&code), "").unwrap(),
            Verdict::Locked {
                retry_after: 60 * S
            }
        );
        assert!(matches!(b.issue("alice", ""), Err(Error::Locked { .. })));
        assert!(b.unlock("alice").unwrap());
        assert!(!a.unlock("alice").unwrap());
    });
}

#[test]
fn concurrent_verifies_from_both_instances_get_exactly_one_success() {
    on_both(|url| {
        let (a, b, _) = two_instances(url, no_limits);
        let engines = [Arc::new(a), Arc::new(b)];
        for round in 0..20 {
            let key = format!("user-{round}");
            let code = engines[round % 2].issue(&key, "").unwrap().code.to_string();
            let barrier = Arc::new(Barrier::new(8));
            let verdicts: Vec<Verdict> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let engine = Arc::clone(&engines[t % 2]);
                        let (barrier, key, code) = (Arc::clone(&barrier), &key, &code);
                        s.spawn(move || {
                            barrier.wait();
                            engine.verify(key, code, "").unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let verified = verdicts.iter().filter(|v| v.is_verified()).count();
            assert_eq!(verified, 1, "round {round}: {verdicts:?}");
            assert!(verdicts
                .iter()
                .all(|v| v.is_verified() || *v == Verdict::NotFound));
        }
    });
}

/// A TOTP code verified on one instance is a replay on the other, and racing
/// verifies from both get exactly one `Verified`.
#[test]
fn a_totp_code_verifies_once_across_instances() {
    use otpengine_core::totp::{self, TotpParams};
    on_both(|url| {
        let (a, b, _) = two_instances(url, |c| c.max_failures_per_key = 100);
        let secret = b"12345678901234567890";
        let p = TotpParams::default();
        let at = |t: u64| Some(std::time::UNIX_EPOCH + Duration::from_secs(t));
        let code = totp::totp(secret, 1_700_000_000, &p).unwrap();
        let first = a.verify_totp("alice", secret, code.as_str(), &p, at(1_700_000_000));
        assert_eq!(first, Ok(Verdict::Verified));
        let again = b.verify_totp("alice", secret, code.as_str(), &p, at(1_700_000_001));
        assert_eq!(again, Ok(Verdict::Replayed));
        let engines = [Arc::new(a), Arc::new(b)];
        for round in 1..=20u64 {
            let t = 1_700_000_000 + round * 30;
            let code = totp::totp(secret, t, &p).unwrap().to_string();
            let barrier = Arc::new(Barrier::new(8));
            let verdicts: Vec<Verdict> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let engine = Arc::clone(&engines[i % 2]);
                        let (barrier, code) = (Arc::clone(&barrier), &code);
                        s.spawn(move || {
                            barrier.wait();
                            engine
                                .verify_totp("alice", secret, code, &p, at(t))
                                .unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let verified = verdicts.iter().filter(|v| v.is_verified()).count();
            assert_eq!(verified, 1, "round {round}: {verdicts:?}");
            assert!(verdicts
                .iter()
                .all(|v| v.is_verified() || *v == Verdict::Replayed));
        }
    });
}

#[test]
fn concurrent_wrong_guesses_each_spend_exactly_one_attempt() {
    on_both(|url| {
        let (a, b, _) = two_instances(url, no_limits);
        let engines = [Arc::new(a), Arc::new(b)];
        let code = engines[0].issue("alice", "").unwrap().code.to_string();
        let barrier = Arc::new(Barrier::new(10));
        let verdicts: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..10)
                .map(|t| {
                    let engine = Arc::clone(&engines[t % 2]);
                    let (barrier, guess) = (Arc::clone(&barrier), wrong(&code));
                    s.spawn(move || {
                        barrier.wait();
                        engine.verify("alice", &guess, "").unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let left: HashSet<u32> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Mismatch { attempts_left } => Some(*attempts_left),
                _ => None,
            })
            .collect();
        assert_eq!(left, HashSet::from([4, 3, 2, 1]), "{verdicts:?}");
        let locked = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Locked { .. }))
            .count();
        assert_eq!(
            locked, 6,
            "one burns the code, five find it burned: {verdicts:?}"
        );
    });
}

#[test]
fn instances_with_another_secret_or_namespace_share_nothing() {
    on_both(|url| {
        let clock = ManualClock::new();
        let options = common::options(url, "secret");
        let a = Engine::new_redis(config(&clock, no_limits), options.clone()).unwrap();
        let other_secret = Engine::new_redis(
            config(&clock, no_limits),
            RedisOptions {
                secret: Secret::new(b"another secret of 32 bytes......").unwrap(),
                ..options.clone()
            },
        )
        .unwrap();
        let other_namespace = Engine::new_redis(
            config(&clock, no_limits),
            RedisOptions {
                namespace: common::unique_namespace("other"),
                ..options
            },
        )
        .unwrap();
        let code = a.issue("alice", "").unwrap().code;
        assert_eq!(
            other_secret.verify("alice", &code, "").unwrap(),
            Verdict::NotFound
        );
        assert_eq!(
            other_namespace.verify("alice", &code, "").unwrap(),
            Verdict::NotFound
        );
        assert_eq!(a.verify("alice", &code, "").unwrap(), Verdict::Verified);
    });
}

#[test]
fn capacity_is_held_for_the_whole_store_on_a_standalone_server() {
    let Some(url) = common::redis_url(STANDALONE) else {
        return;
    };
    let (a, b, _) = two_instances(&url, |c| {
        no_limits(c);
        c.capacity = 2;
    });
    a.issue("a", "").unwrap();
    b.issue("b", "").unwrap();
    assert!(matches!(
        a.issue("c", ""),
        Err(Error::CapacityExceeded {
            capacity: 2,
            out_of_memory: None,
            ..
        })
    ));
    assert_eq!(b.stats().held, 2);
    assert_eq!(a.stats().capacity_exceeded, 1);
    assert_eq!(b.stats().capacity_exceeded, 0, "counters are per instance");
}

#[test]
fn redis_holds_digests_under_hash_tags_never_keys_codes_or_contexts() {
    on_both(|url| {
        let clock = ManualClock::new();
        let options = common::options(url, "layout");
        let namespace = options.namespace.clone();
        let engine = Engine::new_redis(config(&clock, |_| {}), options).unwrap();
        let (key, context) = ("+15551234567/login", "EUR 250.00 to DE89 3704");
        let code = engine.issue(key, context).unwrap().code.to_string();

        let seeds: Vec<String> = match url.strip_prefix("redis+cluster://") {
            Some(hosts) => hosts.split(',').map(|h| format!("redis://{h}")).collect(),
            None => vec![url.to_string()],
        };
        let mut stored = Vec::new();
        let mut state_raw = Vec::new();
        for seed in &seeds {
            let mut con = connection(seed);
            let names: Vec<Vec<u8>> = con.keys(format!("{namespace}:*")).unwrap();
            for name in names {
                let kind: String = ::redis::cmd("TYPE").arg(&name).query(&mut con).unwrap();
                let values: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => {
                        state_raw = con.get(&name).unwrap();
                        vec![state_raw.clone()]
                    }
                    "zset" => con.zrange(&name, 0, -1).unwrap(),
                    other => panic!("unexpected {other} at {name:?}"),
                };
                stored.push((name, kind, values));
            }
        }
        assert_eq!(
            stored.len(),
            3,
            "the key's state and its two indexes: {stored:?}"
        );
        for (name, _, values) in &stored {
            for bytes in std::iter::once(name).chain(values) {
                let text = String::from_utf8_lossy(bytes);
                for secret in [key, context, code.as_str(), "15551234567"] {
                    assert!(!text.contains(secret), "{secret:?} in {name:?}: {text:?}");
                }
            }
        }
        let (state, _, _) = stored.iter().find(|(_, kind, _)| kind == "string").unwrap();
        // The name: the namespace, then the 128-bit key id (binary) as the tag.
        let prefix = format!("{namespace}:{{");
        assert!(state.starts_with(prefix.as_bytes()) && state.ends_with(b"}"));
        assert_eq!(state.len(), prefix.len() + 16 + 1, "{state:?}");
        let key_id = &state[prefix.len()..state.len() - 1];
        // Both indexes hold the key id, nothing else.
        for (name, kind, values) in &stored {
            if kind == "zset" {
                assert_eq!(values, &vec![key_id.to_vec()], "{name:?}");
            }
        }
        // One code: a 20-byte header and a 19-byte record, with the 8-byte
        // digest in it; small enough (44 at most) for Redis's embedded strings.
        assert_eq!(state_raw.len(), 39);
        let (digest, _) = newest_code(&state_raw);
        assert_ne!(digest, [0; 8], "the code's 64-bit digest");
        // The rules run as a function library (the server allows functions),
        // named for its code's hash; one of each version, on every primary.
        for seed in &seeds {
            let libraries: Vec<::redis::Value> = ::redis::cmd("FUNCTION")
                .arg("LIST")
                .arg("LIBRARYNAME")
                .arg("otpengine_*")
                .query(&mut connection(seed))
                .unwrap();
            assert!(!libraries.is_empty(), "the library on {seed}");
        }
        if seeds.len() > 1 {
            // On a cluster the indexes sit in the key's slot.
            let mut con = connection(&seeds[0]);
            let mut slot = |name: &[u8]| -> u16 {
                ::redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(name)
                    .query(&mut con)
                    .unwrap()
            };
            let want = slot(state);
            for (name, _, _) in &stored {
                assert_eq!(slot(name), want, "{name:?} and {state:?}");
            }
        }
    });
}

#[test]
fn the_system_clock_is_redis_time_and_redis_expires_what_is_forgotten() {
    on_both(|url| {
        let options = common::options(url, "clock");
        let namespace = options.namespace.clone();
        let engine = Engine::new_redis(
            Config {
                ttl: 2 * S,
                resend_cooldown: Duration::ZERO,
                max_issues_per_window: 0,
                reaper_interval: None,
                ..Config::default()
            },
            options,
        )
        .unwrap();
        // The engine's own monotonic clock started at zero just now; what it
        // stores is Redis's Unix time in milliseconds.
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        engine.issue("alice", "").unwrap();
        let (state, mut con) = find_state(url, &engine, &namespace);
        let raw: Vec<u8> = con.get(&state).unwrap();
        let (_, expires_at) = newest_code(&raw);
        assert!(
            (expires_at - (before + 2000)).abs() < 5_000,
            "expiry {expires_at} is Redis time + ttl (now {before})"
        );
        // Forgotten one ttl after the expiry: that is when Redis drops the key.
        let pttl: i64 = con.pttl(&state).unwrap();
        assert!((3_000..=4_000).contains(&pttl), "PTTL {pttl}");
    });
}

/// The newest code's digest and expiry in a key's stored state (the layout of
/// `load` in common.lua: a 20-byte header, then per code an 8-byte digest, a
/// 6-byte big-endian expiry, a ttl and a state).
fn newest_code(raw: &[u8]) -> ([u8; 8], i64) {
    assert_eq!(raw[0], 2, "layout version 2");
    let digest = raw[20..28].try_into().unwrap();
    let mut expires_at = [0; 8];
    expires_at[2..].copy_from_slice(&raw[28..34]);
    (digest, i64::from_be_bytes(expires_at))
}

/// The Redis key of the single key an engine has touched in `namespace`, and a
/// connection to the node that holds it.
fn find_state(url: &str, engine: &Engine, namespace: &str) -> (Vec<u8>, Connection) {
    let server = engine.redis_server().unwrap().to_string();
    let seeds: Vec<String> = match url.strip_prefix("redis+cluster://") {
        Some(_) => server.split(',').map(|h| format!("redis://{h}")).collect(),
        None => vec![url.to_string()],
    };
    for seed in seeds {
        let mut con = connection(&seed);
        let names: Vec<Vec<u8>> = con.keys(format!("{namespace}:{{*}}")).unwrap();
        if let Some(name) = names.into_iter().next() {
            return (name, con);
        }
    }
    panic!("no state found")
}

#[test]
fn an_unreachable_server_is_unavailable_and_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // free, and nobody listens once the listener is dropped
    let options = RedisOptions {
        connect_timeout: Duration::from_millis(200),
        ..RedisOptions::new(format!("redis://127.0.0.1:{port}/0"), common::secret())
    };
    let err = Engine::new_redis(Config::default(), options).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        message.starts_with(&format!("redis at 127.0.0.1:{port} unreachable: ")),
        "{message}"
    );
}

#[test]
fn a_server_that_evicts_keys_is_refused_unless_accepted() {
    let Some(server) = common::OwnServer::start() else {
        return;
    };
    let url = server.url();
    let _: () = ::redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "allkeys-lru"])
        .query(&mut connection(&url))
        .unwrap();
    match Engine::new_redis(Config::default(), common::options(&url, "evict")) {
        Err(Error::InvalidInput(e)) => {
            assert_eq!(e.field, Field::RedisAcceptEviction);
            let message = e.to_string();
            assert!(
                message.contains("allkeys-lru") && message.contains("lost lockout"),
                "{message}"
            );
        }
        other => panic!(
            "expected InvalidInput, got {:?}",
            other.map(|_| "an engine")
        ),
    }
    let accepted = RedisOptions {
        accept_eviction: true,
        ..common::options(&url, "evict")
    };
    let engine = Engine::new_redis(Config::default(), accepted).expect("accepted");
    assert!(engine.issue("alice", "").is_ok());
    let _: () = ::redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query(&mut connection(&url))
        .unwrap();
    assert!(Engine::new_redis(Config::default(), common::options(&url, "evict")).is_ok());
}

#[test]
fn a_pipelined_batch_reloads_scripts_a_server_lost_and_answers_in_order() {
    let Some(server) = common::OwnServer::start() else {
        return;
    };
    let engine = common::engine(&server.url(), config(&ManualClock::new(), no_limits));
    // As after a restart without persistence: no function, no script.
    for what in ["FUNCTION", "SCRIPT"] {
        let _: () = ::redis::cmd(what)
            .arg("FLUSH")
            .query(&mut connection(&server.url()))
            .unwrap();
    }
    // The same key twice: the second issue replaces the first code, as in turn.
    let issued = engine.issue_many(["a", "b", "a"], "");
    let codes: Vec<String> = issued
        .iter()
        .map(|i| i.as_ref().expect("issued").code.to_string())
        .collect();
    let answers = engine.verify_many([
        ("a", codes[0].as_str(), ""),
        ("a", codes[2].as_str(), ""),
        ("b", codes[1].as_str(), ""),
        ("b", codes[1].as_str(), ""),
    ]);
    let answers: Vec<Verdict> = answers.into_iter().map(Result::unwrap).collect();
    let replaced = if codes[0] == codes[2] {
        Verdict::Verified
    } else {
        Verdict::Mismatch { attempts_left: 4 }
    };
    assert_eq!(answers[0], replaced);
    assert_eq!(
        answers[1],
        if codes[0] == codes[2] {
            Verdict::NotFound
        } else {
            Verdict::Verified
        }
    );
    assert_eq!(answers[2..], [Verdict::Verified, Verdict::NotFound]);
    assert_eq!(engine.stats().unavailable, 0);
}

#[test]
fn ping_says_whether_the_store_answers_now() {
    on_both(|url| {
        let engine = common::engine(url, Config::default());
        assert!(engine.ping().is_ok());
        assert_eq!(engine.stats().unavailable, 0, "a ping counts nowhere");
    });
    assert!(
        Engine::new(Config::default()).unwrap().ping().is_ok(),
        "in memory"
    );
    let Some(mut server) = common::OwnServer::start() else {
        return;
    };
    let engine = Engine::new_redis(
        Config::default(),
        RedisOptions {
            connect_timeout: Duration::from_millis(200),
            response_timeout: Duration::from_millis(200),
            ..common::options(&server.url(), "ping")
        },
    )
    .unwrap();
    server.kill();
    let err = engine.ping().unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    server.restart();
    assert!(engine.ping().is_ok(), "used again once back");
}

#[test]
fn bad_options_are_named() {
    let field = |config: Config, options: RedisOptions| match Engine::new_redis(config, options) {
        Err(Error::InvalidInput(e)) => (e.field, e.to_string()),
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let options = || RedisOptions::new("redis://127.0.0.1:1/0", common::secret());
    let (f, m) = field(
        Config::default(),
        RedisOptions {
            url: "http://user:pw@example.com".into(),
            ..options()
        },
    );
    assert_eq!(f, Field::RedisUrl);
    assert!(
        m.starts_with("redis_url must be a redis://") && !m.contains("pw@"),
        "{m}"
    );
    let (f, m) = field(
        Config::default(),
        RedisOptions {
            namespace: "a{b}".into(),
            ..options()
        },
    );
    assert_eq!(f, Field::RedisNamespace, "{m}");
    let (f, m) = field(
        Config::default(),
        RedisOptions {
            response_timeout: Duration::ZERO,
            ..options()
        },
    );
    assert_eq!(
        (f, m.as_str()),
        (
            Field::RedisResponseTimeout,
            "redis_response_timeout must be between 1ms and 1m, got 0s"
        )
    );
    let (f, _) = field(
        Config {
            secret: Some(common::secret()),
            ..Config::default()
        },
        options(),
    );
    assert_eq!(f, Field::Secret);
    let (f, _) = field(
        Config {
            ttl: Duration::ZERO,
            ..Config::default()
        },
        options(),
    );
    assert_eq!(f, Field::Ttl, "the rules are checked as in memory");
}

/// A bounded poll (10 s) for something the test's own threads make happen.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::yield_now();
    }
}

/// Calls made while the server is down or hung: every one fails closed.
fn assert_unavailable(engine: &Engine, key: &str, code: &str, what: &str) {
    for result in [
        engine.issue(key, "").map(|_| ()),
        engine.verify(key, code, "").map(|v| {
            panic!("{what}: verify answered {v:?}");
        }),
        engine.revoke(key).map(|_| ()),
        engine.unlock(key).map(|_| ()),
    ] {
        match result {
            Err(Error::Unavailable { .. }) => {}
            other => panic!("{what}: expected Unavailable, got {other:?}"),
        }
    }
}

#[test]
fn a_server_stopped_mid_run_fails_every_call_closed_and_is_used_again_once_back() {
    let Some(mut server) = OwnServer::start() else {
        return;
    };
    let engine = Arc::new(
        Engine::new_redis(
            Config {
                reaper_interval: None,
                ..Config::default()
            },
            RedisOptions {
                connect_timeout: Duration::from_millis(500),
                response_timeout: Duration::from_millis(500),
                ..common::options(&server.url(), "outage")
            },
        )
        .unwrap(),
    );
    let pending = engine.issue("alice", "").unwrap().code.to_string();

    // Users keep coming while the server dies: each thread issues and verifies
    // fresh keys and notes when each call started and what it got; `verified`
    // and `failed` let the test wait for the load to reach each phase.
    let stop = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
            let (verified, failed) = (Arc::clone(&verified), Arc::clone(&failed));
            std::thread::spawn(move || {
                // (started, finished, answer)
                let mut log: Vec<(Instant, Instant, Result<bool, Error>)> = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("user-{t}-{n}");
                    let started = Instant::now();
                    match engine.issue(&key, "") {
                        Ok(issued) => {
                            log.push((started, Instant::now(), Ok(false)));
                            let started = Instant::now();
                            let verdict = engine.verify(&key, &issued.code, "");
                            let counter = match verdict {
                                Ok(Verdict::Verified) => &verified,
                                _ => &failed,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            log.push((started, Instant::now(), verdict.map(|v| v.is_verified())));
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            log.push((started, Instant::now(), Err(e)));
                        }
                    }
                }
                log
            })
        })
        .collect();
    wait_until("the load verifies codes", || {
        verified.load(Ordering::Relaxed) >= 20
    });
    server.kill();
    let down = Instant::now();
    assert_unavailable(&engine, "alice", &pending, "server down");
    let unavailable = engine.stats().unavailable;
    assert!(unavailable >= 4, "counted: {unavailable}");
    let failed_before = failed.load(Ordering::Relaxed);
    wait_until("the load runs into the outage", || {
        failed.load(Ordering::Relaxed) >= failed_before + 20
    });

    let restarting = Instant::now();
    server.restart();
    // The same engine, not rebuilt: the first call after the restart works (the
    // store is empty, nothing was persisted, and the scripts are loaded again).
    assert_eq!(
        engine.verify("alice", &pending, "").unwrap(),
        Verdict::NotFound
    );
    let code = engine.issue("alice", "").unwrap().code;
    assert_eq!(
        engine.verify("alice", &code, "").unwrap(),
        Verdict::Verified
    );
    let verified_before = verified.load(Ordering::Relaxed);
    wait_until("the load recovers", || {
        verified.load(Ordering::Relaxed) >= verified_before + 20
    });
    stop.store(true, Ordering::Relaxed);

    let (mut verified_before, mut failed_during, mut verified_after) = (0, 0, 0);
    for worker in workers {
        for (started, finished, result) in worker.join().unwrap() {
            if started >= down && finished < restarting {
                // Made while the server was gone (a call that started before the
                // restart but was not scheduled until after it may find the new
                // server): fails closed, as Unavailable.
                assert!(
                    matches!(result, Err(Error::Unavailable { .. })),
                    "during the outage: {result:?}"
                );
                failed_during += 1;
            } else if let Ok(true) = result {
                if started < down {
                    verified_before += 1;
                } else {
                    verified_after += 1;
                }
            }
        }
    }
    assert!(
        verified_before > 0 && failed_during > 0 && verified_after > 0,
        "verified before {verified_before}, failed during {failed_during}, verified after {verified_after}"
    );
}

#[test]
fn a_hung_server_times_out_as_configured_and_is_used_again_once_it_answers() {
    let Some(server) = OwnServer::start() else {
        return;
    };
    let engine = Engine::new_redis(
        Config {
            reaper_interval: None,
            ..Config::default()
        },
        RedisOptions {
            response_timeout: Duration::from_millis(300),
            ..common::options(&server.url(), "hung")
        },
    )
    .unwrap();
    let code = engine.issue("alice", "").unwrap().code.to_string();
    server.pause(true);
    let started = Instant::now();
    let err = engine.verify("alice", &code, "").unwrap_err();
    let waited = started.elapsed();
    server.pause(false);
    assert_eq!(
        err.to_string(),
        format!(
            "redis at 127.0.0.1:{} did not answer within 300ms",
            server.port()
        )
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The late answer to that verify (Verified) must not be taken for the
    // answer to a later call: the engine dropped the connection it was due on.
    let code_b = engine.issue("bob", "").unwrap().code;
    assert_eq!(
        engine.verify("bob", wrong(&code_b), "").unwrap(),
        Verdict::Mismatch { attempts_left: 4 }
    );
    assert_eq!(
        engine.verify("bob", &code_b, "").unwrap(),
        Verdict::Verified
    );
    // Whether the lost verify ran once the server was continued is up to the
    // server; either way the code is not verified twice.
    let again = engine.verify("alice", &code, "").unwrap();
    assert!(
        matches!(again, Verdict::NotFound | Verdict::Verified),
        "{again:?}"
    );
}

// ---- memory and Redis, side by side on random histories ------------------------

mod differential {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Issue {
            key: u8,
            context: u8,
            ttl_s: Option<u64>,
        },
        /// Which code to type: 0 the newest, 1 an older one, 2 a wrong one, 3 not a code.
        Verify {
            key: u8,
            context: u8,
            which: u8,
        },
        Revoke {
            key: u8,
        },
        Unlock {
            key: u8,
        },
        Advance {
            ms: u64,
        },
        Stats,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..4;
        let context = 0u8..2;
        prop_oneof![
            4 => (key.clone(), context.clone(), prop::option::of(1u64..30))
                .prop_map(|(key, context, ttl_s)| Op::Issue { key, context, ttl_s }),
            6 => (key.clone(), context, 0u8..4).prop_map(|(key, context, which)| Op::Verify { key, context, which }),
            1 => key.clone().prop_map(|key| Op::Revoke { key }),
            1 => key.prop_map(|key| Op::Unlock { key }),
            3 => prop_oneof![1u64..2_000, 2_000u64..40_000, 40_000u64..200_000].prop_map(|ms| Op::Advance { ms }),
            1 => Just(Op::Stats),
        ]
    }

    fn config() -> impl Strategy<Value = Config> {
        (
            (1u32..4, 0u64..3, 0u32..4, 1u64..4),
            (0u32..5, 1u64..4, 1u32..5, 1u64..4),
            (1u64..8, prop::bool::ANY),
        )
            .prop_map(
                |(
                    (max_attempts, cooldown_s, max_issues, window_s),
                    (max_failures, lockout_s, codes_per_key, ttl_s),
                    (capacity, alphanumeric),
                )| Config {
                    code_length: 4,
                    alphabet: if alphanumeric {
                        otpengine_core::Alphabet::Alphanumeric
                    } else {
                        otpengine_core::Alphabet::Digits
                    },
                    ttl: Duration::from_secs(ttl_s * 10),
                    max_attempts,
                    resend_cooldown: Duration::from_secs(cooldown_s * 5),
                    max_issues_per_window: max_issues,
                    issue_window: Duration::from_secs(window_s * 20),
                    max_failures_per_key: max_failures,
                    lockout: Duration::from_secs(lockout_s * 15),
                    codes_per_key,
                    capacity,
                    shards: Some(2),
                    reaper_interval: None,
                    ..Config::default()
                },
            )
    }

    /// One engine and the codes it issued, newest first, per key and context.
    struct Side {
        engine: Engine,
        codes: std::collections::HashMap<(u8, u8), Vec<String>>,
    }

    impl Side {
        fn typed(&self, key: u8, context: u8, which: u8) -> String {
            let codes = self.codes.get(&(key, context)).cloned().unwrap_or_default();
            let newest = codes.first().cloned().unwrap_or_else(|| "0000".into());
            match which {
                0 => newest,
                1 => codes.get(1).cloned().unwrap_or(newest),
                2 => wrong(&newest),
                _ => "not a code".into(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every answer, and the stats, of a Redis engine (on the standalone server,
        /// and over mutual TLS) equal the memory engine's on the same random
        /// history (codes themselves are random, so each side types its own).
        #[test]
        fn memory_and_redis_answer_alike(config in config(), ops in prop::collection::vec(op(), 1..80)) {
            let Some(url) = common::redis_url(STANDALONE) else {
                return Ok(());
            };
            let clock = ManualClock::new();
            let with_clock = |c: &Config| Config { clock: Clock::manual(&clock), ..c.clone() };
            let mut sides = vec![
                Side { engine: Engine::new(with_clock(&config)).unwrap(), codes: Default::default() },
                Side { engine: common::engine(&url, with_clock(&config)), codes: Default::default() },
            ];
            if common::redis_url(common::MTLS).is_some() {
                let tls = Engine::new_redis(with_clock(&config), common::mtls_options("diff")).unwrap();
                sides.push(Side { engine: tls, codes: Default::default() });
            }
            for (step, op) in ops.iter().enumerate() {
                let answers: Vec<String> = sides
                    .iter_mut()
                    .map(|side| match *op {
                        Op::Issue { key, context, ttl_s } => {
                            let result = match ttl_s {
                                Some(t) => side.engine.issue_with_ttl([key], [context], Duration::from_secs(t)),
                                None => side.engine.issue([key], [context]),
                            };
                            match result {
                                Ok(issued) => {
                                    for c in 0..2 {
                                        // A new code replaces (or, with several per key,
                                        // precedes) the key's codes in every context.
                                        let list = side.codes.entry((key, c)).or_default();
                                        if c == context {
                                            list.insert(0, issued.code.to_string());
                                        } else {
                                            list.insert(0, "----".into());
                                        }
                                    }
                                    format!("issued {:?}", issued.expires_in)
                                }
                                Err(e) => format!("{e:?}"),
                            }
                        }
                        Op::Verify { key, context, which } => {
                            let typed = side.typed(key, context, which);
                            format!("{:?}", side.engine.verify([key], typed, [context]).unwrap())
                        }
                        Op::Revoke { key } => format!("revoke {:?}", side.engine.revoke([key]).unwrap()),
                        Op::Unlock { key } => format!("unlock {:?}", side.engine.unlock([key]).unwrap()),
                        Op::Advance { .. } => String::new(), // one clock: moved below

                        Op::Stats => format!("{:?}", side.engine.stats()),
                    })
                    .collect();
                if let Op::Advance { ms } = *op {
                    clock.advance(Duration::from_millis(ms));
                }
                for other in &answers[1..] {
                    prop_assert_eq!(&answers[0], other, "step {} {:?} of {:?}", step, op, ops);
                }
            }
            for side in &sides[1..] {
                prop_assert_eq!(sides[0].engine.stats(), side.engine.stats());
            }
        }
    }
}

/// `used_memory` of the server behind `con`, in bytes.
fn used_memory(con: &mut Connection) -> u64 {
    let info: String = ::redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// A full Redis (maxmemory reached under noeviction) must not become a yes/no
/// oracle: every script-backed call is refused before it reads anything, with
/// the same answer for a right and a wrong guess, and nothing is consumed or
/// counted, so once Redis has room the pending code still verifies. The table
/// holds every script-backed call; later calls join it when they are added.
#[test]
fn a_full_redis_refuses_every_call_alike_and_counts_nothing() {
    let Some(server) = OwnServer::start() else {
        return;
    };
    let url = server.url();
    let mut admin = connection(&url);
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut admin)
        .unwrap();
    let clock = ManualClock::new();
    // No issue window: a verify after the cooldown then has nothing left to
    // remember when it succeeds (only deletes), the case that was open.
    let engine = Engine::new_redis(
        config(&clock, |c| c.max_issues_per_window = 0),
        common::options(&url, "oom"),
    )
    .unwrap();
    let victim = engine.issue("victim", "").unwrap().code;
    let locked = engine.issue("locked", "").unwrap().code;
    assert!(matches!(
        engine.verify("locked", wrong(locked.as_str()), "").unwrap(),
        Verdict::Mismatch { .. }
    ));
    clock.advance(31 * S);

    let half = used_memory(&mut admin) / 2;
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(half)
        .query(&mut admin)
        .unwrap();

    let port = server.port();
    // Every script-backed call but issue, as (name, call): each must be refused
    // with one and the same answer, whatever the code. Later calls join here.
    let verdict = |r: Result<Verdict, Error>| r.map(|v| format!("{v:?}"));
    let flag = |r: Result<bool, Error>| r.map(|b| b.to_string());
    type Call<'a> = Box<dyn Fn() -> Result<String, Error> + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        (
            "verify right",
            Box::new(|| verdict(engine.verify("victim", victim.as_str(), ""))),
        ),
        (
            "verify wrong",
            Box::new(|| verdict(engine.verify("victim", wrong(victim.as_str()), ""))),
        ),
        (
            "verify unknown key",
            Box::new(|| verdict(engine.verify("nobody", "123456", ""))),
        ),
        ("revoke", Box::new(|| flag(engine.revoke("victim")))),
        ("unlock", Box::new(|| flag(engine.unlock("locked")))),
    ];
    let mut reasons = HashSet::new();
    for (name, call) in &calls {
        match call() {
            Err(Error::Unavailable { server, reason, .. }) => {
                assert_eq!(server, format!("127.0.0.1:{port}"), "{name}");
                assert!(reason.starts_with("is out of memory"), "{name}: {reason}");
                reasons.insert(reason);
            }
            other => panic!("{name} on a full Redis: expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(reasons.len(), 1, "one answer for every call: {reasons:?}");
    for _ in 0..200 {
        let answer = verdict(engine.verify("victim", wrong(victim.as_str()), ""));
        assert!(
            matches!(&answer, Err(Error::Unavailable { reason, .. }) if reasons.contains(reason)),
            "{answer:?}"
        );
    }
    for key in ["victim", "new-key"] {
        match engine.issue(key, "") {
            Err(e @ Error::CapacityExceeded { .. }) => {
                let Error::CapacityExceeded { out_of_memory, .. } = &e else {
                    unreachable!()
                };
                assert!(out_of_memory.is_some(), "{e:?}");
                let m = e.to_string();
                assert!(
                    m.contains("is out of memory") && !m.contains("holds state"),
                    "{m}"
                );
            }
            other => {
                panic!("issue for {key} on a full Redis: expected CapacityExceeded, got {other:?}")
            }
        }
    }
    let stats = engine.stats();
    assert_eq!((stats.capacity_exceeded, stats.mismatched), (2, 1));

    // Room again: nothing was consumed or counted while Redis was full.
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        engine.verify("victim", wrong(victim.as_str()), "").unwrap(),
        Verdict::Mismatch { attempts_left: 4 },
        "the 201 refused guesses spent no attempt"
    );
    assert_eq!(
        engine.verify("victim", victim.as_str(), "").unwrap(),
        Verdict::Verified
    );
    assert!(
        engine.unlock("locked").unwrap(),
        "the refused unlock cleared nothing"
    );
}

/// Two instances racing on one scope (on a cluster its key is in another slot
/// than every account's): never more issues or looked-at guesses than its budget.
#[test]
fn racing_instances_never_exceed_a_scopes_budget() {
    fn one_scope(c: &mut Config) {
        no_limits(c);
        c.scope_limits = vec![otpengine_core::scope::ScopeLimit {
            max_issues: 10,
            issue_window: 3600 * S,
            max_failures: 10,
            failure_window: 3600 * S,
            ..otpengine_core::scope::ScopeLimit::new("ip")
        }];
    }
    on_both(|url| {
        let (a, b, _) = two_instances(url, one_scope);
        let engines = [Arc::new(a), Arc::new(b)];
        let scopes = [otpengine_core::scope::Scope::new("ip", "198.51.100.9/32")];
        let race = |each: &(dyn Fn(usize, &Engine) -> usize + Sync)| -> usize {
            let barrier = Barrier::new(8);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let (engine, barrier) = (&engines[t % 2], &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            each(t, engine)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            })
        };
        let issued = race(&|t, engine| {
            (0..4)
                .filter(|n| {
                    engine
                        .issue_scoped(format!("t{t}-{n}"), "", None, &scopes)
                        .is_ok()
                })
                .count()
        });
        assert_eq!(issued, 10);
        let looked_at = race(&|t, engine| {
            (0..4)
                .filter(|n| {
                    let key = format!("victim{t}-{n}");
                    let code = engine.issue(&key, "").unwrap().code.to_string();
                    let verdict = engine
                        .verify_scoped(&key, wrong(&code), "", &scopes)
                        .unwrap();
                    matches!(verdict, Verdict::Mismatch { .. })
                })
                .count()
        });
        assert_eq!(looked_at, 10);
    });
}

/// This thread's call timeout bounds a call shorter than the engine's response
/// timeout: with Redis paused, a verify answers Unavailable after about the
/// call timeout; without it, the same verify waits the pause out.
#[test]
fn a_thread_call_timeout_bounds_the_wait_for_a_paused_server() {
    // A server of its own: pausing the shared one would stall the other tests.
    let Some(server) = common::OwnServer::start() else {
        return;
    };
    let url = server.url();
    let clock = ManualClock::new();
    let options = otpengine_core::RedisOptions {
        response_timeout: 3 * S,
        ..common::options(&url, "call-timeout")
    };
    let engine = Engine::new_redis(config(&clock, no_limits), options).unwrap();
    let code = engine.issue("alice", "").unwrap().code.to_string();
    let pause = |ms: u32| {
        let _: () = ::redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query(&mut connection(&url))
            .unwrap();
    };

    pause(800);
    otpengine_core::call_timeout::set_call_timeout(Some(Duration::from_millis(100)));
    let started = std::time::Instant::now();
    let answer = engine.verify("alice", &code, "");
    let waited = started.elapsed();
    otpengine_core::call_timeout::set_call_timeout(None);
    match answer {
        Err(Error::Unavailable { reason, .. }) => {
            assert!(reason.contains("did not answer within 100ms"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(waited < Duration::from_millis(600), "waited {waited:?}");
    // Nor does it end before the deadline: a Go ctx reads a timeout that
    // ends early as the server's, not its own.
    assert!(waited >= Duration::from_millis(100), "waited {waited:?}");

    // Unbounded, the next call waits the rest of the pause out. (The bounded
    // verify may have run once the pause ended: the code may be consumed.)
    let started = std::time::Instant::now();
    let verdict = engine.verify("alice", &code, "").unwrap();
    assert!(
        matches!(verdict, Verdict::Verified | Verdict::NotFound),
        "{verdict:?}"
    );
    assert!(started.elapsed() + waited >= Duration::from_millis(600));
}
