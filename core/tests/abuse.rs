//! The numbers SECURITY.md promises, measured through the public API on the
//! manual clock: how many guesses an attacker gets per key with the defaults,
//! and that a full engine refuses new keys without evicting anyone.

use std::time::Duration;

use otpengine_core::code::{generate, scale};
use otpengine_core::{Alphabet, Clock, Config, Engine, Error, ManualClock, Verdict};
use rand_core::{Infallible, TryRng};

/// An attacker who does everything the defaults allow for one key: asks for a
/// code whenever allowed, and spends every wrong guess it is allowed; returns
/// the number of guesses counted by the engine in each of `spans` (cumulative,
/// from the start).
fn guesses_by(escalate_lockouts: bool, spans: &[Duration]) -> Vec<u64> {
    let clock = ManualClock::new();
    let engine = Engine::new(Config {
        clock: Clock::manual(&clock),
        reaper_interval: None,
        escalate_lockouts,
        ..Config::default()
    })
    .unwrap();
    let key = "+15551234567/login";
    let step = Duration::from_secs(1);
    let (mut guesses, mut counts) = (0, Vec::new());
    for &span in spans {
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
                Err(Error::RateLimited { retry_after, .. })
                | Err(Error::Locked { retry_after, .. }) => {
                    // Waits out the refusal, but never past the span's end.
                    let left = span.saturating_sub(clock.now());
                    clock.advance(retry_after.max(step).min(left.max(step)));
                }
                Err(e) => panic!("{e}"),
            }
        }
        counts.push(guesses);
    }
    counts
}

const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn without_escalation_the_defaults_allow_about_100_guesses_per_92_minutes_per_key() {
    // SECURITY.md: 100 failures take 20 codes, issued in four windows starting
    // 10 minutes apart (the last code at about 32 minutes), then a 1-hour lockout:
    // about 100 guesses per 92 minutes, about 1,565 a day.
    let [first_hour, day] = guesses_by(false, &[HOUR, DAY])[..] else {
        unreachable!()
    };
    assert_eq!(first_hour, 100, "the whole budget, then the lockout");
    assert!((1_450..=1_700).contains(&day), "{day} guesses in a day");
    println!("without escalation: {first_hour} guesses in the first hour, {day} in a day");
}

#[test]
fn with_escalation_the_defaults_allow_500_guesses_a_day_and_about_1200_a_year_later() {
    // SECURITY.md: rounds of 100 guesses, each about 32 minutes of issuing and
    // then a lockout of 1 h, 2 h, 4 h, ... up to 30 days: 5 rounds in the
    // first day, 21 in the first year, then one per 30 days and 32 minutes.
    let year = 365 * DAY;
    let counts = guesses_by(true, &[HOUR, DAY, year, 2 * year]);
    let [first_hour, day, first_year, two_years] = counts[..] else {
        unreachable!()
    };
    assert_eq!(first_hour, 100, "the whole budget, then the lockout");
    assert_eq!(day, 500, "lockouts of 1, 2, 4 and 8 hours, then 16");
    assert_eq!(
        first_year, 2_100,
        "10 doublings to 30 days, then 11 rounds at 30 days"
    );
    let second_year = two_years - first_year;
    assert!(
        (1_100..=1_300).contains(&second_year),
        "{second_year} guesses in the second year"
    );
    println!(
        "with escalation: {day} guesses in a day, {first_year} in the first year, \
         {second_year} in the second"
    );
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
        assert!(matches!(
            engine.issue(format!("k{i}"), ""),
            Err(Error::CapacityExceeded {
                capacity: 10_000,
                out_of_memory: None,
                ..
            })
        ));
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

/// A random source that replays given 64-bit words, then fails the test if asked
/// for more.
struct Replay(Vec<u64>, usize);

impl TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let word = *self
            .0
            .get(self.1)
            .expect("the sampler asked for one word too many");
        self.1 += 1;
        Ok(word)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Infallible> {
        unreachable!("the sampler reads whole words")
    }
}

/// The word whose product with `n` has low half `low`: `word * n = low (mod 2^64)`.
/// `n = 2^k * odd`; `low` must be a multiple of `2^k`. Inverts the odd part by
/// Newton's iteration (each step doubles the correct low bits).
fn word_with_low_product(n: u64, low: u64) -> u64 {
    let k = n.trailing_zeros();
    let odd = n >> k;
    assert_eq!(low % (1 << k), 0);
    let mut inverse = odd; // correct to 3 bits for any odd number
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
    }
    (low >> k).wrapping_mul(inverse)
}

#[test]
fn the_sampler_rejects_exactly_the_biased_range() {
    // Six digits: numbers below 10^6 from 64-bit words. Words whose low product is
    // below 2^64 mod 10^6 = 551,616 would favour some numbers and are skipped.
    let n = Alphabet::Digits.code_space(6);
    let threshold = n.wrapping_neg() % n;
    assert_eq!(threshold, 551_616);
    // Products of 10^6 = 2^6 * 15,625 are multiples of 64: the largest rejected
    // low half is threshold - 64, the smallest kept one is the threshold itself.
    let last_rejected = word_with_low_product(n, threshold - 64);
    let first_kept = word_with_low_product(n, threshold);
    assert_eq!(last_rejected.wrapping_mul(n), threshold - 64);
    assert_eq!(scale(last_rejected, n, 64), None);
    let kept = scale(first_kept, n, 64).expect("the threshold itself is kept");
    let code = generate(
        &mut Replay(vec![last_rejected, first_kept], 0),
        Alphabet::Digits,
        6,
    );
    assert_eq!(
        code.as_str(),
        format!("{kept:06}"),
        "the rejected word is skipped, the next one is the code"
    );
    // Word 0 is rejected (low product 0); the top word gives the top code.
    let code = generate(&mut Replay(vec![0, u64::MAX], 0), Alphabet::Digits, 6);
    assert_eq!(code.as_str(), "999999");
    // 32^6 = 2^30 divides 2^64: no word is rejected, not even word 0.
    let code = generate(&mut Replay(vec![0], 0), Alphabet::Alphanumeric, 6);
    assert_eq!(code.as_str(), "222222");
    let code = generate(&mut Replay(vec![u64::MAX], 0), Alphabet::Alphanumeric, 6);
    assert_eq!(code.as_str(), "ZZZZZZ");
}
