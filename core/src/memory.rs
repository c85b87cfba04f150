//! The in-process store: the shards behind their locks, what a call computes
//! before it takes one, the fork reset, and the reaper thread that sweeps idle
//! shards. Every rule of the store lives in `shard.rs`; this module picks the
//! shard, hashes and digests outside the lock, and maps the shard's answers to
//! the engine's.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::answer::{ForkReset, Issued, MemoryUsage, Verdict};
use crate::clock::{Millis, TimeSource};
use crate::code::{self, Code};
use crate::digest::{CodeDigest, DigestAlgorithm, Digester, KeyId, Secret};
use crate::error::Error;
use crate::fork;
use crate::policy::{Config, Policy};
use crate::scope::ScopeTarget;
use crate::scope_shard::ScopeShard;
use crate::shard::{IssueRequest, Outcome, Refusal, Shard, Shared};
use crate::stats::Stats;
use crate::totp::{TotpCheck, TotpParams};

/// How many items ahead a batch prefetches rows: enough misses in flight to
/// cover DRAM latency, few enough that their lines are still cached when used.
const PREFETCH_AHEAD: usize = 8;

/// Timers one reaper pass runs in a shard before letting go of its lock.
const REAPER_BATCH: usize = 1024;

/// The in-process store: shards behind locks, and the reaper that sweeps them.
pub(crate) struct Memory {
    inner: Arc<Inner>,
    reaper: Option<Reaper>,
}

/// A verify with everything computed that needs no lock (see `Memory::verify_request`).
pub(crate) struct VerifyRequest {
    hash: u64,
    guess: Option<CodeDigest>,
}

struct Inner {
    shared: Shared,
    shards: Box<[CachePadded<ShardCell>]>,
    shard_mask: u64,
    /// The scope state (`scope_shard.rs`), as many shards as the keys' when
    /// scope limits are configured, none otherwise. A scoped call locks its
    /// key's shard first, then its scopes' shards in ascending order, and
    /// nothing locks a key's shard while holding a scope's: no deadlock.
    scope_shards: Box<[CachePadded<Mutex<ScopeShard>>]>,
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

impl Memory {
    pub(crate) fn new(config: Config) -> Result<Memory, Error> {
        let policy = Policy::from_config(&config)?;
        fork::register();
        let time = config.clock.start();
        let now = time.now();
        let secret = config.secret.clone().unwrap_or_else(Secret::random);
        let shards = (0..policy.shards)
            .map(|_| CachePadded::new(ShardCell::new(Shard::new(now))))
            .collect();
        let scope_shard_count = if policy.scopes.is_empty() {
            0
        } else {
            policy.shards
        };
        let scope_shards = (0..scope_shard_count)
            .map(|_| CachePadded::new(Mutex::new(ScopeShard::new(now))))
            .collect();
        let inner = Arc::new(Inner {
            shard_mask: u64::from(policy.shards - 1),
            shared: Shared {
                policy,
                held: CachePadded::new(AtomicU64::new(0)),
            },
            shards,
            scope_shards,
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

    /// The batch of [`Memory::issue`]: every key's request computed first (keys
    /// are not kept, only their requests), then the calls in order; a key that
    /// failed the engine's checks keeps its error.
    pub(crate) fn issue_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = Result<K, Error>>,
        context: &[u8],
        ttl: Millis,
    ) -> Vec<Result<Issued, Error>> {
        self.inner.reset_if_forked();
        let requests: Vec<Result<IssueRequest, Error>> = keys
            .into_iter()
            .map(|key| Ok(self.issue_request(self.key_id(key?.as_ref()), context, ttl)))
            .collect();
        let expires_in = Duration::from_millis(ttl);
        self.run_batch(
            requests,
            |r| r.hash,
            |req| {
                let code = self.issue_prepared(req)?;
                Ok(Issued { code, expires_in })
            },
        )
    }

    /// The batch of [`Memory::verify`], as [`Memory::issue_many`] is of issue.
    pub(crate) fn verify_many<K, C, X>(
        &self,
        items: impl IntoIterator<Item = Result<(K, C, X), Error>>,
    ) -> Vec<Result<Verdict, Error>>
    where
        K: AsRef<[u8]>,
        C: AsRef<[u8]>,
        X: AsRef<[u8]>,
    {
        self.inner.reset_if_forked();
        let requests: Vec<Result<VerifyRequest, Error>> = items
            .into_iter()
            .map(|item| {
                let (key, typed, context) = item?;
                let key_id = self.key_id(key.as_ref());
                Ok(self.verify_request(key_id, typed.as_ref(), context.as_ref()))
            })
            .collect();
        self.run_batch(requests, |r| r.hash, |req| Ok(self.verify_prepared(req)))
    }

    /// Runs a batch's prepared requests in order, each with the rows of the
    /// items a few places ahead prefetched; an item that failed the engine's
    /// checks keeps its error.
    fn run_batch<Q, A>(
        &self,
        requests: Vec<Result<Q, Error>>,
        hash: impl Fn(&Q) -> u64,
        run: impl Fn(&Q) -> Result<A, Error>,
    ) -> Vec<Result<A, Error>> {
        let hashes: Vec<Option<u64>> = requests
            .iter()
            .map(|r| r.as_ref().ok().map(&hash))
            .collect();
        requests
            .into_iter()
            .enumerate()
            .map(|(k, req)| {
                self.inner.prefetch_ahead(&hashes, k);
                run(&req?)
            })
            .collect()
    }

    /// Drops the key's codes; true if one was pending.
    pub(crate) fn revoke(&self, key: &[u8]) -> bool {
        self.with_key(key, |shard, shared, hash, now| {
            shard.revoke(shared, hash, now)
        })
    }

    /// Lifts the key's lockout and clears its failure count; true if there was one.
    pub(crate) fn unlock(&self, key: &[u8]) -> bool {
        self.with_key(key, |shard, shared, hash, now| {
            shard.unlock(shared, hash, now)
        })
    }

    /// Lifts the lockout of the key's TOTP state; true if it had failures.
    pub(crate) fn unlock_totp(&self, key: &[u8]) -> bool {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let hash = inner.digester.totp_key_id(key).table_hash();
        let now = inner.time.now();
        inner.shard(hash).lock().unlock(&inner.shared, hash, now)
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.inner.shared.policy
    }

    pub(crate) fn time(&self) -> &TimeSource {
        &self.inner.time
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    pub(crate) fn digester(&self) -> &Digester {
        &self.inner.digester
    }

    pub(crate) fn digest_algorithm(&self) -> DigestAlgorithm {
        self.inner.digester.algorithm()
    }

    pub(crate) fn has_reaper(&self) -> bool {
        self.reaper.is_some()
    }

    /// See [`Engine::reset_if_forked`](crate::Engine::reset_if_forked).
    #[inline]
    pub(crate) fn reset_if_forked(&self) -> Option<ForkReset> {
        self.inner.reset_if_forked()
    }

    /// Checks the store's invariants in every shard, and the held count; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self) {
        let mut held = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.lock();
            shard.validate(&self.inner.shared);
            held += shard.reserved() as u64;
        }
        for shard in self.inner.scope_shards.iter() {
            let shard = shard.lock();
            shard.validate(&self.inner.shared);
            held += shard.held() as u64;
        }
        assert_eq!(held, self.inner.shared.held.load(Ordering::Relaxed));
    }

    pub(crate) fn issue(&self, key: &[u8], context: &[u8], ttl: Millis) -> Result<Code, Error> {
        self.inner.reset_if_forked();
        let key_id = self.key_id_prefetched(key);
        self.issue_prepared(&self.issue_request(key_id, context, ttl))
    }

    /// The key's id (a keyed digest of its bytes).
    fn key_id(&self, key: &[u8]) -> KeyId {
        self.inner.digester.key_id(key)
    }

    /// The key's id, with its row's cache line already on its way: a single call
    /// starts the load as soon as it knows the row, so the miss overlaps the
    /// digests still to compute (the code's, about 40 ns) instead of following
    /// them. A batch prefetches a few items ahead instead.
    fn key_id_prefetched(&self, key: &[u8]) -> KeyId {
        let key_id = self.key_id(key);
        let hash = key_id.table_hash();
        self.inner.shard(hash).prefetch(hash);
        key_id
    }

    /// Everything an issue computes before it takes a lock: the key's hash, the
    /// code digest's prefix.
    pub(crate) fn issue_request(&self, key_id: KeyId, context: &[u8], ttl: Millis) -> IssueRequest {
        let inner = &*self.inner;
        IssueRequest {
            hash: key_id.table_hash(),
            prefix: inner.digester.code_prefix(key_id, context),
            ttl,
        }
    }

    /// Runs a prepared issue; its row's prefetch is the caller's (a single call
    /// starts it as it hashes the key, a batch a few items ahead).
    pub(crate) fn issue_prepared(&self, req: &IssueRequest) -> Result<Code, Error> {
        let inner = &*self.inner;
        let shard = inner.shard(req.hash);
        let now = inner.time.now();
        let mut result = shard.lock().issue(&inner.shared, req, now, false);
        if result == Err(Refusal::Full) {
            // Full: reclaim everything that has expired everywhere, then try once more.
            inner.reclaim_all(now);
            result = shard.lock().issue(&inner.shared, req, now, true);
        }
        result.map_err(|refusal| self.refusal(refusal))
    }

    pub(crate) fn verify(&self, key: &[u8], typed: &[u8], context: &[u8]) -> Verdict {
        self.inner.reset_if_forked();
        let key_id = self.key_id_prefetched(key);
        self.verify_prepared(&self.verify_request(key_id, typed, context))
    }

    /// Everything a verify computes before it takes a lock: the key's hash, and
    /// the digest of what was typed (`None`: it cannot be a code).
    pub(crate) fn verify_request(
        &self,
        key_id: KeyId,
        typed: &[u8],
        context: &[u8],
    ) -> VerifyRequest {
        let inner = &*self.inner;
        let policy = &inner.shared.policy;
        let guess = code::normalize(typed, policy.alphabet, policy.code_length)
            .map(|code| inner.digester.code_digest(key_id, context, code.as_bytes()));
        VerifyRequest {
            hash: key_id.table_hash(),
            guess,
        }
    }

    /// Runs a prepared verify; its row's prefetch is the caller's, as for
    /// [`Memory::issue_prepared`].
    pub(crate) fn verify_prepared(&self, req: &VerifyRequest) -> Verdict {
        let inner = &*self.inner;
        let shard = inner.shard(req.hash);
        let now = inner.time.now();
        let outcome = shard.lock().verify(&inner.shared, req.hash, req.guess, now);
        Self::verdict(outcome)
    }

    fn verdict(outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Verified => Verdict::Verified,
            Outcome::Mismatch(attempts_left) => Verdict::Mismatch { attempts_left },
            Outcome::Locked(wait) => Verdict::Locked {
                retry_after: Duration::from_millis(wait),
            },
            Outcome::Expired => Verdict::Expired,
            Outcome::NotFound => Verdict::NotFound,
            Outcome::Replayed => Verdict::Replayed,
        }
    }

    /// See [`Engine::issue_scoped`](crate::Engine::issue_scoped); the scopes are
    /// resolved. The key's shard and its scopes' shards are held together, so
    /// the key's limits and every scope's are checked, and the issue counted on
    /// all of them, as one step: a refused issue counts nowhere.
    pub(crate) fn issue_scoped(
        &self,
        key: &[u8],
        context: &[u8],
        ttl: Millis,
        targets: &[ScopeTarget],
    ) -> Result<Code, Error> {
        self.inner.reset_if_forked();
        let req = self.issue_request(self.key_id_prefetched(key), context, ttl);
        match self.try_issue_scoped(&req, targets, false) {
            Err(Error::CapacityExceeded { .. }) => {
                // Full: reclaim everything, with no lock held, then try once more.
                self.inner.reclaim_all(self.inner.time.now());
                self.try_issue_scoped(&req, targets, true)
            }
            answer => answer,
        }
    }

    fn try_issue_scoped(
        &self,
        req: &IssueRequest,
        targets: &[ScopeTarget],
        count_full: bool,
    ) -> Result<Code, Error> {
        let inner = &*self.inner;
        let shared = &inner.shared;
        let scopes_policy = &shared.policy.scopes;
        let now = inner.time.now();
        let mut key = inner.shard(req.hash).lock();
        let (mut scopes, guard_of) = inner.lock_scopes(targets, now);

        // The longest wait among the limits that refuse, and whose it is.
        let mut wait = match key.issue_refusal(shared, req.hash, now) {
            Some(Refusal::Locked(left)) => {
                key.counters.locked += 1;
                return Err(Error::Locked {
                    retry_after: Duration::from_millis(left),
                });
            }
            Some(Refusal::RateLimited(wait)) => wait,
            _ => 0,
        };
        let mut by = None;
        for (k, t) in targets.iter().enumerate() {
            let limit = &scopes_policy[t.limit];
            let scope_wait = scopes[guard_of[k]].issue_wait(t.id.table_hash(), limit, now);
            if scope_wait > wait {
                (wait, by) = (scope_wait, Some(t.limit));
            }
        }
        if wait > 0 {
            key.counters.rate_limited += 1;
            if let Some(limit) = by {
                key.counters.scope_rate_limited[limit] += 1;
            }
            return Err(Error::RateLimited {
                retry_after: Duration::from_millis(wait),
                scope: by.map(|limit| scopes_policy[limit].name.clone()),
            });
        }

        // Allowed by every limit: the scopes with an issue limit count it.
        let (counting, new_rows) =
            counting_scopes(scopes_policy, targets, &scopes, &guard_of, |l| {
                l.max_issues > 0
            });
        if !reserve_rows(shared, new_rows) {
            if count_full {
                key.counters.capacity_exceeded += 1;
            }
            return Err(self.full());
        }
        match key.issue(shared, req, now, count_full) {
            Ok(code) => {
                for k in counting {
                    let t = &targets[k];
                    scopes[guard_of[k]].count_issue(shared, t.id.table_hash(), t.limit, now);
                }
                Ok(code)
            }
            Err(refusal) => {
                shared.held.fetch_sub(new_rows as u64, Ordering::Relaxed);
                Err(self.refusal(refusal))
            }
        }
    }

    /// See [`Engine::verify_scoped`](crate::Engine::verify_scoped); the scopes are
    /// resolved. A scope that has spent its failure budget answers `Locked`
    /// without the code being looked at; a counted failure of the key counts on
    /// every scope with a failure budget, in the same step.
    pub(crate) fn verify_scoped(
        &self,
        key: &[u8],
        typed: &[u8],
        context: &[u8],
        targets: &[ScopeTarget],
    ) -> Result<Verdict, Error> {
        self.inner.reset_if_forked();
        let req = self.verify_request(self.key_id_prefetched(key), typed, context);
        self.verify_with_scopes(req.hash, targets, |shard, shared, now, _| {
            Ok(shard.verify(shared, req.hash, req.guess, now))
        })
    }

    /// See [`Engine::verify_totp_scoped`](crate::Engine::verify_totp_scoped);
    /// the arguments are checked and the scopes (perhaps none) resolved. The
    /// codes of the allowed steps are computed and compared before any lock is
    /// taken; the key's row and the scopes' are then handled as in
    /// [`Memory::verify_scoped`].
    pub(crate) fn verify_totp(
        &self,
        key: &[u8],
        secret: &[u8],
        typed: &[u8],
        params: &TotpParams,
        unix_ms: u64,
        targets: &[ScopeTarget],
    ) -> Result<Verdict, Error> {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let hash = inner.digester.totp_key_id(key).table_hash();
        // As for the random codes: the row loads while the HMACs are computed.
        inner.shard(hash).prefetch(hash);
        let check = TotpCheck::new(secret, typed, params, unix_ms);
        self.verify_with_scopes(hash, targets, |shard, shared, now, count_full| {
            shard.verify_totp(shared, hash, &check, now, count_full)
        })
    }

    /// The scoped verify of either kind: `run` is the key's own verify. Full
    /// (no room to count a failure on a scope): reclaim and try once more, then
    /// refuse without looking at the code, as a full TOTP verify does. The key's
    /// row was prefetched by the caller as it hashed the key.
    fn verify_with_scopes(
        &self,
        hash: u64,
        targets: &[ScopeTarget],
        mut run: impl FnMut(&mut Shard, &Shared, Millis, bool) -> Result<Outcome, Refusal>,
    ) -> Result<Verdict, Error> {
        let inner = &*self.inner;
        for count_full in [false, true] {
            let shared = &inner.shared;
            let scopes_policy = &shared.policy.scopes;
            let now = inner.time.now();
            let mut key = inner.shard(hash).lock();
            let (mut scopes, guard_of) = inner.lock_scopes(targets, now);

            let mut wait = 0;
            let mut by = None;
            for (k, t) in targets.iter().enumerate() {
                let limit = &scopes_policy[t.limit];
                let left = scopes[guard_of[k]].lockout_left(t.id.table_hash(), limit, now);
                if let Some(left) = left.filter(|&left| left > wait) {
                    (wait, by) = (left, Some(t.limit));
                }
            }
            if let Some(limit) = by {
                let key_wait = key.key_lockout_left(shared, hash, now).unwrap_or(0);
                key.counters.locked += 1;
                key.counters.scope_locked[limit] += 1;
                return Ok(Verdict::Locked {
                    retry_after: Duration::from_millis(wait.max(key_wait)),
                });
            }

            let (counting, new_rows) =
                counting_scopes(scopes_policy, targets, &scopes, &guard_of, |l| {
                    l.max_failures > 0
                });
            if !reserve_rows(shared, new_rows) {
                if count_full {
                    key.counters.capacity_exceeded += 1;
                    return Err(self.full());
                }
                drop((key, scopes));
                inner.reclaim_all(now);
                continue;
            }
            let outcome = match run(&mut key, shared, now, count_full) {
                Ok(outcome) => outcome,
                Err(_) if !count_full => {
                    shared.held.fetch_sub(new_rows as u64, Ordering::Relaxed);
                    drop((key, scopes));
                    inner.reclaim_all(now);
                    continue;
                }
                Err(_) => {
                    shared.held.fetch_sub(new_rows as u64, Ordering::Relaxed);
                    return Err(self.full());
                }
            };
            if key.counted_failure() {
                for k in counting {
                    let t = &targets[k];
                    scopes[guard_of[k]].count_failure(shared, t.id.table_hash(), t.limit, now);
                }
            } else {
                shared.held.fetch_sub(new_rows as u64, Ordering::Relaxed);
            }
            return Ok(Self::verdict(outcome));
        }
        unreachable!("the second pass returns")
    }

    /// Lifts the lockout of a scope value and clears its counts.
    pub(crate) fn unlock_scope(&self, target: &ScopeTarget) -> bool {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let now = inner.time.now();
        let mut shard = inner.scope_shards[inner.scope_shard_index(target)].lock();
        shard.begin(&inner.shared, now);
        shard.clear(&inner.shared, target.id.table_hash(), now)
    }

    /// A shard's refusal of an issue, as the engine's error.
    fn refusal(&self, refusal: Refusal) -> Error {
        match refusal {
            Refusal::RateLimited(wait) => Error::RateLimited {
                retry_after: Duration::from_millis(wait),
                scope: None,
            },
            Refusal::Locked(wait) => Error::Locked {
                retry_after: Duration::from_millis(wait),
            },
            Refusal::Full => self.full(),
        }
    }

    fn full(&self) -> Error {
        Error::CapacityExceeded {
            capacity: self.inner.shared.policy.capacity,
            out_of_memory: None,
        }
    }

    fn with_key<R>(&self, key: &[u8], op: impl FnOnce(&mut Shard, &Shared, u64, Millis) -> R) -> R {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let hash = inner.digester.key_id(key).table_hash();
        let now = inner.time.now();
        op(&mut inner.shard(hash).lock(), &inner.shared, hash, now)
    }

    pub(crate) fn stats(&self) -> Stats {
        let inner = &*self.inner;
        inner.reset_if_forked();
        let now = inner.time.now();
        let mut stats = Stats::default();
        let mut counters = Vec::with_capacity(inner.shards.len());
        for shard in inner.shards.iter() {
            let mut shard = shard.lock();
            shard.reclaim(&inner.shared, now, usize::MAX);
            stats.add(&shard.counters);
            counters.push(shard.counters);
            stats.live += shard.live();
            stats.held += shard.held() as u64;
        }
        for shard in inner.scope_shards.iter() {
            let mut shard = shard.lock();
            shard.reclaim(&inner.shared, now, usize::MAX);
            stats.held += shard.held() as u64;
        }
        let names = inner.shared.policy.scopes.iter().map(|s| s.name.as_str());
        stats.set_scopes(names, &counters);
        stats
    }

    pub(crate) fn memory_usage(&self) -> MemoryUsage {
        self.inner.reset_if_forked();
        let mut usage = MemoryUsage::default();
        for shard in self.inner.shards.iter() {
            let m = shard.lock().memory();
            usage.tables += m.table;
            usage.older_codes += m.older;
            usage.failure_histories += m.histories;
            usage.wheels += m.wheel;
        }
        for shard in self.inner.scope_shards.iter() {
            let (table, wheel) = shard.lock().memory();
            usage.scopes += table;
            usage.wheels += wheel;
        }
        usage
    }
}

impl Inner {
    /// See [`Engine::reset_if_forked`](crate::Engine::reset_if_forked). The parent's reaper does not exist in the
    /// child (and is not restarted): the child's own calls reclaim its shards.
    #[inline]
    fn reset_if_forked(&self) -> Option<ForkReset> {
        let generation = fork::generation();
        if self.fork_generation.load(Ordering::Acquire) == generation {
            return None;
        }
        self.reset(generation)
    }

    /// Empties the shards of an engine inherited through `fork()`: out of line, as
    /// it happens once per child, and every call checks for it.
    #[cold]
    #[inline(never)]
    fn reset(&self, generation: u64) -> Option<ForkReset> {
        let _resetting = self.fork_reset.lock();
        if self.fork_generation.load(Ordering::Acquire) == generation {
            return None; // another thread of this child emptied it first
        }
        let now = self.time.now();
        for shard in self.shards.iter() {
            *shard.lock() = Shard::new(now);
        }
        for shard in self.scope_shards.iter() {
            *shard.lock() = ScopeShard::new(now);
        }
        self.shared.held.store(0, Ordering::Relaxed);
        self.fork_generation.store(generation, Ordering::Release);
        let parent_pid = self.owner_pid.swap(std::process::id(), Ordering::Relaxed);
        Some(ForkReset { parent_pid })
    }

    fn shard(&self, hash: u64) -> &ShardCell {
        // The table's home for a hash comes from its high bits (`hash * rows >>
        // 64`); the shard from its low bits, which that hardly depends on.
        &self.shards[(hash & self.shard_mask) as usize]
    }

    /// Before item `k` of a batch runs: starts loading the rows of the items a few
    /// places ahead (all of the first few, at the start), so that the cache misses
    /// of several items overlap instead of following one another.
    fn prefetch_ahead(&self, hashes: &[Option<u64>], k: usize) {
        let ahead = if k == 0 {
            0..PREFETCH_AHEAD
        } else {
            PREFETCH_AHEAD - 1..PREFETCH_AHEAD
        };
        for hash in ahead.filter_map(|d| hashes.get(k + d).copied().flatten()) {
            self.shard(hash).prefetch(hash);
        }
    }

    /// Frees everything that can be freed: due timers everywhere, and spare slots.
    fn reclaim_all(&self, now: Millis) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.reclaim(&self.shared, now, usize::MAX);
            shard.drop_spares(&self.shared);
        }
        for shard in self.scope_shards.iter() {
            shard.lock().reclaim(&self.shared, now, usize::MAX);
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
        for shard in self.scope_shards.iter() {
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

    fn scope_shard_index(&self, target: &ScopeTarget) -> usize {
        (target.id.table_hash() & (self.scope_shards.len() as u64 - 1)) as usize
    }

    /// Locks the shards of `targets` in ascending order, each once, and brings
    /// each up to `now`; returns the guards and, for each target, the index of
    /// its guard.
    fn lock_scopes(
        &self,
        targets: &[ScopeTarget],
        now: Millis,
    ) -> (Vec<MutexGuard<'_, ScopeShard>>, Vec<usize>) {
        let mut order: Vec<usize> = targets.iter().map(|t| self.scope_shard_index(t)).collect();
        let of_target = order.clone();
        order.sort_unstable();
        order.dedup();
        let guards = order
            .iter()
            .map(|&k| {
                let mut guard = self.scope_shards[k].lock();
                guard.begin(&self.shared, now);
                guard
            })
            .collect();
        let guard_of = of_target
            .iter()
            .map(|k| order.binary_search(k).expect("locked"))
            .collect();
        (guards, guard_of)
    }
}

/// The targets whose limit counts this call (`counts`), by index, and how many
/// of them have no row yet (what counting them would take of the capacity).
fn counting_scopes(
    limits: &[crate::scope::ScopePolicy],
    targets: &[ScopeTarget],
    scopes: &[MutexGuard<'_, ScopeShard>],
    guard_of: &[usize],
    counts: impl Fn(&crate::scope::ScopePolicy) -> bool,
) -> (Vec<usize>, usize) {
    let counting: Vec<usize> = (0..targets.len())
        .filter(|&k| counts(&limits[targets[k].limit]))
        .collect();
    let new_rows = counting
        .iter()
        .filter(|&&k| !scopes[guard_of[k]].holds(targets[k].id.table_hash()))
        .count();
    (counting, new_rows)
}

/// Takes `rows` rows of the capacity, all or none.
fn reserve_rows(shared: &Shared, rows: usize) -> bool {
    for taken in 0..rows {
        if !shared.reserve() {
            shared.held.fetch_sub(taken as u64, Ordering::Relaxed);
            return false;
        }
    }
    true
}

/// A shard behind its lock, and where its table's rows are, published after every
/// locked call so that a caller can prefetch a key's row before it takes the lock
/// (the batches do, a few items ahead).
struct ShardCell {
    shard: Mutex<Shard>,
    rows_at: AtomicUsize,
    rows: AtomicUsize,
}

impl ShardCell {
    fn new(shard: Shard) -> Self {
        let (at, rows) = shard.extent();
        ShardCell {
            shard: Mutex::new(shard),
            rows_at: AtomicUsize::new(at),
            rows: AtomicUsize::new(rows),
        }
    }

    fn lock(&self) -> ShardGuard<'_> {
        ShardGuard {
            guard: self.shard.lock(),
            cell: self,
        }
    }

    fn try_lock(&self) -> Option<ShardGuard<'_>> {
        Some(ShardGuard {
            guard: self.shard.try_lock()?,
            cell: self,
        })
    }

    /// Starts loading the row `hash` would be in, from the last published extent.
    fn prefetch(&self, hash: u64) {
        let at = self.rows_at.load(Ordering::Relaxed);
        let rows = self.rows.load(Ordering::Relaxed);
        Shard::prefetch(at, rows, hash);
    }
}

/// The lock of a shard; publishes the table's extent when it is let go.
struct ShardGuard<'a> {
    guard: parking_lot::MutexGuard<'a, Shard>,
    cell: &'a ShardCell,
}

impl std::ops::Deref for ShardGuard<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl std::ops::DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let (at, rows) = self.guard.extent();
        if self.cell.rows_at.load(Ordering::Relaxed) != at {
            self.cell.rows_at.store(at, Ordering::Relaxed);
        }
        if self.cell.rows.load(Ordering::Relaxed) != rows {
            self.cell.rows.store(rows, Ordering::Relaxed);
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
