//! Keyed digests: what the store keeps instead of keys and codes.
//!
//! Two subkeys are derived from the engine secret with HMAC-SHA-256 under
//! distinct labels, so the key id and the code digest never share a key:
//!
//! - **key id** = PRF(k_key, key), 128 bits. The store is indexed by it, so no
//!   phone number or e-mail address sits in memory. 128 bits make an accidental
//!   collision between two of even 2^32 keys about 2^-64 likely, and without the
//!   secret an attacker cannot search for one.
//! - **code digest** = PRF(k_code, key id ‖ len(context) ‖ context ‖ code), truncated
//!   to 64 bits. Binding the key id and context means a digest proves nothing for
//!   another key or another transfer; 64 bits leave a wrong guess a 2^-64 chance of
//!   matching, far below the 10^-4..10^-6 of guessing the code itself.
//!
//! The default PRF is SipHash-2-4: a PRF designed for short inputs with a
//! 128-bit key, tens of nanoseconds for a short key or code, less than the
//! one cache miss a lookup takes anyway. HMAC-SHA-256 is offered for deployments
//! that must use NIST-approved primitives; it costs roughly ten times more.
//!
//! The digests are compared in constant time with `subtle`.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Constraint, Field, Got, InvalidInput};
use crate::sip::Sip;

/// Shortest secret accepted: 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted.
pub const MAX_SECRET_LEN: usize = 1024;
/// Length of the secret an engine draws for itself when none is given.
const RANDOM_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The pseudo-random function behind key ids and code digests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SipHash-2-4 with a 128-bit key: fast for short inputs (the default).
    #[default]
    SipHash24,
    /// HMAC-SHA-256, for deployments restricted to NIST-approved primitives.
    HmacSha256,
}

/// The engine secret: at least 16 bytes, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes a secret the operator supplies (16 to 1024 bytes). Engines that must
    /// agree on digests (several instances over one Redis) share it.
    pub fn new(bytes: &[u8]) -> Result<Self, InvalidInput> {
        check_secret_length(bytes.len())?;
        Ok(Secret(bytes.to_vec()))
    }

    /// Draws a fresh 256-bit secret from the operating system.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; RANDOM_SECRET_LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Secret(bytes)
    }

    fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A key's identity in the store: a 128-bit keyed digest of the key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u64; 2]);

impl KeyId {
    /// The key's hash in the in-process store: its shard, its home in the
    /// shard's table and its tag there (never 0, which marks an empty row). The
    /// key id is already a keyed PRF of the key, so no second hash is needed.
    pub fn table_hash(self) -> u64 {
        self.0[0].max(1)
    }

    fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.0[0].to_le_bytes());
        out[8..].copy_from_slice(&self.0[1].to_le_bytes());
        out
    }
}

/// A code digest as stored: 64 bits of PRF output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeDigest(pub u64);

impl CodeDigest {
    /// Constant-time equality.
    pub fn ct_eq(self, other: CodeDigest) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Checks an engine secret's length (16..=1024 bytes), for front ends that must
/// check it before they form the bytes (the C ABI).
pub fn check_secret_length(len: usize) -> Result<(), InvalidInput> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::Secret,
        constraint: Constraint::Length {
            min: MIN_SECRET_LEN,
            max: MAX_SECRET_LEN,
        },
        got: Got::Bytes(len),
    })
}

/// Computes key ids and code digests under one engine secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Digester {
    #[zeroize(skip)]
    algorithm: DigestAlgorithm,
    key_subkey: [u8; 32],
    code_subkey: [u8; 32],
    /// For the key ids of TOTP state, so that a TOTP key and a random-code key
    /// with the same bytes are two keys.
    totp_subkey: [u8; 32],
    /// For the ids of scope state (`crate::scope`): a scope is another key,
    /// never equal to a key of either kind.
    scope_subkey: [u8; 32],
}

impl Digester {
    /// Derives the two subkeys from `secret`.
    pub fn new(secret: &Secret, algorithm: DigestAlgorithm) -> Self {
        Digester {
            algorithm,
            key_subkey: *secret.subkey(b"otpengine v1 key id"),
            code_subkey: *secret.subkey(b"otpengine v1 code digest"),
            totp_subkey: *secret.subkey(b"otpengine v1 totp key id"),
            scope_subkey: *secret.subkey(b"otpengine v1 scope id"),
        }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The key id of `key`.
    pub fn key_id(&self, key: &[u8]) -> KeyId {
        self.key_id_under(&self.key_subkey, key)
    }

    /// The key id of `key`'s TOTP state: under its own subkey, so it never meets
    /// the random-code state of the same key bytes.
    pub fn totp_key_id(&self, key: &[u8]) -> KeyId {
        self.key_id_under(&self.totp_subkey, key)
    }

    /// The id of the scope `name` = `value`: the name's length first, so that no
    /// two (name, value) pairs run together into the same bytes.
    pub fn scope_id(&self, name: &str, value: &[u8]) -> KeyId {
        let mut bytes = Vec::with_capacity(1 + name.len() + value.len());
        bytes.push(name.len() as u8); // at most 31 (`crate::scope`)
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(value);
        self.key_id_under(&self.scope_subkey, &bytes)
    }

    fn key_id_under(&self, subkey: &[u8; 32], key: &[u8]) -> KeyId {
        match self.algorithm {
            DigestAlgorithm::SipHash24 => {
                let mut h = Sip::new(sip_key(subkey), true);
                h.write(key);
                KeyId(h.finish128())
            }
            DigestAlgorithm::HmacSha256 => {
                let mut mac = hmac(subkey);
                mac.update(key);
                let out = mac.finalize().into_bytes();
                KeyId([le_u64(&out[..8]), le_u64(&out[8..16])])
            }
        }
    }

    /// The digest of `code` for `key_id` and `context` in one pass: what
    /// [`Digester::code_prefix`] and [`CodeDigestPrefix::finish`] give, without
    /// keeping the prefix (for a verify, which has the code before it locks).
    pub fn code_digest(&self, key_id: KeyId, context: &[u8], code: &[u8]) -> CodeDigest {
        match self.algorithm {
            DigestAlgorithm::SipHash24 => {
                let mut h = self.code_sip(key_id, context);
                h.write(code);
                CodeDigest(h.finish64())
            }
            DigestAlgorithm::HmacSha256 => self.code_prefix(key_id, context).finish(code),
        }
    }

    /// SipHash over `key_id ‖ len(context) ‖ context`, the code digest's prefix.
    #[inline(always)]
    fn code_sip(&self, key_id: KeyId, context: &[u8]) -> Sip {
        let mut h = Sip::new(sip_key(&self.code_subkey), false);
        h.write_u64(key_id.0[0]);
        h.write_u64(key_id.0[1]);
        h.write(&(context.len() as u32).to_le_bytes());
        h.write(context);
        h
    }

    /// Starts a code digest for `key_id` and `context`; the code is added last by
    /// [`CodeDigestPrefix::finish`], so the context can be absorbed before a lock is taken.
    pub fn code_prefix(&self, key_id: KeyId, context: &[u8]) -> CodeDigestPrefix {
        let context_len = (context.len() as u32).to_le_bytes();
        match self.algorithm {
            DigestAlgorithm::SipHash24 => {
                CodeDigestPrefix(Prefix::Sip(self.code_sip(key_id, context)))
            }
            DigestAlgorithm::HmacSha256 => {
                let mut mac = hmac(&self.code_subkey);
                mac.update(&key_id.to_bytes());
                mac.update(&context_len);
                mac.update(context);
                CodeDigestPrefix(Prefix::Hmac(Box::new(mac)))
            }
        }
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A code digest with key id and context absorbed, waiting for the code. Its
/// state is wiped when it is dropped.
#[derive(Clone)]
pub struct CodeDigestPrefix(Prefix);

#[derive(Clone)]
enum Prefix {
    /// SipHash-2-4 state.
    Sip(Sip),
    /// HMAC-SHA-256 state (boxed: it is much larger than SipHash's).
    Hmac(Box<HmacSha256>),
}

impl CodeDigestPrefix {
    /// The digest of the code under this prefix.
    pub fn finish(&self, code: &[u8]) -> CodeDigest {
        match &self.0 {
            Prefix::Sip(h) => {
                let mut h = h.clone();
                h.write(code);
                CodeDigest(h.finish64())
            }
            Prefix::Hmac(mac) => {
                let mut mac = (**mac).clone();
                mac.update(code);
                CodeDigest(le_u64(&mac.finalize().into_bytes()[..8]))
            }
        }
    }
}

fn sip_key(subkey: &[u8; 32]) -> &[u8; 16] {
    subkey[..16].try_into().expect("16 of 32 bytes")
}

fn hmac(subkey: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(subkey).expect("HMAC takes keys of any length")
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digesters() -> Vec<Digester> {
        let secret = Secret::new(&[42; 32]).unwrap();
        vec![
            Digester::new(&secret, DigestAlgorithm::SipHash24),
            Digester::new(&secret, DigestAlgorithm::HmacSha256),
        ]
    }

    #[test]
    fn short_secrets_are_refused() {
        let e = Secret::new(&[1; 15]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret must be between 16 and 1024 bytes long, got 15 bytes"
        );
        assert!(Secret::new(&[1; 16]).is_ok());
    }

    #[test]
    fn digests_bind_key_context_and_code() {
        for d in digesters() {
            let alice = d.key_id(b"alice");
            let bob = d.key_id(b"bob");
            assert_ne!(alice, bob);
            assert_eq!(alice, d.key_id(b"alice"), "deterministic under one secret");
            let base = d.code_prefix(alice, b"pay 10 EUR").finish(b"123456");
            assert_eq!(
                base,
                d.code_digest(alice, b"pay 10 EUR", b"123456"),
                "one pass, same digest"
            );
            assert_eq!(
                d.code_prefix(bob, b"").finish(b"0042917"),
                d.code_digest(bob, b"", b"0042917")
            );
            assert_eq!(base, d.code_prefix(alice, b"pay 10 EUR").finish(b"123456"));
            assert_ne!(base, d.code_prefix(bob, b"pay 10 EUR").finish(b"123456"));
            assert_ne!(base, d.code_prefix(alice, b"pay 11 EUR").finish(b"123456"));
            assert_ne!(base, d.code_prefix(alice, b"pay 10 EUR").finish(b"123457"));
            // The length prefix keeps context and code apart.
            assert_ne!(
                d.code_prefix(alice, b"ab").finish(b"c"),
                d.code_prefix(alice, b"a").finish(b"bc")
            );
        }
    }

    #[test]
    fn another_secret_gives_other_digests() {
        let a = Digester::new(&Secret::new(&[1; 16]).unwrap(), DigestAlgorithm::SipHash24);
        let b = Digester::new(&Secret::new(&[2; 16]).unwrap(), DigestAlgorithm::SipHash24);
        assert_ne!(a.key_id(b"alice"), b.key_id(b"alice"));
    }
}
