//! SipHash-2-4 (Aumasson and Bernstein, 2012) with 64- and 128-bit output,
//! absorbing whole 64-bit words.
//!
//! The `siphasher` crate computes the same function, but byte by byte through
//! `std::hash::Hasher`'s buffering, which costs more than the rounds on the 8- to
//! 40-byte inputs the engine hashes (a key id, a code digest). Here a write takes
//! whole words straight from the input and keeps only a partial word between
//! writes; the output is bit for bit the reference function's (checked against
//! `siphasher` by the tests), so key ids and digests are unchanged.
//!
//! The state is reversible: with the input, a leaked state gives the key back,
//! so it is wiped on drop.

use zeroize::Zeroize;

/// A SipHash-2-4 computation in progress.
#[derive(Clone)]
pub(crate) struct Sip {
    v: [u64; 4],
    /// Input bytes not yet absorbed (fewer than 8), little-endian from bit 0.
    tail: u64,
    tail_len: u32,
    /// Input length so far, of which the last block keeps the low byte.
    len: u64,
}

impl Sip {
    /// A computation under `key`; `wide` for 128-bit output (the reference
    /// function's initialisation differs).
    #[inline]
    pub(crate) fn new(key: &[u8; 16], wide: bool) -> Self {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        let mut v = [
            k0 ^ 0x736f_6d65_7073_6575,
            k1 ^ 0x646f_7261_6e64_6f6d,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ];
        if wide {
            v[1] ^= 0xee;
        }
        Sip {
            v,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13) ^ v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16) ^ v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21) ^ v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17) ^ v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    /// Absorbs `bytes`.
    #[inline(always)]
    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = bytes.len().min(8 - self.tail_len as usize);
            self.tail |= partial_word(&bytes[..take]) << (8 * self.tail_len);
            self.tail_len += take as u32;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            let word = std::mem::take(&mut self.tail);
            self.tail_len = 0;
            self.compress(word);
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.compress(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.tail = partial_word(rest);
        self.tail_len = rest.len() as u32;
    }

    /// Absorbs the 8 little-endian bytes of `word`.
    #[inline(always)]
    pub(crate) fn write_u64(&mut self, word: u64) {
        if self.tail_len == 0 {
            self.len += 8;
            self.compress(word);
        } else {
            self.write(&word.to_le_bytes());
        }
    }

    #[inline(always)]
    fn last_block(&mut self) {
        let last = (self.len & 0xff) << 56 | self.tail;
        self.compress(last);
    }

    /// The 64-bit output (of a computation started with `wide == false`).
    #[inline(always)]
    pub(crate) fn finish64(mut self) -> u64 {
        self.last_block();
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }

    /// The 128-bit output as two words, first and second 8 bytes (of a
    /// computation started with `wide == true`).
    #[inline(always)]
    pub(crate) fn finish128(mut self) -> [u64; 2] {
        self.last_block();
        self.v[2] ^= 0xee;
        for _ in 0..4 {
            self.round();
        }
        let h1 = self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3];
        self.v[1] ^= 0xdd;
        for _ in 0..4 {
            self.round();
        }
        [h1, self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]]
    }
}

impl Drop for Sip {
    fn drop(&mut self) {
        self.v.zeroize();
        self.tail.zeroize();
    }
}

/// Up to 7 bytes as the low bytes of a little-endian word.
/// In at most three loads, not a `memcpy` of a variable length.
#[inline(always)]
fn partial_word(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() < 8);
    let (n, mut i, mut word) = (bytes.len(), 0, 0u64);
    if n >= 4 {
        word = u64::from(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")));
        i = 4;
    }
    if n - i >= 2 {
        let pair = u16::from_le_bytes(bytes[i..i + 2].try_into().expect("2 bytes"));
        word |= u64::from(pair) << (8 * i);
        i += 2;
    }
    if i < n {
        word |= u64::from(bytes[i]) << (8 * i);
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use siphasher::sip::SipHasher24;
    use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher24x128};
    use std::hash::Hasher;

    proptest! {
        /// The reference implementation's output for any key and any split of
        /// any input into writes (whole words among them).
        #[test]
        fn matches_the_reference(
            key in any::<[u8; 16]>(),
            parts in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..40).prop_map(Err),
                    any::<u64>().prop_map(Ok),
                ],
                0..6,
            ),
        ) {
            let (mut narrow, mut wide) = (Sip::new(&key, false), Sip::new(&key, true));
            let mut bytes = Vec::new();
            for part in &parts {
                match part {
                    Ok(word) => {
                        narrow.write_u64(*word);
                        wide.write_u64(*word);
                        bytes.extend_from_slice(&word.to_le_bytes());
                    }
                    Err(part) => {
                        narrow.write(part);
                        wide.write(part);
                        bytes.extend_from_slice(part);
                    }
                }
            }
            let mut reference = SipHasher24::new_with_key(&key);
            reference.write(&bytes);
            prop_assert_eq!(narrow.finish64(), reference.finish());
            let mut reference = SipHasher24x128::new_with_key(&key);
            reference.write(&bytes);
            let out = reference.finish128();
            prop_assert_eq!(wide.finish128(), [out.h1, out.h2]);
        }
    }

    /// The paper's test vector (appendix A): key 00..0f, input 00..0e.
    #[test]
    fn gives_the_papers_test_vector() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let input: Vec<u8> = (0..15).collect();
        let mut sip = Sip::new(&key, false);
        sip.write(&input);
        assert_eq!(sip.finish64(), 0xa129_ca61_49be_45e5);
    }
}
