//! What the engine answers: an issued code, a verify's verdict, the store's
//! memory, and the notice that an engine inherited across `fork()` was emptied.
//! Both backends answer in these types.

use std::time::Duration;

use crate::code::Code;

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
    /// `verify_totp` only: the right authenticator code for a time step at or
    /// before the last one this key accepted. A code works once (RFC 6238 §5.2);
    /// not counted as a failure.
    Replayed,
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
    /// The shards' tables, whose 40-byte rows hold each key's state inline.
    pub tables: usize,
    /// Older codes of keys, when `codes_per_key > 1`.
    pub older_codes: usize,
    /// Failure histories kept beside the rows: keys that have been locked out
    /// since their last success, or whose last failure is weeks old.
    pub failure_histories: usize,
    /// Timer wheels: 12 bytes per timer, about one per key held.
    pub wheels: usize,
    /// The scope tables (`crate::scope`): 40 bytes per scope value with a
    /// count in a running window.
    pub scopes: usize,
}

impl MemoryUsage {
    /// All of it.
    pub fn total(&self) -> usize {
        self.tables + self.older_codes + self.failure_histories + self.wheels + self.scopes
    }
}

/// An in-memory engine found inherited across `fork()` and emptied: returned once
/// per child process by [`Engine::reset_if_forked`](crate::Engine::reset_if_forked). Its `Display` is the warning
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
