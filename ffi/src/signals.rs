//! Keeps asynchronous signals from cutting a Redis round trip short.
//!
//! The Redis client reads its socket with a receive timeout (`SO_RCVTIMEO`). A
//! read with a timeout is one of the calls the kernel never restarts after a
//! signal handler, whatever `SA_RESTART` says (signal(7)): it fails with `EINTR`,
//! the client drops the connection as lost, and the call answers
//! `OTP_BACKEND_UNAVAILABLE`, though Redis may well have run the script. Go's
//! runtime sends its threads a signal (`SIGURG`) to preempt goroutines, so under
//! Go this happened in practice (twice in the CI's Redis Cluster test).
//!
//! So a call on a Redis engine runs with the calling thread's asynchronous
//! signals blocked, and restores the mask when it returns. A signal sent to the
//! thread meanwhile stays pending and is handled right after (at most the
//! response timeout later); one sent to the process goes to another thread. The
//! in-memory engine makes no system call that a signal could cut short and is
//! not shielded (two `pthread_sigmask` calls would double its cost).

use otpengine_core::Engine;

/// Runs `call` with asynchronous signals blocked on this thread when `engine`
/// talks to Redis.
pub(crate) fn shielded<R>(engine: &Engine, call: impl FnOnce() -> R) -> R {
    if engine.redis_server().is_none() {
        return call();
    }
    let _blocked = Blocked::new();
    call()
}

/// Runs `call` (a connection to Redis being made) with asynchronous signals
/// blocked on this thread.
pub(crate) fn connecting<R>(call: impl FnOnce() -> R) -> R {
    let _blocked = Blocked::new();
    call()
}

/// The thread's signal mask as it was, restored on drop.
struct Blocked(libc::sigset_t);

impl Blocked {
    fn new() -> Self {
        // SAFETY: sigset_t is plain data; sigfillset/sigdelset initialise and edit
        // it, and pthread_sigmask reads `all` and writes `old`, both valid.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            // Signals the thread raises itself (a fault, an abort) must stay
            // deliverable: blocking them is undefined behaviour when they occur.
            for sig in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGFPE,
                libc::SIGILL,
                libc::SIGTRAP,
                libc::SIGABRT,
                libc::SIGSYS,
            ] {
                libc::sigdelset(&mut all, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            Blocked(old)
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the mask pthread_sigmask returned in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}
