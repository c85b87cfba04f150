//! What a person types is normalised (ASCII spaces and hyphens dropped, case
//! folded for the alphanumeric alphabet) and nothing else: a code never verifies
//! twice through two spellings, sequentially or at the same moment (the class of
//! CVE-2025-6014, where whitespace let a used code past a reuse check), and
//! look-alike digits, other separators and overlong input never verify at all.

use std::time::Duration;

use otpengine_core::{Alphabet, Clock, Config, Engine, ManualClock, Verdict};
use proptest::prelude::*;

fn engine(alphabet: Alphabet) -> Engine {
    Engine::new(Config {
        alphabet,
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        max_attempts: 100,
        max_failures_per_key: 0,
        clock: Clock::manual(&ManualClock::new()),
        reaper_interval: None,
        ..Config::default()
    })
    .expect("valid config")
}

/// A spelling the engine must accept as the code itself.
#[derive(Clone, Debug)]
enum Accepted {
    Space(usize),
    Hyphen(usize),
    FlipCase(usize),
}

/// A change after which the text is not the code.
#[derive(Clone, Debug)]
enum Refused {
    /// Tab, no-break space, en dash, zero-width space, ideographic space.
    Separator(usize, usize),
    /// Full-width or Arabic-Indic form of the digit at a position.
    LookAlike(usize, bool),
    /// Enough trailing spaces to pass 256 bytes typed.
    Overlong,
}

fn spell(code: &str, changes: &[Accepted]) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    for change in changes {
        match *change {
            Accepted::Space(i) => chars.insert(i % (chars.len() + 1), ' '),
            Accepted::Hyphen(i) => chars.insert(i % (chars.len() + 1), '-'),
            Accepted::FlipCase(i) => {
                let n = chars.len();
                let c = &mut chars[i % n];
                *c = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
        }
    }
    chars.into_iter().collect()
}

fn break_spelling(code: &str, change: &Refused) -> Option<String> {
    let mut chars: Vec<char> = code.chars().collect();
    match *change {
        Refused::Separator(i, which) => {
            let sep = ['\t', '\u{a0}', '\u{2013}', '\u{200b}', '\u{3000}'][which % 5];
            chars.insert(i % (chars.len() + 1), sep);
        }
        Refused::LookAlike(i, full_width) => {
            let n = chars.len();
            let c = &mut chars[i % n];
            let d = c.to_digit(10)?; // letters have no look-alike here
            *c = char::from_u32(if full_width { 0xFF10 } else { 0x0660 } + d)?;
        }
        Refused::Overlong => chars.resize(chars.len() + 260, ' '),
    }
    Some(chars.into_iter().collect())
}

fn accepted() -> impl Strategy<Value = Vec<Accepted>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..8).prop_map(Accepted::Space),
            (0usize..8).prop_map(Accepted::Hyphen),
            (0usize..8).prop_map(Accepted::FlipCase),
        ],
        0..6,
    )
}

fn refused() -> impl Strategy<Value = Refused> {
    prop_oneof![
        (0usize..8, 0usize..5).prop_map(|(i, w)| Refused::Separator(i, w)),
        (0usize..8, any::<bool>()).prop_map(|(i, f)| Refused::LookAlike(i, f)),
        Just(Refused::Overlong),
    ]
}

fn alphabet() -> impl Strategy<Value = Alphabet> {
    prop_oneof![Just(Alphabet::Digits), Just(Alphabet::Alphanumeric)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500),
        ..ProptestConfig::default()
    })]

    /// Two accepted spellings one after the other: the first verifies, the
    /// second finds the code gone.
    #[test]
    fn two_spellings_verify_once(a in alphabet(), first in accepted(), second in accepted()) {
        let engine = engine(a);
        let code = engine.issue("alice", "").unwrap().code;
        let verdict = engine.verify("alice", spell(&code, &first), "").unwrap();
        prop_assert_eq!(verdict, Verdict::Verified);
        let verdict = engine.verify("alice", spell(&code, &second), "").unwrap();
        prop_assert_eq!(verdict, Verdict::NotFound);
    }

    /// Two accepted spellings at the same moment from two threads: exactly one
    /// of them verifies.
    #[test]
    fn two_spellings_at_once_verify_once(a in alphabet(), first in accepted(), second in accepted()) {
        let engine = engine(a);
        let code = engine.issue("alice", "").unwrap().code;
        let spellings = [spell(&code, &first), spell(&code, &second)];
        let barrier = std::sync::Barrier::new(2);
        let verdicts: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = spellings
                .iter()
                .map(|typed| {
                    let (engine, barrier) = (&engine, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        engine.verify("alice", typed, "").unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let verified = verdicts.iter().filter(|v| v.is_verified()).count();
        prop_assert_eq!(verified, 1, "{:?}", verdicts);
    }

    /// Look-alike digits, other separators and overlong input are an ordinary
    /// counted mismatch, and the code itself still verifies afterwards.
    #[test]
    fn look_alikes_and_other_separators_never_verify(
        a in alphabet(),
        ok in accepted(),
        change in refused(),
    ) {
        let engine = engine(a);
        let code = engine.issue("alice", "").unwrap().code;
        let spelled = spell(&code, &ok);
        let Some(typed) = break_spelling(&spelled, &change) else {
            return Ok(()); // a letter has no digit look-alike
        };
        let verdict = engine.verify("alice", &typed, "").unwrap();
        prop_assert_eq!(verdict, Verdict::Mismatch { attempts_left: 99 }, "{:?}", typed);
        prop_assert_eq!(engine.verify("alice", spelled, "").unwrap(), Verdict::Verified);
    }
}
