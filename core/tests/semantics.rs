//! Every semantic rule of the engine, one test each, on the manual clock, run
//! against every backend: the in-memory store, a standalone Redis and a 3-node
//! Redis Cluster (see `on_every_backend!` at the end, and tests/common for the
//! servers). One suite, so the backends cannot drift apart.

mod common;

use std::time::Duration;

use otpengine_core::scope::{Scope, ScopeLimit};
use otpengine_core::totp::{self, HashAlgorithm, TotpParams};
use otpengine_core::{
    Alphabet, Clock, Config, Engine, Error, Field, Issued, ManualClock, Stats, Verdict,
};

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// Where a test's engine keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    /// The standalone server of `OTPENGINE_REDIS_URL`.
    #[cfg(feature = "redis")]
    Redis,
    /// The cluster of `OTPENGINE_REDIS_CLUSTER`.
    #[cfg(feature = "redis")]
    RedisCluster,
    /// The mutual-TLS server of `OTPENGINE_REDIS_MTLS_URL`, with its CA file
    /// and a client certificate.
    #[cfg(feature = "redis")]
    RedisTls,
    /// The server of `OTPENGINE_REDIS_AUTH_URL`, as its ACL user, with the
    /// user and password given apart from the URL, and the default options
    /// otherwise: no indexes, so no key counts and no capacity.
    #[cfg(feature = "redis")]
    RedisAcl,
}

impl Backend {
    /// An engine on this backend (a Redis one in a namespace of its own).
    fn engine(self, config: Config) -> Engine {
        match self {
            Backend::Memory => Engine::new(config).expect("valid config"),
            #[cfg(feature = "redis")]
            Backend::Redis => common::engine(&url(common::STANDALONE), config),
            #[cfg(feature = "redis")]
            Backend::RedisCluster => common::engine(&url(common::CLUSTER), config),
            #[cfg(feature = "redis")]
            Backend::RedisTls => {
                Engine::new_redis(config, common::mtls_options("tls")).expect("an engine over TLS")
            }
            #[cfg(feature = "redis")]
            Backend::RedisAcl => Engine::new_redis(config, common::acl_options("acl"))
                .expect("an engine as the ACL user"),
        }
    }

    /// Whether the backend holds `capacity`: a Redis Cluster does not (no script
    /// can count the keys of every slot; `maxmemory` bounds it instead).
    fn enforces_capacity(self) -> bool {
        match self {
            #[cfg(feature = "redis")]
            Backend::RedisCluster | Backend::RedisAcl => false,
            _ => true,
        }
    }

    /// Whether `len()`, `stats().live` and `held` count the keys: not on a Redis
    /// engine without its indexes (`exact_counts` off), where they read 0.
    fn counts_keys(self) -> bool {
        match self {
            #[cfg(feature = "redis")]
            Backend::RedisAcl => false,
            _ => true,
        }
    }
}

#[cfg(feature = "redis")]
fn url(var: &str) -> String {
    common::redis_url(var).expect("checked before the test body ran")
}

struct Fixture {
    engine: Engine,
    clock: ManualClock,
}

impl Fixture {
    fn new(b: Backend, tune: impl FnOnce(&mut Config)) -> Self {
        let clock = ManualClock::new();
        let mut config = Config {
            clock: Clock::manual(&clock),
            reaper_interval: None,
            shards: Some(4),
            ..Config::default()
        };
        tune(&mut config);
        Fixture {
            engine: b.engine(config),
            clock,
        }
    }

    /// Defaults, but with every per-key limit off.
    fn unlimited(b: Backend) -> Self {
        Self::new(b, no_limits)
    }

    fn issue(&self, key: &str) -> Issued {
        self.engine.issue(key, "").expect("issue")
    }

    fn verify(&self, key: &str, code: &str) -> Verdict {
        self.engine.verify(key, code, "").expect("verify")
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

fn no_limits(c: &mut Config) {
    c.resend_cooldown = Duration::ZERO;
    c.max_issues_per_window = 0;
    c.max_failures_per_key = 0;
}

/// A code of the right shape that is not `code`.
fn wrong(code: &str) -> String {
    code.bytes()
        .map(|b| if b == b'9' { '0' } else { (b + 1) as char })
        .collect()
}

/// A refused issue as (kind, retry_after), for comparing with what a rule says.
fn refusal(result: Result<Issued, Error>) -> (&'static str, Duration) {
    match result {
        Err(Error::RateLimited { retry_after, .. }) => ("rate limited", retry_after),
        Err(Error::Locked { retry_after, .. }) => ("locked", retry_after),
        other => panic!("expected a refusal with a wait, got {other:?}"),
    }
}

fn mismatch(attempts_left: u32) -> Verdict {
    Verdict::Mismatch { attempts_left }
}

fn locked(retry_after: Duration) -> Verdict {
    Verdict::Locked { retry_after }
}

// ---- issue -------------------------------------------------------------------

fn issue_returns_a_code_of_the_configured_shape_and_its_expiry(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.code_length = 8;
        c.alphabet = Alphabet::Alphanumeric;
        c.ttl = 90 * S;
    });
    let issued = f.issue("alice");
    assert_eq!(issued.code.len(), 8);
    assert!(issued
        .code
        .bytes()
        .all(|b| Alphabet::Alphanumeric.symbols().contains(&b)));
    assert_eq!(issued.expires_in, 90 * S);
}

fn a_new_issue_replaces_the_pending_code_at_once(b: Backend) {
    let f = Fixture::unlimited(b);
    let old = f.issue("alice");
    // One in a million new codes equals the old one; that would prove nothing here.
    let new = std::iter::repeat_with(|| f.issue("alice"))
        .find(|new| new.code != old.code)
        .unwrap();
    assert_eq!(f.verify("alice", &old.code), mismatch(4));
    assert_eq!(f.verify("alice", &new.code), Verdict::Verified);
}

fn keys_and_contexts_are_arbitrary_bytes_and_an_empty_context_is_none(b: Backend) {
    let f = Fixture::unlimited(b);
    let key = [0u8, 255, 10, 0];
    let issued = f.engine.issue(key, [1u8, 0, 2]).unwrap();
    assert_eq!(
        f.engine.verify(key, &issued.code, [1u8, 0, 2]).unwrap(),
        Verdict::Verified
    );
    let issued = f.engine.issue(b"bob", b"").unwrap();
    assert_eq!(
        f.engine.verify(b"bob", &issued.code, []).unwrap(),
        Verdict::Verified
    );
    // Keys that differ only in a byte are different keys.
    let issued = f.engine.issue([0u8, 255, 10, 1], "").unwrap();
    assert_eq!(
        f.engine.verify(key, &issued.code, "").unwrap(),
        Verdict::NotFound
    );
}

fn bad_keys_contexts_and_ttls_are_errors_that_change_nothing(b: Backend) {
    let f = Fixture::unlimited(b);
    let pending = f.issue("alice");
    let before = f.engine.stats();
    let long = vec![b'k'; 1025];
    let field = |e: Error| match e {
        Error::InvalidInput(e) => (e.field, e.to_string()),
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    assert_eq!(
        field(f.engine.issue("", "").unwrap_err()),
        (
            Field::Key,
            "key must be between 1 and 1024 bytes long, got 0 bytes".into()
        )
    );
    assert_eq!(field(f.engine.issue(&long, "").unwrap_err()).0, Field::Key);
    assert_eq!(
        field(f.engine.issue("alice", &long).unwrap_err()),
        (
            Field::Context,
            "context must be at most 1024 bytes long, got 1025 bytes".into()
        )
    );
    assert_eq!(
        field(
            f.engine
                .issue_with_ttl("alice", "", Duration::ZERO)
                .unwrap_err()
        ),
        (Field::Ttl, "ttl must be between 1s and 24h, got 0s".into())
    );
    assert_eq!(
        field(
            f.engine
                .issue_with_ttl("alice", "", 25 * 3600 * S)
                .unwrap_err()
        )
        .0,
        Field::Ttl
    );
    assert_eq!(
        field(f.engine.verify("", "123456", "").unwrap_err()).0,
        Field::Key
    );
    assert_eq!(
        field(f.engine.verify("alice", "123456", &long).unwrap_err()).0,
        Field::Context
    );
    assert_eq!(field(f.engine.revoke("").unwrap_err()).0, Field::Key);
    assert_eq!(field(f.engine.unlock(&long).unwrap_err()).0, Field::Key);
    assert_eq!(f.engine.stats(), before, "no counter moved");
    assert_eq!(
        f.verify("alice", &pending.code),
        Verdict::Verified,
        "the pending code is intact"
    );
    // The limits themselves are fine.
    f.engine.issue(vec![b'k'; 1024], vec![b'c'; 1024]).unwrap();
}

fn a_per_call_ttl_overrides_the_configured_one(b: Backend) {
    let f = Fixture::unlimited(b);
    let issued = f.engine.issue_with_ttl("alice", "", 10 * S).unwrap();
    assert_eq!(issued.expires_in, 10 * S);
    f.advance(10 * S);
    assert_eq!(f.verify("alice", &issued.code), Verdict::Expired);
}

// ---- rate limits -------------------------------------------------------------

fn an_issue_inside_the_cooldown_is_refused_with_the_exact_wait(b: Backend) {
    let f = Fixture::new(b, |c| c.max_issues_per_window = 0);
    let first = f.issue("alice");
    f.advance(12_345 * MS);
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 17_655 * MS)
    );
    assert_eq!(
        f.verify("alice", &first.code),
        Verdict::Verified,
        "the refused issue changed nothing"
    );
    f.advance(17_654 * MS);
    assert!(
        matches!(f.engine.issue("alice", ""), Err(Error::RateLimited { retry_after, .. }) if retry_after == MS)
    );
    f.advance(MS);
    f.issue("alice");
    assert!(f.engine.issue("bob", "").is_ok(), "limits are per key");
}

fn the_window_allows_that_many_issues_from_its_first_one(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.resend_cooldown = Duration::ZERO;
        c.max_issues_per_window = 3;
        c.issue_window = 60 * S;
    });
    f.issue("alice");
    f.advance(10 * S);
    f.issue("alice");
    f.advance(10 * S);
    f.issue("alice");
    f.advance(5 * S);
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 35 * S)
    );
    // Refused issues do not count: at the window's end exactly three more are allowed.
    f.advance(35 * S);
    let at = f.clock.now();
    for _ in 0..3 {
        f.issue("alice");
    }
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 60 * S)
    );
    // The new window started at the first issue after the old one ended.
    f.advance(60 * S - MS);
    assert_eq!(f.clock.now(), at + 60 * S - MS);
    assert_eq!(refusal(f.engine.issue("alice", "")), ("rate limited", MS));
}

fn when_cooldown_and_window_both_refuse_the_larger_wait_is_given(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.resend_cooldown = 30 * S;
        c.max_issues_per_window = 1;
        c.issue_window = 600 * S;
    });
    f.issue("alice");
    f.advance(10 * S);
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 590 * S)
    );
    let f = Fixture::new(b, |c| {
        c.resend_cooldown = 3600 * S;
        c.max_issues_per_window = 1;
        c.issue_window = 60 * S;
    });
    f.issue("alice");
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 3600 * S)
    );
}

fn verifying_burning_or_revoking_a_code_never_resets_the_limits(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.max_issues_per_window = 2;
        c.resend_cooldown = 30 * S;
        c.max_attempts = 1;
        c.ttl = 10 * S;
    });
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
    assert_eq!(
        refusal(f.engine.issue("alice", "")),
        ("rate limited", 30 * S)
    );
    f.advance(30 * S);
    let code = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &wrong(&code)),
        locked(Duration::ZERO),
        "burned"
    );
    f.advance(30 * S);
    assert!(
        matches!(f.engine.issue("alice", ""), Err(Error::RateLimited { .. })),
        "window of 2 used up"
    );
    assert!(
        !f.engine.revoke("alice").unwrap(),
        "a burned code is not pending"
    );
    assert!(
        matches!(f.engine.issue("alice", ""), Err(Error::RateLimited { .. })),
        "still after revoke"
    );
    // And the history outlives the code by the window, not longer.
    f.advance(540 * S);
    f.issue("alice");
}

// ---- failure budget per key ----------------------------------------------------

fn budget_fixture(b: Backend) -> Fixture {
    Fixture::new(b, budget)
}

fn budget(c: &mut Config) {
    c.resend_cooldown = Duration::ZERO;
    c.max_issues_per_window = 0;
    c.max_failures_per_key = 3;
    c.lockout = 3600 * S;
    c.ttl = 7200 * S; // codes outlive the lockout, so every wrong guess is counted
}

fn failures_count_across_codes_and_the_one_that_spends_the_budget_locks_the_key(b: Backend) {
    let f = budget_fixture(b);
    let first = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &wrong(&first)),
        mismatch(2),
        "attempts left = min(code, key budget)"
    );
    assert_eq!(f.verify("alice", &wrong(&first)), mismatch(1));
    let second = f.issue("alice").code;
    f.advance(10 * S);
    assert_eq!(
        f.verify("alice", &wrong(&second)),
        locked(3600 * S),
        "a new code did not reset the count"
    );
    // Locked out: issue and verify, even with the right code.
    f.advance(60 * S);
    assert_eq!(refusal(f.engine.issue("alice", "")), ("locked", 3540 * S));
    assert_eq!(f.verify("alice", &second), locked(3540 * S));
    assert_eq!(
        f.verify("bob", "123456"),
        Verdict::NotFound,
        "other keys are not affected"
    );
    // The lockout ends one lockout after the last failure.
    f.advance(3540 * S - MS);
    assert!(
        matches!(f.engine.issue("alice", ""), Err(Error::Locked { retry_after, .. }) if retry_after == MS)
    );
    f.advance(MS);
    let third = f.issue("alice").code;
    assert_eq!(f.verify("alice", &third), Verdict::Verified);
}

fn unlock_lifts_a_lockout_and_clears_the_count(b: Backend) {
    let f = budget_fixture(b);
    let code = f.issue("alice").code;
    for _ in 0..2 {
        f.verify("alice", &wrong(&code));
    }
    assert!(matches!(
        f.verify("alice", &wrong(&code)),
        Verdict::Locked { .. }
    ));
    assert!(f.engine.unlock("alice").unwrap());
    assert!(!f.engine.unlock("alice").unwrap(), "nothing left to clear");
    assert!(!f.engine.unlock("nobody").unwrap());
    let code = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &wrong(&code)),
        mismatch(2),
        "the count starts again"
    );
}

fn a_success_resets_the_failure_count(b: Backend) {
    let f = budget_fixture(b);
    let code = f.issue("alice").code;
    f.verify("alice", &wrong(&code));
    f.verify("alice", &wrong(&code));
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(2));
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(1));
}

fn without_escalation_the_count_is_forgotten_one_lockout_after_the_last_failure(b: Backend) {
    let fixture = || {
        Fixture::new(b, |c| {
            budget(c);
            c.escalate_lockouts = false;
        })
    };
    let f = fixture();
    let code = f.issue("alice").code;
    f.verify("alice", &wrong(&code));
    f.advance(1000 * S);
    f.verify("alice", &wrong(&code));
    f.advance(3600 * S - MS);
    let code = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &wrong(&code)),
        locked(3600 * S),
        "one lockout after the *last* failure"
    );
    f.advance(3600 * S);
    assert_eq!(spend_budget(&f, "alice"), locked(3600 * S), "never longer");
    let f = fixture();
    let code = f.issue("alice").code;
    f.verify("alice", &wrong(&code));
    f.verify("alice", &wrong(&code));
    f.advance(3600 * S);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(2), "forgotten");
}

// ---- escalating lockouts -----------------------------------------------------

const HOUR: Duration = Duration::from_secs(3600);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// The budget fixture with lockouts that double from 1 h up to 4 h.
fn escalation_fixture(b: Backend) -> Fixture {
    Fixture::new(b, |c| {
        budget(c);
        c.max_lockout = 4 * HOUR;
    })
}

/// Spends `key`'s budget (3) with wrong guesses at a fresh code; the last verdict.
fn spend_budget(f: &Fixture, key: &str) -> Verdict {
    let code = f.issue(key).code;
    f.verify(key, &wrong(&code));
    f.verify(key, &wrong(&code));
    f.verify(key, &wrong(&code))
}

fn each_spent_budget_doubles_the_lockout_up_to_max_lockout(b: Backend) {
    let f = escalation_fixture(b);
    assert_eq!(spend_budget(&f, "alice"), locked(HOUR));
    f.advance(HOUR);
    assert_eq!(
        spend_budget(&f, "alice"),
        locked(2 * HOUR),
        "a fresh budget, a longer lockout"
    );
    f.advance(HOUR);
    assert_eq!(refusal(f.engine.issue("alice", "")), ("locked", HOUR));
    f.advance(HOUR);
    assert_eq!(spend_budget(&f, "alice"), locked(4 * HOUR));
    f.advance(4 * HOUR);
    assert_eq!(spend_budget(&f, "alice"), locked(4 * HOUR), "max_lockout");
    f.advance(4 * HOUR);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
    assert_eq!(
        spend_budget(&f, "alice"),
        locked(HOUR),
        "a success clears the strikes"
    );
    assert_eq!(spend_budget(&f, "bob"), locked(HOUR), "strikes are per key");
}

fn unlock_clears_the_strikes_too(b: Backend) {
    let f = escalation_fixture(b);
    spend_budget(&f, "alice");
    f.advance(HOUR);
    assert_eq!(spend_budget(&f, "alice"), locked(2 * HOUR));
    assert!(f.engine.unlock("alice").unwrap());
    assert_eq!(spend_budget(&f, "alice"), locked(HOUR));
    f.advance(HOUR);
    // The lockout is over and the count fresh, but the strike is still there.
    assert!(f.engine.unlock("alice").unwrap(), "a strike to clear");
    assert!(!f.engine.unlock("alice").unwrap(), "nothing left to clear");
    assert_eq!(spend_budget(&f, "alice"), locked(HOUR));
}

fn with_escalation_failures_are_forgotten_one_max_lockout_after_the_last(b: Backend) {
    let f = escalation_fixture(b);
    let code = f.issue("alice").code;
    f.verify("alice", &wrong(&code));
    f.verify("alice", &wrong(&code));
    f.advance(4 * HOUR - MS);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &wrong(&code)), locked(HOUR), "remembered");
    let f = escalation_fixture(b);
    let code = f.issue("alice").code;
    f.verify("alice", &wrong(&code));
    f.verify("alice", &wrong(&code));
    f.advance(4 * HOUR);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(2), "forgotten");
}

fn strikes_are_forgotten_a_year_after_the_longest_lockout(b: Backend) {
    let f = escalation_fixture(b);
    spend_budget(&f, "alice");
    f.advance(4 * HOUR + YEAR - MS);
    assert_eq!(spend_budget(&f, "alice"), locked(2 * HOUR), "remembered");
    let f = escalation_fixture(b);
    spend_budget(&f, "alice");
    f.advance(4 * HOUR + YEAR);
    assert_eq!(f.engine.stats().held, 0, "nothing left of alice");
    assert_eq!(spend_budget(&f, "alice"), locked(HOUR), "forgotten");
}

#[test]
fn max_lockout_is_bounded_and_never_below_lockout() {
    let refused = |tune: fn(&mut Config)| {
        let mut c = Config::default();
        tune(&mut c);
        c.validate().unwrap_err()
    };
    let e = refused(|c| c.max_lockout = 366 * 86_400 * S);
    assert_eq!(e.field, Field::MaxLockout);
    assert_eq!(
        e.to_string(),
        "max_lockout must be between 1s and 365d, got 366d"
    );
    let e = refused(|c| c.max_lockout = 30 * 60 * S);
    assert_eq!(
        e.to_string(),
        "max_lockout must be between 1h and 365d, got 30m"
    );
    let c = Config {
        max_lockout: 30 * 60 * S,
        escalate_lockouts: false,
        ..Config::default()
    };
    assert!(c.validate().is_ok(), "unused with escalation off");
}

// ---- verify ------------------------------------------------------------------

fn the_right_code_verifies_once(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
    assert_eq!(f.verify("alice", &code), Verdict::NotFound);
}

fn a_wrong_code_or_another_context_is_a_counted_mismatch(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.engine.issue("alice", "EUR 10 to bob").unwrap().code;
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(4));
    assert_eq!(
        f.engine.verify("alice", &code, "EUR 10 to eve").unwrap(),
        mismatch(3)
    );
    assert_eq!(f.engine.verify("alice", &code, "").unwrap(), mismatch(2));
    assert_eq!(
        f.engine.verify("alice", &code, "EUR 10 to bob").unwrap(),
        Verdict::Verified
    );
}

fn the_failure_that_reaches_the_limit_burns_the_code_until_a_new_issue(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    for left in (1..5).rev() {
        assert_eq!(f.verify("alice", &wrong(&code)), mismatch(left));
    }
    assert_eq!(f.verify("alice", &wrong(&code)), locked(Duration::ZERO));
    assert_eq!(
        f.verify("alice", &code),
        locked(Duration::ZERO),
        "even the right code"
    );
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
}

fn a_code_is_valid_while_now_is_before_its_expiry(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    f.advance(300 * S - MS);
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
    let code = f.issue("alice").code;
    f.advance(300 * S);
    assert_eq!(f.verify("alice", &code), Verdict::Expired);
    assert_eq!(
        f.verify("alice", &wrong(&code)),
        Verdict::Expired,
        "no guessing after expiry either"
    );
    assert_eq!(f.engine.stats().mismatched, 0, "and nothing counted");
}

fn an_expired_code_is_remembered_for_one_ttl_then_forgotten(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    f.advance(600 * S - MS);
    assert_eq!(f.verify("alice", &code), Verdict::Expired);
    f.advance(MS);
    assert_eq!(f.verify("alice", &code), Verdict::NotFound);
    assert_eq!(f.engine.stats().held, 0, "nothing is held for the key");
}

fn an_expired_code_is_remembered_as_long_as_the_rate_history_lives(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.ttl = 60 * S;
        c.max_issues_per_window = 5;
        c.issue_window = 3600 * S;
    });
    let code = f.issue("alice").code;
    f.advance(3600 * S - MS);
    assert_eq!(f.verify("alice", &code), Verdict::Expired);
    f.advance(MS);
    assert_eq!(f.verify("alice", &code), Verdict::NotFound);
}

fn not_found_is_not_a_failure(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 2);
    for _ in 0..10 {
        assert_eq!(f.verify("alice", "123456"), Verdict::NotFound);
    }
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &wrong(&code)), mismatch(1));
}

// ---- several codes per key -------------------------------------------------------

fn with_several_codes_the_last_k_stay_valid_and_a_success_consumes_all(b: Backend) {
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.codes_per_key = 3;
    });
    let c1 = f.issue("alice").code;
    let c2 = f.issue("alice").code;
    let c3 = f.issue("alice").code;
    let c4 = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &c1),
        mismatch(4),
        "only the last three are valid"
    );
    assert_eq!(
        f.verify("alice", &c2),
        Verdict::Verified,
        "a late SMS still works"
    );
    for c in [&c3, &c4] {
        assert_eq!(f.verify("alice", c), Verdict::NotFound, "all consumed");
    }
}

fn with_several_codes_each_expires_on_its_own_and_attempts_are_shared(b: Backend) {
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.codes_per_key = 2;
    });
    let short = f.engine.issue_with_ttl("alice", "", 10 * S).unwrap().code;
    let long = f.engine.issue_with_ttl("alice", "", 100 * S).unwrap().code;
    assert_eq!(
        f.verify("alice", "000000a"),
        mismatch(4),
        "a wrong guess counts once, not per code"
    );
    f.advance(10 * S);
    assert_eq!(f.verify("alice", &short), Verdict::Expired);
    if b.counts_keys() {
        assert_eq!(f.engine.len(), 1, "the key still has a pending code");
    }
    let newest = f.issue("alice").code;
    assert_eq!(
        f.verify("alice", &wrong(&newest)),
        mismatch(4),
        "attempts start afresh with each issue"
    );
    assert_eq!(f.verify("alice", &long), Verdict::Verified);
    assert_eq!(f.verify("alice", &newest), Verdict::NotFound);
}

// ---- normalisation -------------------------------------------------------------

fn spaces_and_hyphens_are_ignored(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    let spaced = format!(" {}-{} {} ", &code[..2], &code[2..4], &code[4..]);
    assert_eq!(f.verify("alice", &spaced), Verdict::Verified);
}

fn the_alphanumeric_alphabet_is_case_insensitive(b: Backend) {
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.alphabet = Alphabet::Alphanumeric;
        c.code_length = 8;
    });
    let code = f.issue("alice").code;
    assert_eq!(f.verify("alice", &code.to_lowercase()), Verdict::Verified);
}

fn anything_else_is_an_ordinary_counted_mismatch(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    let longer = format!("{code}1");
    let fullwidth: String = code
        .chars()
        .map(|c| char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap())
        .collect();
    let tabbed = format!("{}\t{}", &code[..3], &code[3..]);
    let mut left = 4;
    for typed in [
        &code[..5],
        longer.as_str(),
        fullwidth.as_str(),
        tabbed.as_str(),
    ] {
        assert_eq!(f.verify("alice", typed), mismatch(left), "{typed:?}");
        left -= 1;
    }
    assert_eq!(f.verify("alice", &code), Verdict::Verified);
}

// ---- revoke, unlock, len, stats ---------------------------------------------------

fn revoke_drops_pending_codes(b: Backend) {
    let f = Fixture::new(b, |c| c.max_issues_per_window = 0);
    let code = f.issue("alice").code;
    assert!(f.engine.revoke("alice").unwrap());
    assert!(
        !f.engine.revoke("alice").unwrap(),
        "nothing pending any more"
    );
    assert!(!f.engine.revoke("nobody").unwrap());
    assert_eq!(f.verify("alice", &code), Verdict::NotFound);
    assert!(
        matches!(f.engine.issue("alice", ""), Err(Error::RateLimited { .. })),
        "cooldown kept"
    );
}

fn len_counts_keys_with_a_pending_code(b: Backend) {
    if !b.counts_keys() {
        let f = Fixture::unlimited(b);
        f.issue("a");
        assert_eq!(
            (f.engine.len(), f.engine.stats().held),
            (0, 0),
            "not counted"
        );
        return;
    }
    let f = Fixture::unlimited(b);
    assert!(f.engine.is_empty());
    let a = f.issue("a").code;
    f.issue("b");
    let c = f.issue("c").code;
    f.engine.issue_with_ttl("d", "", 10 * S).unwrap();
    f.issue("e");
    assert_eq!(f.engine.len(), 5);
    f.verify("a", &a);
    f.engine.revoke("b").unwrap();
    for _ in 0..5 {
        f.verify("c", &wrong(&c));
    }
    assert_eq!(
        f.engine.len(),
        2,
        "verified, revoked and burned codes are not pending"
    );
    f.advance(10 * S);
    assert_eq!(f.engine.len(), 1, "an expired code is not pending");
    f.issue("e");
    assert_eq!(f.engine.len(), 1, "a replaced code is one key");
}

fn stats_count_every_answer(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.max_failures_per_key = 3;
        c.capacity = 2;
        c.resend_cooldown = 30 * S;
        c.max_issues_per_window = 0;
    });
    let a = f.issue("a").code;
    let b_code = f.issue("b").code;
    assert!(f.engine.issue("a", "").is_err()); // rate limited
    let full = b.enforces_capacity();
    if full {
        assert!(f.engine.issue("c", "").is_err()); // capacity
    }
    f.verify("a", &a); // verified
    f.verify("a", &a); // not found
    f.verify("b", &wrong(&b_code)); // mismatch
    f.verify("b", &wrong(&b_code)); // mismatch
    f.verify("b", &wrong(&b_code)); // locked (budget spent)
    f.verify("b", &b_code); // locked
    f.advance(3600 * S);
    let d = f.engine.issue_with_ttl("a", "", 5 * S).unwrap().code;
    f.advance(5 * S);
    f.verify("a", &d); // expired
    f.advance(30 * S);
    f.issue("a");
    assert!(f.engine.revoke("a").unwrap()); // revoked
    let stats = f.engine.stats();
    assert_eq!(
        stats,
        Stats {
            issued: 4,
            verified: 1,
            mismatched: 2,
            locked: 2,
            expired: 1,
            rate_limited: 1,
            revoked: 1,
            not_found: 1,
            capacity_exceeded: u64::from(full),
            unavailable: 0,
            replayed: 0,
            live: 0,
            // "a", for its cooldown; "b" for its strike (escalating lockouts)
            held: if b.counts_keys() { 2 } else { 0 },
            scopes: Vec::new(),
        }
    );
    let text = stats.to_prometheus();
    assert!(text.contains("otpengine_issued_total 4\n"), "{text}");
    assert!(
        text.contains(&format!(
            "otpengine_capacity_exceeded_total {}\n",
            u64::from(full)
        )),
        "{text}"
    );
}

// ---- capacity ----------------------------------------------------------------------

fn a_full_engine_refuses_new_keys_and_evicts_nothing(b: Backend) {
    if !b.enforces_capacity() {
        return; // documented: a cluster does not hold `capacity`
    }
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.capacity = 3;
        c.shards = Some(2);
    });
    let codes: Vec<_> = ["a", "b", "c"].iter().map(|k| f.issue(k).code).collect();
    assert!(matches!(
        f.engine.issue("d", ""),
        Err(Error::CapacityExceeded {
            capacity: 3,
            out_of_memory: None,
            ..
        })
    ));
    f.issue("a"); // an existing key may still be issued a new code
    assert_eq!(f.verify("b", &codes[1]), Verdict::Verified);
    assert_eq!(f.verify("c", &codes[2]), Verdict::Verified);
    // b and c are forgotten once consumed (no limits hold them), so there is room.
    f.issue("d");
    f.issue("e");
    assert!(matches!(
        f.engine.issue("f", ""),
        Err(Error::CapacityExceeded { .. })
    ));
}

fn a_full_engine_reclaims_what_has_expired_before_refusing(b: Backend) {
    if !b.enforces_capacity() {
        return; // documented: a cluster does not hold `capacity`
    }
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.capacity = 2;
        c.ttl = 10 * S;
    });
    f.issue("a");
    f.issue("b");
    f.advance(20 * S); // expired and past their memory; no timer has run yet
    f.issue("c");
    f.issue("d");
    assert_eq!(f.engine.stats().held, 2);
}

fn the_clock_can_be_advanced_only_when_it_is_manual(b: Backend) {
    let f = Fixture::unlimited(b);
    let code = f.issue("alice").code;
    f.engine.advance_clock(300 * S).unwrap();
    assert_eq!(f.verify("alice", &code), Verdict::Expired);
    let system = b.engine(Config {
        reaper_interval: None,
        ..Config::default()
    });
    assert_eq!(system.advance_clock(S).unwrap_err(), Error::NotManualClock);
}

// ---- the suite on every backend ------------------------------------------------

/// One `#[test]` per backend for each rule above: `memory::<rule>`,
/// `redis::<rule>` and `redis_cluster::<rule>`. A rule missing from the list is
/// an unused function, which the lints refuse.
macro_rules! on_every_backend {
    ($($rule:ident,)*) => {
        mod memory {
            $(#[test]
            fn $rule() {
                super::$rule(super::Backend::Memory);
            })*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(#[test]
            fn $rule() {
                if super::common::redis_url(super::common::STANDALONE).is_some() {
                    super::$rule(super::Backend::Redis);
                }
            })*
        }

        #[cfg(feature = "redis")]
        mod redis_cluster {
            $(#[test]
            fn $rule() {
                if super::common::redis_url(super::common::CLUSTER).is_some() {
                    super::$rule(super::Backend::RedisCluster);
                }
            })*
        }

        #[cfg(feature = "redis")]
        mod redis_tls {
            $(#[test]
            fn $rule() {
                if super::common::redis_url(super::common::MTLS).is_some() {
                    super::$rule(super::Backend::RedisTls);
                }
            })*
        }

        #[cfg(feature = "redis")]
        mod redis_acl {
            $(#[test]
            fn $rule() {
                if super::common::redis_url(super::common::AUTH).is_some() {
                    super::$rule(super::Backend::RedisAcl);
                }
            })*
        }
    };
}

// ---- batches -----------------------------------------------------------------

/// The answers of a batch, as short names, for comparing with single calls.
fn answers<T: std::fmt::Debug>(results: &[Result<T, Error>]) -> Vec<String> {
    results
        .iter()
        .map(|r| match r {
            Ok(v) => format!("{v:?}"),
            Err(Error::InvalidInput(e)) => format!("invalid {:?}", e.field),
            Err(e) => format!("{e}"),
        })
        .collect()
}

fn batches_answer_per_item_as_single_calls_in_turn_would(b: Backend) {
    let tune = |c: &mut Config| {
        c.max_issues_per_window = 0; // the cooldown stays on
        c.max_failures_per_key = 2;
    };
    let (batch, single) = (Fixture::new(b, tune), Fixture::new(b, tune));
    let long = vec![b'k'; 1025];
    let keys: Vec<&[u8]> = vec![b"a", b"b", b"a", b"", &long, b"c"];
    let batched = batch.engine.issue_many(keys.iter().copied(), "ctx");
    let one_by_one: Vec<_> = keys.iter().map(|k| single.engine.issue(k, "ctx")).collect();
    assert_eq!(answers(&batched).len(), 6);
    // Codes differ between the engines; everything else must be the same.
    let shape = |r: &[Result<Issued, Error>]| -> Vec<String> {
        r.iter()
            .map(|x| match x {
                Ok(i) => format!("code of {} expiring in {:?}", i.code.len(), i.expires_in),
                Err(_) => answers(std::slice::from_ref(x)).remove(0),
            })
            .collect()
    };
    assert_eq!(shape(&batched), shape(&one_by_one));
    assert!(matches!(batched[2], Err(Error::RateLimited { .. })));
    assert!(matches!(batched[3], Err(Error::InvalidInput(_))));
    assert!(matches!(batched[4], Err(Error::InvalidInput(_))));

    let code = |r: &Result<Issued, Error>| r.as_ref().unwrap().code.as_str().to_string();
    let (a, c) = (code(&batched[0]), code(&batched[5]));
    let items: Vec<(&[u8], String, &[u8])> = vec![
        (b"a", wrong(&a), b"ctx"),
        (b"a", wrong(&a), b"ctx"), // the key's budget of 2: locked
        (b"c", c.clone(), b"other"),
        (b"", c.clone(), b"ctx"),
        (b"c", c.clone(), &long),
        (b"c", c.clone(), b"ctx"),
        (b"c", c.clone(), b"ctx"),
        (b"nobody", c.clone(), b"ctx"),
    ];
    let batched = batch
        .engine
        .verify_many(items.iter().map(|(k, t, x)| (*k, t, *x)));
    let (sa, sc) = (code(&one_by_one[0]), code(&one_by_one[5]));
    let one_by_one: Vec<_> = items
        .iter()
        .map(|(k, t, x)| {
            let t = t.replace(&a, &sa).replace(&c, &sc);
            single.engine.verify(k, t, x)
        })
        .collect();
    assert_eq!(answers(&batched), answers(&one_by_one));
    assert_eq!(
        answers(&batched),
        [
            "Mismatch { attempts_left: 1 }",
            "Locked { retry_after: 3600s }",
            "Mismatch { attempts_left: 1 }",
            "invalid Key",
            "invalid Context",
            "Verified",
            "NotFound",
            "NotFound",
        ]
    );
    assert_eq!(batch.engine.stats(), single.engine.stats());
}

// ---- TOTP ---------------------------------------------------------------------

const TOTP_SECRET: &[u8] = b"12345678901234567890";
/// A moment well inside a 30-second step (step 56,666,666 starts at 1,699,999,980).
const T0: u64 = 1_700_000_000;

fn at(unix: u64) -> Option<std::time::SystemTime> {
    Some(std::time::UNIX_EPOCH + Duration::from_secs(unix))
}

/// The TOTP code of the test secret at `unix`, default parameters.
fn totp_at(unix: u64) -> String {
    totp::totp(TOTP_SECRET, unix, &TotpParams::default())
        .unwrap()
        .as_str()
        .to_owned()
}

impl Fixture {
    fn verify_totp(&self, key: &str, code: &str, unix: u64) -> Verdict {
        self.engine
            .verify_totp(key, TOTP_SECRET, code, &TotpParams::default(), at(unix))
            .expect("verify_totp")
    }
}

fn a_totp_code_verifies_once_and_its_replay_is_not_a_failure(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 3);
    let code = totp_at(T0);
    assert_eq!(f.verify_totp("alice", &code, T0), Verdict::Verified);
    assert_eq!(f.verify_totp("alice", &code, T0), Verdict::Replayed);
    assert_eq!(f.verify_totp("alice", &code, T0 + 5), Verdict::Replayed);
    // Three replays spent nothing: the whole budget is still there.
    assert_eq!(
        f.verify_totp("alice", "000000", T0),
        Verdict::Mismatch { attempts_left: 2 }
    );
    let stats = f.engine.stats();
    assert_eq!(
        (stats.verified, stats.replayed, stats.mismatched),
        (1, 2, 1)
    );
    // The next step's code is a new code.
    assert_eq!(
        f.verify_totp("alice", &totp_at(T0 + 30), T0 + 30),
        Verdict::Verified
    );
}

fn totp_accepts_exactly_the_skewed_steps(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 100);
    // One step of skew each way by default: the steps either side verify, the
    // next ones out are mismatches.
    assert_eq!(
        f.verify_totp("k1", &totp_at(T0 - 30), T0),
        Verdict::Verified
    );
    assert_eq!(
        f.verify_totp("k2", &totp_at(T0 + 30), T0),
        Verdict::Verified
    );
    assert!(matches!(
        f.verify_totp("k3", &totp_at(T0 - 60), T0),
        Verdict::Mismatch { .. }
    ));
    assert!(matches!(
        f.verify_totp("k4", &totp_at(T0 + 60), T0),
        Verdict::Mismatch { .. }
    ));
    // Wider skew, from the parameters of the call.
    let wide = TotpParams {
        skew_back: 2,
        skew_ahead: 0,
        ..TotpParams::default()
    };
    let verdict = f
        .engine
        .verify_totp("k5", TOTP_SECRET, &totp_at(T0 - 60), &wide, at(T0));
    assert_eq!(verdict, Ok(Verdict::Verified));
    let verdict = f
        .engine
        .verify_totp("k6", TOTP_SECRET, &totp_at(T0 + 30), &wide, at(T0));
    assert!(matches!(verdict, Ok(Verdict::Mismatch { .. })));
    // Other hashes and lengths, per call.
    let p = TotpParams {
        digits: 8,
        algorithm: HashAlgorithm::Sha256,
        ..TotpParams::default()
    };
    let code = totp::totp(TOTP_SECRET, T0, &p).unwrap();
    assert_eq!(
        f.engine
            .verify_totp("k7", TOTP_SECRET, code.as_str(), &p, at(T0)),
        Ok(Verdict::Verified)
    );
}

fn accepting_a_step_makes_it_and_every_earlier_one_a_replay(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 100);
    let (before, now, after) = (totp_at(T0 - 30), totp_at(T0), totp_at(T0 + 30));
    assert_eq!(f.verify_totp("k", &after, T0), Verdict::Verified);
    assert_eq!(f.verify_totp("k", &now, T0), Verdict::Replayed);
    assert_eq!(f.verify_totp("k", &before, T0), Verdict::Replayed);
    // Spaces and hyphens are ignored, as for random codes.
    let spaced = format!("{}-{} ", &after[..3], &after[3..]);
    assert_eq!(f.verify_totp("k", &spaced, T0 + 30), Verdict::Replayed);
}

fn totp_failures_spend_the_budget_then_lock_without_looking(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.max_failures_per_key = 3;
        c.lockout = 600 * S;
    });
    assert_eq!(
        f.verify_totp("k", "000000", T0),
        Verdict::Mismatch { attempts_left: 2 }
    );
    assert_eq!(
        f.verify_totp("k", "12345", T0),
        Verdict::Mismatch { attempts_left: 1 }
    );
    assert_eq!(
        f.verify_totp("k", "nope", T0),
        Verdict::Locked {
            retry_after: 600 * S
        }
    );
    f.advance(100 * S);
    // The right code is not even looked at while locked.
    assert_eq!(
        f.verify_totp("k", &totp_at(T0 + 100), T0 + 100),
        Verdict::Locked {
            retry_after: 500 * S
        }
    );
    f.advance(500 * S);
    assert_eq!(
        f.verify_totp("k", &totp_at(T0 + 600), T0 + 600),
        Verdict::Verified
    );
    // A success resets the count.
    assert_eq!(
        f.verify_totp("k", "000000", T0 + 600),
        Verdict::Mismatch { attempts_left: 2 }
    );
}

fn totp_lockouts_escalate_like_random_code_ones(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.max_failures_per_key = 3;
        c.lockout = 600 * S;
        c.max_lockout = 1800 * S;
    });
    let spend = |unix: u64| {
        let wrong_code = wrong(&totp_at(unix));
        f.verify_totp("k", &wrong_code, unix);
        f.verify_totp("k", &wrong_code, unix);
        f.verify_totp("k", &wrong_code, unix)
    };
    assert_eq!(spend(T0), locked(600 * S));
    f.advance(600 * S);
    assert_eq!(spend(T0 + 600), locked(1200 * S));
    f.advance(1200 * S);
    assert_eq!(spend(T0 + 1800), locked(1800 * S), "max_lockout");
    f.advance(1800 * S);
    assert_eq!(
        f.verify_totp("k", &totp_at(T0 + 3600), T0 + 3600),
        Verdict::Verified
    );
    assert_eq!(
        spend(T0 + 3600),
        locked(600 * S),
        "a success clears the strikes"
    );
    f.advance(600 * S);
    assert_eq!(spend(T0 + 4200), locked(1200 * S));
    assert!(f.engine.unlock_totp("k").unwrap());
    assert_eq!(spend(T0 + 4200), locked(600 * S), "so does unlock_totp");
}

fn totp_state_is_separate_from_random_code_state(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 2);
    let code = f.issue("alice").code;
    // Lock alice's TOTP state out...
    let _ = f.verify_totp("alice", "000000", T0);
    assert!(matches!(
        f.verify_totp("alice", "000000", T0),
        Verdict::Locked { .. }
    ));
    // ...and her random code still verifies; its own budget is untouched.
    assert_eq!(f.verify("alice", code.as_str()), Verdict::Verified);
    // The other way round: spending the random-code budget leaves TOTP alone.
    let _ = f.engine.verify("bob", "000000", "");
    f.issue("bob");
    let _ = f.verify("bob", "000000");
    let _ = f.verify("bob", "000001");
    assert_eq!(f.verify_totp("bob", &totp_at(T0), T0), Verdict::Verified);
}

fn bad_totp_arguments_are_errors_that_change_nothing(b: Backend) {
    let f = Fixture::new(b, |c| c.max_failures_per_key = 3);
    let p = TotpParams::default();
    let err = |r: Result<Verdict, Error>| match r {
        Err(Error::InvalidInput(e)) => e.to_string(),
        other => panic!("expected an invalid input, got {other:?}"),
    };
    let code = totp_at(T0);
    assert_eq!(
        err(f
            .engine
            .verify_totp("k", &TOTP_SECRET[..15], &code, &p, at(T0))),
        "secret must be between 16 and 64 bytes long, got 15 bytes"
    );
    let bad = TotpParams { digits: 5, ..p };
    assert_eq!(
        err(f.engine.verify_totp("k", TOTP_SECRET, &code, &bad, at(T0))),
        "digits must be between 6 and 8, got 5"
    );
    assert_eq!(
        err(f.engine.verify_totp("", TOTP_SECRET, &code, &p, at(T0))),
        "key must be between 1 and 1024 bytes long, got 0 bytes"
    );
    let before_1970 = Some(std::time::UNIX_EPOCH - S);
    assert!(err(f
        .engine
        .verify_totp("k", TOTP_SECRET, &code, &p, before_1970))
    .starts_with("at must be a time between 1970-01-01 and 9999-12-31 UTC"));
    let year_10000 = at(totp::MAX_UNIX_TIME + 1);
    assert!(err(f
        .engine
        .verify_totp("k", TOTP_SECRET, &code, &p, year_10000))
    .starts_with("at must be a time between 1970-01-01 and 9999-12-31 UTC"));
    assert!(totp::totp(TOTP_SECRET, totp::MAX_UNIX_TIME + 1, &p).is_err());
    assert!(totp::totp(TOTP_SECRET, totp::MAX_UNIX_TIME, &p).is_ok());
    // None of that touched the key: its first real verify is a fresh one.
    assert_eq!(f.verify_totp("k", &code, T0), Verdict::Verified);
    // Without a failure budget, TOTP is refused outright: a long-lived secret.
    let open = Fixture::new(b, |c| c.max_failures_per_key = 0);
    let e = err(open.engine.verify_totp("k", TOTP_SECRET, &code, &p, at(T0)));
    assert!(
        e.starts_with("max_failures_per_key must be at least 1 for verify_totp"),
        "{e}"
    );
}

fn an_accepted_step_is_remembered_while_it_could_be_replayed(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.max_failures_per_key = 3;
        c.resend_cooldown = Duration::ZERO;
    });
    let code = totp_at(T0);
    assert_eq!(f.verify_totp("k", &code, T0), Verdict::Verified);
    // With the largest skew back (10 steps) the step is acceptable until the
    // end of step + 10: 1,700,000,010 + 300 s from T0.
    let wide = TotpParams {
        skew_back: 10,
        ..TotpParams::default()
    };
    f.advance(309 * S);
    let verdict = f
        .engine
        .verify_totp("k", TOTP_SECRET, &code, &wide, at(T0 + 309));
    assert_eq!(verdict, Ok(Verdict::Replayed), "still remembered 309 s on");
    f.advance(2 * S);
    let verdict = f
        .engine
        .verify_totp("k", TOTP_SECRET, &code, &wide, at(T0 + 311));
    assert!(
        matches!(verdict, Ok(Verdict::Mismatch { .. })),
        "{verdict:?}: out of every window, so a mismatch"
    );
}

// ---- scopes ------------------------------------------------------------------

/// Scope limits: "ip" with 3 issues and 3 failures an hour, "tenant" with 5
/// issues a minute and no failure budget; every per-key limit off.
fn scoped_fixture(b: Backend) -> Fixture {
    Fixture::new(b, |c| {
        no_limits(c);
        c.scope_limits = scope_limits();
    })
}

fn scope_limits() -> Vec<ScopeLimit> {
    vec![
        ScopeLimit {
            max_issues: 3,
            issue_window: 3600 * S,
            max_failures: 3,
            failure_window: 3600 * S,
            ..ScopeLimit::new("ip")
        },
        ScopeLimit {
            max_issues: 5,
            issue_window: 60 * S,
            ..ScopeLimit::new("tenant")
        },
    ]
}

impl Fixture {
    fn issue_in(&self, key: &str, scopes: &[Scope]) -> Result<Issued, Error> {
        self.engine.issue_scoped(key, "", None, scopes)
    }

    fn verify_in(&self, key: &str, code: &str, scopes: &[Scope]) -> Verdict {
        self.engine
            .verify_scoped(key, code, "", scopes)
            .expect("verify_scoped")
    }
}

fn rate_limited_by(result: Result<Issued, Error>) -> (Option<String>, Duration) {
    match result {
        Err(Error::RateLimited {
            retry_after, scope, ..
        }) => (scope, retry_after),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

fn scopes_issue_limits_hold_across_keys_per_value(b: Backend) {
    let f = scoped_fixture(b);
    let a = [Scope::new("ip", "203.0.113.7/32")];
    for n in 0..3 {
        f.issue_in(&format!("+4477009000{n}"), &a)
            .expect("within the budget");
        f.advance(10 * S);
    }
    // A fourth number from the same address waits for the window's end, an
    // hour after its first issue; another address is not affected.
    let (scope, wait) = rate_limited_by(f.issue_in("+447700900099", &a));
    assert_eq!((scope.as_deref(), wait), (Some("ip"), 3600 * S - 30 * S));
    f.issue_in("+447700900099", &[Scope::new("ip", "198.51.100.1/32")])
        .expect("another value has its own budget");
    f.advance(3570 * S - MS);
    assert!(f.issue_in("+447700900098", &a).is_err());
    f.advance(MS);
    f.issue_in("+447700900098", &a).expect("a new window");
}

fn a_refused_issue_counts_nowhere(b: Backend) {
    let f = Fixture::new(b, |c| {
        c.resend_cooldown = 30 * S;
        c.max_issues_per_window = 1;
        c.issue_window = 3600 * S;
        c.max_failures_per_key = 0;
        c.scope_limits = vec![ScopeLimit {
            max_issues: 2,
            issue_window: 3600 * S,
            ..ScopeLimit::new("ip")
        }];
    });
    let a = [Scope::new("ip", "a")];
    f.issue_in("k1", &a).expect("first");
    // Refused by k1's own window: the address's count stays at 1.
    let (scope, _) = rate_limited_by(f.issue_in("k1", &a));
    assert_eq!(scope, None);
    f.issue_in("k2", &a).expect("the address's second");
    // Refused by the address: k3's own window does not count it ...
    let (scope, _) = rate_limited_by(f.issue_in("k3", &a));
    assert_eq!(scope.as_deref(), Some("ip"));
    // ... so k3 issues from another address, once.
    f.issue_in("k3", &[Scope::new("ip", "b")])
        .expect("k3 had not issued");
    assert!(f.issue_in("k3", &[Scope::new("ip", "c")]).is_err());
}

fn the_longest_wait_is_given_and_names_its_scope(b: Backend) {
    let f = Fixture::new(b, |c| {
        no_limits(c);
        c.resend_cooldown = 120 * S;
        c.scope_limits = vec![
            ScopeLimit {
                max_issues: 1,
                issue_window: 60 * S,
                ..ScopeLimit::new("ip")
            },
            ScopeLimit {
                max_issues: 1,
                issue_window: 600 * S,
                ..ScopeLimit::new("prefix")
            },
        ];
    });
    let ip = Scope::new("ip", "a");
    let prefix = Scope::new("prefix", "+44");
    f.issue_in("k1", &[ip, prefix]).expect("first");
    // k1: its own cooldown (120 s) against the address's window (60 s).
    let (scope, wait) = rate_limited_by(f.issue_in("k1", &[ip]));
    assert_eq!((scope, wait), (None, 120 * S));
    // k2: the address (60 s) and the prefix (600 s) both refuse.
    let (scope, wait) = rate_limited_by(f.issue_in("k2", &[ip, prefix]));
    assert_eq!((scope.as_deref(), wait), (Some("prefix"), 600 * S));
    let stats = f.engine.stats();
    assert_eq!(stats.rate_limited, 2);
    let by_scope: Vec<(&str, u64)> = stats
        .scopes
        .iter()
        .map(|s| (s.name.as_str(), s.rate_limited))
        .collect();
    assert_eq!(by_scope, [("ip", 0), ("prefix", 1)]);
    assert_eq!(stats.rate_limited_by_key(), 1);
    let text = stats.to_prometheus();
    assert!(text.contains("otpengine_rate_limited_total{scope=\"key\"} 1\n"));
    assert!(text.contains("otpengine_rate_limited_total{scope=\"prefix\"} 1\n"));
}

fn unknown_or_repeated_scopes_are_errors_that_change_nothing(b: Backend) {
    let f = scoped_fixture(b);
    let field = |e: Error| match e {
        Error::InvalidInput(e) => e.field,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let err = f.issue_in("k", &[Scope::new("ip", "a"), Scope::new("country", "GB")]);
    assert_eq!(field(err.unwrap_err()), Field::Scopes);
    let err = f.issue_in("k", &[Scope::new("ip", "a"), Scope::new("ip", "b")]);
    assert_eq!(field(err.unwrap_err()), Field::Scopes);
    let err = f
        .engine
        .verify_scoped("k", "123456", "", &[Scope::new("nope", "")]);
    assert_eq!(field(err.unwrap_err()), Field::Scopes);
    assert_eq!(
        field(f.engine.unlock_scope("nope", "").unwrap_err()),
        Field::Scopes
    );
    // Nothing was counted: the address still has its 3 issues.
    for n in 0..3 {
        f.issue_in(&format!("k{n}"), &[Scope::new("ip", "a")])
            .expect("budget intact");
    }
}

fn a_scope_that_spent_its_failure_budget_locks_verifies_without_looking(b: Backend) {
    let f = scoped_fixture(b);
    let a = [Scope::new("ip", "a")];
    // One wrong guess on each of three accounts: no key's budget is near its
    // end, but the address's is spent.
    let mut codes = Vec::new();
    for n in 0..4 {
        codes.push(f.issue(&format!("victim{n}")).code.to_string());
    }
    for (n, code) in codes.iter().enumerate().take(3) {
        let verdict = f.verify_in(&format!("victim{n}"), &wrong(code), &a);
        assert!(matches!(verdict, Verdict::Mismatch { .. }), "{verdict:?}");
        f.advance(S);
    }
    // Even the right code is not looked at: Locked until the window ends.
    assert_eq!(
        f.verify_in("victim3", &codes[3], &a),
        locked(3600 * S - 3 * S)
    );
    // The key's own budget and its code are untouched.
    assert_eq!(f.verify("victim3", &codes[3]), Verdict::Verified);
    // Another address still verifies.
    let code = f.issue("victim0").code.to_string();
    assert_eq!(
        f.verify_in("victim0", &code, &[Scope::new("ip", "b")]),
        Verdict::Verified
    );
    f.advance(3600 * S - 3 * S);
    let code = f.issue("victim1").code.to_string();
    assert_eq!(f.verify_in("victim1", &code, &a), Verdict::Verified);
    let stats = f.engine.stats();
    assert_eq!(stats.scopes[0].locked, 1);
}

fn a_success_does_not_reset_a_scopes_failures(b: Backend) {
    let f = scoped_fixture(b);
    let a = [Scope::new("ip", "a")];
    for n in 0..2 {
        let code = f.issue(&format!("k{n}")).code.to_string();
        assert!(matches!(
            f.verify_in(&format!("k{n}"), &wrong(&code), &a),
            Verdict::Mismatch { .. }
        ));
    }
    let code = f.issue("mine").code.to_string();
    assert_eq!(f.verify_in("mine", &code, &a), Verdict::Verified);
    let code = f.issue("k9").code.to_string();
    assert!(matches!(
        f.verify_in("k9", &wrong(&code), &a),
        Verdict::Mismatch { .. }
    ));
    let code = f.issue("k8").code.to_string();
    assert!(matches!(
        f.verify_in("k8", &code, &a),
        Verdict::Locked { .. }
    ));
    // Not-found verifies and expired codes are not failures.
    assert_eq!(
        f.verify_in("nobody", "123456", &[Scope::new("ip", "c")]),
        Verdict::NotFound
    );
}

fn unlock_scope_lifts_the_lockout_and_clears_the_counts(b: Backend) {
    let f = scoped_fixture(b);
    let a = [Scope::new("ip", "office")];
    for n in 0..3 {
        let code = f.issue_in(&format!("k{n}"), &a).unwrap().code.to_string();
        f.verify_in(&format!("k{n}"), &wrong(&code), &a);
    }
    assert!(f.issue_in("k3", &a).is_err(), "issues spent too");
    let code = f.issue("k4").code.to_string();
    assert!(matches!(
        f.verify_in("k4", &code, &a),
        Verdict::Locked { .. }
    ));
    assert_eq!(f.engine.unlock_scope("ip", "office"), Ok(true));
    assert_eq!(f.engine.unlock_scope("ip", "office"), Ok(false));
    assert_eq!(f.verify_in("k4", &code, &a), Verdict::Verified);
    f.issue_in("k3", &a)
        .expect("the issue count was cleared too");
}

fn scope_state_is_held_while_its_windows_run(b: Backend) {
    let f = scoped_fixture(b);
    let code = f
        .issue_in("k", &[Scope::new("tenant", "acme")])
        .unwrap()
        .code
        .to_string();
    f.verify_in("k", &code, &[Scope::new("tenant", "acme")]);
    // The tenant's issue window, 60 s; the key itself holds nothing now.
    let held = |n| if b.counts_keys() { n } else { 0 };
    assert_eq!(f.engine.stats().held, held(1));
    f.advance(60 * S);
    assert_eq!(f.engine.stats().held, 0);
    // Five issues a minute for the tenant, then a wait for the window's end.
    for n in 0..5 {
        f.issue_in(&format!("t{n}"), &[Scope::new("tenant", "acme")])
            .unwrap();
    }
    let (scope, wait) = rate_limited_by(f.issue_in("t9", &[Scope::new("tenant", "acme")]));
    assert_eq!((scope.as_deref(), wait), (Some("tenant"), 60 * S));
}

fn a_full_store_answers_the_keys_own_refusal_first(b: Backend) {
    if !b.enforces_capacity() {
        return;
    }
    let f = Fixture::new(b, |c| {
        c.capacity = 2;
        c.scope_limits = scope_limits();
    });
    // k1 and its address fill the store.
    f.issue_in("k1", &[Scope::new("ip", "a")])
        .expect("room for both");
    // k1 again, from a new address: its own cooldown answers, not the full store.
    let (scope, wait) = rate_limited_by(f.issue_in("k1", &[Scope::new("ip", "b")]));
    assert_eq!((scope, wait), (None, 30 * S));
    // k2 from the known address: no room for k2.
    assert!(matches!(
        f.issue_in("k2", &[Scope::new("ip", "a")]),
        Err(Error::CapacityExceeded { .. })
    ));
}

fn totp_verifies_count_on_scopes_too(b: Backend) {
    let f = Fixture::new(b, |c| c.scope_limits = scope_limits());
    let a = [Scope::new("ip", "sprayer")];
    let now = 1_700_000_000;
    let params = TotpParams::default();
    for n in 0..3 {
        let verdict = f
            .engine
            .verify_totp_scoped(format!("u{n}"), TOTP_SECRET, "000000", &params, at(now), &a)
            .unwrap();
        assert!(matches!(verdict, Verdict::Mismatch { .. }) || totp_at(now) == "000000");
    }
    let right = totp_at(now);
    let verdict = f
        .engine
        .verify_totp_scoped("u9", TOTP_SECRET, &right, &params, at(now), &a)
        .unwrap();
    assert!(matches!(verdict, Verdict::Locked { .. }), "{verdict:?}");
    assert_eq!(f.verify_totp("u9", &right, now), Verdict::Verified);
}

on_every_backend! {
    batches_answer_per_item_as_single_calls_in_turn_would,
    issue_returns_a_code_of_the_configured_shape_and_its_expiry,
    a_new_issue_replaces_the_pending_code_at_once,
    keys_and_contexts_are_arbitrary_bytes_and_an_empty_context_is_none,
    bad_keys_contexts_and_ttls_are_errors_that_change_nothing,
    a_per_call_ttl_overrides_the_configured_one,
    an_issue_inside_the_cooldown_is_refused_with_the_exact_wait,
    the_window_allows_that_many_issues_from_its_first_one,
    when_cooldown_and_window_both_refuse_the_larger_wait_is_given,
    verifying_burning_or_revoking_a_code_never_resets_the_limits,
    failures_count_across_codes_and_the_one_that_spends_the_budget_locks_the_key,
    unlock_lifts_a_lockout_and_clears_the_count,
    a_success_resets_the_failure_count,
    without_escalation_the_count_is_forgotten_one_lockout_after_the_last_failure,
    each_spent_budget_doubles_the_lockout_up_to_max_lockout,
    unlock_clears_the_strikes_too,
    with_escalation_failures_are_forgotten_one_max_lockout_after_the_last,
    strikes_are_forgotten_a_year_after_the_longest_lockout,
    totp_lockouts_escalate_like_random_code_ones,
    the_right_code_verifies_once,
    a_wrong_code_or_another_context_is_a_counted_mismatch,
    the_failure_that_reaches_the_limit_burns_the_code_until_a_new_issue,
    a_code_is_valid_while_now_is_before_its_expiry,
    an_expired_code_is_remembered_for_one_ttl_then_forgotten,
    an_expired_code_is_remembered_as_long_as_the_rate_history_lives,
    not_found_is_not_a_failure,
    with_several_codes_the_last_k_stay_valid_and_a_success_consumes_all,
    with_several_codes_each_expires_on_its_own_and_attempts_are_shared,
    spaces_and_hyphens_are_ignored,
    the_alphanumeric_alphabet_is_case_insensitive,
    anything_else_is_an_ordinary_counted_mismatch,
    revoke_drops_pending_codes,
    len_counts_keys_with_a_pending_code,
    stats_count_every_answer,
    a_full_engine_refuses_new_keys_and_evicts_nothing,
    a_full_engine_reclaims_what_has_expired_before_refusing,
    the_clock_can_be_advanced_only_when_it_is_manual,
    a_totp_code_verifies_once_and_its_replay_is_not_a_failure,
    totp_accepts_exactly_the_skewed_steps,
    accepting_a_step_makes_it_and_every_earlier_one_a_replay,
    totp_failures_spend_the_budget_then_lock_without_looking,
    totp_state_is_separate_from_random_code_state,
    bad_totp_arguments_are_errors_that_change_nothing,
    an_accepted_step_is_remembered_while_it_could_be_replayed,
    scopes_issue_limits_hold_across_keys_per_value,
    a_refused_issue_counts_nowhere,
    the_longest_wait_is_given_and_names_its_scope,
    unknown_or_repeated_scopes_are_errors_that_change_nothing,
    a_scope_that_spent_its_failure_budget_locks_verifies_without_looking,
    a_success_does_not_reset_a_scopes_failures,
    unlock_scope_lifts_the_lockout_and_clears_the_counts,
    scope_state_is_held_while_its_windows_run,
    totp_verifies_count_on_scopes_too,
    a_full_store_answers_the_keys_own_refusal_first,
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_variants_are_compiled_only_with_the_redis_feature() {
    common::skip_or_fail(
        "otpengine-core was built without its `redis` feature: the Redis variants of the \
         semantic suite are SKIPPED. Run `cargo test --workspace` (the C library and the \
         Python module turn the feature on) or `cargo test -p otpengine-core --features redis`.",
    );
}
