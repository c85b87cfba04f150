//! The Lua scripts that hold the rules in Redis, and their calling convention.
//!
//! Each operation is `lua/common.lua` (the state, its indexes and the rules of
//! `shard.rs`) followed by the operation's own file, compiled into the library
//! with `include_str!`. They are loaded once when the engine is built and called
//! by SHA1 with `EVALSHA`; a server that has lost them (restarted, or a new
//! cluster node) answers `NOSCRIPT`, and `call` loads them again and repeats
//! the call, which is safe because a `NOSCRIPT` call ran nothing.

use ::redis::{ConnectionLike, ErrorKind, RedisError, Script, ServerErrorKind};

use super::keys::KeyNames;

/// Reply codes, the first element of every script's answer (common.lua).
pub(crate) const OK: i64 = 0;
pub(crate) const MISMATCH: i64 = 1;
pub(crate) const LOCKED: i64 = 2;
pub(crate) const EXPIRED: i64 = 3;
pub(crate) const NOT_FOUND: i64 = 4;
pub(crate) const RATE_LIMITED: i64 = 5;
pub(crate) const FULL: i64 = 6;
pub(crate) const REPLAYED: i64 = 7;

/// One script per operation.
pub(crate) struct Scripts {
    pub(crate) issue: Script,
    pub(crate) verify: Script,
    pub(crate) verify_totp: Script,
    pub(crate) revoke: Script,
    pub(crate) unlock: Script,
}

/// What every call passes besides its own arguments (ARGV[1..2] of common.lua).
pub(crate) struct CallContext<'a> {
    /// Milliseconds on a manual clock, or "" for Redis `TIME`.
    pub(crate) now: &'a str,
    /// The policy, packed as common.lua reads it (`POLICY`), and whether the
    /// held and live indexes are kept (then a call names them as KEYS[2..3]).
    pub(crate) policy: &'a PackedPolicy,
}

/// The policy as common.lua's `POLICY`: eleven 8-byte big-endian integers, in
/// its order.
pub(crate) struct PackedPolicy {
    bytes: Vec<u8>,
    indexed: bool,
}

impl PackedPolicy {
    /// `values` in common.lua's order, the last being `indexed` (0 or 1).
    pub(crate) fn new(values: [u64; 11]) -> Self {
        PackedPolicy {
            bytes: values.iter().flat_map(|v| v.to_be_bytes()).collect(),
            indexed: values[10] == 1,
        }
    }
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            issue: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/issue.lua")
            )),
            verify: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/verify.lua")
            )),
            verify_totp: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/verify_totp.lua")
            )),
            revoke: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/revoke.lua")
            )),
            unlock: Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!("lua/unlock.lua")
            )),
        }
    }

    /// `SCRIPT LOAD`s every script (on every primary of a cluster).
    pub(crate) fn load(&self, con: &mut dyn ConnectionLike) -> Result<(), RedisError> {
        for script in [
            &self.issue,
            &self.verify,
            &self.verify_totp,
            &self.revoke,
            &self.unlock,
        ] {
            script.load(con)?;
        }
        Ok(())
    }
}

/// Runs `script` for the key `names` with the operation's `args`; the answer is
/// `(reply code, number)`. A server that lost the script answers `NOSCRIPT`,
/// having run nothing: the script is loaded and the call made again.
pub(crate) fn call(
    script: &Script,
    con: &mut dyn ConnectionLike,
    names: &KeyNames,
    context: &CallContext<'_>,
    args: &[&[u8]],
) -> Result<(i64, i64), RedisError> {
    let cmd = command(script, names, context, args);
    match cmd.query(con) {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load(con)?;
            cmd.query(con)
        }
        answer => answer,
    }
}

/// A call as one command (`EVALSHA` of `script`), to send alone or in a
/// pipeline (see `Link::pipeline`).
pub(crate) fn command(
    script: &Script,
    names: &KeyNames,
    context: &CallContext<'_>,
    args: &[&[u8]],
) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(script.get_hash());
    if context.policy.indexed {
        cmd.arg(3)
            .arg(&names.state)
            .arg(&names.held)
            .arg(&names.live);
    } else {
        cmd.arg(1).arg(&names.state);
    }
    cmd.arg(context.now).arg(&context.policy.bytes[..]);
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}
