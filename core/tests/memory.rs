//! A million codes, then time passes: every byte the maps hold goes back.

use std::time::Duration;

use otpengine_core::{Clock, Config, Engine, ManualClock, Verdict};

const KEYS: usize = 1_000_000;

#[test]
fn a_million_codes_expire_and_the_memory_goes_back_down() {
    let clock = ManualClock::new();
    let shards = 8;
    let engine = Engine::new(Config {
        clock: Clock::manual(&clock),
        reaper_interval: None,
        shards: Some(shards),
        ..Config::default() // default limits: cooldown, window and failure counts are kept too
    })
    .unwrap();
    let empty = engine.memory_usage();

    let mut verified = 0;
    for i in 0..KEYS {
        let key = format!("+1555{i:07}");
        let code = engine.issue(&key, "").unwrap().code;
        match i % 10 {
            0 => {
                assert_eq!(engine.verify(&key, &code, "").unwrap(), Verdict::Verified);
                verified += 1;
            }
            1 => assert!(matches!(
                engine.verify(&key, "------", "").unwrap(),
                Verdict::Mismatch { .. }
            )),
            _ => {}
        }
    }
    let peak = engine.memory_usage();
    let stats = engine.stats();
    assert_eq!(engine.len(), KEYS - verified);
    assert_eq!(stats.held, KEYS as u64, "every key holds its rate history");
    let per_key = peak.total() as f64 / KEYS as f64;
    println!("empty: {empty:?} = {} bytes", empty.total());
    println!(
        "peak:  {peak:?} = {} bytes, {per_key:.1} bytes per key",
        peak.total()
    );
    assert!(per_key < 128.0, "{per_key:.1} bytes per key");

    // Past twice the ttl (the code's memory), the 10-minute window and the
    // failure memory (30 days, `max_lockout`, with escalating lockouts).
    clock.advance(Duration::from_secs(30 * 86_400));
    let stats = engine.stats(); // runs every shard's timers
    assert_eq!((stats.live, stats.held), (0, 0), "{stats:?}");
    assert!(engine.is_empty());
    let after = engine.memory_usage();
    println!("after: {after:?} = {} bytes", after.total());
    assert!(
        after.total() <= empty.total() + shards as usize * 16 * 1024,
        "memory held after everything expired: {after:?} (empty engine: {empty:?})"
    );
}
