//! Limits beyond one key: on any scope the caller names (a client IP, a phone
//! prefix, a tenant, the whole service), against SMS pumping and spraying.
//!
//! A [`ScopeLimit`] in [`Config::scope_limits`](crate::Config::scope_limits)
//! gives a scope name its budgets: issues per issue window, failed verifies per
//! failure window. A call names the scopes it belongs to with [`Scope`]s, e.g.
//! `Scope::new("ip", &ip_scope("203.0.113.7")?)`; each (name, value) pair is
//! another key to the engine, with its own hashed state, counted against the
//! capacity and forgotten when its windows end.
//!
//! ```
//! use std::time::Duration;
//! use otpengine_core::scope::{ip_scope, Scope, ScopeLimit};
//! use otpengine_core::{Config, Engine, Error};
//!
//! let engine = Engine::new(Config {
//!     resend_cooldown: Duration::ZERO,
//!     scope_limits: vec![ScopeLimit {
//!         max_issues: 2,
//!         issue_window: Duration::from_secs(3600),
//!         ..ScopeLimit::new("ip")
//!     }],
//!     ..Config::default()
//! })?;
//! let ip = ip_scope("203.0.113.7")?;
//! let scopes = [Scope::new("ip", &ip)];
//! engine.issue_scoped("+447700900001", "", None, &scopes)?;
//! engine.issue_scoped("+447700900002", "", None, &scopes)?;
//! // A third number from the same address: the address's budget is spent.
//! match engine.issue_scoped("+447700900003", "", None, &scopes) {
//!     Err(Error::RateLimited { scope, .. }) => assert_eq!(scope.as_deref(), Some("ip")),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Error>(())
//! ```

use std::net::IpAddr;
use std::time::Duration;

use crate::clock::Millis;
use crate::error::{Constraint, Error, Field, Got, InvalidInput};

/// The most scope limits a configuration holds.
pub const MAX_SCOPE_LIMITS: usize = 8;
/// The longest scope name, in bytes (names are 1 or more of `[a-z0-9_-]`).
pub const MAX_SCOPE_NAME_LEN: usize = 31;
/// The longest scope value, in bytes.
pub const MAX_SCOPE_VALUE_LEN: usize = 1024;
/// Bounds of [`ScopeLimit::max_issues`] and [`ScopeLimit::max_failures`]; 0 is no limit.
pub const SCOPE_COUNT_RANGE: (u32, u32) = (0, 1_000_000_000);
/// Bounds of [`ScopeLimit::issue_window`] and [`ScopeLimit::failure_window`]
/// (checked only when the window's count is not 0).
pub const SCOPE_WINDOW_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(86_400));

/// The budgets of one scope name. Each of its values (each client address, each
/// prefix) has them on its own.
///
/// Windows are fixed, like a key's issue window: one starts with the first
/// counted event after the previous one ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeLimit {
    /// The scope's name, 1 to 31 bytes of `[a-z0-9_-]`, unique in the config.
    pub name: String,
    /// Issues allowed per value per `issue_window`, 0 (no issue limit)..=10^9.
    pub max_issues: u32,
    /// Length of the issue window, 1 s..=24 h.
    pub issue_window: Duration,
    /// Failed verifies (mismatches) per value per `failure_window` before the
    /// value answers `Locked` to every verify, 0 (no failure limit)..=10^9.
    /// Suits narrow scopes (an address, a tenant): on a broad one ("global", a
    /// country prefix) one attacker could lock everyone out.
    pub max_failures: u32,
    /// Length of the failure window, 1 s..=24 h.
    pub failure_window: Duration,
}

impl ScopeLimit {
    /// A limit named `name` with no budget yet (both counts 0, both windows
    /// one hour): set the counts you need.
    pub fn new(name: impl Into<String>) -> ScopeLimit {
        ScopeLimit {
            name: name.into(),
            max_issues: 0,
            issue_window: Duration::from_secs(3600),
            max_failures: 0,
            failure_window: Duration::from_secs(3600),
        }
    }
}

/// A scope a call belongs to: a configured scope name and this call's value of
/// it (the client's address from [`ip_scope`], the phone number's prefix, the
/// tenant's id; empty for a scope with one value, like "global").
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The name of a configured [`ScopeLimit`].
    pub name: &'a str,
    /// The value, up to 1024 bytes; only its keyed digest is kept.
    pub value: &'a [u8],
}

impl<'a> Scope<'a> {
    /// The scope `name` with value `value`.
    pub fn new(name: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Scope<'a> {
        Scope {
            name,
            value: value.as_ref(),
        }
    }
}

impl std::fmt::Debug for Scope<'_> {
    /// The name and the value's length: a value may be a client's address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// The scope value for a client address: an IPv4 address as its `/32`
/// (`203.0.113.7/32`), an IPv6 address masked to its `/64`
/// (`2001:db8:1:2::/64`), since one host is routinely given a whole `/64`. An
/// IPv4-mapped IPv6 address counts as the IPv4 address it carries.
pub fn ip_scope(addr: &str) -> Result<String, Error> {
    let bad = || InvalidInput {
        field: Field::IpAddress,
        constraint: Constraint::Format(
            "an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::1",
        ),
        got: Got::Name(addr.chars().take(64).collect()),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    Ok(match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(masked))
        }
    })
}

/// A validated scope limit, in the units the stores work in.
#[derive(Clone, Debug)]
pub(crate) struct ScopePolicy {
    pub(crate) name: String,
    pub(crate) max_issues: u32,
    pub(crate) issue_window: Millis,
    pub(crate) max_failures: u32,
    pub(crate) failure_window: Millis,
}

/// A scope of a call, resolved: which limit, and the value's id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScopeTarget {
    /// Index of the limit in the policy.
    pub(crate) limit: usize,
    /// The (name, value) pair's keyed id.
    pub(crate) id: crate::digest::KeyId,
}

/// Checks the configured limits: at most 8, names well formed and unique,
/// counts and (used) windows in bounds.
pub(crate) fn check_limits(limits: &[ScopeLimit]) -> Result<Vec<ScopePolicy>, InvalidInput> {
    check_scope_limit_count(limits.len())?;
    let mut checked: Vec<ScopePolicy> = Vec::with_capacity(limits.len());
    for limit in limits {
        check_name(&limit.name)?;
        if checked.iter().any(|c| c.name == limit.name) {
            return Err(InvalidInput {
                field: Field::ScopeName,
                constraint: Constraint::Format("unique among the scope limits"),
                got: Got::Name(limit.name.clone()),
            });
        }
        let window = |field, count: u32, window: Duration| -> Result<Millis, InvalidInput> {
            crate::policy::count(field, count, SCOPE_COUNT_RANGE)?;
            if count == 0 {
                return Ok(0); // no limit: the window is not used
            }
            crate::policy::check_duration_of(
                match field {
                    Field::ScopeMaxIssues => Field::ScopeIssueWindow,
                    _ => Field::ScopeFailureWindow,
                },
                window,
                SCOPE_WINDOW_RANGE,
            )
        };
        checked.push(ScopePolicy {
            name: limit.name.clone(),
            max_issues: limit.max_issues,
            issue_window: window(Field::ScopeMaxIssues, limit.max_issues, limit.issue_window)?,
            max_failures: limit.max_failures,
            failure_window: window(
                Field::ScopeMaxFailures,
                limit.max_failures,
                limit.failure_window,
            )?,
        });
    }
    Ok(checked)
}

fn check_name(name: &str) -> Result<(), InvalidInput> {
    let well_formed = (1..=MAX_SCOPE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(InvalidInput {
            field: Field::ScopeName,
            constraint: Constraint::Format("1 to 31 bytes of a-z, 0-9, _ and -"),
            got: Got::Name(name.chars().take(64).collect()),
        });
    }
    if name == "key" {
        // The Prometheus text labels the key's own refusals scope="key".
        return Err(InvalidInput {
            field: Field::ScopeName,
            constraint: Constraint::Format(
                "other than \"key\", the label of the key's own limits in the stats",
            ),
            got: Got::Name(name.to_owned()),
        });
    }
    Ok(())
}

/// Resolves a call's scopes against the configured limits: each name must be
/// configured and named once, each value at most 1024 bytes. Nothing is
/// counted for a call whose scopes fail here.
pub(crate) fn resolve(
    limits: &[ScopePolicy],
    scopes: &[Scope<'_>],
    digester: &crate::digest::Digester,
) -> Result<Vec<ScopeTarget>, InvalidInput> {
    let mut targets: Vec<ScopeTarget> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let limit = find(limits, scope.name)?;
        if targets.iter().any(|t| t.limit == limit) {
            return Err(InvalidInput {
                field: Field::Scopes,
                constraint: Constraint::Format("each scope named at most once in a call"),
                got: Got::Name(scope.name.to_owned()),
            });
        }
        check_value(scope.value)?;
        targets.push(ScopeTarget {
            limit,
            id: digester.scope_id(scope.name, scope.value),
        });
    }
    Ok(targets)
}

/// The index of the limit named `name`, or an error naming it.
pub(crate) fn find(limits: &[ScopePolicy], name: &str) -> Result<usize, InvalidInput> {
    limits
        .iter()
        .position(|l| l.name == name)
        .ok_or_else(|| InvalidInput {
            field: Field::Scopes,
            constraint: Constraint::Format("the name of a configured scope limit"),
            got: Got::Name(name.chars().take(64).collect()),
        })
}

pub(crate) fn check_value(value: &[u8]) -> Result<(), InvalidInput> {
    check_scope_value_length(value.len())
}

/// Checks a scope value's length (at most 1024 bytes), for front ends that
/// must check it before they form the value (the C ABI).
pub fn check_scope_value_length(len: usize) -> Result<(), InvalidInput> {
    if len <= MAX_SCOPE_VALUE_LEN {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::ScopeValue,
        constraint: Constraint::Length {
            min: 0,
            max: MAX_SCOPE_VALUE_LEN,
        },
        got: Got::Bytes(len),
    })
}

/// Checks how many scopes a call names (at most 8, as many as can be
/// configured), for front ends that must check it before they read them.
pub fn check_scope_count(count: usize) -> Result<(), InvalidInput> {
    if count <= MAX_SCOPE_LIMITS {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::Scopes,
        constraint: Constraint::Range {
            min: 0,
            max: MAX_SCOPE_LIMITS as u64,
        },
        got: Got::Int(count as u64),
    })
}

/// Checks how many scope limits a configuration holds (at most 8).
pub fn check_scope_limit_count(count: usize) -> Result<(), InvalidInput> {
    if count <= MAX_SCOPE_LIMITS {
        return Ok(());
    }
    Err(InvalidInput {
        field: Field::ScopeLimits,
        constraint: Constraint::Range {
            min: 0,
            max: MAX_SCOPE_LIMITS as u64,
        },
        got: Got::Int(count as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_scope_keeps_an_ipv4_host_and_an_ipv6_slash_64() {
        assert_eq!(ip_scope("203.0.113.7").unwrap(), "203.0.113.7/32");
        assert_eq!(ip_scope(" 10.0.0.1 ").unwrap(), "10.0.0.1/32");
        assert_eq!(
            ip_scope("2001:db8:1:2:3:4:5:6").unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            ip_scope("2001:db8:1:2::ffff").unwrap(),
            ip_scope("2001:db8:1:2:aaaa::1").unwrap()
        );
        assert_eq!(ip_scope("::ffff:192.0.2.1").unwrap(), "192.0.2.1/32");
        assert_eq!(ip_scope("::1").unwrap(), "::/64");
        for bad in [
            "",
            "203.0.113",
            "203.0.113.7/24",
            "example.com",
            "1.2.3.256",
        ] {
            let err = ip_scope(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("ip_address must be an IPv4 or IPv6 address"),
                "{err}"
            );
        }
    }

    #[test]
    fn limits_are_checked_by_name_and_bound() {
        let ok = ScopeLimit {
            max_issues: 10,
            ..ScopeLimit::new("ip")
        };
        assert!(check_limits(std::slice::from_ref(&ok)).is_ok());
        let err = |limits: &[ScopeLimit]| check_limits(limits).unwrap_err().to_string();
        assert_eq!(
            err(&[ScopeLimit::new("IP")]),
            "scope_name must be 1 to 31 bytes of a-z, 0-9, _ and -, got \"IP\""
        );
        assert!(err(&[ScopeLimit::new("")]).starts_with("scope_name must be"));
        assert!(err(&[ScopeLimit::new("key")]).starts_with("scope_name must be other than \"key\""));
        assert!(err(&[ScopeLimit::new("x".repeat(32))]).starts_with("scope_name must be"));
        assert_eq!(
            err(&[ok.clone(), ok.clone()]),
            "scope_name must be unique among the scope limits, got \"ip\""
        );
        assert_eq!(
            err(&vec![ScopeLimit::new("a"); 9]),
            "scope_limits must be between 0 and 8, got 9"
        );
        let zero_window = ScopeLimit {
            issue_window: Duration::ZERO,
            ..ok.clone()
        };
        assert_eq!(
            err(&[zero_window]),
            "scope_issue_window must be between 1s and 24h, got 0s"
        );
        // A window whose count is 0 is not used, so not checked.
        let unused = ScopeLimit {
            failure_window: Duration::ZERO,
            ..ok
        };
        assert!(check_limits(&[unused]).is_ok());
        let too_many = ScopeLimit {
            max_failures: 1_000_000_001,
            ..ScopeLimit::new("ip")
        };
        assert_eq!(
            err(&[too_many]),
            "scope_max_failures must be between 0 and 1000000000, got 1000000001"
        );
    }

    #[test]
    fn a_call_names_configured_scopes_once_each() {
        let limits = check_limits(&[ScopeLimit::new("ip"), ScopeLimit::new("tenant")]).unwrap();
        let digester = crate::digest::Digester::new(
            &crate::digest::Secret::random(),
            crate::digest::DigestAlgorithm::SipHash24,
        );
        let resolved = resolve(
            &limits,
            &[Scope::new("tenant", "acme"), Scope::new("ip", "1.2.3.4/32")],
            &digester,
        )
        .unwrap();
        assert_eq!(resolved.iter().map(|t| t.limit).collect::<Vec<_>>(), [1, 0]);
        let err = |scopes: &[Scope]| resolve(&limits, scopes, &digester).unwrap_err().to_string();
        assert_eq!(
            err(&[Scope::new("prefix", "+44")]),
            "scopes must be the name of a configured scope limit, got \"prefix\""
        );
        assert_eq!(
            err(&[Scope::new("ip", "a"), Scope::new("ip", "b")]),
            "scopes must be each scope named at most once in a call, got \"ip\""
        );
        assert_eq!(
            err(&[Scope::new("ip", &[0u8; 1025][..])]),
            "scope_value must be at most 1024 bytes long, got 1025 bytes"
        );
        // The same value under two names is two scopes.
        let a = digester.scope_id("ip", b"x");
        let b = digester.scope_id("tenant", b"x");
        assert_ne!(a.table_hash(), b.table_hash());
        assert_ne!(a.table_hash(), digester.key_id(b"\x02ipx").table_hash());
    }
}
