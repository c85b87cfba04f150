//! What a user would write instead of otpengine, with the same subset of the
//! semantics: issue replaces the key's code, verify consumes the right code,
//! a wrong guess spends one of 5 attempts, a code expires after its ttl. Codes
//! come from the same ChaCha20 sampler; the clock is `Instant::now()` per call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use otpengine_core::code::generate;
use otpengine_core::Alphabet;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const TTL: Duration = Duration::from_secs(300);
const ATTEMPTS: u8 = 5;

thread_local! {
    static RNG: RefCell<ChaCha20Rng> = RefCell::new(ChaCha20Rng::from_seed(seed()));
}

/// A per-thread seed for the baselines' ChaCha. Not security relevant: the
/// baselines only need the same generator cost as the engine.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let t = Instant::now().elapsed().as_nanos() as u64 ^ (&seed as *const _ as u64);
    seed[..8].copy_from_slice(&t.to_le_bytes());
    seed
}

fn new_code() -> [u8; 6] {
    RNG.with(|r| {
        let code = generate(&mut *r.borrow_mut(), Alphabet::Digits, 6);
        code.as_bytes().try_into().expect("six digits")
    })
}

#[derive(Clone, Copy)]
pub struct Entry {
    code: [u8; 6],
    attempts: u8,
    expires_at: Instant,
}

impl Entry {
    fn fresh() -> Self {
        Entry {
            code: new_code(),
            attempts: ATTEMPTS,
            expires_at: Instant::now() + TTL,
        }
    }
}

/// The answer a baseline gives: `true` when verified.
pub trait Store: Sync {
    fn name(&self) -> &'static str;
    fn issue(&self, key: u64) -> [u8; 6];
    fn verify(&self, key: u64, code: &[u8]) -> bool;
}

/// Hands a fresh entry to `store` (which replaces the key's old one); returns its code.
fn issue_with(store: impl FnOnce(Entry)) -> [u8; 6] {
    let entry = Entry::fresh();
    store(entry);
    entry.code
}

/// Checks a guess against an entry; returns (verified, keep the entry).
fn check(entry: &mut Entry, code: &[u8]) -> (bool, bool) {
    if Instant::now() >= entry.expires_at {
        return (false, false);
    }
    if entry.code == code {
        return (true, false);
    }
    entry.attempts -= 1;
    (false, entry.attempts > 0)
}

pub struct MutexHashMap(parking_lot::Mutex<HashMap<u64, Entry>>);

impl MutexHashMap {
    pub fn new() -> Self {
        MutexHashMap(parking_lot::Mutex::new(HashMap::new()))
    }
}

impl Store for MutexHashMap {
    fn name(&self) -> &'static str {
        "Mutex<HashMap>"
    }
    fn issue(&self, key: u64) -> [u8; 6] {
        issue_with(|e| {
            self.0.lock().insert(key, e);
        })
    }
    fn verify(&self, key: u64, code: &[u8]) -> bool {
        let mut map = self.0.lock();
        let Some(entry) = map.get_mut(&key) else {
            return false;
        };
        let (ok, keep) = check(entry, code);
        if !keep {
            map.remove(&key);
        }
        ok
    }
}

pub struct DashMapStore(dashmap::DashMap<u64, Entry>);

impl DashMapStore {
    pub fn new() -> Self {
        DashMapStore(dashmap::DashMap::new())
    }
}

impl Store for DashMapStore {
    fn name(&self) -> &'static str {
        "dashmap"
    }
    fn issue(&self, key: u64) -> [u8; 6] {
        issue_with(|e| {
            self.0.insert(key, e);
        })
    }
    fn verify(&self, key: u64, code: &[u8]) -> bool {
        let mut ok = false;
        self.0.remove_if_mut(&key, |_, entry| {
            let (verified, keep) = check(entry, code);
            ok = verified;
            !keep
        });
        ok
    }
}

struct PerEntryTtl;

impl moka::Expiry<u64, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &u64, e: &Entry, now: Instant) -> Option<Duration> {
        Some(e.expires_at.saturating_duration_since(now))
    }
    fn expire_after_update(
        &self,
        _: &u64,
        e: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.expires_at.saturating_duration_since(now))
    }
}

pub struct MokaStore(moka::sync::Cache<u64, Entry>);

impl MokaStore {
    pub fn new() -> Self {
        MokaStore(
            moka::sync::Cache::builder()
                .expire_after(PerEntryTtl)
                .build(),
        )
    }
}

impl Store for MokaStore {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn issue(&self, key: u64) -> [u8; 6] {
        issue_with(|e| {
            self.0.insert(key, e);
        })
    }
    fn verify(&self, key: u64, code: &[u8]) -> bool {
        let mut ok = false;
        let _ = self.0.entry(key).and_compute_with(|current| {
            use moka::ops::compute::Op;
            let Some(current) = current else {
                return Op::Nop;
            };
            let mut entry = current.into_value();
            let (verified, keep) = check(&mut entry, code);
            ok = verified;
            if keep {
                Op::Put(entry)
            } else {
                Op::Remove
            }
        });
        ok
    }
}

/// otpengine behind the same trait, limits off (the baselines have none).
pub struct OtpEngine(pub otpengine_core::Engine);

impl OtpEngine {
    pub fn new() -> Self {
        OtpEngine(
            otpengine_core::Engine::new(otpengine_core::Config {
                resend_cooldown: Duration::ZERO,
                max_issues_per_window: 0,
                max_failures_per_key: 0,
                ..otpengine_core::Config::default()
            })
            .expect("valid config"),
        )
    }
}

impl Store for OtpEngine {
    fn name(&self) -> &'static str {
        "otpengine"
    }
    fn issue(&self, key: u64) -> [u8; 6] {
        let issued = self.0.issue(key.to_le_bytes(), "").expect("limits are off");
        issued.code.as_bytes().try_into().expect("six digits")
    }
    fn verify(&self, key: u64, code: &[u8]) -> bool {
        self.0
            .verify(key.to_le_bytes(), code, "")
            .expect("valid key")
            .is_verified()
    }
}
