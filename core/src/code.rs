//! Codes: the alphabets, uniform generation, and normalisation of what a person typed.
//!
//! A code of `L` symbols over an alphabet of `B` symbols is one number below
//! `B^L` (at most 32^10 = 2^50), written in base `B`. The number is drawn from one
//! 64-bit CSPRNG word by Lemire's multiply-and-reject method ("Fast Random Integer
//! Generation in an Interval", 2019): the word times `B^L` is a 128-bit product
//! whose high half is the number, and a word whose low half falls below
//! `2^64 mod B^L` is rejected, so every number is reached by exactly
//! `floor(2^64 / B^L)` words (no modulo bias). A rejection has a chance below
//! 2^-30 for any code this engine issues, so a code costs one word and no division
//! by a variable.

use std::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Constraint, Field, Got, InvalidInput};
use crate::fork;

/// Shortest code the engine issues.
pub const MIN_CODE_LENGTH: u32 = 4;
/// Longest code the engine issues.
pub const MAX_CODE_LENGTH: u32 = 10;

/// Typed inputs longer than this are a mismatch without being read further, so an
/// attacker's megabyte of spaces costs nothing (and a front end need not pass more).
pub const MAX_TYPED_LEN: usize = 256;

const DIGITS: &[u8; 10] = b"0123456789";
/// Upper-case letters and digits without the look-alikes 0/O and 1/I.
const ALPHANUMERIC: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The symbols codes are made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// `0-9`: easy to type on a phone keypad and to read aloud.
    #[default]
    Digits,
    /// `23456789ABCDEFGHJKLMNPQRSTUVWXYZ`: 5 bits a character, no look-alikes,
    /// case-insensitive on input.
    Alphanumeric,
}

impl Alphabet {
    /// Names as the Python API spells them, in the order of the C ABI's integer values.
    pub const NAMES: &'static [&'static str] = &["digits", "alphanumeric"];

    /// The symbols, in order.
    pub fn symbols(self) -> &'static [u8] {
        match self {
            Alphabet::Digits => DIGITS,
            Alphabet::Alphanumeric => ALPHANUMERIC,
        }
    }

    /// The name as in [`Alphabet::NAMES`].
    pub fn name(self) -> &'static str {
        Self::NAMES[self.index() as usize]
    }

    /// The C ABI's integer value (`OTP_ALPHABET_DIGITS` = 0, `OTP_ALPHABET_ALPHANUMERIC` = 1).
    pub fn index(self) -> u32 {
        match self {
            Alphabet::Digits => 0,
            Alphabet::Alphanumeric => 1,
        }
    }

    /// The alphabet for a C ABI integer value.
    pub fn from_index(index: u32) -> Result<Self, InvalidInput> {
        match index {
            0 => Ok(Alphabet::Digits),
            1 => Ok(Alphabet::Alphanumeric),
            other => Err(InvalidInput {
                field: Field::Alphabet,
                constraint: Constraint::Range { min: 0, max: 1 },
                got: Got::Int(other.into()),
            }),
        }
    }

    /// The alphabet for a name in [`Alphabet::NAMES`].
    pub fn from_name(name: &str) -> Result<Self, InvalidInput> {
        match name {
            "digits" => Ok(Alphabet::Digits),
            "alphanumeric" => Ok(Alphabet::Alphanumeric),
            other => Err(InvalidInput {
                field: Field::Alphabet,
                constraint: Constraint::OneOf(Self::NAMES),
                got: Got::Name(other.to_string()),
            }),
        }
    }

    /// How many different codes of `length` symbols there are: `symbols^length`.
    ///
    /// # Panics
    /// If `length` is outside 4..=10.
    pub fn code_space(self, length: u32) -> u64 {
        assert!(
            (MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&length),
            "code length {length} outside {MIN_CODE_LENGTH}..={MAX_CODE_LENGTH}"
        );
        (self.symbols().len() as u64).pow(length)
    }

    /// The canonical symbol for a typed byte, or `None` when it is not in the alphabet.
    fn canonical(self, typed: u8) -> Option<u8> {
        match self {
            Alphabet::Digits => typed.is_ascii_digit().then_some(typed),
            Alphabet::Alphanumeric => {
                let upper = typed.to_ascii_uppercase();
                ALPHANUMERIC.contains(&upper).then_some(upper)
            }
        }
    }
}

/// A one-time code: ASCII, 4 to 10 symbols. Its bytes are wiped when it is dropped,
/// and `Debug` does not show it, so it does not end up in logs by accident.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    bytes: [u8; MAX_CODE_LENGTH as usize],
    len: u8,
}

impl Code {
    /// `number` as `digits` decimal digits, zero-padded (a HOTP or TOTP code);
    /// `digits` is 4..=10 and `number` below `10^digits`.
    pub(crate) fn from_decimal(number: u64, digits: u32) -> Code {
        debug_assert!((MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&digits));
        let mut code = Code {
            bytes: [0; MAX_CODE_LENGTH as usize],
            len: digits as u8,
        };
        spell::<10>(number, DIGITS, &mut code.bytes[..digits as usize]);
        code
    }

    /// The code as text, e.g. `"042917"`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("codes are built from ASCII alphabets only")
    }

    /// The code's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a code has at least four symbols.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for Code {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Code {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(<{} symbols>)", self.len)
    }
}

/// The generator codes are drawn from, one per shard in memory and one per Redis
/// engine: ChaCha20 seeded from the operating system, and seeded afresh on its
/// first use after `fork()` (`fork.rs` counts the forks), so a child process
/// never draws the codes its parent draws.
pub(crate) struct CodeSource {
    rng: ChaCha20Rng,
    /// The fork generation `rng` was seeded in.
    generation: u64,
}

impl CodeSource {
    pub(crate) fn new() -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *seed).expect("the operating system's random source failed");
        CodeSource {
            rng: ChaCha20Rng::from_seed(*seed),
            generation: fork::generation(),
        }
    }

    /// A uniform code (see [`generate`]); reseeds first in a forked child.
    pub(crate) fn generate(&mut self, alphabet: Alphabet, length: u32) -> Code {
        if self.generation != fork::generation() {
            *self = CodeSource::new();
        }
        generate(&mut self.rng, alphabet, length)
    }
}

/// Draws a uniform code of `length` symbols (4..=10) from `rng`: one 64-bit word,
/// almost always (see the module documentation).
///
/// # Panics
/// If `length` is outside 4..=10; the engine validates it first.
pub fn generate<R: Rng + ?Sized>(rng: &mut R, alphabet: Alphabet, length: u32) -> Code {
    let space = alphabet.code_space(length);
    let mut number = loop {
        if let Some(number) = scale(rng.next_u64(), space, u64::BITS) {
            break number;
        }
    };
    let mut code = Code {
        bytes: [0; MAX_CODE_LENGTH as usize],
        len: length as u8,
    };
    let digits = &mut code.bytes[..length as usize];
    // Constant divisors, so the compiler turns `/` and `%` into multiplies and shifts.
    match alphabet {
        Alphabet::Digits => spell::<10>(number, DIGITS, digits),
        Alphabet::Alphanumeric => spell::<32>(number, ALPHANUMERIC, digits),
    }
    number.zeroize();
    code
}

/// Lemire's multiply-and-reject over a `word_bits`-bit word (64 in the engine;
/// tests use narrower words to check every word exhaustively): the uniform
/// number below `n` that `word` gives, or `None` when `word` lies in the range
/// that would favour some numbers (`word * n mod 2^word_bits < 2^word_bits mod n`).
///
/// `word` must be below `2^word_bits`, `n` between 1 and `2^word_bits`.
#[inline]
pub fn scale(word: u64, n: u64, word_bits: u32) -> Option<u64> {
    debug_assert!((1..=64).contains(&word_bits));
    debug_assert!(n >= 1 && u128::from(n) <= 1u128 << word_bits);
    let product = u128::from(word) * u128::from(n);
    let modulus = 1u128 << word_bits;
    let low = product % modulus;
    // `low < n` is rare, and only then is the division for the threshold needed.
    if low < u128::from(n) {
        let threshold = modulus % u128::from(n);
        if low < threshold {
            return None;
        }
    }
    Some((product >> word_bits) as u64)
}

/// Writes `number` in base `BASE` over `symbols`, most significant symbol first.
fn spell<const BASE: u64>(mut number: u64, symbols: &[u8], out: &mut [u8]) {
    for symbol in out.iter_mut().rev() {
        *symbol = symbols[(number % BASE) as usize];
        number /= BASE;
    }
}

/// What a person typed, reduced to canonical symbols: ASCII spaces and hyphens
/// are dropped and, for the alphanumeric alphabet, letters are upper-cased.
///
/// Returns `None` when the result cannot be a code of this engine (wrong length,
/// a symbol outside the alphabet, non-ASCII, or more than 256 bytes typed). The
/// caller counts that as an ordinary mismatch, never as an error.
pub fn normalize(typed: &[u8], alphabet: Alphabet, length: u32) -> Option<Code> {
    if alphabet == Alphabet::Digits
        && typed.len() == length as usize
        && typed.iter().all(u8::is_ascii_digit)
    {
        // The usual input, the digits exactly: one check and one copy, where
        // `normalize_each` takes a byte at a time to the same code.
        let mut code = Code {
            bytes: [0; MAX_CODE_LENGTH as usize],
            len: length as u8,
        };
        code.bytes[..typed.len()].copy_from_slice(typed);
        return Some(code);
    }
    normalize_each(typed, alphabet, length)
}

/// [`normalize`], a byte at a time.
fn normalize_each(typed: &[u8], alphabet: Alphabet, length: u32) -> Option<Code> {
    if typed.len() > MAX_TYPED_LEN {
        return None;
    }
    let mut code = Code {
        bytes: [0; MAX_CODE_LENGTH as usize],
        len: 0,
    };
    for &b in typed {
        if b == b' ' || b == b'-' {
            continue;
        }
        if u32::from(code.len) == length {
            return None;
        }
        code.bytes[code.len as usize] = alphabet.canonical(b)?;
        code.len += 1;
    }
    (u32::from(code.len) == length).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([7; 32])
    }

    proptest::proptest! {
        /// The digits-exactly shortcut answers what the byte-at-a-time loop does,
        /// for digit strings of every length and for anything else typed.
        #[test]
        fn normalize_agrees_with_the_byte_loop(
            typed in proptest::prop_oneof![
                proptest::collection::vec(b'0'..=b'9', 0..12),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            ],
            length in MIN_CODE_LENGTH..=MAX_CODE_LENGTH,
        ) {
            for alphabet in [Alphabet::Digits, Alphabet::Alphanumeric] {
                let fast = normalize(&typed, alphabet, length);
                let each = normalize_each(&typed, alphabet, length);
                proptest::prop_assert_eq!(
                    fast.as_ref().map(Code::as_bytes),
                    each.as_ref().map(Code::as_bytes)
                );
            }
        }
    }

    #[test]
    fn codes_have_the_length_and_alphabet_asked_for() {
        let mut rng = rng();
        for alphabet in [Alphabet::Digits, Alphabet::Alphanumeric] {
            for len in MIN_CODE_LENGTH..=MAX_CODE_LENGTH {
                let code = generate(&mut rng, alphabet, len);
                assert_eq!(code.len(), len as usize);
                assert!(
                    code.bytes().all(|b| alphabet.symbols().contains(&b)),
                    "{code}"
                );
            }
        }
    }

    /// Over every word of a 16-bit sampler, each number below `n` comes out exactly
    /// `floor(2^16 / n)` times and exactly `2^16 mod n` words are rejected: the same
    /// function the engine runs with 64-bit words, checked exhaustively.
    #[test]
    fn scaling_reaches_every_number_equally_often_and_rejects_only_the_excess() {
        // 10-bit words under Miri, which runs this a thousand times slower.
        let bits: u32 = if cfg!(miri) { 10 } else { 16 };
        let words = 1u64 << bits;
        for n in [10u64, 1000, 10_000, 32, 32 * 32 * 32, 65_535, 65_536] {
            if n > words {
                continue;
            }
            let mut counts = vec![0u32; n as usize];
            let mut rejected = 0u64;
            for word in 0..words {
                match scale(word, n, bits) {
                    Some(number) => counts[number as usize] += 1,
                    None => rejected += 1,
                }
            }
            let each = (words / n) as u32;
            assert!(counts.iter().all(|&c| c == each), "n = {n}: {counts:?}");
            assert_eq!(rejected, words % n, "n = {n}");
        }
    }

    #[test]
    fn codes_spell_the_number_most_significant_symbol_first() {
        let mut out = [0u8; 6];
        spell::<10>(42_917, DIGITS, &mut out);
        assert_eq!(&out, b"042917");
        spell::<32>(31 * 32 + 1, ALPHANUMERIC, &mut out[..4]);
        assert_eq!(&out[..4], b"22Z3");
    }

    #[test]
    fn the_alphanumeric_alphabet_has_no_look_alikes() {
        for b in b"01OI".iter() {
            assert!(!ALPHANUMERIC.contains(b));
        }
        let mut sorted = ALPHANUMERIC.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), 32);
    }

    #[test]
    fn normalisation_drops_spaces_and_hyphens_and_folds_case() {
        let d = Alphabet::Digits;
        assert_eq!(normalize(b"123 456", d, 6).unwrap().as_str(), "123456");
        assert_eq!(normalize(b" 12-34-56 ", d, 6).unwrap().as_str(), "123456");
        let a = Alphabet::Alphanumeric;
        assert_eq!(normalize(b"ab-c2 3z", a, 6).unwrap().as_str(), "ABC23Z");
    }

    #[test]
    fn anything_else_is_not_a_code() {
        let d = Alphabet::Digits;
        assert!(normalize(b"12345", d, 6).is_none(), "too short");
        assert!(normalize(b"1234567", d, 6).is_none(), "too long");
        assert!(normalize(b"12345a", d, 6).is_none(), "letter in digits");
        assert!(
            normalize("12345\u{ff16}".as_bytes(), d, 6).is_none(),
            "full-width digit"
        );
        assert!(
            normalize("12345\u{0666}".as_bytes(), d, 6).is_none(),
            "Arabic-Indic digit"
        );
        assert!(normalize(b"123\t456", d, 6).is_none(), "tab is not ignored");
        let spaces = [b' '; 300];
        assert!(normalize(&spaces, d, 6).is_none(), "overlong input");
        let a = Alphabet::Alphanumeric;
        assert!(
            normalize(b"ABC0EF", a, 6).is_none(),
            "0 is not in the alphabet"
        );
        assert!(
            normalize(b"ABCOEF", a, 6).is_none(),
            "O is not in the alphabet"
        );
    }

    #[test]
    fn debug_does_not_show_the_code() {
        let code = generate(&mut rng(), Alphabet::Digits, 6);
        let shown = format!("{code:?}");
        assert!(!shown.contains(code.as_str()), "{shown}");
    }

    #[test]
    fn alphabet_names_and_indices_round_trip() {
        for a in [Alphabet::Digits, Alphabet::Alphanumeric] {
            assert_eq!(Alphabet::from_name(a.name()).unwrap(), a);
            assert_eq!(Alphabet::from_index(a.index()).unwrap(), a);
        }
        assert_eq!(
            Alphabet::from_index(7).unwrap_err().to_string(),
            "alphabet must be between 0 and 1, got 7"
        );
        assert_eq!(
            Alphabet::from_name("hex").unwrap_err().to_string(),
            "alphabet must be one of \"digits\", \"alphanumeric\", got \"hex\""
        );
    }
}
