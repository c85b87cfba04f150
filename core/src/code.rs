//! Codes: the alphabets, uniform generation, and normalisation of what a person typed.
//!
//! Generation draws one byte per character from a CSPRNG and rejects bytes at or
//! above the largest multiple of the alphabet size that fits in a byte, so every
//! symbol is exactly equally likely (no modulo bias): for digits, bytes 250..=255
//! are rejected and `b % 10` is taken; for the 32-symbol alphabet no byte is rejected.

use std::fmt;

use rand_core::Rng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Constraint, Field, Got, InvalidInput};

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

    /// Bytes at or above this are rejected by the sampler: the largest multiple
    /// of the alphabet size that is at most 256.
    pub fn rejection_limit(self) -> u16 {
        let n = self.symbols().len() as u16;
        256 - 256 % n
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

/// Draws a uniform code of `length` symbols (4..=10) from `rng` by rejection sampling.
///
/// # Panics
/// If `length` is outside 4..=10; the engine validates it first.
pub fn generate<R: Rng + ?Sized>(rng: &mut R, alphabet: Alphabet, length: u32) -> Code {
    assert!(
        (MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&length),
        "code length {length} outside {MIN_CODE_LENGTH}..={MAX_CODE_LENGTH}"
    );
    let symbols = alphabet.symbols();
    let n = symbols.len() as u16;
    let limit = alphabet.rejection_limit();
    let mut code = Code {
        bytes: [0; MAX_CODE_LENGTH as usize],
        len: length as u8,
    };
    // One u64 gives eight candidate bytes; a 6-digit code almost always needs one draw.
    let mut pool = 0u64;
    let mut left = 0u32;
    for slot in &mut code.bytes[..length as usize] {
        let byte = loop {
            if left == 0 {
                pool = rng.next_u64();
                left = 8;
            }
            let candidate = (pool & 0xff) as u16;
            pool >>= 8;
            left -= 1;
            if candidate < limit {
                break candidate;
            }
        };
        *slot = symbols[(byte % n) as usize];
    }
    pool.zeroize();
    code
}

/// What a person typed, reduced to canonical symbols: ASCII spaces and hyphens
/// are dropped and, for the alphanumeric alphabet, letters are upper-cased.
///
/// Returns `None` when the result cannot be a code of this engine (wrong length,
/// a symbol outside the alphabet, non-ASCII, or more than 256 bytes typed). The
/// caller counts that as an ordinary mismatch, never as an error.
pub fn normalize(typed: &[u8], alphabet: Alphabet, length: u32) -> Option<Code> {
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
