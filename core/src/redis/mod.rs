//! The Redis backend: the engine's state in Redis (or Valkey), shared by every
//! instance of a service, standalone or on Redis Cluster.
//!
//! What stays in the process: validation, key ids and code digests (the same
//! keyed digests as in memory, under the operator's secret), code generation,
//! and this engine's answer counters. What lives in Redis: everything about a
//! key (`keys.rs` has the layout), changed only by the Lua scripts of
//! `scripts.rs`, one atomic script per call, which hold exactly the rules of
//! `shard.rs`. Time is Redis's own `TIME`, read inside the script, so every
//! instance sees one clock; a manual clock is passed in instead, for tests.
//!
//! # Ground rules
//! - Every call is one `FCALL` (or `EVALSHA`, see `scripts.rs`); attempt
//!   counting, single use and rate limits hold across instances because Redis
//!   runs one script at a time per key's slot.
//! - Nothing plaintext leaves the process: key ids and code digests only.
//! - Any failure to reach Redis, or to hear its answer in time, is
//!   [`Error::Unavailable`]: never a verdict, never `Verified` (see `connection.rs`).

mod connection;
mod keys;
mod scripts;
mod signals;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::answer::Verdict;
use crate::clock::{Millis, TimeSource};
use crate::code::{self, Code, CodeSource};
use crate::digest::{Digester, Secret};
use crate::error::{Constraint, Error, Field, Got, InvalidInput, OUT_OF_MEMORY};
use crate::fork;
use crate::policy::{check_duration_of, Config, Policy, REDIS_TIMEOUT_RANGE};
use crate::scope::ScopeTarget;
use crate::stats::{Counters, Stats};
use crate::totp::{TotpCheck, TotpParams};

use self::connection::{Link, LinkOptions, NodeAnswer};
use self::keys::KeySpace;
use self::scripts::{call, CallContext, PackedPolicy, Scripts};

/// With a manual clock the scripts' time is not Redis's, so Redis's own expiry
/// of a key is pushed this far past the moment the engine would forget it (a
/// test's manual time may stand still while real time runs).
const MANUAL_CLOCK_EXPIRY_SLACK: Millis = 3_600_000;

/// Longest namespace, in bytes.
const MAX_NAMESPACE_LEN: usize = 64;

/// How to reach Redis, for [`Engine::new_redis`](crate::Engine::new_redis).
///
/// ```no_run
/// use std::time::Duration;
/// use otpengine_core::{Config, Engine, RedisOptions, Secret};
///
/// // The same secret on every instance (from your secret store, not the source).
/// let secret = Secret::new(&std::env::var("OTP_SECRET").unwrap().into_bytes())?;
/// let engine = Engine::new_redis(
///     Config { ttl: Duration::from_secs(120), ..Config::default() },
///     RedisOptions {
///         response_timeout: Duration::from_millis(250),
///         ..RedisOptions::new("redis://10.0.0.5:6379/0", secret)
///     },
/// )?;
/// let issued = engine.issue("+15551234567/login", "")?;
/// # Ok::<(), otpengine_core::Error>(())
/// ```
///
/// Of [`Config`], a Redis engine uses every rule (code shape, ttl, attempts,
/// limits), the digest algorithm and the clock. It has no shards and no reaper
/// (`shards` and `reaper_interval` are checked but unused: Redis expires keys
/// itself), takes its secret from here (`Config::secret` must be `None`), and
/// enforces `capacity` on a standalone server with
/// [`RedisOptions::exact_counts`]; on a cluster, where no single script can see
/// every key, or without the indexes, `capacity` is not enforced and Redis's
/// `maxmemory` bounds the store instead.
#[derive(Clone)]
pub struct RedisOptions {
    /// Where Redis is: `redis://[user:password@]host:port[/db]`, the same over
    /// TLS as `rediss://...`, `redis+unix:///path/to/socket[?db=N]`, or a
    /// cluster as `redis+cluster://[user:password@]host:port,host:port,...`
    /// (`rediss+cluster://` over TLS; any of its nodes, the others are
    /// discovered). Over TLS the server's certificate and host name are always
    /// checked, against the system roots or [`RedisOptions::ca_file`].
    pub url: String,
    /// The secret behind key ids and code digests: at least 16 bytes, the same
    /// on every instance that shares the store (else none finds the others' codes).
    pub secret: Secret,
    /// Prefix of every Redis key the engine writes, so that several engines
    /// (or applications) can share one Redis: 1 to 64 printable ASCII characters
    /// without `{`, `}` or spaces. Default `otpengine`.
    pub namespace: String,
    /// How long to wait for a new connection, 1 ms..=1 min. Default 1 s.
    pub connect_timeout: Duration,
    /// How long to wait for an answer, 1 ms..=1 min. Default 1 s. A call whose
    /// answer does not come in time returns [`Error::Unavailable`].
    pub response_timeout: Duration,
    /// PEM file of the CA that signs the server's certificate, for a TLS URL;
    /// `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for servers that require
    /// mutual TLS (`tls-auth-clients yes`); both or neither.
    pub client_cert: Option<PathBuf>,
    /// The key of [`RedisOptions::client_cert`].
    pub client_key: Option<PathBuf>,
    /// ACL user, for callers who keep credentials out of the URL; overrides the
    /// URL's.
    pub username: Option<String>,
    /// Password (of the ACL user, or `requirepass`'s), for callers who keep
    /// credentials out of the URL; overrides the URL's. Never shown in errors
    /// or `Debug`.
    pub password: Option<Zeroizing<String>>,
    /// Start even on a server whose `maxmemory-policy` evicts keys (any but
    /// `noeviction`). Off by default: an engine refuses such a server, since an
    /// evicted key is a lost lockout, failure count or replay guard. A policy
    /// that cannot be read (`INFO` refused) is not checked.
    pub accept_eviction: bool,
    /// Keep two indexes of the store's keys (sorted sets: every key id with
    /// state, and every key id with a pending code), so that `len()`,
    /// `stats().live` and `held` are exact and a standalone server enforces
    /// `capacity`. Off by default: the indexes cost more than half of each
    /// key's memory in Redis and a third of the commands of a call; without
    /// them `len()`, `live` and `held` read 0 and `maxmemory` (with
    /// `noeviction`) bounds the store, as on a cluster.
    pub exact_counts: bool,
}

impl RedisOptions {
    /// Options for `url` and `secret`, with the defaults for the rest.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        RedisOptions {
            url: url.into(),
            secret,
            namespace: "otpengine".to_string(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            ca_file: None,
            client_cert: None,
            client_key: None,
            username: None,
            password: None,
            accept_eviction: false,
            exact_counts: false,
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &connection::redact(&self.url))
            .field("secret", &self.secret)
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("accept_eviction", &self.accept_eviction)
            .field("exact_counts", &self.exact_counts)
            .finish()
    }
}

/// [`CallContext`] with its own `now`.
struct OwnedCallContext<'a> {
    now: String,
    policy: &'a PackedPolicy,
}

impl OwnedCallContext<'_> {
    fn as_context(&self) -> CallContext<'_> {
        CallContext {
            now: &self.now,
            policy: self.policy,
        }
    }
}

/// The oldest Redis the scripts run on: they open with a `#!lua` declaration
/// (common.lua), which came in 7.0. Valkey reports its Redis compatibility
/// version here (7.2.4), and runs them alike.
const MIN_REDIS_VERSION: (u32, u32) = (7, 0);

/// Refuses a server older than [`MIN_REDIS_VERSION`], by name, rather than let
/// it fail to compile the scripts; a version that cannot be read is not checked.
fn refuse_old_server(link: &Link) -> Result<(), Error> {
    for version in link.info_fields("server", "redis_version")? {
        if older_than_min(&version) {
            return Err(Error::Unavailable {
                server: link.server().to_string(),
                reason: format!(
                    "runs Redis {version}; the engine needs Redis {}.{} or later (or Valkey)",
                    MIN_REDIS_VERSION.0, MIN_REDIS_VERSION.1
                ),
            });
        }
    }
    Ok(())
}

/// Whether `version` (`INFO server`'s `redis_version`, `major.minor.patch`) is
/// older than [`MIN_REDIS_VERSION`]; one that does not parse is not refused.
fn older_than_min(version: &str) -> bool {
    let mut parts = version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) < MIN_REDIS_VERSION,
        _ => false,
    }
}

/// Refuses a server that evicts keys, unless the policy cannot be read.
fn refuse_eviction(link: &Link) -> Result<(), Error> {
    let policies = link.info_fields("memory", "maxmemory_policy")?;
    match policies
        .iter()
        .find(|policy| policy.as_str() != "noeviction")
    {
        None => Ok(()),
        Some(policy) => Err(Error::InvalidInput(InvalidInput {
            field: Field::RedisAcceptEviction,
            constraint: Constraint::Format(
                "set to use a server whose maxmemory-policy evicts keys (an evicted key is a \
                 lost lockout or replay guard; noeviction keeps them)",
            ),
            got: Got::Raw(format!(
                "false, and {} has maxmemory-policy {policy}",
                link.server()
            )),
        })),
    }
}

/// Which of a scope's budgets a call draws on.
#[derive(Clone, Copy, Debug)]
enum Side {
    Issues,
    Failures,
}

/// One event taken from a scope, to give back if the call does not happen.
struct Taken {
    names: keys::KeyNames,
    limit: usize,
    side: Side,
    /// The window it was counted in (Redis time), as `scope_take` replied.
    window_start: i64,
}

/// What taking from a call's scopes came to.
enum Taking {
    /// Every scope gave one.
    Taken(Vec<Taken>),
    /// These scopes (limit index, wait in ms) refused; nothing stays taken.
    Refused(Vec<(usize, u64)>),
    /// A new scope found the store full; nothing stays taken.
    Full,
}

/// The longest of the key's wait and the scopes' (`None`: the key's, which
/// wins ties).
fn longest(key_wait: u64, waits: &[(usize, u64)]) -> (u64, Option<usize>) {
    let mut answer = (key_wait, None);
    for &(limit, wait) in waits {
        if wait > answer.0 {
            answer = (wait, Some(limit));
        }
    }
    answer
}

/// One item of a batch: its key's names and script arguments, or the error it
/// already is (a bad key, say), which sends nothing.
type BatchCall<'a, const N: usize> = Result<(&'a keys::KeyNames, [&'a [u8]; N]), &'a Error>;

/// This engine's answers, counted without a lock.
#[derive(Default)]
struct AtomicCounters {
    issued: AtomicU64,
    verified: AtomicU64,
    mismatched: AtomicU64,
    locked: AtomicU64,
    expired: AtomicU64,
    rate_limited: AtomicU64,
    revoked: AtomicU64,
    not_found: AtomicU64,
    capacity_exceeded: AtomicU64,
    unavailable: AtomicU64,
    replayed: AtomicU64,
    scope_rate_limited: [AtomicU64; crate::scope::MAX_SCOPE_LIMITS],
    scope_locked: [AtomicU64; crate::scope::MAX_SCOPE_LIMITS],
}

impl AtomicCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            issued: get(&self.issued),
            verified: get(&self.verified),
            mismatched: get(&self.mismatched),
            locked: get(&self.locked),
            expired: get(&self.expired),
            rate_limited: get(&self.rate_limited),
            revoked: get(&self.revoked),
            not_found: get(&self.not_found),
            capacity_exceeded: get(&self.capacity_exceeded),
            unavailable: get(&self.unavailable),
            replayed: get(&self.replayed),
            scope_rate_limited: std::array::from_fn(|k| get(&self.scope_rate_limited[k])),
            scope_locked: std::array::from_fn(|k| get(&self.scope_locked[k])),
        }
    }
}

/// An engine's state in Redis.
pub(crate) struct RedisStore {
    policy: Policy,
    /// The policy as the scripts read it (ARGV[2] of common.lua).
    policy_args: PackedPolicy,
    /// The held and live indexes are kept (`RedisOptions::exact_counts`).
    exact_counts: bool,
    digester: Digester,
    time: TimeSource,
    link: Link,
    keys: KeySpace,
    scripts: Scripts,
    /// The code generator and the fork generation it was seeded in.
    codes: Mutex<CodeSource>,
    counters: AtomicCounters,
    /// `live` and `held` as last read, for [`RedisStore::stats`] during an outage.
    last_gauges: Mutex<(u64, u64)>,
}

impl RedisStore {
    pub(crate) fn connect(config: Config, options: RedisOptions) -> Result<Self, Error> {
        let policy = Policy::from_config(&config)?;
        if config.secret.is_some() {
            return Err(InvalidInput {
                field: Field::Secret,
                constraint: Constraint::Format(
                    "left unset in Config for a Redis engine (give it in RedisOptions::secret)",
                ),
                got: Got::Raw("a secret".into()),
            }
            .into());
        }
        check_namespace(&options.namespace)?;
        let connect_timeout = Duration::from_millis(check_duration_of(
            Field::RedisConnectTimeout,
            options.connect_timeout,
            REDIS_TIMEOUT_RANGE,
        )?);
        let response_timeout = Duration::from_millis(check_duration_of(
            Field::RedisResponseTimeout,
            options.response_timeout,
            REDIS_TIMEOUT_RANGE,
        )?);
        let link = Link::new(
            &options.url,
            &LinkOptions {
                connect_timeout,
                response_timeout,
                ca_file: options.ca_file.clone(),
                client_cert: options.client_cert.clone(),
                client_key: options.client_key.clone(),
                username: options.username.clone(),
                password: options.password.clone(),
            },
        )?;
        fork::register();
        let keys = KeySpace::new(&options.namespace, link.is_cluster(), options.exact_counts);
        // On a cluster no script sees every key, so the capacity cannot be held;
        // without the indexes nothing counts the keys.
        let capacity = if link.is_cluster() || !options.exact_counts {
            0
        } else {
            policy.capacity
        };
        // With a manual clock the scripts' time is not Redis's.
        let time = config.clock.start();
        let expiry_slack = match time.manual() {
            Some(_) => MANUAL_CLOCK_EXPIRY_SLACK,
            None => 0,
        };
        let policy_args = PackedPolicy::new([
            expiry_slack,
            policy.resend_cooldown,
            policy.max_issues_per_window.into(),
            policy.issue_window,
            policy.max_failures_per_key.into(),
            policy.lockout,
            policy.max_attempts.into(),
            policy.codes_per_key.into(),
            capacity,
            if policy.escalate {
                policy.max_lockout
            } else {
                0
            },
            options.exact_counts.into(),
        ]);
        refuse_old_server(&link)?;
        // Loading the code now proves that Redis is there and answers, and
        // lets every later call go by name (or SHA1).
        let scripts = link.run(Scripts::load)?;
        if !options.accept_eviction {
            refuse_eviction(&link)?;
        }
        Ok(RedisStore {
            policy,
            policy_args,
            exact_counts: options.exact_counts,
            digester: Digester::new(&options.secret, config.digest),
            time,
            link,
            keys,
            scripts,
            codes: Mutex::new(CodeSource::new()),
            counters: AtomicCounters::default(),
            last_gauges: Mutex::new((0, 0)),
        })
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn time(&self) -> &TimeSource {
        &self.time
    }

    pub(crate) fn server(&self) -> &str {
        self.link.server()
    }

    pub(crate) fn issue(&self, key: &[u8], context: &[u8], ttl: Millis) -> Result<Code, Error> {
        let (code, names, [digest, ttl]) = self.prepare_issue(key, context, ttl);
        let (reply, value) = self.run(&self.scripts.issue, &names, &[&digest, &ttl])?;
        self.issued(code, reply, value)
    }

    /// An issue's code (drawn before the script runs; a refusal drops it, and
    /// wipes it, unseen), key names and script arguments.
    fn prepare_issue(
        &self,
        key: &[u8],
        context: &[u8],
        ttl: Millis,
    ) -> (Code, keys::KeyNames, [Vec<u8>; 2]) {
        let key_id = self.digester.key_id(key);
        let code = self.draw();
        let digest = self.digester.code_digest(key_id, context, code.as_bytes());
        let names = self.keys.names(key_id);
        let args = [
            digest.0.to_be_bytes().to_vec(),
            ttl.to_string().into_bytes(),
        ];
        (code, names, args)
    }

    /// An issue script's reply as the answer, counted.
    fn issued(&self, code: Code, reply: i64, value: i64) -> Result<Code, Error> {
        let c = &self.counters;
        let wait = Duration::from_millis(value.max(0) as u64);
        match reply {
            scripts::OK => {
                AtomicCounters::bump(&c.issued);
                Ok(code)
            }
            scripts::RATE_LIMITED => {
                AtomicCounters::bump(&c.rate_limited);
                Err(Error::RateLimited {
                    retry_after: wait,
                    scope: None,
                })
            }
            scripts::LOCKED => {
                AtomicCounters::bump(&c.locked);
                Err(Error::Locked { retry_after: wait })
            }
            scripts::FULL => {
                AtomicCounters::bump(&c.capacity_exceeded);
                Err(Error::CapacityExceeded {
                    capacity: self.policy.capacity,
                    out_of_memory: None,
                })
            }
            other => Err(self.unknown_reply(other)),
        }
    }

    pub(crate) fn verify(
        &self,
        key: &[u8],
        typed: &[u8],
        context: &[u8],
    ) -> Result<Verdict, Error> {
        let (names, guess) = self.prepare_verify(key, typed, context);
        let (reply, value) = self.run(&self.scripts.verify, &names, &[&guess])?;
        self.verdict(reply, value)
    }

    /// A verify's key names and guess: the digest of the normalised code typed,
    /// or empty when what was typed cannot be a code.
    fn prepare_verify(
        &self,
        key: &[u8],
        typed: &[u8],
        context: &[u8],
    ) -> (keys::KeyNames, Vec<u8>) {
        let p = &self.policy;
        let key_id = self.digester.key_id(key);
        let guess = code::normalize(typed, p.alphabet, p.code_length)
            .map(|code| {
                let digest = self.digester.code_digest(key_id, context, code.as_bytes());
                digest.0.to_be_bytes().to_vec()
            })
            .unwrap_or_default();
        (self.keys.names(key_id), guess)
    }

    /// Issues for every checked key: on a standalone server in one pipeline
    /// (one round trip; Redis runs the scripts in order, so the answers are
    /// those of single calls in turn), on a cluster in one pipeline per
    /// primary (see [`RedisStore::run_many`]).
    pub(crate) fn issue_many<K: AsRef<[u8]>>(
        &self,
        keys: Vec<Result<K, Error>>,
        context: &[u8],
        ttl: Millis,
    ) -> Vec<Result<Code, Error>> {
        let prepared: Vec<Result<_, Error>> = keys
            .into_iter()
            .map(|key| Ok(self.prepare_issue(key?.as_ref(), context, ttl)))
            .collect();
        let calls = prepared.iter().map(|item| {
            item.as_ref()
                .map(|(_, names, [digest, ttl])| (names, [&digest[..], &ttl[..]]))
        });
        let replies = self.run_many(&self.scripts.issue, calls);
        prepared
            .into_iter()
            .zip(replies)
            .map(|(item, reply)| {
                let (code, _, _) = item?;
                let (reply, value) = reply?;
                self.issued(code, reply, value)
            })
            .collect()
    }

    /// Verifies every checked item, as [`RedisStore::issue_many`] issues.
    pub(crate) fn verify_many<K, C, X>(
        &self,
        items: Vec<Result<(K, C, X), Error>>,
    ) -> Vec<Result<Verdict, Error>>
    where
        K: AsRef<[u8]>,
        C: AsRef<[u8]>,
        X: AsRef<[u8]>,
    {
        let prepared: Vec<Result<_, Error>> = items
            .into_iter()
            .map(|item| {
                let (key, typed, context) = item?;
                Ok(self.prepare_verify(key.as_ref(), typed.as_ref(), context.as_ref()))
            })
            .collect();
        let calls = prepared
            .iter()
            .map(|item| item.as_ref().map(|(names, guess)| (names, [&guess[..]])));
        let replies = self.run_many(&self.scripts.verify, calls);
        replies
            .into_iter()
            .map(|reply| {
                let (reply, value) = reply?;
                self.verdict(reply, value)
            })
            .collect()
    }

    /// A verify script's reply as a verdict, counted.
    fn verdict(&self, reply: i64, value: i64) -> Result<Verdict, Error> {
        let c = &self.counters;
        let (counter, verdict) = match reply {
            scripts::OK => (&c.verified, Verdict::Verified),
            scripts::MISMATCH => (
                &c.mismatched,
                Verdict::Mismatch {
                    attempts_left: u32::try_from(value).unwrap_or(0),
                },
            ),
            scripts::LOCKED | scripts::LOCKED_NOW => (
                &c.locked,
                Verdict::Locked {
                    retry_after: Duration::from_millis(value.max(0) as u64),
                },
            ),
            scripts::EXPIRED => (&c.expired, Verdict::Expired),
            scripts::NOT_FOUND => (&c.not_found, Verdict::NotFound),
            scripts::REPLAYED => (&c.replayed, Verdict::Replayed),
            other => return Err(self.unknown_reply(other)),
        };
        AtomicCounters::bump(counter);
        Ok(verdict)
    }

    /// See [`Engine::verify_totp`](crate::Engine::verify_totp): the codes are
    /// computed and compared here, and only which steps matched goes to Redis.
    pub(crate) fn verify_totp(
        &self,
        key: &[u8],
        secret: &[u8],
        typed: &[u8],
        params: &TotpParams,
        unix_ms: u64,
        targets: &[ScopeTarget],
    ) -> Result<Verdict, Error> {
        let key_id = self.digester.totp_key_id(key);
        let check = TotpCheck::new(secret, typed, params, unix_ms);
        let names = self.keys.names(key_id);
        let args = [
            (check.first_step + 1).to_string(),
            check.matched.to_string(),
            check.period_ms.to_string(),
            check.unix_ms.to_string(),
        ];
        let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
        let (reply, value) = match self.scoped_verify(&names, targets, || {
            self.run(&self.scripts.verify_totp, &names, &args)
        })? {
            Ok(answer) => answer,
            Err(locked) => return Ok(locked),
        };
        if reply == scripts::FULL {
            AtomicCounters::bump(&self.counters.capacity_exceeded);
            return Err(Error::CapacityExceeded {
                capacity: self.policy.capacity,
                out_of_memory: None,
            });
        }
        self.verdict(reply, value)
    }

    pub(crate) fn digester(&self) -> &Digester {
        &self.digester
    }

    /// See [`Engine::issue_scoped`](crate::Engine::issue_scoped). Each scope
    /// with an issue budget gives up one issue first (`scope_take`); the key's
    /// own script runs only when all of them did, and a refusal anywhere gives
    /// back what was taken (`scope_refund`): reserve and refund, since the
    /// scopes' keys are in other slots than the key's (ARCHITECTURE.md).
    pub(crate) fn issue_scoped(
        &self,
        key: &[u8],
        context: &[u8],
        ttl: Millis,
        targets: &[ScopeTarget],
    ) -> Result<Code, Error> {
        let c = &self.counters;
        let names = self.keys.names(self.digester.key_id(key));
        match self.take_scopes(targets, Side::Issues)? {
            Taking::Full => {
                // The key's own refusal comes first, as in memory.
                match self.peek(&names, true)? {
                    (scripts::LOCKED, wait) => {
                        AtomicCounters::bump(&c.locked);
                        Err(Error::Locked {
                            retry_after: Duration::from_millis(wait),
                        })
                    }
                    (scripts::RATE_LIMITED, wait) => {
                        AtomicCounters::bump(&c.rate_limited);
                        Err(Error::RateLimited {
                            retry_after: Duration::from_millis(wait),
                            scope: None,
                        })
                    }
                    _ => Err(self.full()),
                }
            }
            Taking::Refused(waits) => {
                let (reply, key_wait) = self.peek(&names, true)?;
                if reply == scripts::LOCKED {
                    AtomicCounters::bump(&c.locked);
                    return Err(Error::Locked {
                        retry_after: Duration::from_millis(key_wait),
                    });
                }
                let key_wait = if reply == scripts::RATE_LIMITED {
                    key_wait
                } else {
                    0
                };
                let (wait, by) = longest(key_wait, &waits);
                AtomicCounters::bump(&c.rate_limited);
                if let Some(limit) = by {
                    AtomicCounters::bump(&c.scope_rate_limited[limit]);
                }
                Err(Error::RateLimited {
                    retry_after: Duration::from_millis(wait),
                    scope: by.map(|limit| self.policy.scopes[limit].name.clone()),
                })
            }
            Taking::Taken(taken) => {
                let (code, names, [digest, ttl]) = self.prepare_issue(key, context, ttl);
                // Unavailable here keeps the scopes' issues: the code may have
                // been issued, and a scope errs on the side of counting.
                let (reply, value) = self.run(&self.scripts.issue, &names, &[&digest, &ttl])?;
                let answer = self.issued(code, reply, value);
                if answer.is_err() {
                    self.refund(&taken);
                }
                answer
            }
        }
    }

    /// See [`Engine::verify_scoped`](crate::Engine::verify_scoped), as
    /// [`RedisStore::issue_scoped`]: each scope with a failure budget gives up
    /// one failure before the code is looked at, and gets it back unless the
    /// verify was a counted failure; a scope whose budget is spent answers
    /// `Locked` before the key's script runs.
    pub(crate) fn verify_scoped(
        &self,
        key: &[u8],
        typed: &[u8],
        context: &[u8],
        targets: &[ScopeTarget],
    ) -> Result<Verdict, Error> {
        let (names, guess) = self.prepare_verify(key, typed, context);
        match self.scoped_verify(&names, targets, || {
            self.run(&self.scripts.verify, &names, &[&guess])
        })? {
            Ok((reply, value)) => self.verdict(reply, value),
            Err(locked) => Ok(locked),
        }
    }

    /// The scope steps around a verify of either kind: `run` is the key's own
    /// script. `Err(verdict)`: a scope's lockout answered.
    fn scoped_verify(
        &self,
        names: &keys::KeyNames,
        targets: &[ScopeTarget],
        run: impl FnOnce() -> Result<(i64, i64), Error>,
    ) -> Result<Result<(i64, i64), Verdict>, Error> {
        if targets.is_empty() {
            return run().map(Ok);
        }
        let c = &self.counters;
        match self.take_scopes(targets, Side::Failures)? {
            Taking::Full => Err(self.full()),
            Taking::Refused(waits) => {
                let (reply, key_wait) = self.peek(names, false)?;
                let key_wait = if reply == scripts::LOCKED {
                    key_wait
                } else {
                    0
                };
                let (wait, by) = longest(0, &waits);
                AtomicCounters::bump(&c.locked);
                if let Some(limit) = by {
                    AtomicCounters::bump(&c.scope_locked[limit]);
                }
                Ok(Err(Verdict::Locked {
                    retry_after: Duration::from_millis(wait.max(key_wait)),
                }))
            }
            Taking::Taken(taken) => {
                let (reply, value) = run()?;
                if reply != scripts::MISMATCH && reply != scripts::LOCKED_NOW {
                    self.refund(&taken);
                }
                Ok(Ok((reply, value)))
            }
        }
    }

    /// See [`Engine::unlock_scope`](crate::Engine::unlock_scope).
    pub(crate) fn unlock_scope(&self, target: &ScopeTarget) -> Result<bool, Error> {
        let names = self.keys.names(target.id);
        let args = self.scope_args(target.limit, Side::Issues);
        let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
        let (_, cleared) = self.run(&self.scripts.scope_clear, &names, &args)?;
        Ok(cleared == 1)
    }

    /// Takes one event of `side` from every scope of `targets` with a budget
    /// for it, in order. When one refuses (or a new scope finds the store
    /// full), the others are still asked, so the answer can give the longest
    /// wait, and then everything taken is given back.
    fn take_scopes(&self, targets: &[ScopeTarget], side: Side) -> Result<Taking, Error> {
        let mut taken = Vec::new();
        let mut waits = Vec::new();
        let mut full = false;
        for t in targets {
            let limit = &self.policy.scopes[t.limit];
            let budget = match side {
                Side::Issues => limit.max_issues,
                Side::Failures => limit.max_failures,
            };
            if budget == 0 {
                continue;
            }
            let names = self.keys.names(t.id);
            let args = self.scope_args(t.limit, side);
            let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
            let issue = matches!(side, Side::Issues);
            let (reply, value) = match self.run_as(&self.scripts.scope_take, &names, &args, issue) {
                Ok(answer) => answer,
                Err(e) => {
                    self.refund(&taken);
                    return Err(e);
                }
            };
            match reply {
                scripts::OK => taken.push(Taken {
                    names,
                    limit: t.limit,
                    side,
                    window_start: value,
                }),
                scripts::FULL => full = true,
                _ => waits.push((t.limit, value.max(0) as u64)),
            }
        }
        if full || !waits.is_empty() {
            self.refund(&taken);
            return Ok(if waits.is_empty() {
                Taking::Full
            } else {
                Taking::Refused(waits)
            });
        }
        Ok(Taking::Taken(taken))
    }

    /// Gives back what [`RedisStore::take_scopes`] took. Best effort: a refund
    /// lost to an outage leaves the scope charged for an event that did not
    /// happen, which errs on the side of the limit.
    fn refund(&self, taken: &[Taken]) {
        for t in taken {
            let mut args = self.scope_args(t.limit, t.side).to_vec();
            args.push(t.window_start.to_string());
            let args: Vec<&[u8]> = args.iter().map(String::as_bytes).collect();
            let _ = self.run_uncounted(&self.scripts.scope_refund, &t.names, &args);
        }
    }

    /// What the key's own limits answer an issue now, issuing nothing; `issue`:
    /// for an issue (a server out of memory is then `CapacityExceeded`).
    fn peek(&self, names: &keys::KeyNames, issue: bool) -> Result<(i64, u64), Error> {
        let digest = [0u8; 8];
        let args: [&[u8]; 3] = [&digest, b"0", b"peek"];
        let (reply, value) = self.run_as(&self.scripts.issue, names, &args, issue)?;
        Ok((reply, value.max(0) as u64))
    }

    /// The arguments of the scope scripts: the side, its budget, both windows.
    fn scope_args(&self, limit: usize, side: Side) -> [String; 4] {
        let limit = &self.policy.scopes[limit];
        let (letter, budget) = match side {
            Side::Issues => ("i", limit.max_issues),
            Side::Failures => ("f", limit.max_failures),
        };
        [
            letter.to_owned(),
            budget.to_string(),
            limit.issue_window.to_string(),
            limit.failure_window.to_string(),
        ]
    }

    fn full(&self) -> Error {
        AtomicCounters::bump(&self.counters.capacity_exceeded);
        Error::CapacityExceeded {
            capacity: self.policy.capacity,
            out_of_memory: None,
        }
    }

    pub(crate) fn revoke(&self, key: &[u8]) -> Result<bool, Error> {
        let names = self.keys.names(self.digester.key_id(key));
        let (_, revoked) = self.run(&self.scripts.revoke, &names, &[])?;
        if revoked == 1 {
            AtomicCounters::bump(&self.counters.revoked);
        }
        Ok(revoked == 1)
    }

    pub(crate) fn unlock(&self, key: &[u8]) -> Result<bool, Error> {
        let names = self.keys.names(self.digester.key_id(key));
        let (_, unlocked) = self.run(&self.scripts.unlock, &names, &[])?;
        Ok(unlocked == 1)
    }

    /// Lifts the lockout of the key's TOTP state (kept like a random-code key's).
    pub(crate) fn unlock_totp(&self, key: &[u8]) -> Result<bool, Error> {
        let names = self.keys.names(self.digester.totp_key_id(key));
        let (_, unlocked) = self.run(&self.scripts.unlock, &names, &[])?;
        Ok(unlocked == 1)
    }

    pub(crate) fn stats(&self) -> Stats {
        self.try_stats().unwrap_or_else(|_| {
            let (live, held) = *self.last_gauges.lock();
            self.stats_with(live, held)
        })
    }

    pub(crate) fn ping(&self) -> Result<(), Error> {
        self.link.ping()
    }

    pub(crate) fn try_stats(&self) -> Result<Stats, Error> {
        if !self.exact_counts {
            return Ok(self.stats_with(0, 0));
        }
        let manual_now = self.time.manual().map(|_| self.time.now());
        let (live, held) = self
            .link
            .count_indexes(manual_now, &self.keys.index_pairs())?;
        *self.last_gauges.lock() = (live, held);
        Ok(self.stats_with(live, held))
    }

    fn stats_with(&self, live: u64, held: u64) -> Stats {
        let mut stats = Stats::default();
        let counters = self.counters.snapshot();
        stats.add(&counters);
        stats.live = live;
        stats.held = held;
        let names = self.policy.scopes.iter().map(|s| s.name.as_str());
        stats.set_scopes(names, &[counters]);
        stats
    }

    /// Runs one script for one key. A failure is counted as the answer it becomes:
    /// an issue refused by a server that is out of memory is `CapacityExceeded`,
    /// as on a full memory engine; anything else is `Unavailable`.
    fn run(
        &self,
        script: &scripts::Op,
        names: &keys::KeyNames,
        args: &[&[u8]],
    ) -> Result<(i64, i64), Error> {
        let is_issue = std::ptr::eq(script, &self.scripts.issue);
        self.run_as(script, names, args, is_issue)
    }

    /// [`RedisStore::run`] for a script of a call that is an issue (`issue`:
    /// a refusal for lack of memory is `CapacityExceeded`) or not, said by the
    /// caller: the scope steps and the peek serve both kinds.
    fn run_as(
        &self,
        script: &scripts::Op,
        names: &keys::KeyNames,
        args: &[&[u8]],
        issue: bool,
    ) -> Result<(i64, i64), Error> {
        self.run_uncounted(script, names, args)
            .map_err(|e| self.script_failure(e, issue))
    }

    /// One script, its failure returned as it is, counted nowhere (a refund,
    /// whose call has answered already).
    fn run_uncounted(
        &self,
        script: &scripts::Op,
        names: &keys::KeyNames,
        args: &[&[u8]],
    ) -> Result<(i64, i64), Error> {
        let context = self.call_context();
        self.link
            .run(|con| call(script, con, names, &context.as_context(), args))
    }

    /// What every call passes besides its own arguments.
    fn call_context(&self) -> OwnedCallContext<'_> {
        OwnedCallContext {
            now: match self.time.manual() {
                Some(_) => self.time.now().to_string(),
                None => String::new(),
            },
            policy: &self.policy_args,
        }
    }

    /// A script that did not answer, counted as the answer it becomes: an issue
    /// refused by a server that is out of memory is `CapacityExceeded`, as on a
    /// full memory engine; anything else is `Unavailable`.
    fn script_failure(&self, e: Error, is_issue: bool) -> Error {
        match e {
            Error::Unavailable { server, reason } if is_issue && reason == OUT_OF_MEMORY => {
                AtomicCounters::bump(&self.counters.capacity_exceeded);
                Error::CapacityExceeded {
                    capacity: self.policy.capacity,
                    out_of_memory: Some(server),
                }
            }
            e => {
                AtomicCounters::bump(&self.counters.unavailable);
                e
            }
        }
    }

    /// Runs `script` once per call in one pipeline, in order; an item that is
    /// already an error stays one and sends nothing. A pipeline whose reply is
    /// lost (or that cannot be sent) answers that `Unavailable` for every item
    /// it carried, counted once: each may or may not have run, as for a single
    /// call. A script's own failure is that item's answer, as in [`RedisStore::run`].
    /// On a cluster, one pipeline per primary (the keys of one primary run in
    /// order; keys of different primaries share nothing, so the answers are
    /// still those of single calls in turn), and a call Redis did not run there
    /// (its slot moved or is moving) is then made alone, following the redirect.
    fn run_many<'a, const N: usize>(
        &self,
        script: &scripts::Op,
        calls: impl Iterator<Item = BatchCall<'a, N>>,
    ) -> Vec<Result<(i64, i64), Error>> {
        let calls: Vec<_> = calls.collect();
        if self.link.is_cluster() {
            return self.run_many_on_cluster(script, calls);
        }
        let context = self.call_context();
        let commands: Vec<::redis::Cmd> = calls
            .iter()
            .filter_map(|call| call.as_ref().ok())
            .map(|(names, args)| scripts::command(script, names, &context.as_context(), args))
            .collect();
        let mut replies = match self.link.pipeline(script, &commands) {
            Ok(replies) => replies.into_iter(),
            Err(e) => return self.none_sent(calls, e),
        };
        let is_issue = std::ptr::eq(script, &self.scripts.issue);
        calls
            .into_iter()
            .map(|call| {
                if let Err(e) = call {
                    return Err(e.clone());
                }
                let reply = replies.next().expect("one reply per command");
                reply.map_err(|e| self.script_failure(e, is_issue))
            })
            .collect()
    }

    /// A batch of which nothing was sent, or whose one pipeline was lost: every
    /// item answers `e` (each may have run), counted once, but for those that
    /// were errors already.
    fn none_sent<const N: usize>(
        &self,
        calls: Vec<BatchCall<'_, N>>,
        e: Error,
    ) -> Vec<Result<(i64, i64), Error>> {
        AtomicCounters::bump(&self.counters.unavailable);
        calls
            .into_iter()
            .map(|call| Err(call.err().cloned().unwrap_or_else(|| e.clone())))
            .collect()
    }

    /// [`RedisStore::run_many`] on a cluster.
    fn run_many_on_cluster<const N: usize>(
        &self,
        script: &scripts::Op,
        calls: Vec<BatchCall<'_, N>>,
    ) -> Vec<Result<(i64, i64), Error>> {
        let context = self.call_context();
        let commands: Vec<(u16, ::redis::Cmd)> = calls
            .iter()
            .filter_map(|call| call.as_ref().ok())
            .map(|(names, args)| {
                let cmd = scripts::command(script, names, &context.as_context(), args);
                (keys::key_slot(&names.state), cmd)
            })
            .collect();
        let mut answers = match self.link.node_pipelines(script, &commands) {
            Ok(answers) => answers.into_iter(),
            Err(e) => return self.none_sent(calls, e),
        };
        let is_issue = std::ptr::eq(script, &self.scripts.issue);
        let mut lost_groups = Vec::new();
        calls
            .into_iter()
            .map(|call| {
                let (names, args) = call.map_err(Error::clone)?;
                match answers.next().expect("one answer per command") {
                    NodeAnswer::Answered(reply) => {
                        reply.map_err(|e| self.script_failure(e, is_issue))
                    }
                    NodeAnswer::NotRun => self.run(script, names, &args),
                    NodeAnswer::Lost(group, e) => {
                        if !lost_groups.contains(&group) {
                            lost_groups.push(group);
                            AtomicCounters::bump(&self.counters.unavailable);
                        }
                        Err(e)
                    }
                }
            })
            .collect()
    }

    /// A reply this version does not know (a newer script in the same
    /// namespace?): fail closed, and say so.
    fn unknown_reply(&self, reply: i64) -> Error {
        AtomicCounters::bump(&self.counters.unavailable);
        Error::Unavailable {
            server: self.link.server().to_string(),
            reason: format!("answered with reply code {reply}, which this version does not know"),
        }
    }

    fn draw(&self) -> Code {
        self.codes
            .lock()
            .generate(self.policy.alphabet, self.policy.code_length)
    }
}

fn check_namespace(namespace: &str) -> Result<(), InvalidInput> {
    let ok = (1..=MAX_NAMESPACE_LEN).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
    if ok {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::RedisNamespace,
        constraint: Constraint::Format(
            "1 to 64 printable ASCII characters without '{', '}' or spaces",
        ),
        got: Got::Name(namespace.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_before_redis_7_are_refused_by_version() {
        for old in ["6.2.14", "5.0.7", "6.9.0"] {
            assert!(older_than_min(old), "{old}");
        }
        // Valkey 8 reports its Redis compatibility version, 7.2.4.
        for new in [
            "7.0.0",
            "7.0.15",
            "7.2.4",
            "8.0.1",
            "255.255.255",
            "7.x",
            "",
        ] {
            assert!(!older_than_min(new), "{new}");
        }
    }
}
