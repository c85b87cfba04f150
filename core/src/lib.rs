//! # otpengine-core
//!
//! An in-process one-time-password engine. A service asks it for a code for a key
//! (a user, phone number or session, plus a purpose), sends the code to a person,
//! and later asks whether what the person typed is right. The engine makes that
//! safe and fast:
//!
//! - codes come from ChaCha20 seeded by the OS, uniform over the alphabet by
//!   rejection sampling, 4 to 10 symbols of digits or an unambiguous alphanumeric
//!   alphabet, and differ after `fork()`;
//! - each code is valid for a short time and **only once**, however many threads
//!   verify at the same moment;
//! - failed attempts are counted per code and per key (NIST SP 800-63B: a new code
//!   does not reset the count) and end in a burned code or a locked-out key;
//!   issuing is limited per key by a cooldown and a window;
//! - a code can be bound to a context, such as the amount and payee of a transfer;
//! - the store keeps neither codes nor keys in plaintext, only keyed digests,
//!   compared in constant time; expired state is freed by a timer wheel per shard,
//!   so memory stays bounded.
//!
//! ```
//! use otpengine_core::{Config, Engine, Verdict};
//!
//! let engine = Engine::new(Config::default())?;
//! let issued = engine.issue("user:42/password-reset", "")?;
//! let typed = issued.code.to_string(); // what the person types back
//! assert!(engine.verify("user:42/password-reset", &typed, "")?.is_verified());
//! # Ok::<(), otpengine_core::Error>(())
//! ```
//!
//! See `ARCHITECTURE.md` in the repository for the data path and what is stored.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod answer;
pub mod call_timeout;
mod clock;
pub mod code;
pub mod digest;
mod engine;
mod error;
mod fork;
mod memory;
pub mod message;
#[cfg(any(test, feature = "model"))]
#[doc(hidden)]
pub mod model;
#[cfg(test)]
mod model_tests;
mod policy;
#[cfg(feature = "redis")]
mod redis;
mod rules;
pub mod scope;
mod scope_shard;
mod shard;
mod sip;
mod stats;
mod store;
mod table;
pub mod totp;
mod wheel;

pub use answer::{ForkReset, Issued, MemoryUsage, Verdict};
pub use clock::{Clock, ManualClock};
pub use code::{Alphabet, Code};
pub use digest::{DigestAlgorithm, Secret};
pub use engine::Engine;
pub use error::{format_duration, Constraint, DurationUnit, Error, Field, Got, InvalidInput};
pub use policy::{
    check_context_length, check_key_length, constraint, Config, CAPACITY_RANGE,
    CODES_PER_KEY_RANGE, ISSUE_WINDOW_RANGE, LOCKOUT_RANGE, MAX_ATTEMPTS_RANGE, MAX_CONTEXT_LEN,
    MAX_FAILURES_PER_KEY_RANGE, MAX_ISSUES_PER_WINDOW_RANGE, MAX_KEY_LEN, MAX_LOCKOUT_RANGE,
    REAPER_INTERVAL_RANGE, REDIS_TIMEOUT_RANGE, RESEND_COOLDOWN_RANGE, SHARDS_RANGE, TTL_RANGE,
};
#[cfg(feature = "redis")]
pub use redis::RedisOptions;
pub use stats::{ScopeStats, Stats};
pub use store::StoreOptions;
/// A string wiped on drop, as [`RedisOptions::password`](crate::RedisOptions) holds it.
pub use zeroize::Zeroizing;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
