//! The integers C passes for core's enums, declared here so that cbindgen
//! writes them into the header (as `#define`s); the tests below tie each to
//! core's own mapping, so the header, core and the Go package (which reads
//! these macros) cannot drift apart.

/// `otp_config.alphabet`: the digits 0-9.
pub const OTP_ALPHABET_DIGITS: u32 = 0;
/// `otp_config.alphabet`: 23456789ABCDEFGHJKLMNPQRSTUVWXYZ, case-insensitive on input.
pub const OTP_ALPHABET_ALPHANUMERIC: u32 = 1;
/// `otp_totp_params.algorithm` and `otp_hotp`'s: HMAC-SHA-1 (the default).
pub const OTP_HASH_SHA1: u32 = 0;
/// HMAC-SHA-256.
pub const OTP_HASH_SHA256: u32 = 1;
/// HMAC-SHA-512.
pub const OTP_HASH_SHA512: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use otpengine_core::totp::HashAlgorithm;
    use otpengine_core::Alphabet;

    #[test]
    fn every_constant_is_cores_number_for_its_variant() {
        let alphabets = [
            (OTP_ALPHABET_DIGITS, Alphabet::Digits),
            (OTP_ALPHABET_ALPHANUMERIC, Alphabet::Alphanumeric),
        ];
        assert_eq!(
            alphabets.len(),
            Alphabet::NAMES.len(),
            "one constant per alphabet"
        );
        for (number, alphabet) in alphabets {
            assert_eq!(Alphabet::from_index(number), Ok(alphabet));
            assert_eq!(alphabet.index(), number);
        }
        let hashes = [
            (OTP_HASH_SHA1, HashAlgorithm::Sha1),
            (OTP_HASH_SHA256, HashAlgorithm::Sha256),
            (OTP_HASH_SHA512, HashAlgorithm::Sha512),
        ];
        assert_eq!(
            hashes.len(),
            HashAlgorithm::NAMES.len(),
            "one constant per hash"
        );
        for (number, hash) in hashes {
            assert_eq!(HashAlgorithm::from_index(number.into()), Ok(hash));
        }
    }
}
