//! A Redis Cluster that changes under load: slots move from one node to another
//! and back (`redis-cli --cluster reshard`, which migrates keys with `MIGRATE`)
//! while threads issue and verify. Every call must answer (a `MOVED` or `ASK`
//! means the script did not run, so the engine follows it), every answer must
//! agree with an in-memory engine fed the same calls, and a code still verifies
//! exactly once; batches (one pipeline per primary) answer as single calls
//! would. Its own test binary, so that no other test shares the cluster while
//! it moves.

#![cfg(feature = "redis")]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use otpengine_core::{Config, Engine, Verdict};

const THREADS: usize = 4;
const SLOTS_MOVED: &str = "2000";
/// Keys a batch of the batch thread holds.
const BATCH: usize = 40;

fn config() -> Config {
    Config {
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        reaper_interval: None,
        ..Config::default()
    }
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("running redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Moves `SLOTS_MOVED` slots from the node on `from` to the node on `to`.
fn reshard(from: &str, to: &str) {
    let id = |port: &str| {
        redis_cli(&["-p", port, "cluster", "myid"])
            .trim()
            .to_string()
    };
    let (from_id, to_id) = (id(from), id(to));
    redis_cli(&[
        "--cluster",
        "reshard",
        &format!("127.0.0.1:{from}"),
        "--cluster-from",
        &from_id,
        "--cluster-to",
        &to_id,
        "--cluster-slots",
        SLOTS_MOVED,
        "--cluster-yes",
    ]);
}

fn wrong(code: &str) -> String {
    code.bytes()
        .map(|b| if b == b'9' { '0' } else { (b + 1) as char })
        .collect()
}

#[test]
fn moving_slots_under_load_fails_no_call_and_changes_no_answer() {
    let Some(url) = common::redis_url(common::CLUSTER) else {
        return;
    };
    let ports: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|node| node.rsplit(':').next().unwrap().to_string())
        .collect();
    let engine = common::engine(&url, config());
    let moving = AtomicBool::new(true);
    let rounds = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (engine, moving, rounds) = (&engine, &moving, &rounds);
            scope.spawn(move || {
                let mirror = Engine::new(config()).unwrap();
                let mut round = 0u64;
                while moving.load(Ordering::Relaxed) || round < 20 {
                    let key = format!("reshard-{t}-{}", round % 200);
                    let code = engine.issue(&key, "").expect("issue during a reshard").code;
                    let mirrored = mirror.issue(&key, "").unwrap().code;
                    // A wrong guess, then the right code twice at once, then again.
                    let guess = engine
                        .verify(&key, wrong(code.as_str()), "")
                        .expect("verify");
                    let mirror_guess = mirror.verify(&key, wrong(mirrored.as_str()), "").unwrap();
                    assert_eq!(guess, mirror_guess, "a wrong guess, round {round}");
                    let [a, b] = std::thread::scope(|race| {
                        let one =
                            race.spawn(|| engine.verify(&key, code.as_str(), "").expect("verify"));
                        let two =
                            race.spawn(|| engine.verify(&key, code.as_str(), "").expect("verify"));
                        [one.join().unwrap(), two.join().unwrap()]
                    });
                    let verified = [&a, &b].iter().filter(|v| v.is_verified()).count();
                    assert_eq!(verified, 1, "exactly once: {a:?} {b:?}");
                    assert_eq!(
                        mirror.verify(&key, mirrored.as_str(), "").unwrap(),
                        Verdict::Verified
                    );
                    assert_eq!(
                        engine.verify(&key, code.as_str(), "").expect("verify"),
                        mirror.verify(&key, mirrored.as_str(), "").unwrap(),
                        "a replay, round {round}"
                    );
                    round += 1;
                }
                rounds.fetch_add(round, Ordering::Relaxed);
            });
        }
        // Batches: one pipeline per primary; a script Redis did not run on a
        // node (its slot moved or is moving) is sent again alone.
        let (engine, moving, rounds) = (&engine, &moving, &rounds);
        scope.spawn(move || {
            let mirror = Engine::new(config()).unwrap();
            let mut round = 0u64;
            while moving.load(Ordering::Relaxed) || round < 5 {
                let keys: Vec<String> = (0..BATCH)
                    .map(|i| format!("reshard-batch-{}-{i}", round % 20))
                    .collect();
                let codes: Vec<String> = engine
                    .issue_many(&keys, "")
                    .into_iter()
                    .map(|issued| {
                        issued
                            .expect("issue_many during a reshard")
                            .code
                            .to_string()
                    })
                    .collect();
                let mirrored: Vec<String> = mirror
                    .issue_many(&keys, "")
                    .into_iter()
                    .map(|issued| issued.unwrap().code.to_string())
                    .collect();
                // Wrong guesses for the even keys, then the right code for all, twice.
                let guesses = |codes: &[String], right: bool| -> Vec<(String, String, &str)> {
                    keys.iter()
                        .zip(codes)
                        .enumerate()
                        .filter(|(i, _)| right || i % 2 == 0)
                        .map(|(_, (k, c))| {
                            (k.clone(), if right { c.clone() } else { wrong(c) }, "")
                        })
                        .collect()
                };
                for right in [false, true, true] {
                    let got: Vec<Verdict> = engine
                        .verify_many(guesses(&codes, right))
                        .into_iter()
                        .map(|v| v.expect("verify_many during a reshard"))
                        .collect();
                    let want: Vec<Verdict> = mirror
                        .verify_many(guesses(&mirrored, right))
                        .into_iter()
                        .map(Result::unwrap)
                        .collect();
                    assert_eq!(got, want, "batch round {round}, right codes: {right}");
                }
                round += 1;
            }
            rounds.fetch_add(round, Ordering::Relaxed);
        });
        reshard(&ports[0], &ports[1]);
        reshard(&ports[1], &ports[0]);
        moving.store(false, Ordering::Relaxed);
    });
    let stats = engine.stats();
    assert_eq!(stats.unavailable, 0, "{stats:?}");
    println!(
        "{} rounds of issue and four verifies over two reshards of {SLOTS_MOVED} slots",
        rounds.load(Ordering::Relaxed)
    );
}
