//! Many threads on one engine: single use, attempt counting and stats hold.
//!
//! Why stress tests and not a loom or shuttle model: everything that decides
//! single use and attempt counting for a key (find the slot, compare, consume or
//! spend an attempt, burn) happens inside one critical section of the key's
//! shard mutex, and no state of a key lives outside its shard. The only shared
//! atomic is the capacity counter, updated by compare-and-swap. A model checker
//! would enumerate the interleavings of `parking_lot::Mutex` itself. What can go
//! wrong is the code inside the lock, which the reference-model property test and
//! fuzz target check, and a lock taken on the wrong shard, which these tests
//! would catch at 2, 4, 8 and 16 threads. See ARCHITECTURE.md, "Concurrency".

use std::collections::HashMap;
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use otpengine_core::scope::{Scope, ScopeLimit};
use otpengine_core::{Clock, Config, Engine, Error, ManualClock, Verdict};

fn engine(tune: impl FnOnce(&mut Config)) -> Engine {
    let mut config = Config {
        clock: Clock::manual(&ManualClock::new()),
        reaper_interval: None,
        ..Config::default()
    };
    tune(&mut config);
    Engine::new(config).unwrap()
}

fn unlimited(c: &mut Config) {
    c.resend_cooldown = Duration::ZERO;
    c.max_issues_per_window = 0;
    c.max_failures_per_key = 0;
}

/// Runs `per_thread` on `threads` threads released together; returns their answers.
fn race<T: Send>(threads: usize, per_thread: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, per_thread) = (&barrier, &per_thread);
                s.spawn(move || {
                    barrier.wait();
                    per_thread(t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Thread counts every race runs at: fewer than, as many as, and far more than
/// the cores of a CI machine.
const THREADS: [usize; 4] = [2, 4, 8, 16];

#[test]
fn threads_verifying_the_same_code_get_exactly_one_success() {
    for threads in THREADS {
        exactly_one_success(threads);
    }
}

fn exactly_one_success(threads: usize) {
    let engine = engine(unlimited);
    for round in 0..300 {
        let key = format!("user-{round}");
        let code = engine.issue(&key, "").unwrap().code;
        let verdicts = race(threads, |_| engine.verify(&key, &code, "").unwrap());
        let verified = verdicts.iter().filter(|v| v.is_verified()).count();
        assert_eq!(
            verified, 1,
            "{threads} threads, round {round}: {verdicts:?}"
        );
        assert!(verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Verified | Verdict::NotFound)));
    }
    assert_eq!(engine.stats().verified, 300);
}

/// One TOTP code, racing verifies: exactly one `Verified`, every other one
/// `Replayed`, at every thread count.
#[test]
fn threads_verifying_one_totp_code_get_exactly_one_success() {
    use otpengine_core::totp::{self, TotpParams};
    let secret = b"12345678901234567890";
    let p = TotpParams::default();
    for threads in THREADS {
        let engine = engine(|c| c.max_failures_per_key = 100);
        for round in 0..100u64 {
            let at = 1_700_000_000 + round * 30;
            let code = totp::totp(secret, at, &p).unwrap();
            let when = Some(std::time::UNIX_EPOCH + Duration::from_secs(at));
            let verdicts = race(threads, |_| {
                engine
                    .verify_totp("alice", secret, code.as_str(), &p, when)
                    .unwrap()
            });
            let verified = verdicts.iter().filter(|v| v.is_verified()).count();
            assert_eq!(
                verified, 1,
                "{threads} threads, round {round}: {verdicts:?}"
            );
            assert!(verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Verified | Verdict::Replayed)));
        }
        let stats = engine.stats();
        assert_eq!(
            (stats.verified, stats.replayed),
            (100, 100 * (threads as u64 - 1))
        );
    }
}

#[test]
fn concurrent_wrong_guesses_spend_exactly_the_attempts_there_are() {
    for threads in THREADS {
        attempts_spent_once(threads);
    }
}

/// `threads` wrong guesses at once on a code with 5 attempts: 4 mismatches with
/// 4, 3, 2, 1 left (fewer with fewer threads), then burned.
fn attempts_spent_once(threads: usize) {
    let engine = engine(|c| {
        unlimited(c);
        c.max_attempts = 5;
    });
    for round in 0..200 {
        let key = format!("user-{round}");
        let code = engine.issue(&key, "").unwrap().code;
        let wrong: String = code
            .bytes()
            .map(|b| if b == b'9' { '0' } else { (b + 1) as char })
            .collect();
        let verdicts = race(threads, |_| engine.verify(&key, &wrong, "").unwrap());
        let mut left: Vec<u32> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Mismatch { attempts_left } => Some(*attempts_left),
                _ => None,
            })
            .collect();
        left.sort_unstable();
        let mismatches = threads.min(4) as u32;
        let expected: Vec<u32> = (5 - mismatches..5).collect();
        assert_eq!(
            left, expected,
            "{threads} threads, round {round}: each attempt spent once: {verdicts:?}"
        );
        let locked = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Locked { .. }))
            .count();
        assert_eq!(
            locked,
            threads.saturating_sub(4),
            "the fifth burns the code, the rest find it burned"
        );
        // Guess until the attempts are gone, then the code is burned.
        for _ in threads..5 {
            engine.verify(&key, &wrong, "").unwrap();
        }
        assert_eq!(
            engine.verify(&key, &code, "").unwrap(),
            Verdict::Locked {
                retry_after: Duration::ZERO
            }
        );
    }
}

#[test]
fn concurrent_issue_verify_revoke_on_overlapping_keys_lose_and_double_no_count() {
    for threads in THREADS {
        mixed_load_adds_up(threads);
    }
}

fn mixed_load_adds_up(threads: usize) {
    let clock = ManualClock::new();
    let engine = engine(|c| {
        c.clock = Clock::manual(&clock);
        c.resend_cooldown = Duration::ZERO;
        c.max_issues_per_window = 5;
        c.issue_window = Duration::from_secs(10);
        c.ttl = Duration::from_secs(1);
        c.max_failures_per_key = 20;
        c.max_attempts = 3;
        c.capacity = 48;
        c.shards = Some(4);
    });
    // The last code each thread saw per key, shared so that threads verify each other's codes.
    let codes: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let tallies = race(threads, |t| {
        let mut tally: HashMap<&'static str, u64> = HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
        for i in 0..20_000 {
            if t == 0 && i % 100 == 0 {
                clock.advance(Duration::from_secs(1)); // windows roll over, codes expire
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 64) as usize;
            let name = format!("user-{key}");
            let kind = match (x >> 32) % 10 {
                0..=2 => match engine.issue(&name, "") {
                    Ok(issued) => {
                        codes.lock().unwrap().insert(key, issued.code.to_string());
                        "issued"
                    }
                    Err(Error::RateLimited { .. }) => "rate_limited",
                    Err(Error::Locked { .. }) => "locked",
                    Err(Error::CapacityExceeded { .. }) => "capacity_exceeded",
                    Err(e) => panic!("{e}"),
                },
                3..=8 => {
                    let guess = codes.lock().unwrap().get(&key).cloned().unwrap_or_default();
                    let guess = if (x >> 40).is_multiple_of(4) {
                        "000000".to_string()
                    } else {
                        guess
                    };
                    match engine.verify(&name, &guess, "").unwrap() {
                        Verdict::Verified => "verified",
                        Verdict::Mismatch { .. } => "mismatched",
                        Verdict::Locked { .. } => "locked",
                        Verdict::Expired => "expired",
                        Verdict::NotFound => "not_found",
                        other => panic!("a verdict this test does not count: {other:?}"),
                    }
                }
                _ => {
                    if engine.revoke(&name).unwrap() {
                        "revoked"
                    } else {
                        "revoke_nothing"
                    }
                }
            };
            *tally.entry(kind).or_default() += 1;
        }
        tally
    });
    let mut total: HashMap<&str, u64> = HashMap::new();
    for tally in tallies {
        for (k, v) in tally {
            *total.entry(k).or_default() += v;
        }
    }
    let get = |k| total.get(k).copied().unwrap_or(0);
    let stats = engine.stats();
    assert_eq!(stats.issued, get("issued"));
    assert_eq!(stats.verified, get("verified"));
    assert_eq!(stats.mismatched, get("mismatched"));
    assert_eq!(stats.locked, get("locked"));
    assert_eq!(stats.expired, get("expired"));
    assert_eq!(stats.rate_limited, get("rate_limited"));
    assert_eq!(stats.revoked, get("revoked"));
    assert_eq!(stats.not_found, get("not_found"));
    assert_eq!(stats.capacity_exceeded, get("capacity_exceeded"));
    let exercised = [
        stats.issued,
        stats.verified,
        stats.mismatched,
        stats.rate_limited,
        stats.expired,
    ];
    assert!(
        exercised.iter().all(|&n| n > 100),
        "the mix exercised every path: {stats:?}"
    );
    assert!(stats.live <= stats.held && stats.held <= 48, "{stats:?}");
}

/// A scope "ip" with 10 issues and 10 failures an hour.
fn one_scope(c: &mut Config) {
    unlimited(c);
    c.scope_limits = vec![ScopeLimit {
        max_issues: 10,
        issue_window: Duration::from_secs(3600),
        max_failures: 10,
        failure_window: Duration::from_secs(3600),
        ..ScopeLimit::new("ip")
    }];
}

#[test]
fn racing_threads_never_exceed_a_scopes_issue_or_failure_budget() {
    for threads in THREADS {
        let engine = engine(one_scope);
        let scopes = [Scope::new("ip", "203.0.113.7/32")];
        // Each thread issues for keys of its own from the one address.
        let issued: usize = race(threads, |t| {
            (0..8)
                .filter(|n| {
                    let key = format!("t{t}-{n}");
                    match engine.issue_scoped(&key, "", None, &scopes) {
                        Ok(_) => true,
                        Err(Error::RateLimited { scope, .. }) => {
                            assert_eq!(scope.as_deref(), Some("ip"));
                            false
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
                .count()
        })
        .into_iter()
        .sum();
        assert_eq!(issued, 10.min(threads * 8), "{threads} threads");

        // Wrong guesses on the issued keys, one each, from the address: at most
        // 10 are looked at, every later one is Locked.
        let codes: Vec<String> = (0..32)
            .map(|n| {
                let key = format!("victim{n}");
                engine.issue(&key, "").unwrap().code.to_string()
            })
            .collect();
        let looked_at: usize = race(threads, |t| {
            (t..32)
                .step_by(threads)
                .filter(|&n| {
                    let wrong = if codes[n] == "000000" {
                        "111111"
                    } else {
                        "000000"
                    };
                    match engine
                        .verify_scoped(format!("victim{n}"), wrong, "", &scopes)
                        .unwrap()
                    {
                        Verdict::Mismatch { .. } => true,
                        Verdict::Locked { .. } => false,
                        other => panic!("{other:?}"),
                    }
                })
                .count()
        })
        .into_iter()
        .sum();
        assert_eq!(looked_at, 10, "{threads} threads");
    }
}
