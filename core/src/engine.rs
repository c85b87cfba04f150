//! The engine: validates a call, then runs it on its backend. In memory that
//! means turning key and context into digests, picking the shard and running the
//! call under that shard's lock; the Redis backend (`crate::redis`) runs the same
//! rules as one script per call in Redis.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::clock::{Millis, TimeSource};
use crate::code::{self, Code};
use crate::digest::{Digester, Secret};
use crate::error::Error;
use crate::fork;
use crate::policy::{check_context, check_key, check_ttl, Config, Policy};
use crate::shard::{IssueRequest, Outcome, Refusal, Shard, Shared};
use crate::stats::Stats;

/// Timers one reaper pass runs in a shard before letting go of its lock.
const REAPER_BATCH: usize = 1024;

/// A code just issued, to be sent to the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The code. Send it, then drop it: it is wiped from memory on drop.
    pub code: Code,
    /// How long it stays valid from now.
    pub expires_in: Duration,
}

/// The answer to a verify. Non-exhaustive: later versions add answers (a
/// replayed authenticator code, say), so a `match` needs a catch-all arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The right code, in time, with the right context. It is now consumed.
    Verified,
    /// A wrong code, another context, or something that is not a code at all.
    /// The failure was counted.
    Mismatch {
        /// Wrong guesses left before the code is burned (or the key locked out,
        /// whichever comes first); at least 1.
        attempts_left: u32,
    },
    /// The code is burned (its attempts are used up) or the key is locked out.
    Locked {
        /// Time until the key's lockout ends; zero when only the code is burned
        /// (a new issue gives a new code).
        retry_after: Duration,
    },
    /// The code's time is over (valid while now < expiry). Not counted as a failure.
    Expired,
    /// No code is pending for this key: never issued, consumed, revoked or
    /// forgotten. Not counted as a failure.
    NotFound,
}

impl Verdict {
    /// True only for [`Verdict::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified)
    }
}

/// Bytes the store holds, by structure (allocated capacity, not just what is used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Hash tables from key hash to slot.
    pub tables: usize,
    /// Slots: one per key held, 80 bytes each.
    pub slots: usize,
    /// Older codes of keys, when `codes_per_key > 1`.
    pub older_codes: usize,
    /// Timer wheels (fixed size per shard).
    pub wheels: usize,
}

impl MemoryUsage {
    /// All of it.
    pub fn total(&self) -> usize {
        self.tables + self.slots + self.older_codes + self.wheels
    }
}

/// A one-time-password engine. Safe to share between threads (`&Engine` is all a
/// call needs; wrap it in an `Arc` to share ownership).
///
/// ```
/// use otpengine_core::{Config, Engine, ManualClock, Clock, Verdict};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let engine = Engine::new(Config { clock: Clock::manual(&clock), ..Config::default() })?;
///
/// let issued = engine.issue("+15551234567/login", "")?;
/// // ... send issued.code by SMS; later the person types it:
/// assert_eq!(engine.verify("+15551234567/login", issued.code.as_str(), "")?, Verdict::Verified);
/// // A code works once.
/// assert_eq!(engine.verify("+15551234567/login", issued.code.as_str(), "")?, Verdict::NotFound);
///
/// // A code bound to a transfer verifies only for that transfer.
/// let transfer = "EUR 250.00 to DE89 3704 0044 0532 0130 00";
/// let issued = engine.issue_with_ttl("alice/transfer", transfer, Duration::from_secs(120))?;
/// let other = "EUR 9999.00 to GB33 BUKB 2020 1555 5555 55";
/// assert_eq!(
///     engine.verify("alice/transfer", issued.code.as_str(), other)?,
///     Verdict::Mismatch { attempts_left: 4 }
/// );
/// clock.advance(Duration::from_secs(120));
/// assert_eq!(engine.verify("alice/transfer", issued.code.as_str(), transfer)?, Verdict::Expired);
/// # Ok::<(), otpengine_core::Error>(())
/// ```
pub struct Engine {
    backend: Backend,
}

/// Where an engine keeps its state. Every rule of the memory store lives in
/// `shard.rs`; the Redis store runs the same rules as Lua scripts in Redis.
enum Backend {
    Memory(Memory),
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis::RedisStore>),
}

/// The in-process store: shards behind locks, and the reaper that sweeps them.
struct Memory {
    inner: Arc<Inner>,
    reaper: Option<Reaper>,
}

/// A verify with everything computed that needs no lock (see `Memory::verify_request`).
struct VerifyRequest {
    key_id: crate::digest::KeyId,
    hash: u64,
    guess: Option<crate::digest::CodeDigest>,
}

struct Inner {
    shared: Shared,
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    shard_mask: u64,
    digester: Digester,
    time: TimeSource,
    /// The fork generation the shards' contents belong to (see [`Inner::reset_if_forked`]).
    fork_generation: AtomicU64,
    /// The process the shards' contents belong to: the one that built the engine,
    /// or the last child that emptied it.
    owner_pid: AtomicU32,
    /// Taken by the one thread that empties an inherited engine.
    fork_reset: Mutex<()>,
}

/// An in-memory engine found inherited across `fork()` and emptied: returned once
/// per child process by [`Engine::reset_if_forked`]. Its `Display` is the warning
/// a front end gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkReset {
    /// The process whose state the child's copy held (and no longer holds).
    pub parent_pid: u32,
}

impl std::fmt::Display for ForkReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this in-memory engine was built in process {}; each process has its own state, \
             so codes issued in one worker cannot be verified in another: use the Redis backend \
             for multi-process servers",
            self.parent_pid
        )
    }
}

impl Engine {
    /// Builds an engine; fails with [`Error::InvalidInput`] naming the first bad field.
    pub fn new(config: Config) -> Result<Engine, Error> {
        Ok(Engine {
            backend: Backend::Memory(Memory::new(config)?),
        })
    }

    /// Builds an engine whose state lives in Redis (or Valkey), standalone or
    /// cluster, shared by every engine built over the same server, namespace and
    /// secret: a code issued by one instance verifies on another. The rules are
    /// those of [`Engine::new`]; each call is one atomic script in Redis.
    ///
    /// Fails with [`Error::InvalidInput`] for a bad field or URL, or with
    /// [`Error::Unavailable`] when Redis cannot be reached now (later outages
    /// only fail the calls made during them: the engine reconnects by itself).
    /// See [`RedisOptions`](crate::RedisOptions) for what carries over from `config`.
    #[cfg(feature = "redis")]
    pub fn new_redis(config: Config, options: crate::RedisOptions) -> Result<Engine, Error> {
        let store = crate::redis::RedisStore::connect(config, options)?;
        Ok(Engine {
            backend: Backend::Redis(Box::new(store)),
        })
    }

    /// Issues a code for `key`, bound to `context` (empty: no context), valid for the
    /// configured ttl. With one code per key it replaces any pending code at once.
    ///
    /// Refused with [`Error::RateLimited`], [`Error::Locked`] or
    /// [`Error::CapacityExceeded`] (nothing changes), [`Error::InvalidInput`] for
    /// an empty key or a key or context over 1024 bytes, or (Redis backend)
    /// [`Error::Unavailable`].
    pub fn issue(&self, key: impl AsRef<[u8]>, context: impl AsRef<[u8]>) -> Result<Issued, Error> {
        self.issue_inner(key.as_ref(), context.as_ref(), None)
    }

    /// [`Engine::issue`] with a ttl for this code only (1 s..=24 h).
    pub fn issue_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        context: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<Issued, Error> {
        self.issue_inner(key.as_ref(), context.as_ref(), Some(ttl))
    }

    fn issue_inner(
        &self,
        key: &[u8],
        context: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Issued, Error> {
        check_key(key)?;
        check_context(context)?;
        let ttl = match ttl {
            Some(ttl) => check_ttl(ttl)?,
            None => self.policy().ttl,
        };
        let code = match &self.backend {
            Backend::Memory(m) => m.issue(key, context, ttl),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.issue(key, context, ttl),
        }?;
        Ok(Issued {
            code,
            expires_in: Duration::from_millis(ttl),
        })
    }

    /// Issues a code for each of `keys`, with one `context` for all, in order, and
    /// answers per key: exactly what [`Engine::issue`] would answer for each key in
    /// turn. A bad key is an [`Error::InvalidInput`] for that key alone, a refusal
    /// (rate limit, lockout, capacity) one for that key alone; a key given twice
    /// is issued twice, the second time inside its own cooldown.
    ///
    /// In memory every key is checked and hashed before the first is issued, so
    /// the locked part of the calls runs back to back. With the Redis backend the
    /// calls are made one after the other; once one finds Redis unavailable, the
    /// keys after it are not tried and answer the same [`Error::Unavailable`] at
    /// once (a batch against a server that is down would otherwise wait out one
    /// timeout per key); those answers are not counted in [`Engine::stats`].
    pub fn issue_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        context: impl AsRef<[u8]>,
    ) -> Vec<Result<Issued, Error>> {
        let context = context.as_ref();
        let context_ok = check_context(context).map_err(Error::from);
        let ttl = self.policy().ttl;
        let issued = |code| Issued {
            code,
            expires_in: Duration::from_millis(ttl),
        };
        match &self.backend {
            Backend::Memory(m) => {
                m.inner.reset_if_forked();
                let requests: Vec<Result<IssueRequest, Error>> = keys
                    .into_iter()
                    .map(|key| {
                        let key = key.as_ref();
                        check_key(key)?;
                        context_ok.clone()?;
                        Ok(m.issue_request(key, context, ttl))
                    })
                    .collect();
                requests
                    .into_iter()
                    .map(|req| m.issue_prepared(&req?).map(issued))
                    .collect()
            }
            #[cfg(feature = "redis")]
            Backend::Redis(_) => until_unavailable(keys, |key| self.issue(key, context)),
        }
    }

    /// Verifies each `(key, code, context)` of `items` in order (an empty context:
    /// none), and answers per item: exactly what [`Engine::verify`] would answer
    /// for each in turn. A bad key or context is an [`Error::InvalidInput`] for
    /// that item alone. As with [`Engine::issue_many`], in memory every item is
    /// checked and hashed first, and with the Redis backend the items after the
    /// first that finds Redis unavailable answer the same error untried.
    pub fn verify_many<K, C, X>(
        &self,
        items: impl IntoIterator<Item = (K, C, X)>,
    ) -> Vec<Result<Verdict, Error>>
    where
        K: AsRef<[u8]>,
        C: AsRef<[u8]>,
        X: AsRef<[u8]>,
    {
        match &self.backend {
            Backend::Memory(m) => {
                m.inner.reset_if_forked();
                let requests: Vec<Result<VerifyRequest, Error>> = items
                    .into_iter()
                    .map(|(key, typed, context)| {
                        let (key, context) = (key.as_ref(), context.as_ref());
                        check_key(key)?;
                        check_context(context)?;
                        Ok(m.verify_request(key, typed.as_ref(), context))
                    })
                    .collect();
                requests
                    .into_iter()
                    .map(|req| Ok(m.verify_prepared(&req?)))
                    .collect()
            }
            #[cfg(feature = "redis")]
            Backend::Redis(_) => until_unavailable(items, |(key, typed, context)| {
                self.verify(key, typed, context)
            }),
        }
    }

    /// Checks what a person typed for `key` with `context` (empty: no context).
    ///
    /// Spaces and hyphens are ignored, and case for the alphanumeric alphabet;
    /// anything else that is not a code is an ordinary, counted mismatch. Only a bad
    /// key or context is an error ([`Error::InvalidInput`]), or with the Redis
    /// backend a store that cannot be reached ([`Error::Unavailable`], never a
    /// verdict); every other outcome is a [`Verdict`].
    pub fn verify(
        &self,
        key: impl AsRef<[u8]>,
        code: impl AsRef<[u8]>,
        context: impl AsRef<[u8]>,
    ) -> Result<Verdict, Error> {
        let (key, typed, context) = (key.as_ref(), code.as_ref(), context.as_ref());
        check_key(key)?;
        check_context(context)?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.verify(key, typed, context)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.verify(key, typed, context),
        }
    }

    /// Drops the key's codes. True if one of them was still pending. Rate limits
    /// and the failure count stay as they were.
    pub fn revoke(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        check_key(key)?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.with_key(key, |shard, shared, key_id, hash, now| {
                shard.revoke(shared, key_id, hash, now)
            })),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.revoke(key),
        }
    }

    /// Lifts the key's lockout and clears its failure count. True if there was a
    /// failure count to clear (the key need not have been locked out). A code that
    /// was burned stays burned: issue a new one.
    pub fn unlock(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        check_key(key)?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.with_key(key, |shard, shared, key_id, hash, now| {
                shard.unlock(shared, key_id, hash, now)
            })),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unlock(key),
        }
    }

    /// Keys with a pending code (issued, not yet used, revoked, burned or expired).
    /// Runs every shard's due timers first, so it is exact; O(shards). With the
    /// Redis backend, the keys of the whole store (see [`Engine::stats`]).
    pub fn len(&self) -> usize {
        self.stats().live as usize
    }

    /// True when no key has a pending code.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters since the engine was built, and the live and held entries now.
    /// Runs every shard's due timers first.
    ///
    /// With the Redis backend the counters are this engine's answers, while
    /// `live` and `held` are read from the shared store (a couple of commands on a
    /// standalone server, one per hash slot on a cluster); when Redis cannot be
    /// reached they are the last values read, and [`Engine::try_stats`] says so.
    pub fn stats(&self) -> Stats {
        match &self.backend {
            Backend::Memory(m) => m.stats(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.stats(),
        }
    }

    /// [`Engine::stats`], failing with [`Error::Unavailable`] when the store's
    /// `live` and `held` cannot be read now (never, in memory).
    pub fn try_stats(&self) -> Result<Stats, Error> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.stats()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.try_stats(),
        }
    }

    /// Bytes held by the tables, slots and wheels of all shards (all zero for the
    /// Redis backend, which holds no store in the process).
    pub fn memory_usage(&self) -> MemoryUsage {
        match &self.backend {
            Backend::Memory(m) => m.memory_usage(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => MemoryUsage::default(),
        }
    }

    /// Moves the engine's manual clock forward; [`Error::NotManualClock`] otherwise.
    pub fn advance_clock(&self, by: Duration) -> Result<(), Error> {
        let time = match &self.backend {
            Backend::Memory(m) => &m.inner.time,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.time(),
        };
        let clock = time.manual().ok_or(Error::NotManualClock)?;
        clock.advance(by);
        Ok(())
    }

    /// Symbols in each code this engine issues.
    pub fn code_length(&self) -> u32 {
        self.policy().code_length
    }

    /// Number of shards (0 for the Redis backend, which has none in the process).
    pub fn shard_count(&self) -> usize {
        match &self.backend {
            Backend::Memory(m) => m.inner.shards.len(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => 0,
        }
    }

    /// Empties an in-memory engine inherited across `fork()`, and says so once.
    ///
    /// A child process starts with a copy of its parent's memory, engine
    /// included; were the copy kept, a code pending at the fork would verify once
    /// in each process, and N workers would give a key N times its attempts and
    /// failure budget. So a child's copy starts empty: no code, rate history or
    /// failure count of the parent's is answered in the child, and the parent
    /// keeps its own. Every call does this by itself on its first use in the
    /// child (two atomic loads per call otherwise); this method does it
    /// too, and returns `Some` to the one caller that found the engine inherited,
    /// for front ends that warn (Python's `RuntimeWarning`). Always `None` for a
    /// Redis engine, whose state is in Redis and shared across processes.
    pub fn reset_if_forked(&self) -> Option<ForkReset> {
        match &self.backend {
            Backend::Memory(m) => m.inner.reset_if_forked(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => None,
        }
    }

    /// For a Redis engine, the server it uses as configured, without credentials
    /// (e.g. `127.0.0.1:6379`, or a cluster's seed nodes); `None` in memory.
    pub fn redis_server(&self) -> Option<&str> {
        match &self.backend {
            Backend::Memory(_) => None,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Some(r.server()),
        }
    }

    fn policy(&self) -> &Policy {
        match &self.backend {
            Backend::Memory(m) => &m.inner.shared.policy,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.policy(),
        }
    }

    /// Checks the store's invariants in every shard; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self) {
        #[allow(irrefutable_let_patterns)] // memory is the only backend without `redis`
        let Backend::Memory(m) = &self.backend
        else {
            return;
        };
        let mut held = 0;
        for shard in m.inner.shards.iter() {
            let mut shard = shard.lock();
            shard.validate(&m.inner.shared);
            held += shard.reserved() as u64;
        }
        assert_eq!(
            held,
            m.inner
                .shared
                .held
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// Runs `call` for each item in order until one answers [`Error::Unavailable`];
/// the items after it answer that same error without being tried.
#[cfg(feature = "redis")]
fn until_unavailable<I, T>(
    items: impl IntoIterator<Item = I>,
    mut call: impl FnMut(I) -> Result<T, Error>,
) -> Vec<Result<T, Error>> {
    let mut down: Option<Error> = None;
    items
        .into_iter()
        .map(|item| {
            if let Some(e) = &down {
                return Err(e.clone());
            }
            let answer = call(item);
            if let Err(e @ Error::Unavailable { .. }) = &answer {
                down = Some(e.clone());
            }
            answer
        })
        .collect()
}

impl Memory {
    fn new(config: Config) -> Result<Memory, Error> {
        let policy = Policy::from_config(&config)?;
        fork::register();
        let time = config.clock.start();
        let now = time.now();
        let secret = config.secret.clone().unwrap_or_else(Secret::random);
        let shards = (0..policy.shards)
            .map(|_| CachePadded::new(Mutex::new(Shard::new(now))))
            .collect();
        let inner = Arc::new(Inner {
            shard_mask: u64::from(policy.shards - 1),
            shared: Shared {
                policy,
                held: CachePadded::new(AtomicU64::new(0)),
                hasher: ahash::RandomState::new(),
            },
            shards,
            digester: Digester::new(&secret, config.digest),
            time,
            fork_generation: AtomicU64::new(fork::generation()),
            owner_pid: AtomicU32::new(std::process::id()),
            fork_reset: Mutex::new(()),
        });
        let reaper = config
            .reaper_interval
            .map(|interval| Reaper::start(Arc::downgrade(&inner), interval));
        Ok(Memory { inner, reaper })
    }

    fn issue(&self, key: &[u8], context: &[u8], ttl: Millis) -> Result<Code, Error> {
        self.inner.reset_if_forked();
        self.issue_prepared(&self.issue_request(key, context, ttl))
    }

    /// Everything an issue computes before it takes a lock: the key's digest and
    /// hash, the code digest's prefix.
    fn issue_request(&self, key: &[u8], context: &[u8], ttl: Millis) -> IssueRequest {
        let inner = &*self.inner;
        let key_id = inner.digester.key_id(key);
        IssueRequest {
            key_id,
            hash: inner.shared.hash(key_id),
            prefix: inner.digester.code_prefix(key_id, context),
            ttl,
        }
    }

    fn issue_prepared(&self, req: &IssueRequest) -> Result<Code, Error> {
        let inner = &*self.inner;
        let now = inner.time.now();
        let shard = inner.shard(req.hash);
        let mut result = shard.lock().issue(&inner.shared, req, now, false);
        if result == Err(Refusal::Full) {
            // Full: reclaim everything that has expired everywhere, then try once more.
            inner.reclaim_all(now);
            result = shard.lock().issue(&inner.shared, req, now, true);
        }
        result.map_err(|refusal| match refusal {
            Refusal::RateLimited(wait) => Error::RateLimited {
                retry_after: Duration::from_millis(wait),
            },
            Refusal::Locked(wait) => Error::Locked {
                retry_after: Duration::from_millis(wait),
            },
            Refusal::Full => Error::CapacityExceeded {
                capacity: inner.shared.policy.capacity,
                out_of_memory: None,
            },
        })
    }

    fn verify(&self, key: &[u8], typed: &[u8], context: &[u8]) -> Verdict {
        self.inner.reset_if_forked();
        self.verify_prepared(&self.verify_request(key, typed, context))
    }

    /// Everything a verify computes before it takes a lock: the key's digest and
    /// hash, and the digest of what was typed (`None`: it cannot be a code).
    fn verify_request(&self, key: &[u8], typed: &[u8], context: &[u8]) -> VerifyRequest {
        let inner = &*self.inner;
        let policy = &inner.shared.policy;
        let key_id = inner.digester.key_id(key);
        let guess = code::normalize(typed, policy.alphabet, policy.code_length).map(|code| {
            inner
                .digester
                .code_prefix(key_id, context)
                .finish(code.as_bytes())
        });
        VerifyRequest {
            key_id,
            hash: inner.shared.hash(key_id),
            guess,
        }
    }

    fn verify_prepared(&self, req: &VerifyRequest) -> Verdict {
        let inner = &*self.inner;
        let now = inner.time.now();
        let outcome = inner.shard(req.hash).lock().verify(
            &inner.shared,
            req.key_id,
            req.hash,
            req.guess,
            now,
        );
        match outcome {
            Outcome::Verified => Verdict::Verified,
            Outcome::Mismatch(attempts_left) => Verdict::Mismatch { attempts_left },
            Outcome::Locked(wait) => Verdict::Locked {
                retry_after: Duration::from_millis(wait),
            },
            Outcome::Expired => Verdict::Expired,
            Outcome::NotFound => Verdict::NotFound,
        }
    }

    fn with_key<R>(
        &self,
        key: &[u8],
        op: impl FnOnce(&mut Shard, &Shared, crate::digest::KeyId, u64, Millis) -> R,
    ) -> R {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let key_id = inner.digester.key_id(key);
        let hash = inner.shared.hash(key_id);
        let now = inner.time.now();
        op(
            &mut inner.shard(hash).lock(),
            &inner.shared,
            key_id,
            hash,
            now,
        )
    }

    fn stats(&self) -> Stats {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let now = inner.time.now();
        let mut stats = Stats::default();
        for shard in inner.shards.iter() {
            let mut shard = shard.lock();
            shard.reclaim(&inner.shared, now, usize::MAX);
            stats.add(&shard.counters);
            stats.live += shard.live();
            stats.held += shard.held() as u64;
        }
        stats
    }

    fn memory_usage(&self) -> MemoryUsage {
        self.inner.reset_if_forked();
        let mut usage = MemoryUsage::default();
        for shard in self.inner.shards.iter() {
            let m = shard.lock().memory();
            usage.tables += m.table;
            usage.slots += m.slots;
            usage.older_codes += m.older;
            usage.wheels += m.wheel;
        }
        usage
    }
}

impl Inner {
    /// See [`Engine::reset_if_forked`]. The parent's reaper does not exist in the
    /// child (and is not restarted): the child's own calls reclaim its shards.
    fn reset_if_forked(&self) -> Option<ForkReset> {
        let generation = fork::generation();
        if self.fork_generation.load(Ordering::Acquire) == generation {
            return None;
        }
        let _resetting = self.fork_reset.lock();
        if self.fork_generation.load(Ordering::Acquire) == generation {
            return None; // another thread of this child emptied it first
        }
        let now = self.time.now();
        for shard in self.shards.iter() {
            *shard.lock() = Shard::new(now);
        }
        self.shared.held.store(0, Ordering::Relaxed);
        self.fork_generation.store(generation, Ordering::Release);
        let parent_pid = self.owner_pid.swap(std::process::id(), Ordering::Relaxed);
        Some(ForkReset { parent_pid })
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // The table uses the low bits (bucket) and the top seven (tag); the shard
        // comes from bits 32 and up, which neither uses for tables under 2^32.
        &self.shards[((hash >> 32) & self.shard_mask) as usize]
    }

    /// Frees everything that can be freed: due timers everywhere, and spare slots.
    fn reclaim_all(&self, now: Millis) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.reclaim(&self.shared, now, usize::MAX);
            shard.drop_spares(&self.shared);
        }
    }

    /// One reaper pass over all shards, skipping any that are busy: those are
    /// reclaimed by their own traffic.
    fn sweep(&self) {
        let now = self.time.now();
        for shard in self.shards.iter() {
            loop {
                let Some(_pass) = fork::ReaperPass::enter() else {
                    return;
                };
                let Some(mut shard) = shard.try_lock() else {
                    break;
                };
                if shard.reclaim(&self.shared, now, REAPER_BATCH) < REAPER_BATCH {
                    break;
                }
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Memory(m) => f
                .debug_struct("Engine")
                .field("policy", &m.inner.shared.policy)
                .field("digest", &m.inner.digester.algorithm())
                .field("reaper", &m.reaper.is_some())
                .finish_non_exhaustive(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => f
                .debug_struct("Engine")
                .field("policy", r.policy())
                .field("redis", &r.server())
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.take() {
            reaper.stop();
        }
    }
}

/// The background thread that sweeps idle shards.
struct Reaper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
    fork_generation: u64,
}

impl Reaper {
    fn start(inner: Weak<Inner>, interval: Duration) -> Reaper {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("otpengine-reaper".into())
            .spawn(move || loop {
                {
                    let (stopped, wake) = &*signal;
                    let mut stopped = stopped.lock();
                    if !*stopped {
                        wake.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                match inner.upgrade() {
                    Some(inner) => inner.sweep(),
                    None => return,
                }
            })
            .expect("spawning the reaper thread");
        Reaper {
            stop,
            thread,
            fork_generation: fork::generation(),
        }
    }

    fn stop(self) {
        if self.fork_generation != fork::generation() {
            // In a forked child the thread does not exist, and its lock may be held
            // by nobody who will ever release it: neither signal nor join.
            std::mem::forget(self.thread);
            std::mem::forget(self.stop);
            return;
        }
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
    }
}
