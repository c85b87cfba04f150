//! The Lua code that holds the rules in Redis, and its calling convention.
//!
//! `lua/common.lua` (the state, its indexes and the rules of `shard.rs`) and
//! one file per operation, compiled into the library with `include_str!`, are
//! loaded in one of two forms when the engine is built:
//!
//! - a **function library** (`FUNCTION LOAD`, Redis 7), called with `FCALL`:
//!   the helpers are defined once, at load, instead of at every call, which
//!   measured 23% less server CPU a call (BENCHMARKS.md). Its name carries a
//!   hash of its code, so engines of different versions (a rolling upgrade)
//!   each keep their own;
//! - one **script** per operation (common.lua, the operation's file, and a
//!   line calling it), called by SHA1 with `EVALSHA`, where a server or proxy
//!   refuses `FUNCTION LOAD` (an ACL without it, a service without functions).
//!
//! A server that has lost them (restarted without persistence, or a new
//! cluster node) answers `NOSCRIPT` or "Function not found", having run
//! nothing: [`call`] loads them again and repeats the call.

use std::sync::OnceLock;

use ::redis::{ConnectionLike, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind, Value};

use super::connection::is_authentication;
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
/// `LOCKED` from the counted failure that burned the code or locked the key.
pub(crate) const LOCKED_NOW: i64 = 8;

/// Every operation, in the form the engine chose when it was built.
pub(crate) struct Scripts {
    pub(crate) issue: Op,
    pub(crate) verify: Op,
    pub(crate) verify_totp: Op,
    pub(crate) revoke: Op,
    pub(crate) unlock: Op,
    pub(crate) scope_take: Op,
    pub(crate) scope_refund: Op,
    pub(crate) scope_clear: Op,
}

/// One operation: its script, and with functions the name of its function.
pub(crate) struct Op {
    script: Script,
    function: Option<String>,
}

/// The common code and each operation's file and Lua name.
const COMMON: &str = include_str!("lua/common.lua");
const OPS: [(&str, &str); 8] = [
    ("issue", include_str!("lua/issue.lua")),
    ("verify", include_str!("lua/verify.lua")),
    ("verify_totp", include_str!("lua/verify_totp.lua")),
    ("revoke", include_str!("lua/revoke.lua")),
    ("unlock", include_str!("lua/unlock.lua")),
    ("scope_take", SCOPE),
    ("scope_refund", SCOPE),
    ("scope_clear", SCOPE),
];
/// The scope functions share one file.
const SCOPE: &str = include_str!("lua/scope.lua");

/// The function library's code, with the `#!lua name=...` line, and the tag
/// its library and function names carry (`otpengine_<tag>`): the first 16 hex
/// digits of the SHA1 of its code.
fn library() -> &'static (String, String) {
    static LIBRARY: OnceLock<(String, String)> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let body = COMMON
            .strip_prefix("#!lua\n")
            .expect("common.lua opens with #!lua");
        let mut code: String = body.to_string();
        let mut included: Vec<&str> = Vec::new();
        for (name, text) in OPS {
            // A file that defines several operations goes in once.
            if !included.contains(&text) {
                code.push_str(text);
                included.push(text);
            }
            code.push_str(&format!(
                "\nredis.register_function('otpengine_{{tag}}_{name}', {name})\n"
            ));
        }
        let tag = Script::new(&code).get_hash()[..16].to_string();
        let code = code.replace("{tag}", &tag);
        (format!("#!lua name=otpengine_{tag}\n{code}"), tag)
    })
}

impl Scripts {
    /// Loads the operations on `con` (every primary of a cluster): as a
    /// function library unless the server refuses `FUNCTION LOAD`, else as
    /// scripts.
    pub(crate) fn load(con: &mut dyn ConnectionLike) -> RedisResult<Scripts> {
        let functions = match load_library(con) {
            Ok(()) => true,
            // Answered, but refused (no functions here, or not for this user).
            Err(e)
                if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
                    && !is_authentication(&e) =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        let mut op = |(name, text): (&str, &str)| -> RedisResult<Op> {
            let script = Script::new(&format!("{COMMON}{text}\nreturn {name}(KEYS, ARGV)\n"));
            let function = functions.then(|| format!("otpengine_{}_{name}", library().1));
            if !functions {
                script.load(con)?;
            }
            Ok(Op { script, function })
        };
        let [issue, verify, verify_totp, revoke, unlock, scope_take, scope_refund, scope_clear] =
            OPS;
        Ok(Scripts {
            issue: op(issue)?,
            verify: op(verify)?,
            verify_totp: op(verify_totp)?,
            revoke: op(revoke)?,
            unlock: op(unlock)?,
            scope_take: op(scope_take)?,
            scope_refund: op(scope_refund)?,
            scope_clear: op(scope_clear)?,
        })
    }
}

/// `FUNCTION LOAD REPLACE` of the library: the same name always holds the
/// same code, so replacing it changes nothing for other engines.
fn load_library(con: &mut dyn ConnectionLike) -> RedisResult<()> {
    ::redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&library().0)
        .query::<Value>(con)
        .map(|_| ())
}

impl Op {
    /// Loads this operation again, as it was loaded (after `NOSCRIPT` or
    /// "Function not found").
    pub(crate) fn reload(&self, con: &mut dyn ConnectionLike) -> RedisResult<()> {
        match self.function {
            Some(_) => load_library(con),
            None => self.script.load(con).map(|_| ()),
        }
    }
}

/// Whether `e` says the script or function is not loaded there (so the call
/// ran nothing).
pub(crate) fn not_loaded(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
        || e.to_string().contains("Function not found")
}

/// The same for a reply in a pipeline.
pub(crate) fn value_not_loaded(value: &Value) -> bool {
    match value {
        Value::ServerError(e) => {
            e.code() == "NOSCRIPT"
                || e.details()
                    .is_some_and(|d| d.starts_with("Function not found"))
        }
        _ => false,
    }
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

/// Runs `op` for the key `names` with the operation's `args`; the answer is
/// `(reply code, number)`. A server that lost the code answers `NOSCRIPT` or
/// "Function not found", having run nothing: it is loaded and the call made
/// again.
pub(crate) fn call(
    op: &Op,
    con: &mut dyn ConnectionLike,
    names: &KeyNames,
    context: &CallContext<'_>,
    args: &[&[u8]],
) -> Result<(i64, i64), RedisError> {
    let cmd = command(op, names, context, args);
    match cmd.query(con) {
        Err(e) if not_loaded(&e) => {
            op.reload(con)?;
            cmd.query(con)
        }
        answer => answer,
    }
}

/// A call as one command (`FCALL` or `EVALSHA` of `op`), to send alone or in
/// a pipeline (see `Link::pipeline`).
pub(crate) fn command(
    op: &Op,
    names: &KeyNames,
    context: &CallContext<'_>,
    args: &[&[u8]],
) -> ::redis::Cmd {
    let mut cmd = match &op.function {
        Some(function) => {
            let mut cmd = ::redis::cmd("FCALL");
            cmd.arg(function);
            cmd
        }
        None => {
            let mut cmd = ::redis::cmd("EVALSHA");
            cmd.arg(op.script.get_hash());
            cmd
        }
    };
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
