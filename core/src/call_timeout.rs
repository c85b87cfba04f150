//! A bound on how long this thread's calls may wait on the store, for callers
//! whose request has a deadline of its own (Go's `context.Context`).
//!
//! A call that waits on Redis cannot be abandoned half-way from outside (an
//! abandoned verify might still consume the code), so the bound must reach the
//! connection: each call waits at most the shorter of the engine's response
//! timeout and this thread's call timeout, then answers
//! [`Error::Unavailable`](crate::Error::Unavailable) as on any timeout. An
//! in-memory engine never waits, and ignores it.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static CALL_TIMEOUT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Bounds how long this thread's later calls, on every Redis engine, wait for
/// Redis: at most `timeout` when it is shorter than the engine's response
/// timeout (a longer one changes nothing); `None` (or zero) lifts the bound.
/// It stays until changed.
pub fn set_call_timeout(timeout: Option<Duration>) {
    let timeout = timeout.filter(|t| !t.is_zero());
    let _ = CALL_TIMEOUT.try_with(|t| t.set(timeout));
}

/// This thread's call timeout, if one is set.
pub fn call_timeout() -> Option<Duration> {
    CALL_TIMEOUT.try_with(Cell::get).ok().flatten()
}

/// How long a call on this thread may wait, for an engine whose response
/// timeout is `response_timeout`.
#[cfg(feature = "redis")]
pub(crate) fn bounded(response_timeout: Duration) -> Duration {
    call_timeout().map_or(response_timeout, |t| t.min(response_timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_per_thread_and_zero_lifts_it() {
        set_call_timeout(Some(Duration::from_millis(50)));
        assert_eq!(call_timeout(), Some(Duration::from_millis(50)));
        std::thread::spawn(|| assert_eq!(call_timeout(), None))
            .join()
            .unwrap();
        set_call_timeout(Some(Duration::ZERO));
        assert_eq!(call_timeout(), None);
    }
}
