//! Codes are uniform over the alphabet at every position: a chi-square test over
//! 1,000,000 codes (so 1,000,000 characters per position) drawn through the engine.

use std::time::Duration;

use otpengine_core::{Alphabet, Clock, Config, Engine, ManualClock};

const CODES: usize = 1_000_000;
const LENGTH: usize = 6;

/// Chi-square statistic of `counts` against a uniform distribution.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// The chi-square value exceeded with probability about 1e-6 (z = 4.75), by the
/// Wilson-Hilferty approximation; a fair generator fails one position in a million.
fn critical(df: f64) -> f64 {
    let z = 4.75;
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

fn counts_per_position(codes: impl Iterator<Item = String>, alphabet: Alphabet) -> Vec<Vec<u64>> {
    let symbols = alphabet.symbols();
    let mut counts = vec![vec![0u64; symbols.len()]; LENGTH];
    for code in codes {
        for (pos, b) in code.bytes().enumerate() {
            let index = symbols
                .iter()
                .position(|&s| s == b)
                .expect("symbol of the alphabet");
            counts[pos][index] += 1;
        }
    }
    counts
}

fn engine_codes(alphabet: Alphabet) -> impl Iterator<Item = String> {
    let engine = Engine::new(Config {
        alphabet,
        code_length: LENGTH as u32,
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        clock: Clock::manual(&ManualClock::new()),
        reaper_interval: None,
        ..Config::default()
    })
    .unwrap();
    // Keys spread over every shard, each issued many times (issue replaces).
    (0..CODES).map(move |i| {
        engine
            .issue(format!("k{}", i % 4096), "")
            .unwrap()
            .code
            .to_string()
    })
}

#[test]
fn every_position_is_uniform_for_both_alphabets() {
    for alphabet in [Alphabet::Digits, Alphabet::Alphanumeric] {
        let counts = counts_per_position(engine_codes(alphabet), alphabet);
        let limit = critical((alphabet.symbols().len() - 1) as f64);
        for (pos, c) in counts.iter().enumerate() {
            let chi2 = chi_square(c);
            println!("{alphabet:?} position {pos}: chi2 = {chi2:.1} (limit {limit:.1})");
            assert!(
                chi2 < limit,
                "{alphabet:?} position {pos}: chi2 {chi2:.1} >= {limit:.1}: {c:?}"
            );
        }
    }
}

/// The test above would see modulo bias: `byte % 10` without rejection makes
/// 0-5 more likely than 6-9 by 1/25, which this many samples show plainly.
#[test]
fn the_test_detects_modulo_bias() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let biased = (0..CODES).map(|_| {
        (0..LENGTH)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (b'0' + ((state >> 24) as u8) % 10) as char
            })
            .collect::<String>()
    });
    let counts = counts_per_position(biased, Alphabet::Digits);
    for c in &counts {
        assert!(
            chi_square(c) > critical(9.0) * 3.0,
            "bias went unseen: {c:?}"
        );
    }
}

#[test]
fn code_spaces_are_the_alphabet_size_to_the_length() {
    assert_eq!(Alphabet::Digits.code_space(6), 1_000_000);
    assert_eq!(Alphabet::Digits.code_space(10), 10_000_000_000);
    assert_eq!(Alphabet::Alphanumeric.code_space(10), 1 << 50);
}
