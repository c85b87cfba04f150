//! Keeps asynchronous signals from cutting a Redis round trip short.
//!
//! The Redis client reads its socket with a receive timeout (`SO_RCVTIMEO`). A
//! read with a timeout is one of the calls the kernel never restarts after a
//! signal handler, whatever `SA_RESTART` says (signal(7)): it fails with `EINTR`,
//! the client drops the connection as lost, and the call answers
//! [`Error::Unavailable`](crate::Error::Unavailable), though Redis may well have
//! run the script. Such handlers are common in the processes that embed the
//! engine: Go's runtime sends its threads a signal (`SIGURG`) to preempt
//! goroutines (this failed calls in practice, twice in the CI's cluster test),
//! and Python installs its handlers (SIGINT's, and any `signal.signal`)
//! without `SA_RESTART`.
//!
//! So every exchange with Redis runs with the calling thread's asynchronous
//! signals blocked, and restores the mask when it returns, in every language.
//! A signal sent to the thread meanwhile stays pending and is handled right
//! after (at most the response timeout later: a Python `KeyboardInterrupt`
//! arrives once the call has its answer); one sent to the process goes to
//! another thread. Two `pthread_sigmask` calls cost well under a microsecond,
//! nothing beside a round trip; the in-memory engine makes no system call that
//! a signal could cut short and never comes here.

/// The thread's signal mask as it was before [`Blocked::new`] blocked every
/// asynchronous signal; restored on drop.
pub(crate) struct Blocked(libc::sigset_t);

impl Blocked {
    #[allow(unsafe_code)] // two system calls on a local signal set
    pub(crate) fn new() -> Self {
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
    #[allow(unsafe_code)] // one system call restoring the saved mask
    fn drop(&mut self) {
        // SAFETY: `self.0` is the mask pthread_sigmask returned in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}
