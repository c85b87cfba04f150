//! A quick single-thread timing of issue and verify (the full suite is criterion
//! and otp-load in `benches/`). Prints the median of five runs per figure.
//!
//! Run with `cargo run --release --example quickbench` (`QUICKBENCH_LIVE=1000`
//! or `=1000000`: one size only).

use std::time::{Duration, Instant};

use otpengine_core::{Config, Engine};

fn engine() -> Engine {
    Engine::new(Config {
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        max_failures_per_key: 0,
        reaper_interval: None,
        ..Config::default()
    })
    .unwrap()
}

/// Nanoseconds per call of issuing a code for each key, then verifying each: one
/// call at a time, or (`batched`) through `issue_many` and `verify_many`.
fn run(keys: &[[u8; 8]], rounds: usize, batched: bool) -> (f64, f64) {
    let engine = engine();
    let mut codes: Vec<_> = keys
        .iter()
        .map(|k| engine.issue(k, "").unwrap().code)
        .collect();
    let (mut issue, mut verify) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        if batched {
            let start = Instant::now();
            let issued = engine.issue_many(keys, "");
            issue += start.elapsed();
            let items: Vec<_> = keys
                .iter()
                .zip(&issued)
                .map(|(k, i)| (k, i.as_ref().unwrap().code.as_str(), ""))
                .collect();
            let start = Instant::now();
            let verdicts = engine.verify_many(items);
            verify += start.elapsed();
            assert!(verdicts.iter().all(|v| v.as_ref().unwrap().is_verified()));
            continue;
        }
        let start = Instant::now();
        for (k, c) in keys.iter().zip(codes.iter_mut()) {
            *c = engine.issue(k, "").unwrap().code;
        }
        issue += start.elapsed();
        let start = Instant::now();
        for (k, c) in keys.iter().zip(&codes) {
            assert!(engine.verify(k, c.as_str(), "").unwrap().is_verified());
        }
        verify += start.elapsed();
    }
    let calls = (keys.len() * rounds) as f64;
    (
        issue.as_nanos() as f64 / calls,
        verify.as_nanos() as f64 / calls,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `QUICKBENCH_LIVE=1000` runs one size only (for a profiler).
    let only: Option<usize> = std::env::var("QUICKBENCH_LIVE")
        .ok()
        .and_then(|v| v.parse().ok());
    // `QUICKBENCH_ROUNDS=n`: n rounds over the keys instead of the default (for callgrind).
    let rounds_env: Option<usize> = std::env::var("QUICKBENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (live, rounds) in [(1_000usize, 1000usize), (1_000_000, 3)] {
        if only.is_some_and(|only| only != live) {
            continue;
        }
        let rounds = rounds_env.unwrap_or(rounds);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let keys: Vec<[u8; 8]> = (0..live)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        for (batched, how) in [(false, "one call at a time"), (true, "batches")] {
            let runs: Vec<(f64, f64)> = (0..5).map(|_| run(&keys, rounds, batched)).collect();
            let issue = median(runs.iter().map(|r| r.0).collect());
            let verify = median(runs.iter().map(|r| r.1).collect());
            println!(
                "{live:>9} live keys, {how:<18}: issue {issue:6.0} ns, verify {verify:6.0} ns, pair {:.2} M calls/s",
                2.0 / (issue + verify) * 1e3
            );
        }
    }
}
