//! Authenticator-app codes as pure functions: HOTP (RFC 4226) and TOTP
//! (RFC 6238), their parameters, new secrets, base32 (RFC 4648) as the apps show
//! secrets, the enrolment URI (the Key Uri Format that Google Authenticator
//! defined and every app reads), and an SVG QR code of it.
//!
//! Nothing here keeps state: verifying a TOTP code *once*, with a failure budget,
//! is the engine's job (it needs the replay and failure state of a key).
//!
//! Secrets are 16 to 64 bytes (RFC 4226 R6 asks for at least 128 bits; 20 bytes,
//! 160 bits, is what apps use and what [`generate_secret`] draws by default).
//! Codes come back as [`Code`], which is wiped on drop like the engine's own.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use zeroize::Zeroizing;

use crate::code::Code;
use crate::error::{Constraint, Field, Got, InvalidInput};

/// Bounds of [`TotpParams::digits`] and of `hotp`'s `digits`.
pub const DIGITS_RANGE: (u32, u32) = (6, 8);
/// Bounds of [`TotpParams::period`] (whole seconds).
pub const PERIOD_RANGE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(300));
/// Bounds of [`TotpParams::skew_back`] and [`TotpParams::skew_ahead`], in steps.
pub const SKEW_RANGE: (u32, u32) = (0, 10);
/// Bounds of a TOTP or HOTP secret's length, in bytes.
pub const SECRET_LEN_RANGE: (usize, usize) = (16, 64);
/// The length [`generate_secret`] is asked for by front ends that let it default.
pub const DEFAULT_SECRET_LEN: usize = 20;
/// The latest time TOTP codes are computed for: the end of year 9999 UTC, in
/// Unix seconds (times past it would overflow the step arithmetic).
pub const MAX_UNIX_TIME: u64 = 253_402_300_799;
/// Bounds of an issuer's or account's length in an enrolment URI, in bytes.
pub const LABEL_LEN_RANGE: (usize, usize) = (1, 255);

/// The HMAC hash of HOTP and TOTP codes (RFC 6238 §1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// HMAC-SHA-1: the default, and what nearly every enrolment uses.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The names, in the order of the C ABI's and Go's integer values.
    pub const NAMES: &'static [&'static str] = &["SHA1", "SHA256", "SHA512"];

    /// The name as the Key Uri Format writes it (`SHA1`, `SHA256`, `SHA512`).
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The algorithm named `name` (case-insensitive; `SHA-1` and the like too).
    pub fn from_name(name: &str) -> Result<Self, InvalidInput> {
        let plain: String = name.chars().filter(|&c| c != '-').collect();
        match plain.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(HashAlgorithm::Sha1),
            "SHA256" => Ok(HashAlgorithm::Sha256),
            "SHA512" => Ok(HashAlgorithm::Sha512),
            _ => Err(InvalidInput {
                field: Field::TotpAlgorithm,
                constraint: Constraint::OneOf(Self::NAMES),
                got: Got::Name(name.to_owned()),
            }),
        }
    }

    /// The algorithm at `index` in [`HashAlgorithm::NAMES`] (C and Go pass integers).
    pub fn from_index(index: u64) -> Result<Self, InvalidInput> {
        match index {
            0 => Ok(HashAlgorithm::Sha1),
            1 => Ok(HashAlgorithm::Sha256),
            2 => Ok(HashAlgorithm::Sha512),
            _ => Err(InvalidInput {
                field: Field::TotpAlgorithm,
                constraint: Constraint::OneOf(Self::NAMES),
                got: Got::Int(index),
            }),
        }
    }
}

/// How TOTP codes are computed and which time steps a verify accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    /// Digits per code, 6 to 8 (default 6).
    pub digits: u32,
    /// The time step, whole seconds from 10 s to 300 s (default 30 s).
    pub period: Duration,
    /// The HMAC hash (default SHA-1).
    pub algorithm: HashAlgorithm,
    /// Steps before the current one a verify accepts, 0 to 10 (default 1).
    pub skew_back: u32,
    /// Steps after the current one a verify accepts, 0 to 10 (default 1).
    pub skew_ahead: u32,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            digits: 6,
            period: Duration::from_secs(30),
            algorithm: HashAlgorithm::Sha1,
            skew_back: 1,
            skew_ahead: 1,
        }
    }
}

impl TotpParams {
    /// Checks every field against its bounds; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_digits(self.digits)?;
        let (min, max) = PERIOD_RANGE;
        if !(min..=max).contains(&self.period) || self.period.subsec_nanos() != 0 {
            return Err(InvalidInput {
                field: Field::TotpPeriod,
                constraint: Constraint::DurationRange { min, max },
                got: Got::Duration(self.period),
            });
        }
        crate::policy::count(Field::TotpSkewBack, self.skew_back, SKEW_RANGE)?;
        crate::policy::count(Field::TotpSkewAhead, self.skew_ahead, SKEW_RANGE)
    }

    /// The period in whole seconds (valid parameters only).
    pub fn period_secs(&self) -> u64 {
        self.period.as_secs()
    }

    /// The time step of `unix_time` (RFC 6238: `floor(unix_time / period)`).
    pub fn step(&self, unix_time: u64) -> u64 {
        unix_time / self.period_secs().max(1)
    }
}

/// The HOTP code of `secret` at `counter` (RFC 4226 §5.3: HMAC, dynamic
/// truncation, the low `digits` decimal digits).
pub fn hotp(
    secret: &[u8],
    counter: u64,
    digits: u32,
    algorithm: HashAlgorithm,
) -> Result<Code, InvalidInput> {
    check_secret(secret)?;
    check_digits(digits)?;
    Ok(hotp_unchecked(secret, counter, digits, algorithm))
}

/// The TOTP code of `secret` at `unix_time` (seconds since 1970, UTC, up to
/// [`MAX_UNIX_TIME`]; RFC 6238 §4).
pub fn totp(secret: &[u8], unix_time: u64, params: &TotpParams) -> Result<Code, InvalidInput> {
    check_secret(secret)?;
    params.validate()?;
    check_unix_time(unix_time)?;
    Ok(hotp_unchecked(
        secret,
        params.step(unix_time),
        params.digits,
        params.algorithm,
    ))
}

/// [`hotp`] with its arguments already checked (the engine checks them once).
pub(crate) fn hotp_unchecked(
    secret: &[u8],
    counter: u64,
    digits: u32,
    algorithm: HashAlgorithm,
) -> Code {
    let mac = hmac_of(secret, &counter.to_be_bytes(), algorithm);
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word =
        u32::from_be_bytes(mac[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    let number = u64::from(word) % 10u64.pow(digits);
    Code::from_decimal(number, digits)
}

/// HMAC of `message` under `secret`, wiped on drop.
fn hmac_of(secret: &[u8], message: &[u8], algorithm: HashAlgorithm) -> Zeroizing<Vec<u8>> {
    fn run<M: Mac + KeyInit>(secret: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut mac =
            <M as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(message);
        Zeroizing::new(mac.finalize().into_bytes().to_vec())
    }
    match algorithm {
        HashAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(secret, message),
        HashAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(secret, message),
        HashAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(secret, message),
    }
}

/// What a TOTP verify hands its backend: which of the allowed time steps the
/// typed code matched, computed and compared in constant time before any lock
/// or round trip (the secret never reaches the store), and what it takes to say
/// how long an accepted step must be remembered.
pub(crate) struct TotpCheck {
    /// The earliest allowed step.
    pub(crate) first_step: u64,
    /// Bit `i`: the code matched step `first_step + i`.
    pub(crate) matched: u32,
    /// The step length and the wall time of the call, in ms.
    pub(crate) period_ms: u64,
    pub(crate) unix_ms: u64,
}

impl TotpCheck {
    /// Computes the code of every allowed step at `unix_ms` and compares each
    /// with `typed` (normalised: ASCII spaces and hyphens dropped; anything else
    /// that is not `digits` digits matches nothing), all of them whatever matches.
    pub(crate) fn new(secret: &[u8], typed: &[u8], p: &TotpParams, unix_ms: u64) -> Self {
        use subtle::ConstantTimeEq;
        let now_step = p.step(unix_ms / 1000);
        let first_step = now_step.saturating_sub(u64::from(p.skew_back));
        let last_step = now_step + u64::from(p.skew_ahead);
        let guess = crate::code::normalize(typed, crate::Alphabet::Digits, p.digits);
        let mut matched = 0;
        for (b, step) in (first_step..=last_step).enumerate() {
            let code = hotp_unchecked(secret, step, p.digits, p.algorithm);
            let hit = match &guess {
                Some(guess) => guess.as_bytes().ct_eq(code.as_bytes()),
                None => subtle::Choice::from(0),
            };
            matched |= u32::from(hit.unwrap_u8()) << b;
        }
        TotpCheck {
            first_step,
            matched,
            period_ms: p.period_secs() * 1000,
            unix_ms,
        }
    }

    /// How long after now some call could still accept `step`: until wall time
    /// `(step + 1 + the largest skew back) * period` (`redis/lua/verify_totp.lua`
    /// computes the same).
    pub(crate) fn replay_for(&self, step: u64) -> u64 {
        ((step + 1 + u64::from(SKEW_RANGE.1)) * self.period_ms).saturating_sub(self.unix_ms)
    }
}

/// A new random secret of `len` bytes (16 to 64; apps expect 20) from the
/// operating system, wiped on drop.
pub fn generate_secret(len: usize) -> Result<Zeroizing<Vec<u8>>, InvalidInput> {
    check_secret_length(len)?;
    let mut secret = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut secret).expect("the operating system's random source failed");
    Ok(secret)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in base32 (RFC 4648 §6), upper case, without padding: how
/// authenticator apps show and take secrets.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = buffer << 8 | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[(buffer >> bits) as usize & 31]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[(buffer << (5 - bits)) as usize & 31]));
    }
    out
}

/// The bytes of base32 `text` (RFC 4648 §6): case-insensitive, spaces and hyphens
/// ignored (apps print secrets in groups), `=` padding optional at the end. A
/// length no encoding has (1, 3 or 6 symbols past a multiple of 8) is refused.
/// The error names `secret` and never repeats the text.
pub fn base32_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, InvalidInput> {
    let refuse = || InvalidInput {
        field: Field::TotpSecret,
        constraint: Constraint::Format("base32 (RFC 4648: A-Z and 2-7, padding optional)"),
        got: Got::Bytes(text.len()),
    };
    let symbols = text.trim_end_matches(['=', ' ']);
    let mut out = Zeroizing::new(Vec::with_capacity(symbols.len() * 5 / 8));
    let (mut buffer, mut bits, mut count) = (0u32, 0u32, 0usize);
    for c in symbols.bytes() {
        let value = match c.to_ascii_uppercase() {
            b' ' | b'-' => continue,
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(refuse()),
        };
        buffer = (buffer << 5 | u32::from(value)) & 0xfff;
        bits += 5;
        count += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    if matches!(count % 8, 1 | 3 | 6) {
        return Err(refuse());
    }
    Ok(out)
}

/// The enrolment URI of the Key Uri Format:
/// `otpauth://totp/<Issuer>:<account>?secret=<BASE32>&issuer=<Issuer>&algorithm=SHA1&digits=6&period=30`,
/// label and values percent-encoded, the issuer in both places (older apps read
/// the label, newer ones the parameter), and every parameter written out.
pub fn otpauth_uri(
    secret: &[u8],
    issuer: &str,
    account: &str,
    params: &TotpParams,
) -> Result<String, InvalidInput> {
    check_secret(secret)?;
    params.validate()?;
    check_label(Field::TotpIssuer, issuer)?;
    check_label(Field::TotpAccount, account)?;
    let secret = Zeroizing::new(base32_encode(secret));
    let mut uri = String::from("otpauth://totp/");
    percent_encode(&mut uri, issuer);
    uri.push(':');
    percent_encode(&mut uri, account);
    uri.push_str("?secret=");
    uri.push_str(&secret);
    uri.push_str("&issuer=");
    percent_encode(&mut uri, issuer);
    write!(
        uri,
        "&algorithm={}&digits={}&period={}",
        params.algorithm.name(),
        params.digits,
        params.period_secs()
    )
    .expect("writing to a String");
    Ok(uri)
}

/// The most bytes a QR code holds: version 40 at error correction M, in byte mode.
pub const MAX_QR_TEXT_LEN: usize = 2331;

/// Checks the length of a QR code's text (0..=2331 bytes); for front ends that
/// receive a pointer and a length.
pub fn check_qr_text_length(len: usize) -> Result<(), InvalidInput> {
    if len <= MAX_QR_TEXT_LEN {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::QrText,
        constraint: Constraint::Length {
            min: 0,
            max: MAX_QR_TEXT_LEN,
        },
        got: Got::Bytes(len),
    })
}

/// `text` (an enrolment URI, say) as a QR code in SVG, black on white, with a quiet
/// zone, at least 200 pixels square.
pub fn qr_svg(text: &str) -> Result<String, InvalidInput> {
    check_qr_text_length(text.len())?;
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|_| InvalidInput {
        field: Field::QrText,
        constraint: Constraint::Length {
            min: 0,
            max: MAX_QR_TEXT_LEN,
        },
        got: Got::Bytes(text.len()),
    })?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

/// Appends `text` with everything but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").expect("writing to a String");
        }
    }
}

/// Checks a time for TOTP: Unix seconds from 1970 to the end of 9999.
pub fn check_unix_time(unix_time: u64) -> Result<(), InvalidInput> {
    if unix_time <= MAX_UNIX_TIME {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::TotpAt,
        constraint: Constraint::Format("a time between 1970-01-01 and 9999-12-31 UTC"),
        got: Got::Raw(format!("{unix_time} s after 1970")),
    })
}

pub(crate) fn check_secret(secret: &[u8]) -> Result<(), InvalidInput> {
    check_secret_length(secret.len())
}

/// Checks a TOTP or HOTP secret's length (16..=64 bytes), for front ends that
/// check a length before they form the bytes.
pub fn check_secret_length(len: usize) -> Result<(), InvalidInput> {
    let (min, max) = SECRET_LEN_RANGE;
    if (min..=max).contains(&len) {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::TotpSecret,
        constraint: Constraint::Length { min, max },
        got: Got::Bytes(len),
    })
}

fn check_digits(digits: u32) -> Result<(), InvalidInput> {
    crate::policy::count(Field::TotpDigits, digits, DIGITS_RANGE)
}

fn check_label(field: Field, text: &str) -> Result<(), InvalidInput> {
    let (min, max) = LABEL_LEN_RANGE;
    if (min..=max).contains(&text.len()) {
        return Ok(());
    }
    Err(InvalidInput {
        field,
        constraint: Constraint::Length { min, max },
        got: Got::Bytes(text.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC4226_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 4226 Appendix D: HOTP, SHA-1, 6 digits, counters 0 to 9.
    #[test]
    fn hotp_gives_the_rfc_4226_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in want.iter().enumerate() {
            let code = hotp(RFC4226_SECRET, counter as u64, 6, HashAlgorithm::Sha1).unwrap();
            assert_eq!(code.as_str(), *want, "counter {counter}");
        }
    }

    /// RFC 6238 Appendix B: TOTP, 8 digits, period 30 s, all three hashes, with
    /// the seed of each hash's length.
    #[test]
    fn totp_gives_the_rfc_6238_vectors() {
        let seed20 = b"12345678901234567890".to_vec();
        let seed32 = b"12345678901234567890123456789012".to_vec();
        let seed64 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let rows: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in rows {
            for (seed, algorithm, want) in [
                (&seed20, HashAlgorithm::Sha1, sha1),
                (&seed32, HashAlgorithm::Sha256, sha256),
                (&seed64, HashAlgorithm::Sha512, sha512),
            ] {
                let params = TotpParams {
                    digits: 8,
                    algorithm,
                    ..TotpParams::default()
                };
                let code = totp(seed, time, &params).unwrap();
                assert_eq!(code.as_str(), want, "{algorithm:?} at {time}");
            }
        }
    }

    #[test]
    fn bad_parameters_name_the_field_the_bound_and_the_value() {
        let err = |p: TotpParams| totp(RFC4226_SECRET, 0, &p).unwrap_err().to_string();
        let d = TotpParams::default;
        assert_eq!(
            err(TotpParams { digits: 5, ..d() }),
            "digits must be between 6 and 8, got 5"
        );
        assert_eq!(
            err(TotpParams {
                period: Duration::from_secs(5),
                ..d()
            }),
            "period must be between 10s and 5m, got 5s"
        );
        assert_eq!(
            err(TotpParams {
                period: Duration::from_millis(30_500),
                ..d()
            }),
            "period must be between 10s and 5m, got 30.5s"
        );
        assert_eq!(
            err(TotpParams {
                skew_back: 11,
                ..d()
            }),
            "skew_back must be between 0 and 10, got 11"
        );
        assert_eq!(
            err(TotpParams {
                skew_ahead: 11,
                ..d()
            }),
            "skew_ahead must be between 0 and 10, got 11"
        );
        assert_eq!(
            totp(&[1; 15], 0, &d()).unwrap_err().to_string(),
            "secret must be between 16 and 64 bytes long, got 15 bytes"
        );
        assert_eq!(
            HashAlgorithm::from_name("MD5").unwrap_err().to_string(),
            "algorithm must be one of \"SHA1\", \"SHA256\", \"SHA512\", got \"MD5\""
        );
        assert_eq!(
            HashAlgorithm::from_name("sha-256").unwrap(),
            HashAlgorithm::Sha256
        );
        assert!(generate_secret(65).is_err());
        assert_eq!(generate_secret(DEFAULT_SECRET_LEN).unwrap().len(), 20);
    }

    /// RFC 4648 §10's base32 vectors (without padding on output).
    #[test]
    fn base32_gives_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(&**base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(&**base32_decode("mzxw 6ytb-oi======").unwrap(), b"foobar");
        let err = base32_decode("MZXW1").unwrap_err().to_string();
        assert!(err.starts_with("secret must be base32"), "{err}");
        assert!(
            !err.contains("MZXW1"),
            "the error never repeats the secret: {err}"
        );
        assert!(
            base32_decode("MZX").is_err(),
            "no encoding is 3 symbols long"
        );
    }

    #[test]
    fn the_enrolment_uri_writes_every_parameter() {
        let uri = otpauth_uri(
            b"12345678901234567890",
            "Acme Bank",
            "alice@example.com",
            &TotpParams::default(),
        )
        .unwrap();
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Bank:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Bank&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri(b"12345678901234567890", "", "a", &TotpParams::default()).is_err());
        let svg = qr_svg(&uri).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            &svg[..60]
        );
        assert!(qr_svg(&"x".repeat(3000)).is_err());
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(&**base32_decode(&base32_encode(&bytes)).unwrap(), &bytes[..]);
            let lower = base32_encode(&bytes).to_ascii_lowercase();
            prop_assert_eq!(&**base32_decode(&lower).unwrap(), &bytes[..]);
        }

        #[test]
        fn codes_have_their_digits(secret in prop::collection::vec(any::<u8>(), 16..=64), counter: u64, digits in 6u32..=8) {
            for algorithm in [HashAlgorithm::Sha1, HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
                let code = hotp(&secret, counter, digits, algorithm).unwrap();
                prop_assert_eq!(code.len(), digits as usize);
                prop_assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
