//! The numbers SECURITY.md promises, measured through the public API on the
//! manual clock: how many guesses an attacker gets per key with the defaults,
//! and that a full engine refuses new keys without evicting anyone.

use std::time::Duration;

use otpengine_core::code::generate;
use otpengine_core::{Alphabet, Clock, Config, Engine, Error, ManualClock, Verdict};
use rand_core::{Infallible, TryRng};

/// An attacker who does everything the defaults allow for one key: asks for a
/// code whenever allowed, and spends every wrong guess it is allowed; returns
/// the number of guesses counted by the engine over `span`.
fn guesses_in(span: Duration) -> u64 {
    let clock = ManualClock::new();
    let engine = Engine::new(Config {
        clock: Clock::manual(&clock),
        reaper_interval: None,
        ..Config::default()
    })
    .unwrap();
    let key = "+15551234567/login";
    let step = Duration::from_secs(1);
    let mut guesses = 0;
    while clock.now() < span {
        match engine.issue(key, "") {
            Ok(issued) => {
                // Guess until the code is burned or the key locked; never the right code.
                let wrong = if issued.code.as_str() == "000000" {
                    "111111"
                } else {
                    "000000"
                };
                while let Verdict::Mismatch { .. } = engine.verify(key, wrong, "").unwrap() {
                    guesses += 1;
                }
                guesses += 1; // the guess that burned or locked
            }
            Err(Error::RateLimited { retry_after }) | Err(Error::Locked { retry_after }) => {
                clock.advance(retry_after.max(step));
                continue;
            }
            Err(e) => panic!("{e}"),
        }
    }
    guesses
}

#[test]
fn the_defaults_allow_about_100_guesses_per_92_minutes_per_key() {
    // SECURITY.md: 100 failures take 20 codes, issued in four windows starting
    // 10 minutes apart (the last code at about 32 minutes), then a 1-hour lockout:
    // about 100 guesses per 92 minutes, about 1,565 a day.
    let day = guesses_in(Duration::from_secs(86_400));
    assert!((1_450..=1_700).contains(&day), "{day} guesses in a day");
    let first_hour = guesses_in(Duration::from_secs(3_600));
    assert_eq!(first_hour, 100, "the whole budget, then the lockout");
    println!("guesses per key: {first_hour} in the first hour, {day} in a day (SECURITY.md: about 1,600)");
}

#[test]
fn a_full_engine_refuses_new_keys_evicts_nothing_and_does_not_grow() {
    let clock = ManualClock::new();
    let engine = Engine::new(Config {
        clock: Clock::manual(&clock),
        capacity: 10_000,
        reaper_interval: None,
        ..Config::default()
    })
    .unwrap();
    let codes: Vec<String> = (0..10_000)
        .map(|i| engine.issue(format!("k{i}"), "").unwrap().code.to_string())
        .collect();
    let full = engine.memory_usage().total();
    for i in 10_000..20_000 {
        assert_eq!(
            engine.issue(format!("k{i}"), "").unwrap_err(),
            Error::CapacityExceeded { capacity: 10_000 }
        );
    }
    assert_eq!(
        engine.memory_usage().total(),
        full,
        "refusals allocate nothing"
    );
    assert_eq!(engine.stats().capacity_exceeded, 10_000);
    for (i, code) in codes.iter().enumerate() {
        assert!(
            engine
                .verify(format!("k{i}"), code, "")
                .unwrap()
                .is_verified(),
            "k{i} was evicted"
        );
    }
}

/// A random source that replays given bytes, eight to a `u64`, as the sampler reads them.
struct Replay(Vec<u8>, usize);

impl TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut word = [0u8; 8];
        for b in &mut word {
            *b = self.0[self.1 % self.0.len()];
            self.1 += 1;
        }
        Ok(u64::from_le_bytes(word))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.0[self.1 % self.0.len()];
            self.1 += 1;
        }
        Ok(())
    }
}

#[test]
fn the_sampler_rejects_exactly_the_biased_range() {
    // Digits: 250..=255 would favour 0-5, so they are skipped; 249 is the last kept.
    let bytes = vec![
        250, 251, 252, 253, 254, 255, 249, 0, 9, 10, 99, 100, 248, 255, 3, 7,
    ];
    let code = generate(&mut Replay(bytes, 0), Alphabet::Digits, 6);
    assert_eq!(
        code.as_str(),
        "909090",
        "249 -> 9, 0 -> 0, 9 -> 9, 10 -> 0, 99 -> 9, 100 -> 0"
    );
    // Every byte value below 250 is kept, each digit exactly 25 times.
    let all: Vec<u8> = (0..=255).collect();
    let mut rng = Replay(all, 0);
    let mut counts = [0u32; 10];
    for _ in 0..25 {
        for b in generate(&mut rng, Alphabet::Digits, 10).bytes() {
            counts[(b - b'0') as usize] += 1;
        }
    }
    assert_eq!(
        counts, [25; 10],
        "one pass over the byte values gives each digit 25 times"
    );
    // 32 symbols divide 256: nothing is rejected, 255 is the last symbol.
    let code = generate(
        &mut Replay(vec![255, 0, 31, 32, 224, 1], 0),
        Alphabet::Alphanumeric,
        6,
    );
    assert_eq!(
        code.as_str(),
        "Z2Z223",
        "255 -> Z, 0 -> 2, 31 -> Z, 32 -> 2, 224 -> 2, 1 -> 3"
    );
}
