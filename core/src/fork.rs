//! Fork safety.
//!
//! After `fork()` the child holds copies of every shard's ChaCha state; were it
//! to keep drawing from them it would hand out the very codes its parent hands
//! out. A `pthread_atfork` child handler bumps [`generation`]; each shard compares
//! the generation its generator was seeded in on every issue (one relaxed load)
//! and reseeds from the OS when it changed.
//!
//! The reaper thread does not exist in the child. Were it holding a shard lock at
//! the moment of `fork()`, the child would wait on that lock forever, so the
//! prepare handler closes a gate and waits until no reaper is inside a shard;
//! reapers check the gate before they lock one (a Dekker-style pair of SeqCst
//! operations: either the reaper sees the gate closed, or the handler sees the
//! reaper inside and waits for it). Threads of the application itself are the
//! application's business, as with any library.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Forks under way: a count, because two threads may fork at once and one's
/// parent handler must not reopen the gate while the other is still forking.
static FORKING: AtomicUsize = AtomicUsize::new(0);
static REAPERS_INSIDE: AtomicUsize = AtomicUsize::new(0);
static REGISTER: Once = Once::new();

/// Installs the fork handlers once per process.
pub(crate) fn register() {
    REGISTER.call_once(install);
}

/// Changes in a child process after each `fork()`.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Held by a reaper while it works inside a shard; `None` while a fork is under way.
pub(crate) struct ReaperPass(());

impl ReaperPass {
    pub(crate) fn enter() -> Option<ReaperPass> {
        REAPERS_INSIDE.fetch_add(1, Ordering::SeqCst);
        if FORKING.load(Ordering::SeqCst) != 0 {
            REAPERS_INSIDE.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ReaperPass(()))
    }
}

impl Drop for ReaperPass {
    fn drop(&mut self) {
        REAPERS_INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

extern "C" fn prepare() {
    FORKING.fetch_add(1, Ordering::SeqCst);
    while REAPERS_INSIDE.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn parent() {
    FORKING.fetch_sub(1, Ordering::SeqCst);
}

extern "C" fn child() {
    // Only atomics here: a child handler must be async-signal-safe.
    REAPERS_INSIDE.store(0, Ordering::SeqCst);
    FORKING.store(0, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

#[cfg(all(unix, not(miri)))]
#[allow(unsafe_code)]
fn install() {
    // SAFETY: the three handlers are `extern "C" fn()` with 'static lifetime that
    // touch only atomics (and yield in `prepare`), which is what pthread_atfork
    // requires of them; registration happens once, guarded by `REGISTER`.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    assert_eq!(rc, 0, "pthread_atfork failed with {rc}");
}

/// Without fork handlers: other platforms, and Miri, which cannot run
/// `pthread_atfork` (and never forks).
#[cfg(any(not(unix), miri))]
fn install() {
    let _ = (prepare, parent, child);
}
