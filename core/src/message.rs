//! The texts that carry a code to a person: an SMS (with the line that lets a
//! browser or phone fill the code in by itself) and a voice call. Pure
//! functions with no state, so that every language formats codes alike.
//!
//! Two specifications shape an SMS:
//! - the WICG *SMS one-time codes* format
//!   (<https://wicg.github.io/sms-one-time-codes/>): a last line `@<host>
//!   #<code>` binds the code to an origin, so that the WebOTP API in the
//!   browser and the iOS and Android keyboards offer it on that site only, and
//!   never on a phishing one;
//! - Google's SMS Retriever API
//!   (<https://developers.google.com/identity/sms-retriever/verify>): an
//!   Android app reads the code without any permission when the message holds
//!   its 11-character app hash ([`android_app_hash`]).
//!
//! An SMS is billed per segment: [`sms_segments`] counts them, and
//! [`sms_text`] refuses a text that would take two unless told otherwise.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Constraint, Field, Got, InvalidInput};
use crate::policy::check_ttl;

/// Longest code a message carries, in characters.
const MAX_CODE_LEN: usize = 32;
/// Longest brand, in characters.
const MAX_BRAND_LEN: usize = 40;
/// Longest template, in characters.
const MAX_TEMPLATE_LEN: usize = 480;
/// Longest host name (RFC 1035).
const MAX_DOMAIN_LEN: usize = 253;
/// Length of an SMS Retriever app hash.
pub const APP_HASH_LEN: usize = 11;
/// Longest signing certificate [`android_app_hash`] takes, in bytes (real
/// ones are 1 to 2 KiB).
pub const MAX_CERTIFICATE_LEN: usize = 65_536;
/// Longest text [`sms_segments`] takes from a front end that passes a length
/// (about 400 segments).
pub const MAX_SMS_TEXT_LEN: usize = 65_536;

/// The text [`sms_text`] uses without a template.
pub const DEFAULT_SMS_TEMPLATE: &str =
    "{brand}: your code is {code}. It expires in {minutes}. Do not share it.";

/// What [`sms_text`] adds to, or changes in, the default text.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmsOptions<'a> {
    /// The text with `{code}`, `{brand}` and `{minutes}` (the time left, as
    /// "5 minutes" or "30 seconds"), which must hold `{code}`; `None`:
    /// [`DEFAULT_SMS_TEMPLATE`].
    pub template: Option<&'a str>,
    /// The host of the site the code is for (`example.com`): adds the
    /// origin-bound last line `@example.com #123456`.
    pub webotp_domain: Option<&'a str>,
    /// The Android app's SMS Retriever hash ([`android_app_hash`]), on a line
    /// of its own (before the origin-bound line, when there is one).
    pub android_app_hash: Option<&'a str>,
    /// Allow a text longer than one SMS segment (billed as several).
    pub allow_multipart: bool,
}

/// The SMS that carries `code` for `brand`, valid for `ttl` (1 s to 24 h).
///
/// ```
/// use std::time::Duration;
/// use otpengine_core::message::{sms_text, SmsOptions};
///
/// let text = sms_text("123456", "Acme", Duration::from_secs(300), &SmsOptions {
///     webotp_domain: Some("acme.example"),
///     ..SmsOptions::default()
/// })?;
/// assert_eq!(
///     text,
///     "Acme: your code is 123456. It expires in 5 minutes. Do not share it.\n@acme.example #123456"
/// );
/// # Ok::<(), otpengine_core::InvalidInput>(())
/// ```
///
/// The time is whole minutes rounded down (never more than is left), and
/// seconds under a minute. Errors name what is wrong: a code that is not 1 to
/// 32 letters and digits, a brand that is empty, longer than 40 characters or
/// holds a line break or a brace, a template without `{code}` or with another
/// placeholder, a host or app hash of the wrong form, or a text that takes
/// more than one segment without `allow_multipart`.
pub fn sms_text(
    code: &str,
    brand: &str,
    ttl: Duration,
    options: &SmsOptions<'_>,
) -> Result<String, InvalidInput> {
    check_code(code)?;
    check_brand(brand)?;
    check_ttl(ttl)?;
    let template = options.template.unwrap_or(DEFAULT_SMS_TEMPLATE);
    let mut lines = vec![fill(template, code, brand, &time_left(ttl))?];
    if let Some(hash) = options.android_app_hash {
        check_app_hash(hash)?;
        lines.push(hash.to_string());
    }
    if let Some(domain) = options.webotp_domain {
        check_domain(domain)?;
        lines.push(format!("@{domain} #{code}"));
    }
    let text = lines.join("\n");
    let count = sms_segments(&text);
    if count.segments > 1 && !options.allow_multipart {
        return Err(InvalidInput {
            field: Field::SmsText,
            constraint: Constraint::Format(
                "fit in one SMS segment (160 GSM-7 characters, or 70 UCS-2 ones) \
                 unless allow_multipart is set",
            ),
            got: Got::Raw(format!(
                "{} {} units, {} segments",
                count.units,
                count.encoding.name(),
                count.segments
            )),
        });
    }
    Ok(text)
}

/// The words a voice call says: the code character by character, twice.
///
/// ```
/// use otpengine_core::message::voice_text;
///
/// assert_eq!(
///     voice_text("123456", "Acme")?,
///     "Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."
/// );
/// # Ok::<(), otpengine_core::InvalidInput>(())
/// ```
pub fn voice_text(code: &str, brand: &str) -> Result<String, InvalidInput> {
    check_code(code)?;
    check_brand(brand)?;
    let spoken: Vec<String> = code.chars().map(String::from).collect();
    let spoken = spoken.join(", ");
    Ok(format!("Your {brand} code is {spoken}. Again: {spoken}."))
}

/// The 11-character hash Google's SMS Retriever API looks for in an SMS to
/// hand it to one app: of `package_name`, a space and the lowercase hex of
/// the app's signing certificate (its DER bytes), the SHA-256; of that, the
/// first 9 bytes in base64; of that, the first 11 characters (Google's
/// `AppSignatureHelper`).
pub fn android_app_hash(
    package_name: &str,
    signing_certificate: &[u8],
) -> Result<String, InvalidInput> {
    check_package_name(package_name)?;
    check_certificate_length(signing_certificate.len())?;
    let mut hasher = Sha256::new();
    hasher.update(package_name.as_bytes());
    hasher.update(b" ");
    for byte in signing_certificate {
        hasher.update(format!("{byte:02x}").as_bytes());
    }
    let digest = hasher.finalize();
    let mut hash = base64(&digest[..9]);
    hash.truncate(APP_HASH_LEN);
    Ok(hash)
}

/// How an SMS text is encoded, which sets how much fits in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit alphabet (with its extension table, whose
    /// characters take two septets): 160 septets in one segment, 153 a
    /// segment in a longer message.
    Gsm7,
    /// UCS-2, for a text with any character GSM-7 lacks: 70 UTF-16 units in
    /// one segment, 67 a segment in a longer message.
    Ucs2,
}

impl SmsEncoding {
    /// `"GSM-7"` or `"UCS-2"`.
    pub fn name(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }
}

/// What [`sms_segments`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmsSegments {
    /// The encoding the text needs.
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// SMS segments it is billed as (1 for an empty text).
    pub segments: usize,
}

/// The encoding `text` needs and how many SMS segments it takes.
///
/// ```
/// use otpengine_core::message::{sms_segments, SmsEncoding};
///
/// assert_eq!(sms_segments(&"a".repeat(160)).segments, 1);
/// assert_eq!(sms_segments(&"a".repeat(161)).segments, 2);
/// assert_eq!(sms_segments("Код 123456").encoding, SmsEncoding::Ucs2);
/// ```
pub fn sms_segments(text: &str) -> SmsSegments {
    let septets: Option<usize> = text.chars().map(gsm7_septets).sum();
    let (encoding, units, single, multi) = match septets {
        Some(septets) => (SmsEncoding::Gsm7, septets, 160, 153),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(multi)
    };
    SmsSegments {
        encoding,
        units,
        segments,
    }
}

/// Septets `c` takes in GSM-7: 1 in the basic table, 2 in the extension
/// table (an escape and the character), `None` outside both.
fn gsm7_septets(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\u{c}^{}\\[~]|€";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// "5 minutes", "1 minute", "30 seconds": whole minutes rounded down, seconds
/// under a minute.
fn time_left(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `template` with its placeholders filled in.
fn fill(template: &str, code: &str, brand: &str, minutes: &str) -> Result<String, InvalidInput> {
    let bad = |what: String| InvalidInput {
        field: Field::Template,
        constraint: Constraint::Format(
            "a text of at most 480 characters with {code}, and otherwise only {brand} \
             and {minutes} in braces",
        ),
        got: Got::Raw(what),
    };
    if template.chars().count() > MAX_TEMPLATE_LEN {
        return Err(bad(format!("{} characters", template.chars().count())));
    }
    if !template.contains("{code}") {
        return Err(bad(format!("{template:?}, without {{code}}")));
    }
    let mut out = String::with_capacity(template.len() + code.len() + brand.len());
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let placeholder = ["{code}", "{brand}", "{minutes}"]
            .into_iter()
            .find(|p| tail.starts_with(p));
        let Some(placeholder) = placeholder else {
            let end = tail.find('}').map_or(tail.len(), |i| i + 1).min(40);
            return Err(bad(format!("{:?}, an unknown placeholder", &tail[..end])));
        };
        out.push_str(match placeholder {
            "{code}" => code,
            "{brand}" => brand,
            _ => minutes,
        });
        rest = &tail[placeholder.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the length of a signing certificate for [`android_app_hash`]: 1 to
/// [`MAX_CERTIFICATE_LEN`] bytes.
pub fn check_certificate_length(len: usize) -> Result<(), InvalidInput> {
    if (1..=MAX_CERTIFICATE_LEN).contains(&len) {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::SigningCertificate,
        constraint: Constraint::Length {
            min: 1,
            max: MAX_CERTIFICATE_LEN,
        },
        got: Got::Bytes(len),
    })
}

/// Checks the length of a text for [`sms_segments`] from a front end that
/// passes one: at most [`MAX_SMS_TEXT_LEN`] bytes.
pub fn check_sms_text_length(len: usize) -> Result<(), InvalidInput> {
    if len <= MAX_SMS_TEXT_LEN {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::SmsText,
        constraint: Constraint::Length {
            min: 0,
            max: MAX_SMS_TEXT_LEN,
        },
        got: Got::Bytes(len),
    })
}

fn check_code(code: &str) -> Result<(), InvalidInput> {
    let ok =
        (1..=MAX_CODE_LEN).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::MessageCode,
        constraint: Constraint::Format("1 to 32 ASCII letters and digits"),
        got: Got::Bytes(code.len()),
    })
}

fn check_brand(brand: &str) -> Result<(), InvalidInput> {
    let len = brand.chars().count();
    let ok = (1..=MAX_BRAND_LEN).contains(&len)
        && brand.trim() == brand
        && !brand
            .chars()
            .any(|c| c.is_control() || c == '{' || c == '}');
    if ok {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::Brand,
        constraint: Constraint::Format(
            "1 to 40 characters, without line breaks, braces or spaces at either end",
        ),
        got: Got::Raw(format!("{brand:?}")),
    })
}

/// A host name: dot-separated labels of lowercase ASCII letters, digits and
/// inner hyphens (an IDN in its `xn--` form).
fn check_domain(domain: &str) -> Result<(), InvalidInput> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if domain.len() <= MAX_DOMAIN_LEN && domain.split('.').all(label_ok) {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::WebOtpDomain,
        constraint: Constraint::Format(
            "a host name in lowercase (example.com), without scheme, port or path",
        ),
        got: Got::Raw(format!("{domain:?}")),
    })
}

fn check_app_hash(hash: &str) -> Result<(), InvalidInput> {
    let ok = hash.len() == APP_HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::AndroidAppHash,
        constraint: Constraint::Format("11 base64 characters (from android_app_hash)"),
        got: Got::Raw(format!("{hash:?}")),
    })
}

/// An Android package name: at least two dot-separated segments, each a
/// letter followed by letters, digits and underscores.
fn check_package_name(name: &str) -> Result<(), InvalidInput> {
    let segment_ok = |s: &str| {
        let mut bytes = s.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if name.len() <= 255 && name.split('.').count() >= 2 && name.split('.').all(segment_ok) {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::PackageName,
        constraint: Constraint::Format("an Android package name (com.example.app)"),
        got: Got::Raw(format!("{name:?}")),
    })
}

/// Standard base64 (RFC 4648, with `+` and `/`) of `bytes`, whose length is a
/// multiple of 3, so without padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    debug_assert_eq!(bytes.len() % 3, 0);
    let mut out = String::with_capacity(bytes.len() / 3 * 4);
    for chunk in bytes.chunks(3) {
        let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_default_text_names_brand_code_and_whole_minutes() {
        let text = sms_text("123456", "Acme", 5 * MIN, &SmsOptions::default()).unwrap();
        assert_eq!(
            text,
            "Acme: your code is 123456. It expires in 5 minutes. Do not share it."
        );
        // Rounded down: never more time than there is; seconds under a minute.
        for (ttl, said) in [
            (Duration::from_secs(299), "4 minutes"),
            (Duration::from_secs(119), "1 minute"),
            (Duration::from_secs(60), "1 minute"),
            (Duration::from_secs(59), "59 seconds"),
            (Duration::from_secs(1), "1 second"),
            (Duration::from_millis(1999), "1 second"),
        ] {
            let text = sms_text("1234", "Acme", ttl, &SmsOptions::default()).unwrap();
            assert!(
                text.contains(&format!("expires in {said}.")),
                "{ttl:?}: {text}"
            );
        }
    }

    #[test]
    fn the_app_hash_line_comes_before_the_origin_bound_last_line() {
        let options = SmsOptions {
            webotp_domain: Some("bank.example.com"),
            android_app_hash: Some("V0wMPhmEo8U"),
            ..SmsOptions::default()
        };
        let text = sms_text("A7K9Q", "Bank", 2 * MIN, &options).unwrap();
        assert_eq!(
            text,
            "Bank: your code is A7K9Q. It expires in 2 minutes. Do not share it.\n\
             V0wMPhmEo8U\n@bank.example.com #A7K9Q"
        );
        let hash_only = SmsOptions {
            android_app_hash: Some("V0wMPhmEo8U"),
            ..SmsOptions::default()
        };
        let text = sms_text("123456", "Bank", 2 * MIN, &hash_only).unwrap();
        assert!(text.ends_with(".\nV0wMPhmEo8U"), "{text}");
    }

    #[test]
    fn templates_fill_their_placeholders_and_refuse_others() {
        let options = SmsOptions {
            template: Some("{code} is your {brand} code ({minutes})"),
            ..SmsOptions::default()
        };
        assert_eq!(
            sms_text("8812", "Shop", 10 * MIN, &options).unwrap(),
            "8812 is your Shop code (10 minutes)"
        );
        for (template, named) in [
            ("Your code", "without {code}"),
            ("{code} {amount}", "\"{amount}\""),
            ("{code} }", "\"}\""),
            ("{code} {brand", "\"{brand\""),
        ] {
            let e = sms_text(
                "1234",
                "Shop",
                MIN,
                &SmsOptions {
                    template: Some(template),
                    ..SmsOptions::default()
                },
            )
            .unwrap_err();
            assert_eq!(e.field, Field::Template);
            assert!(e.to_string().contains(named), "{template}: {e}");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let ok = SmsOptions::default();
        let field = |r: Result<String, InvalidInput>| r.unwrap_err().field;
        assert_eq!(field(sms_text("", "Acme", MIN, &ok)), Field::MessageCode);
        assert_eq!(
            field(sms_text("12 34", "Acme", MIN, &ok)),
            Field::MessageCode
        );
        assert_eq!(field(sms_text("1234", "", MIN, &ok)), Field::Brand);
        assert_eq!(field(sms_text("1234", "Ac\nme", MIN, &ok)), Field::Brand);
        assert_eq!(field(sms_text("1234", "{x}", MIN, &ok)), Field::Brand);
        assert_eq!(
            field(sms_text("1234", "Acme", Duration::ZERO, &ok)),
            Field::Ttl
        );
        for domain in [
            "https://a.com",
            "A.com",
            "a..com",
            "-a.com",
            "a.com:443",
            "",
        ] {
            let options = SmsOptions {
                webotp_domain: Some(domain),
                ..ok
            };
            assert_eq!(
                field(sms_text("1234", "Acme", MIN, &options)),
                Field::WebOtpDomain,
                "{domain}"
            );
        }
        for hash in ["short", "V0wMPhmEo8U!", "V0wMPhmEo8=", "V0wMPhmEo8UU"] {
            let options = SmsOptions {
                android_app_hash: Some(hash),
                ..ok
            };
            assert_eq!(
                field(sms_text("1234", "Acme", MIN, &options)),
                Field::AndroidAppHash,
                "{hash}"
            );
        }
        assert_eq!(field(voice_text("", "Acme")), Field::MessageCode);
        assert_eq!(field(android_app_hash("app", b"x")), Field::PackageName);
        assert_eq!(field(android_app_hash("com.1x", b"x")), Field::PackageName);
        assert_eq!(
            field(android_app_hash("com.example", b"")),
            Field::SigningCertificate
        );
    }

    #[test]
    fn a_text_longer_than_one_segment_needs_allow_multipart() {
        let long = SmsOptions {
            template: Some("{brand} says: {code}. This notice is long on purpose, to pass the one hundred and sixty characters that one GSM-7 segment of an SMS can hold, and so be billed twice."),
            ..SmsOptions::default()
        };
        let e = sms_text("123456", "Acme", MIN, &long).unwrap_err();
        assert_eq!(e.field, Field::SmsText);
        assert!(e.to_string().contains("GSM-7 units, 2 segments"), "{e}");
        let allowed = SmsOptions {
            allow_multipart: true,
            ..long
        };
        assert!(sms_text("123456", "Acme", MIN, &allowed).is_ok());
        // A brand outside GSM-7 makes the text UCS-2, 70 units a segment.
        let e = sms_text("123456", "Акме Банк", MIN, &SmsOptions::default()).unwrap_err();
        assert!(e.to_string().contains("UCS-2 units, 2 segments"), "{e}");
    }

    #[test]
    fn segments_count_septets_or_utf16_units() {
        let count = |t: &str| {
            let s = sms_segments(t);
            (s.encoding, s.units, s.segments)
        };
        use SmsEncoding::{Gsm7, Ucs2};
        assert_eq!(count(""), (Gsm7, 0, 1));
        assert_eq!(count(&"a".repeat(160)), (Gsm7, 160, 1));
        assert_eq!(count(&"a".repeat(161)), (Gsm7, 161, 2));
        assert_eq!(count(&"a".repeat(306)), (Gsm7, 306, 2));
        assert_eq!(count(&"a".repeat(307)), (Gsm7, 307, 3));
        // Extension characters take two septets; the basic table's accents one.
        assert_eq!(count("€[]{}"), (Gsm7, 10, 1));
        assert_eq!(count("Müller £5 @ Åsa's"), (Gsm7, 17, 1));
        assert_eq!(count(&"€".repeat(80)), (Gsm7, 160, 1));
        assert_eq!(count(&"€".repeat(81)), (Gsm7, 162, 2));
        // One character outside GSM-7 (a backtick, an emoji, Cyrillic) makes it UCS-2.
        assert_eq!(count("`"), (Ucs2, 1, 1));
        assert_eq!(count(&"ж".repeat(70)), (Ucs2, 70, 1));
        assert_eq!(count(&"ж".repeat(71)), (Ucs2, 71, 2));
        assert_eq!(count("🙂"), (Ucs2, 2, 1), "a surrogate pair is two units");
    }

    #[test]
    fn voice_text_spells_the_code_twice() {
        assert_eq!(
            voice_text("123456", "Acme").unwrap(),
            "Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."
        );
        assert_eq!(
            voice_text("A7K", "Bank").unwrap(),
            "Your Bank code is A, 7, K. Again: A, 7, K."
        );
    }

    #[test]
    fn app_hashes_follow_googles_recipe() {
        // Expected values computed apart, with Python's hashlib and base64:
        // b64encode(sha256(f"{package} {cert.hex()}").digest()[:9])[:11].
        let cert = [
            0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc0, 0xff, 0xee,
        ];
        assert_eq!(
            android_app_hash("com.example.myapp", &cert).unwrap(),
            "V0wMPhmEo8U"
        );
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            android_app_hash("com.acme.bank", &all).unwrap(),
            "A/YkT+J1D/J"
        );
    }
}
