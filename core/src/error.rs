//! Errors, and the values a caller gives that they name.
//!
//! Every refusal says what was wrong: an [`InvalidInput`] carries the field,
//! the constraint it broke and the value it got, so each front end (Rust, C,
//! Python, Go) can name the field as its own users spell it ("ttl", "ttl_ms")
//! without re-implementing the checks.

use std::fmt;
use std::time::Duration;

/// A value the caller supplies: a configuration field or a call argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// [`Config::code_length`](crate::Config::code_length).
    CodeLength,
    /// [`Config::alphabet`](crate::Config::alphabet).
    Alphabet,
    /// [`Config::ttl`](crate::Config::ttl), or a per-call ttl override.
    Ttl,
    /// [`Config::max_attempts`](crate::Config::max_attempts).
    MaxAttempts,
    /// [`Config::resend_cooldown`](crate::Config::resend_cooldown).
    ResendCooldown,
    /// [`Config::max_issues_per_window`](crate::Config::max_issues_per_window).
    MaxIssuesPerWindow,
    /// [`Config::issue_window`](crate::Config::issue_window).
    IssueWindow,
    /// [`Config::max_failures_per_key`](crate::Config::max_failures_per_key).
    MaxFailuresPerKey,
    /// [`Config::lockout`](crate::Config::lockout).
    Lockout,
    /// [`Config::max_lockout`](crate::Config::max_lockout).
    MaxLockout,
    /// [`Config::codes_per_key`](crate::Config::codes_per_key).
    CodesPerKey,
    /// [`Config::capacity`](crate::Config::capacity).
    Capacity,
    /// [`Config::shards`](crate::Config::shards).
    Shards,
    /// [`Config::secret`](crate::Config::secret).
    Secret,
    /// [`Config::reaper_interval`](crate::Config::reaper_interval).
    ReaperInterval,
    /// The key of an issue, verify, revoke or unlock call.
    Key,
    /// The context of an issue or verify call.
    Context,
    /// The URL of a Redis engine (`RedisOptions::url`, feature `redis`).
    RedisUrl,
    /// The key prefix of a Redis engine (`RedisOptions::namespace`).
    RedisNamespace,
    /// How long a Redis engine waits for a connection (`RedisOptions::connect_timeout`).
    RedisConnectTimeout,
    /// The CA file of a Redis engine over TLS (`RedisOptions::ca_file`).
    RedisCaFile,
    /// The client certificate of a Redis engine over mutual TLS (`RedisOptions::client_cert`).
    RedisClientCert,
    /// The client certificate's key (`RedisOptions::client_key`).
    RedisClientKey,
    /// The ACL user of a Redis engine (`RedisOptions::username`).
    RedisUsername,
    /// The password of a Redis engine (`RedisOptions::password`); never shown.
    RedisPassword,
    /// Whether a Redis engine may use a server that evicts keys
    /// (`RedisOptions::accept_eviction`).
    RedisAcceptEviction,
    /// Whether a Redis engine keeps the store's key indexes (`RedisOptions::exact_counts`).
    RedisExactCounts,
    /// How long a Redis engine waits for an answer (`RedisOptions::response_timeout`).
    RedisResponseTimeout,
    /// Digits of a TOTP or HOTP code ([`TotpParams::digits`](crate::totp::TotpParams::digits)).
    TotpDigits,
    /// The TOTP time step ([`TotpParams::period`](crate::totp::TotpParams::period)).
    TotpPeriod,
    /// The HMAC hash of TOTP and HOTP codes ([`TotpParams::algorithm`](crate::totp::TotpParams::algorithm)).
    TotpAlgorithm,
    /// Steps before the current one a TOTP verify accepts.
    TotpSkewBack,
    /// Steps after the current one a TOTP verify accepts.
    TotpSkewAhead,
    /// A TOTP or HOTP secret (raw bytes, or base32 text where a front end takes it).
    TotpSecret,
    /// The issuer of an enrolment URI.
    TotpIssuer,
    /// The account of an enrolment URI.
    TotpAccount,
    /// The text of a QR code.
    QrText,
    /// The time a TOTP code is computed or verified at.
    TotpAt,
    /// The code a message carries ([`message`](crate::message)).
    MessageCode,
    /// The sender's name in a message.
    Brand,
    /// An SMS template.
    Template,
    /// The origin's host for the WebOTP / autofill line of an SMS.
    WebOtpDomain,
    /// The Android SMS Retriever app hash an SMS carries.
    AndroidAppHash,
    /// The text of an SMS, as finished.
    SmsText,
    /// An Android application's package name.
    PackageName,
    /// An Android application's signing certificate.
    SigningCertificate,
    /// [`Config::scope_limits`](crate::Config::scope_limits), as a list.
    ScopeLimits,
    /// A scope limit's [`name`](crate::scope::ScopeLimit::name).
    ScopeName,
    /// A scope limit's [`max_issues`](crate::scope::ScopeLimit::max_issues).
    ScopeMaxIssues,
    /// A scope limit's [`issue_window`](crate::scope::ScopeLimit::issue_window).
    ScopeIssueWindow,
    /// A scope limit's [`max_failures`](crate::scope::ScopeLimit::max_failures).
    ScopeMaxFailures,
    /// A scope limit's [`failure_window`](crate::scope::ScopeLimit::failure_window).
    ScopeFailureWindow,
    /// The scopes a call names (a name with no configured limit, or one named twice).
    Scopes,
    /// A scope's value ([`Scope::value`](crate::scope::Scope::value)).
    ScopeValue,
    /// A client address given to [`ip_scope`](crate::scope::ip_scope).
    IpAddress,
}

impl Field {
    /// The name as the Rust API spells it (and the Python API, which uses the same names).
    pub fn name(self) -> &'static str {
        match self {
            Field::CodeLength => "code_length",
            Field::Alphabet => "alphabet",
            Field::Ttl => "ttl",
            Field::MaxAttempts => "max_attempts",
            Field::ResendCooldown => "resend_cooldown",
            Field::MaxIssuesPerWindow => "max_issues_per_window",
            Field::IssueWindow => "issue_window",
            Field::MaxFailuresPerKey => "max_failures_per_key",
            Field::Lockout => "lockout",
            Field::MaxLockout => "max_lockout",
            Field::CodesPerKey => "codes_per_key",
            Field::Capacity => "capacity",
            Field::Shards => "shards",
            Field::Secret => "secret",
            Field::ReaperInterval => "reaper_interval",
            Field::Key => "key",
            Field::Context => "context",
            Field::RedisUrl => "redis_url",
            Field::RedisNamespace => "redis_namespace",
            Field::RedisConnectTimeout => "redis_connect_timeout",
            Field::RedisCaFile => "redis_ca_file",
            Field::RedisClientCert => "redis_client_cert",
            Field::RedisClientKey => "redis_client_key",
            Field::RedisUsername => "redis_username",
            Field::RedisPassword => "redis_password",
            Field::RedisAcceptEviction => "redis_accept_eviction",
            Field::RedisExactCounts => "redis_exact_counts",
            Field::RedisResponseTimeout => "redis_response_timeout",
            Field::TotpDigits => "digits",
            Field::TotpPeriod => "period",
            Field::TotpAlgorithm => "algorithm",
            Field::TotpSkewBack => "skew_back",
            Field::TotpSkewAhead => "skew_ahead",
            Field::TotpSecret => "secret",
            Field::TotpIssuer => "issuer",
            Field::TotpAccount => "account",
            Field::QrText => "text",
            Field::TotpAt => "at",
            Field::MessageCode => "code",
            Field::Brand => "brand",
            Field::Template => "template",
            Field::WebOtpDomain => "webotp_domain",
            Field::AndroidAppHash => "android_app_hash",
            Field::SmsText => "text",
            Field::PackageName => "package_name",
            Field::SigningCertificate => "signing_certificate",
            Field::ScopeLimits => "scope_limits",
            Field::ScopeName => "scope_name",
            Field::ScopeMaxIssues => "scope_max_issues",
            Field::ScopeIssueWindow => "scope_issue_window",
            Field::ScopeMaxFailures => "scope_max_failures",
            Field::ScopeFailureWindow => "scope_failure_window",
            Field::Scopes => "scopes",
            Field::ScopeValue => "scope_value",
            Field::IpAddress => "ip_address",
        }
    }

    /// Whether the field holds a duration (front ends show it in their own unit).
    pub fn is_duration(self) -> bool {
        matches!(
            self,
            Field::Ttl
                | Field::ResendCooldown
                | Field::IssueWindow
                | Field::Lockout
                | Field::MaxLockout
                | Field::ReaperInterval
                | Field::RedisConnectTimeout
                | Field::RedisResponseTimeout
                | Field::TotpPeriod
                | Field::ScopeIssueWindow
                | Field::ScopeFailureWindow
        )
    }
}

/// What a field must be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Constraint {
    /// A whole number in `min..=max`.
    Range {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A duration in `min..=max`.
    DurationRange {
        /// Shortest allowed duration.
        min: Duration,
        /// Longest allowed duration.
        max: Duration,
    },
    /// A byte string whose length is in `min..=max`.
    Length {
        /// Shortest allowed length in bytes.
        min: usize,
        /// Longest allowed length in bytes.
        max: usize,
    },
    /// A power of two in `min..=max`.
    PowerOfTwo {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// One of a fixed list of names (or their index, for front ends that pass integers).
    OneOf(&'static [&'static str]),
    /// A value of the described form, e.g. "a redis://, redis+unix:// or
    /// redis+cluster:// URL"; rendered as "must be {description}".
    Format(&'static str),
}

/// The value that broke a [`Constraint`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Got {
    /// A whole number.
    Int(u64),
    /// A duration.
    Duration(Duration),
    /// A byte string of this length.
    Bytes(usize),
    /// A name that is not in the list.
    Name(String),
    /// A value as the caller wrote it, for values no other variant can hold
    /// (a negative count, a negative or non-finite number of seconds).
    Raw(String),
}

/// How a front end shows durations in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationUnit {
    /// Compact human form: `300ms`, `1s`, `24h`, `30d`.
    Human,
    /// Whole milliseconds (the C ABI's `*_ms` fields).
    Millis,
    /// Seconds as a decimal (the Python API's float seconds).
    Seconds,
}

/// A value outside what the engine accepts. Nothing was changed by the call that returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    /// The field or argument that was wrong.
    pub field: Field,
    /// What it must be.
    pub constraint: Constraint,
    /// What it was.
    pub got: Got,
}

impl InvalidInput {
    /// The message with the field named `name` and durations shown in `unit`,
    /// e.g. `ttl_ms must be between 1000 and 86400000, got 0`.
    pub fn render(&self, name: &str, unit: DurationUnit) -> String {
        let dur = |d: Duration| format_duration(d, unit);
        let must = match &self.constraint {
            Constraint::Range { min, max } => format!("between {min} and {max}"),
            Constraint::DurationRange { min, max } => {
                let (min, max) = (dur(*min), dur(*max));
                match unit {
                    DurationUnit::Seconds => format!("between {min} and {max} seconds"),
                    _ => format!("between {min} and {max}"),
                }
            }
            Constraint::Length { min, max } if min == max => format!("exactly {min} bytes long"),
            Constraint::Length { min: 0, max } => format!("at most {max} bytes long"),
            Constraint::Length { min, max } => format!("between {min} and {max} bytes long"),
            Constraint::PowerOfTwo { min, max } => {
                format!("a power of two between {min} and {max}")
            }
            Constraint::OneOf(names) => {
                let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Constraint::Format(description) => description.to_string(),
        };
        let got = match &self.got {
            Got::Int(v) => v.to_string(),
            Got::Duration(d) => dur(*d),
            Got::Bytes(n) => format!("{n} bytes"),
            Got::Name(n) => format!("{n:?}"),
            Got::Raw(v) => v.clone(),
        };
        format!("{name} must be {must}, got {got}")
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.field.name(), DurationUnit::Human))
    }
}

impl std::error::Error for InvalidInput {}

/// The reason given when the Redis server refuses a call because it is out of
/// memory: as `Error::Unavailable`'s reason for verify, revoke and unlock, and in
/// `Error::CapacityExceeded`'s message for issue. The same words whatever the
/// call and whatever was typed: the script was refused before it read anything.
pub(crate) const OUT_OF_MEMORY: &str = "is out of memory (used_memory over maxmemory, with \
     noeviction): the call was refused before it read anything, so nothing was issued, \
     consumed or counted; free memory or raise maxmemory";

/// Why a call was refused. Non-exhaustive, and so are its struct variants:
/// later versions add refusals and fields (the scope of a rate limit, say), so a
/// `match` needs a catch-all arm and struct patterns need `..`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument or configuration value is out of bounds; nothing was changed.
    InvalidInput(InvalidInput),
    /// `issue` came inside the key's resend cooldown or beyond its issue window;
    /// it would be allowed after `retry_after` (the larger wait when both apply).
    #[non_exhaustive]
    RateLimited {
        /// Time until an issue for this key would be allowed: the longest wait
        /// among the limits that refuse it.
        retry_after: Duration,
        /// The scope whose limit gives that wait (`None`: the key's own
        /// cooldown or window).
        scope: Option<String>,
    },
    /// The key is locked out after too many failed verifies.
    #[non_exhaustive]
    Locked {
        /// Time until the lockout ends (or until `unlock` is called).
        retry_after: Duration,
    },
    /// The engine already holds state for `capacity` keys, even after reclaiming
    /// what had expired; or, with the Redis backend, the server is out of memory
    /// (`out_of_memory` names it). Nothing was issued.
    #[non_exhaustive]
    CapacityExceeded {
        /// The configured capacity.
        capacity: u64,
        /// The Redis server, as configured without credentials, that refused the
        /// call because it is out of memory (`maxmemory` reached under
        /// `noeviction`); `None` when the engine's own capacity was reached.
        out_of_memory: Option<String>,
    },
    /// [`Engine::advance_clock`](crate::Engine::advance_clock) on an engine whose clock is not manual.
    NotManualClock,
    /// The engine's store could not be reached, or did not answer within its
    /// timeout (the Redis backend only). The call failed closed: a verify that
    /// returns this never verified anything, but a call whose answer was lost
    /// may have taken effect in the store (a code consumed, an attempt counted).
    /// The engine reconnects by itself; retry later or ask for a new code.
    #[non_exhaustive]
    Unavailable {
        /// The store that failed, as configured without credentials: e.g.
        /// `127.0.0.1:6379`, or the seed nodes of a cluster.
        server: String,
        /// What went wrong, e.g. `unreachable: Connection refused (os error 111)`
        /// or `did not answer within 1s`.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let human = |d: &Duration| format_duration(*d, DurationUnit::Human);
        match self {
            Error::InvalidInput(e) => e.fmt(f),
            Error::RateLimited {
                retry_after,
                scope: None,
            } => {
                write!(f, "rate limited: retry after {}", human(retry_after))
            }
            Error::RateLimited {
                retry_after,
                scope: Some(scope),
            } => write!(
                f,
                "rate limited by scope {scope:?}: retry after {}",
                human(retry_after)
            ),
            Error::Locked { retry_after } => write!(
                f,
                "key locked after too many failed attempts: retry after {}",
                human(retry_after)
            ),
            Error::CapacityExceeded {
                out_of_memory: Some(server),
                ..
            } => write!(f, "capacity exceeded: redis at {server} {}", OUT_OF_MEMORY),
            Error::CapacityExceeded { capacity, .. } => write!(
                f,
                "capacity exceeded: the engine already holds state for {capacity} keys"
            ),
            Error::NotManualClock => {
                f.write_str("the clock can only be advanced on an engine built with a manual clock")
            }
            Error::Unavailable { server, reason } => write!(f, "redis at {server} {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidInput(e) => Some(e),
            _ => None,
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(e: InvalidInput) -> Self {
        Error::InvalidInput(e)
    }
}

/// Formats a duration for messages in the given unit.
pub fn format_duration(d: Duration, unit: DurationUnit) -> String {
    match unit {
        DurationUnit::Millis => d.as_millis().to_string(),
        DurationUnit::Seconds => {
            let s = format!("{:.3}", d.as_secs_f64());
            let s = s.trim_end_matches('0');
            if s.ends_with('.') {
                format!("{s}0")
            } else {
                s.to_string()
            }
        }
        DurationUnit::Human => human_duration(d),
    }
}

fn human_duration(d: Duration) -> String {
    const UNITS: [(u128, &str); 4] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    for (size, suffix) in UNITS {
        // "24h" reads better than "1d"; days start at two.
        let smallest = if suffix == "d" { 2 * size } else { size };
        if nanos >= smallest && nanos.is_multiple_of(size) {
            return format!("{}{suffix}", nanos / size);
        }
    }
    if nanos >= 1_000_000_000 {
        // Not a whole unit: seconds with millisecond precision, trailing zeros trimmed.
        return format!("{}s", format_duration(d, DurationUnit::Seconds));
    }
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}µs", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        let rate_limited = Error::RateLimited {
            retry_after: Duration::from_millis(1500),
            scope: None,
        };
        assert_eq!(rate_limited.to_string(), "rate limited: retry after 1.5s");
        let by_scope = Error::RateLimited {
            retry_after: Duration::from_secs(60),
            scope: Some("ip".into()),
        };
        assert_eq!(
            by_scope.to_string(),
            "rate limited by scope \"ip\": retry after 1m"
        );
        let full = Error::CapacityExceeded {
            capacity: 3,
            out_of_memory: None,
        };
        assert_eq!(
            full.to_string(),
            "capacity exceeded: the engine already holds state for 3 keys"
        );
        let out_of_memory = Error::CapacityExceeded {
            capacity: 3,
            out_of_memory: Some("127.0.0.1:6379".into()),
        };
        assert_eq!(
            out_of_memory.to_string(),
            format!("capacity exceeded: redis at 127.0.0.1:6379 {OUT_OF_MEMORY}")
        );
    }

    #[test]
    fn durations_read_naturally() {
        let h = |d| format_duration(d, DurationUnit::Human);
        assert_eq!(h(Duration::ZERO), "0s");
        assert_eq!(h(Duration::from_secs(1)), "1s");
        assert_eq!(h(Duration::from_secs(86_400)), "24h");
        assert_eq!(h(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(h(Duration::from_secs(3600 * 24 * 30)), "30d");
        assert_eq!(h(Duration::from_secs(7200)), "2h");
        assert_eq!(h(Duration::from_secs(90)), "90s");
        assert_eq!(h(Duration::from_millis(1500)), "1.5s");
        assert_eq!(h(Duration::from_millis(300)), "300ms");
        assert_eq!(h(Duration::from_micros(7)), "7µs");
        assert_eq!(
            format_duration(Duration::from_millis(1500), DurationUnit::Seconds),
            "1.5"
        );
        assert_eq!(
            format_duration(Duration::from_secs(2), DurationUnit::Seconds),
            "2.0"
        );
        assert_eq!(
            format_duration(Duration::from_secs(2), DurationUnit::Millis),
            "2000"
        );
    }

    #[test]
    fn messages_name_field_bound_and_value() {
        let e = InvalidInput {
            field: Field::Ttl,
            constraint: Constraint::DurationRange {
                min: Duration::from_secs(1),
                max: Duration::from_secs(86_400),
            },
            got: Got::Duration(Duration::ZERO),
        };
        assert_eq!(e.to_string(), "ttl must be between 1s and 24h, got 0s");
        assert_eq!(
            e.render("ttl_ms", DurationUnit::Millis),
            "ttl_ms must be between 1000 and 86400000, got 0"
        );
        assert_eq!(
            e.render("ttl", DurationUnit::Seconds),
            "ttl must be between 1.0 and 86400.0 seconds, got 0.0"
        );
        let e = InvalidInput {
            field: Field::Key,
            constraint: Constraint::Length { min: 1, max: 1024 },
            got: Got::Bytes(0),
        };
        assert_eq!(
            e.to_string(),
            "key must be between 1 and 1024 bytes long, got 0 bytes"
        );
    }
}
