//! Counters of what the engine answered, and their Prometheus rendering.

use std::fmt::Write;

/// Per-shard counters, kept under the shard's lock (no shared atomics on the hot path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) issued: u64,
    pub(crate) verified: u64,
    pub(crate) mismatched: u64,
    pub(crate) locked: u64,
    pub(crate) expired: u64,
    pub(crate) rate_limited: u64,
    pub(crate) revoked: u64,
    pub(crate) not_found: u64,
    pub(crate) capacity_exceeded: u64,
    pub(crate) unavailable: u64,
    pub(crate) replayed: u64,
    /// Of `rate_limited`, the refusals whose longest wait was each configured
    /// scope's (by its index in the policy).
    pub(crate) scope_rate_limited: [u64; crate::scope::MAX_SCOPE_LIMITS],
    /// Of `locked`, the verifies refused by each scope's failure lockout.
    pub(crate) scope_locked: [u64; crate::scope::MAX_SCOPE_LIMITS],
}

/// What the engine has answered since it was built, and what it holds now.
///
/// Every counter counts answers, so they add up to the calls made:
/// issue calls = `issued + rate_limited + capacity_exceeded` + the issues refused
/// as `locked` or `unavailable`; verify calls = `verified + mismatched + expired +
/// not_found` + the verifies answered `locked` or `unavailable`. Calls refused for
/// a bad argument are not counted.
///
/// The counters are this engine's own answers. With the Redis backend, several
/// engines share one store: each counts what it answered (sum them across
/// instances, as Prometheus does), while `live` and `held` describe the shared store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Codes issued.
    pub issued: u64,
    /// Verifies answered `Verified`.
    pub verified: u64,
    /// Verifies answered `Mismatch`.
    pub mismatched: u64,
    /// Issues and verifies answered `Locked` (key locked out or code burned),
    /// including the failure that burned or locked.
    pub locked: u64,
    /// Verifies answered `Expired`.
    pub expired: u64,
    /// Issues refused by the cooldown or the window, the key's own or a
    /// scope's ([`Stats::scopes`] has the part of each scope).
    pub rate_limited: u64,
    /// Revokes that dropped a pending code.
    pub revoked: u64,
    /// Verifies answered `NotFound`.
    pub not_found: u64,
    /// Issues refused because the engine was full.
    pub capacity_exceeded: u64,
    /// Calls answered [`Error::Unavailable`](crate::Error::Unavailable): the
    /// store (Redis) could not be reached or did not answer in time. Always 0 in memory.
    pub unavailable: u64,
    /// TOTP verifies answered `Replayed`.
    pub replayed: u64,
    /// Keys with a pending code now (the same as `Engine::len`).
    pub live: u64,
    /// Keys the engine holds any state for now (pending codes, remembered codes,
    /// rate histories, failure counts), against the configured capacity; and
    /// the scope values with a count in a running window, which take capacity too.
    pub held: u64,
    /// The refusals of each configured scope, in the order configured.
    pub scopes: Vec<ScopeStats>,
}

/// What one configured scope refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeStats {
    /// The scope's name.
    pub name: String,
    /// Issues refused with this scope's wait as the longest (each refusal is
    /// counted under one scope, or under the key's own limits, once).
    pub rate_limited: u64,
    /// Verifies answered `Locked` because this scope had spent its failure
    /// budget (counted in [`Stats::locked`] too).
    pub locked: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, c: &Counters) {
        self.issued += c.issued;
        self.verified += c.verified;
        self.mismatched += c.mismatched;
        self.locked += c.locked;
        self.expired += c.expired;
        self.rate_limited += c.rate_limited;
        self.revoked += c.revoked;
        self.not_found += c.not_found;
        self.capacity_exceeded += c.capacity_exceeded;
        self.unavailable += c.unavailable;
        self.replayed += c.replayed;
    }

    /// Fills [`Stats::scopes`] from the per-scope counts of `counters` (summed
    /// over shards), one entry per configured scope.
    pub(crate) fn set_scopes<'a>(
        &mut self,
        names: impl Iterator<Item = &'a str>,
        counters: &[Counters],
    ) {
        self.scopes = names
            .enumerate()
            .map(|(k, name)| ScopeStats {
                name: name.to_owned(),
                rate_limited: counters.iter().map(|c| c.scope_rate_limited[k]).sum(),
                locked: counters.iter().map(|c| c.scope_locked[k]).sum(),
            })
            .collect();
    }

    /// Every fixed counter and gauge, by its field name, in declaration order:
    /// the one list the front ends' stats structs are checked against (the C
    /// ABI's `otp_stats` by a test of the header). The per-scope counts are in
    /// [`Stats::scopes`] and the Prometheus text.
    pub fn fields(&self) -> [(&'static str, u64); 13] {
        [
            ("issued", self.issued),
            ("verified", self.verified),
            ("mismatched", self.mismatched),
            ("locked", self.locked),
            ("expired", self.expired),
            ("rate_limited", self.rate_limited),
            ("revoked", self.revoked),
            ("not_found", self.not_found),
            ("capacity_exceeded", self.capacity_exceeded),
            ("unavailable", self.unavailable),
            ("replayed", self.replayed),
            ("live", self.live),
            ("held", self.held),
        ]
    }

    /// Issues refused by the key's own cooldown or window.
    pub fn rate_limited_by_key(&self) -> u64 {
        // Saturating: a Redis engine's counters are read one by one, without a
        // lock, so a refusal counted while they are read may show in a
        // scope's count and not yet in the total.
        let by_scopes: u64 = self.scopes.iter().map(|s| s.rate_limited).sum();
        self.rate_limited.saturating_sub(by_scopes)
    }

    /// The stats in the Prometheus text exposition format, metric names prefixed
    /// `otpengine_`.
    pub fn to_prometheus(&self) -> String {
        let counters = [
            ("issued", "Codes issued.", self.issued),
            ("verified", "Verifies answered Verified.", self.verified),
            ("mismatched", "Verifies answered Mismatch.", self.mismatched),
            (
                "locked",
                "Issues and verifies answered Locked.",
                self.locked,
            ),
            ("expired", "Verifies answered Expired.", self.expired),
            (
                "revoked",
                "Revokes that dropped a pending code.",
                self.revoked,
            ),
            ("not_found", "Verifies answered NotFound.", self.not_found),
            (
                "capacity_exceeded",
                "Issues refused because the engine was full.",
                self.capacity_exceeded,
            ),
            (
                "unavailable",
                "Calls answered Unavailable (the store could not be reached).",
                self.unavailable,
            ),
            (
                "replayed",
                "TOTP verifies answered Replayed.",
                self.replayed,
            ),
        ];
        let gauges = [
            ("live_entries", "Keys with a pending code.", self.live),
            (
                "held_keys",
                "Keys the engine holds any state for.",
                self.held,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP otpengine_{name}_total {help}");
            let _ = writeln!(out, "# TYPE otpengine_{name}_total counter");
            let _ = writeln!(out, "otpengine_{name}_total {value}");
        }
        // One sample per scope that can refuse, the key's own included: each
        // refusal is counted once, under the scope that gave the longest wait.
        let _ = writeln!(
            out,
            "# HELP otpengine_rate_limited_total Issues refused by a cooldown or window, by the scope whose wait was longest (key: the key's own)."
        );
        let _ = writeln!(out, "# TYPE otpengine_rate_limited_total counter");
        let _ = writeln!(
            out,
            "otpengine_rate_limited_total{{scope=\"key\"}} {}",
            self.rate_limited_by_key()
        );
        for scope in &self.scopes {
            let _ = writeln!(
                out,
                "otpengine_rate_limited_total{{scope=\"{}\"}} {}",
                scope.name, scope.rate_limited
            );
        }
        if !self.scopes.is_empty() {
            let _ = writeln!(
                out,
                "# HELP otpengine_scope_locked_total Verifies answered Locked because a scope had spent its failure budget."
            );
            let _ = writeln!(out, "# TYPE otpengine_scope_locked_total counter");
            for scope in &self.scopes {
                let _ = writeln!(
                    out,
                    "otpengine_scope_locked_total{{scope=\"{}\"}} {}",
                    scope.name, scope.locked
                );
            }
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP otpengine_{name} {help}");
            let _ = writeln!(out, "# TYPE otpengine_{name} gauge");
            let _ = writeln!(out, "otpengine_{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_value_for_each_metric() {
        let stats = Stats {
            issued: 3,
            live: 2,
            ..Stats::default()
        };
        let text = stats.to_prometheus();
        assert!(text.contains("# TYPE otpengine_issued_total counter\notpengine_issued_total 3\n"));
        assert!(text.contains("# TYPE otpengine_live_entries gauge\notpengine_live_entries 2\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 13);
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 13);
        assert!(text.contains("\notpengine_rate_limited_total{scope=\"key\"} 0\n"));
    }

    #[test]
    fn every_rate_limited_sample_names_its_scope_and_they_sum_to_the_total() {
        let stats = Stats {
            rate_limited: 10,
            scopes: vec![
                ScopeStats {
                    name: "ip".into(),
                    rate_limited: 6,
                    locked: 2,
                },
                ScopeStats {
                    name: "prefix".into(),
                    rate_limited: 1,
                    locked: 0,
                },
            ],
            ..Stats::default()
        };
        let text = stats.to_prometheus();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("otpengine_rate_limited_total"))
            .collect();
        assert_eq!(
            samples,
            [
                "otpengine_rate_limited_total{scope=\"key\"} 3",
                "otpengine_rate_limited_total{scope=\"ip\"} 6",
                "otpengine_rate_limited_total{scope=\"prefix\"} 1",
            ]
        );
        assert!(text.contains("otpengine_scope_locked_total{scope=\"ip\"} 2\n"));
    }
}
