//! `otp-load --scopes`: an SMS-pumping bot beside ordinary users, on an engine
//! with scope limits, to show the bot refused while the users pass.
//!
//! The bot asks for codes for fresh premium-rate numbers (a new key every
//! time, so no per-key limit ever sees it twice), all in one number prefix,
//! from a handful of client addresses, and never verifies. Each ordinary user
//! has a number of its own, in one of many prefixes, comes from an address of
//! its own, asks for a code and types it back. Every issue names the scopes
//! configured (`ip` = its address, `prefix` = its number's prefix, `global`).
//! The report counts each side's issues admitted and refused, and the run fails
//! when a scope admitted more than its budget allows or an ordinary user was
//! refused by a scope meant for the bot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otpengine_core::scope::{Scope, ScopeLimit};
use otpengine_core::{Config, Engine, Error, Verdict};

/// The scopes `--scopes` may name, each with its issue budget per hour.
#[derive(Clone, Debug, Default)]
pub struct PumpingScopes {
    /// Issues per client address per hour.
    pub ip: Option<u32>,
    /// Issues per number prefix per hour.
    pub prefix: Option<u32>,
    /// Issues for the whole service per hour.
    pub global: Option<u32>,
}

impl PumpingScopes {
    /// Parses `ip:1000,prefix:5000,global:100000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut scopes = PumpingScopes::default();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, budget) = part
                .split_once(':')
                .ok_or_else(|| format!("--scopes takes name:issues_per_hour, got {part:?}"))?;
            let budget: u32 = budget.parse().map_err(|_| {
                format!("--scopes: the budget of {name} must be a whole number, got {budget:?}")
            })?;
            let slot = match name {
                "ip" => &mut scopes.ip,
                "prefix" => &mut scopes.prefix,
                "global" => &mut scopes.global,
                other => {
                    return Err(format!(
                        "--scopes names ip, prefix and global, got {other:?}"
                    ))
                }
            };
            *slot = Some(budget);
        }
        if scopes.ip.is_none() && scopes.prefix.is_none() && scopes.global.is_none() {
            return Err("--scopes needs at least one of ip:N, prefix:N, global:N".into());
        }
        Ok(scopes)
    }

    fn limits(&self) -> Vec<ScopeLimit> {
        let hour = Duration::from_secs(3600);
        [
            ("ip", self.ip),
            ("prefix", self.prefix),
            ("global", self.global),
        ]
        .into_iter()
        .filter_map(|(name, budget)| {
            budget.map(|max_issues| ScopeLimit {
                max_issues,
                issue_window: hour,
                ..ScopeLimit::new(name)
            })
        })
        .collect()
    }
}

/// How the simulation is run.
pub struct PumpingRun {
    /// Scope budgets.
    pub scopes: PumpingScopes,
    /// Worker threads.
    pub threads: usize,
    /// Length of the run.
    pub seconds: f64,
    /// Addresses the bot sends from.
    pub bot_ips: u32,
    /// Share of steps that are the bot's, 0 to 1.
    pub bot_share: f64,
}

/// What each side got.
#[derive(Debug, Default)]
pub struct PumpingReport {
    /// The bot's issue calls.
    pub bot_attempts: u64,
    /// The bot's issues admitted (each an SMS it made the service pay for).
    pub bot_issued: u64,
    /// The bot's issues refused by a scope.
    pub bot_refused: u64,
    /// Ordinary users' issue calls.
    pub user_attempts: u64,
    /// Ordinary users' issues admitted.
    pub user_issued: u64,
    /// Ordinary users' issues refused by a scope.
    pub user_refused: u64,
    /// Ordinary users' codes verified.
    pub user_verified: u64,
    /// The most issues a run may admit to the bot: what its scopes allow.
    pub bot_budget: u64,
    /// Calls per second, both sides.
    pub calls_per_sec: f64,
}

impl PumpingReport {
    /// The run's verdict: the bot got no more than its scopes' budget, and,
    /// when only addresses are limited (every user has one of its own), no
    /// user was refused. A prefix or global budget is shared with the users of
    /// that prefix or of the whole service, and may refuse them too: that is
    /// reported, not failed.
    pub fn holds(&self, scopes: &PumpingScopes) -> bool {
        let users_unaffected =
            scopes.prefix.is_some() || scopes.global.is_some() || self.user_refused == 0;
        self.bot_issued <= self.bot_budget && users_unaffected
    }
}

/// Prefixes ordinary users' numbers are spread over (the bot uses another).
const USER_PREFIXES: u64 = 200;

/// Runs the simulation on an in-memory engine, per-key limits off except the
/// scopes (the bot never repeats a key).
pub fn run(run: &PumpingRun) -> Result<PumpingReport, Error> {
    let limits = run.scopes.limits();
    let engine = Engine::new(Config {
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        max_failures_per_key: 0,
        scope_limits: limits,
        ..Config::default()
    })?;
    let counts: [AtomicU64; 7] = Default::default();
    let [bot_attempts, bot_issued, bot_refused, user_attempts, user_issued, user_refused, user_verified] =
        &counts;
    let deadline = Instant::now() + Duration::from_secs_f64(run.seconds);
    let started = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..run.threads as u64 {
            let engine = &engine;
            s.spawn(move || {
                let mut rng = crate::SplitMix64::new(thread + 1);
                let mut step = 0u64;
                while !step.is_multiple_of(256) || Instant::now() < deadline {
                    step += 1;
                    let n = step * run.threads as u64 + thread;
                    if rng.next_f64() < run.bot_share {
                        let ip = format!("198.51.100.{}/32", rng.below(u64::from(run.bot_ips)));
                        let number = format!("+8819{n:09}");
                        let scopes = scoped(&run.scopes, &ip, "+881");
                        bot_attempts.fetch_add(1, Ordering::Relaxed);
                        match engine.issue_scoped(&number, "", None, &scopes) {
                            Ok(_) => bot_issued.fetch_add(1, Ordering::Relaxed),
                            Err(Error::RateLimited { .. }) => {
                                bot_refused.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => panic!("a bot issue failed: {e}"),
                        };
                    } else {
                        let ip = format!("10.{}.{}.{}/32", n >> 16 & 255, n >> 8 & 255, n & 255);
                        let prefix = format!("+{}", 100 + n % USER_PREFIXES);
                        let number = format!("{prefix}{n:010}");
                        let scopes = scoped(&run.scopes, &ip, &prefix);
                        user_attempts.fetch_add(1, Ordering::Relaxed);
                        match engine.issue_scoped(&number, "", None, &scopes) {
                            Ok(issued) => {
                                user_issued.fetch_add(1, Ordering::Relaxed);
                                let verdict = engine
                                    .verify_scoped(&number, issued.code.as_str(), "", &scopes)
                                    .expect("a valid key");
                                if verdict == Verdict::Verified {
                                    user_verified.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(Error::RateLimited { .. }) => {
                                user_refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("a user's issue failed: {e}"),
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let bot_budget = [
        run.scopes.ip.map(|b| u64::from(b) * u64::from(run.bot_ips)),
        run.scopes.prefix.map(u64::from),
        run.scopes.global.map(u64::from),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(u64::MAX);
    let calls = get(bot_attempts) + get(user_attempts) + get(user_issued);
    Ok(PumpingReport {
        bot_attempts: get(bot_attempts),
        bot_issued: get(bot_issued),
        bot_refused: get(bot_refused),
        user_attempts: get(user_attempts),
        user_issued: get(user_issued),
        user_refused: get(user_refused),
        user_verified: get(user_verified),
        bot_budget,
        calls_per_sec: calls as f64 / elapsed,
    })
}

/// The scopes of one call: those configured, with this call's values.
fn scoped<'a>(scopes: &PumpingScopes, ip: &'a str, prefix: &'a str) -> Vec<Scope<'a>> {
    let mut out = Vec::with_capacity(3);
    if scopes.ip.is_some() {
        out.push(Scope::new("ip", ip));
    }
    if scopes.prefix.is_some() {
        out.push(Scope::new("prefix", prefix));
    }
    if scopes.global.is_some() {
        out.push(Scope::new("global", ""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_by_name_and_budget() {
        let s = PumpingScopes::parse("ip:1000,prefix:50").unwrap();
        assert_eq!((s.ip, s.prefix, s.global), (Some(1000), Some(50), None));
        assert!(PumpingScopes::parse("ip").is_err());
        assert!(PumpingScopes::parse("country:5").is_err());
        assert!(PumpingScopes::parse("").is_err());
    }
}
