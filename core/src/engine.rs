//! The engine: validates a call, then hands it to its backend, the in-process
//! store (`crate::memory`) or Redis (`crate::redis`), which both answer in the
//! types of `crate::answer`. Nothing here knows how either keeps its state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::answer::{ForkReset, Issued, MemoryUsage, Verdict};
use crate::error::{Constraint, Error, Field, Got, InvalidInput};
use crate::memory::Memory;
use crate::policy::{check_context, check_key, check_ttl, Config, Policy};
use crate::scope::{Scope, ScopeTarget};
use crate::stats::Stats;
use crate::totp::TotpParams;

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

/// Where an engine keeps its state: the in-process store (`memory.rs`, whose rules
/// live in `shard.rs`), or Redis, which runs the same rules as Lua scripts.
enum Backend {
    Memory(Memory),
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis::RedisStore>),
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
        self.issue_inner(key.as_ref(), context.as_ref(), None, &[])
    }

    /// [`Engine::issue`] with a ttl for this code only (1 s..=24 h).
    pub fn issue_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        context: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<Issued, Error> {
        self.issue_inner(key.as_ref(), context.as_ref(), Some(ttl), &[])
    }

    /// Every issue: the arguments checked (the scopes last), then the backend's
    /// plain or scoped issue.
    fn issue_inner(
        &self,
        key: &[u8],
        context: &[u8],
        ttl: Option<Duration>,
        scopes: &[Scope<'_>],
    ) -> Result<Issued, Error> {
        check_key(key)?;
        check_context(context)?;
        let ttl = match ttl {
            Some(ttl) => check_ttl(ttl)?,
            None => self.policy().ttl,
        };
        let targets = self.targets(scopes)?;
        let code = match (&self.backend, targets.is_empty()) {
            (Backend::Memory(m), true) => m.issue(key, context, ttl),
            (Backend::Memory(m), false) => m.issue_scoped(key, context, ttl, &targets),
            #[cfg(feature = "redis")]
            (Backend::Redis(r), true) => r.issue(key, context, ttl),
            #[cfg(feature = "redis")]
            (Backend::Redis(r), false) => r.issue_scoped(key, context, ttl, &targets),
        }?;
        Ok(Issued {
            code,
            expires_in: Duration::from_millis(ttl),
        })
    }

    /// [`Engine::issue`] (with `ttl`, or the configured one for `None`) for a key
    /// that belongs to `scopes`: allowed only when the key's own limits and
    /// every named scope's allow it, and then counted on the key and on each
    /// scope that has an issue limit; a refused issue counts nowhere.
    ///
    /// The refusal is [`Error::RateLimited`] with the longest wait among the
    /// limits that refuse and the scope that gives it (`None`: the key's own),
    /// or [`Error::Locked`] for a locked-out key. A scope name with no
    /// configured limit, or one named twice, is [`Error::InvalidInput`] naming
    /// it, and changes nothing. With no scopes this is [`Engine::issue`].
    pub fn issue_scoped(
        &self,
        key: impl AsRef<[u8]>,
        context: impl AsRef<[u8]>,
        ttl: Option<Duration>,
        scopes: &[Scope<'_>],
    ) -> Result<Issued, Error> {
        self.issue_inner(key.as_ref(), context.as_ref(), ttl, scopes)
    }

    /// [`Engine::verify`] for a call that belongs to `scopes`. A scope that has
    /// spent its failure budget answers [`Verdict::Locked`] (with the longer
    /// of its wait and the key's own lockout) without the code being looked at
    /// and without touching the key's budget. A counted mismatch counts on the
    /// key and on every scope with a failure budget; `Verified` resets the
    /// key's count but not a scope's (a sprayer with one right code must not
    /// reset an address's budget). Scope errors as for [`Engine::issue_scoped`].
    pub fn verify_scoped(
        &self,
        key: impl AsRef<[u8]>,
        code: impl AsRef<[u8]>,
        context: impl AsRef<[u8]>,
        scopes: &[Scope<'_>],
    ) -> Result<Verdict, Error> {
        let (key, typed, context) = (key.as_ref(), code.as_ref(), context.as_ref());
        if scopes.is_empty() {
            return self.verify(key, typed, context);
        }
        check_key(key)?;
        check_context(context)?;
        let targets = self.targets(scopes)?;
        match &self.backend {
            Backend::Memory(m) => m.verify_scoped(key, typed, context, &targets),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.verify_scoped(key, typed, context, &targets),
        }
    }

    /// Lifts the failure lockout of the scope `name` = `value` and clears its
    /// counts (a support desk unblocking an office's shared address). True if
    /// it had a count in a running window. An unconfigured name is
    /// [`Error::InvalidInput`].
    pub fn unlock_scope(&self, name: &str, value: impl AsRef<[u8]>) -> Result<bool, Error> {
        let targets = self.targets(&[Scope::new(name, value.as_ref())])?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.unlock_scope(&targets[0])),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unlock_scope(&targets[0]),
        }
    }

    /// A call's scopes, checked against the configured limits and hashed
    /// (none: nothing to do, no allocation).
    fn targets(&self, scopes: &[Scope<'_>]) -> Result<Vec<ScopeTarget>, Error> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let digester = match &self.backend {
            Backend::Memory(m) => m.digester(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.digester(),
        };
        Ok(crate::scope::resolve(
            &self.policy().scopes,
            scopes,
            digester,
        )?)
    }

    /// Issues a code for each of `keys`, with one `context` for all, in order, and
    /// answers per key: exactly what [`Engine::issue`] would answer for each key in
    /// turn. A bad key is an [`Error::InvalidInput`] for that key alone, a refusal
    /// (rate limit, lockout, capacity) one for that key alone; a key given twice
    /// is issued twice, the second time inside its own cooldown.
    ///
    /// In memory every key is checked and hashed before the first is issued, so
    /// the locked part of the calls runs back to back. On a standalone Redis the
    /// scripts go in one pipeline, one round trip for the batch (Redis runs them
    /// in order); if its reply is lost, every key answers that
    /// [`Error::Unavailable`], counted once in [`Engine::stats`]: each may or may
    /// not have been issued, as for a single call. On a Redis Cluster the calls
    /// are made one after the other (each following redirects); once one finds
    /// Redis unavailable, the keys after it are not tried and answer the same
    /// error at once, uncounted.
    pub fn issue_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        context: impl AsRef<[u8]>,
    ) -> Vec<Result<Issued, Error>> {
        let context = context.as_ref();
        let context_ok = check_context(context).map_err(Error::from);
        let ttl = self.policy().ttl;
        match &self.backend {
            Backend::Memory(m) => {
                let checked = keys.into_iter().map(|key| {
                    check_key(key.as_ref())?;
                    context_ok.clone()?;
                    Ok(key)
                });
                m.issue_many(checked, context, ttl)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let checked = keys
                    .into_iter()
                    .map(|key| {
                        check_key(key.as_ref())?;
                        context_ok.clone()?;
                        Ok(key)
                    })
                    .collect();
                r.issue_many(checked, context, ttl)
                    .into_iter()
                    .map(|answer| {
                        answer.map(|code| Issued {
                            code,
                            expires_in: Duration::from_millis(ttl),
                        })
                    })
                    .collect()
            }
        }
    }

    /// Verifies each `(key, code, context)` of `items` in order (an empty context:
    /// none), and answers per item: exactly what [`Engine::verify`] would answer
    /// for each in turn. A bad key or context is an [`Error::InvalidInput`] for
    /// that item alone. As with [`Engine::issue_many`], in memory every item is
    /// checked and hashed first, on a standalone Redis the batch is one
    /// pipeline, and on a cluster the items after the first that finds Redis
    /// unavailable answer the same error untried.
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
                let checked = items.into_iter().map(|item| {
                    check_key(item.0.as_ref())?;
                    check_context(item.2.as_ref())?;
                    Ok(item)
                });
                m.verify_many(checked)
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let checked = items
                    .into_iter()
                    .map(|item| {
                        check_key(item.0.as_ref())?;
                        check_context(item.2.as_ref())?;
                        Ok(item)
                    })
                    .collect();
                r.verify_many(checked)
            }
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

    /// Verifies an authenticator-app code (RFC 6238 TOTP) for `key`, computed
    /// from `secret` (16 to 64 bytes, kept by the application, never by the
    /// engine) at `at` (`None`: this host's wall clock, which TOTP assumes is
    /// NTP-synchronised; the manual clock does not move wall time, so tests pass
    /// `at`).
    ///
    /// A code for a step in `[now - skew_back, now + skew_ahead]` later than the
    /// key's last accepted step is [`Verdict::Verified`], and that step becomes the
    /// last accepted one: each code verifies once, whatever races it. The right
    /// code for an allowed step at or before it is [`Verdict::Replayed`], not
    /// counted. Anything else is a failure against the key's budget
    /// (`max_failures_per_key`, which must be on, and `lockout`): `Mismatch` with
    /// the failures left, or `Locked` when it spends the budget; while locked, the
    /// code is not looked at. ASCII spaces and hyphens in `code` are ignored.
    ///
    /// The key's TOTP state (last accepted step, failures) is separate from its
    /// random-code state: the same key bytes name two independent keys.
    pub fn verify_totp(
        &self,
        key: impl AsRef<[u8]>,
        secret: &[u8],
        code: &str,
        params: &TotpParams,
        at: Option<SystemTime>,
    ) -> Result<Verdict, Error> {
        self.verify_totp_scoped(key, secret, code, params, at, &[])
    }

    /// [`Engine::verify_totp`] for a call that belongs to `scopes`, with the
    /// scope rules of [`Engine::verify_scoped`]: spraying targets
    /// authenticator codes as much as sent ones.
    pub fn verify_totp_scoped(
        &self,
        key: impl AsRef<[u8]>,
        secret: &[u8],
        code: &str,
        params: &TotpParams,
        at: Option<SystemTime>,
        scopes: &[Scope<'_>],
    ) -> Result<Verdict, Error> {
        let key = key.as_ref();
        check_key(key)?;
        crate::totp::check_secret(secret)?;
        params.validate()?;
        if self.policy().max_failures_per_key == 0 {
            return Err(InvalidInput {
                field: Field::MaxFailuresPerKey,
                constraint: Constraint::Format(
                    "at least 1 for verify_totp (a TOTP secret is long-lived: guessing it \
                     must be limited)",
                ),
                got: Got::Int(0),
            }
            .into());
        }
        let at = at.unwrap_or_else(SystemTime::now);
        let since_1970 = at.duration_since(UNIX_EPOCH).map_err(|_| InvalidInput {
            field: Field::TotpAt,
            constraint: Constraint::Format("a time between 1970-01-01 and 9999-12-31 UTC"),
            got: Got::Raw(format!("{at:?}")),
        })?;
        crate::totp::check_unix_time(since_1970.as_secs())?;
        let unix_ms = since_1970.as_millis() as u64; // at most 2.6e14 after the check
        let targets = self.targets(scopes)?;
        let typed = code.as_bytes();
        match &self.backend {
            Backend::Memory(m) => m.verify_totp(key, secret, typed, params, unix_ms, &targets),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.verify_totp(key, secret, typed, params, unix_ms, &targets),
        }
    }

    /// Lifts the lockout of the key's TOTP state and clears its failure count
    /// (`unlock` is for its random codes). True if there was a count to clear.
    /// The last accepted step stays: a code already used stays used.
    pub fn unlock_totp(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        check_key(key)?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.unlock_totp(key)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unlock_totp(key),
        }
    }

    /// Drops the key's codes. True if one of them was still pending. Rate limits
    /// and the failure count stay as they were.
    pub fn revoke(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref();
        check_key(key)?;
        match &self.backend {
            Backend::Memory(m) => Ok(m.revoke(key)),
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
            Backend::Memory(m) => Ok(m.unlock(key)),
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
            Backend::Memory(m) => m.time(),
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
            Backend::Memory(m) => m.shard_count(),
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
    #[inline]
    pub fn reset_if_forked(&self) -> Option<ForkReset> {
        match &self.backend {
            Backend::Memory(m) => m.reset_if_forked(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => None,
        }
    }

    /// A cheap health check for readiness probes: for a Redis engine, one `PING`
    /// of the server (of every primary, on a cluster), failing with
    /// [`Error::Unavailable`] naming the server and why; in memory, always `Ok`.
    /// It counts in no statistic.
    pub fn ping(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.ping(),
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
            Backend::Memory(m) => m.policy(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.policy(),
        }
    }

    /// Checks the store's invariants in every shard; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self) {
        #[allow(irrefutable_let_patterns)] // memory is the only backend without `redis`
        if let Backend::Memory(m) = &self.backend {
            m.validate();
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Memory(m) => f
                .debug_struct("Engine")
                .field("policy", m.policy())
                .field("digest", &m.digest_algorithm())
                .field("reaper", &m.has_reaper())
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
