//! One shard of the in-process scope state: for each (scope name, value) that
//! has counted something in a running window, its issue and failure windows,
//! in a table of its own with a timer wheel that forgets each row when both
//! windows have ended. The rules are the window functions at the top, which
//! `redis/lua/scope.lua` repeats for the Redis backend.
//!
//! Ground rules (as in `shard.rs`): every row has a live timer at its
//! `timer_at`, no later than the moment it may be forgotten; a timer that
//! fires early reschedules the row, a stale one (its row gone or given another
//! timer) is dropped; rows count against the engine's capacity through the
//! shared `held`; the wheel's 32-bit times count from `epoch`, which moves up
//! when `now` runs 40 days past it (a row matters for at most a day).

use std::sync::atomic::Ordering;

use crate::clock::Millis;
use crate::scope::ScopePolicy;
use crate::shard::Shared;
use crate::table::{Row, RowAt, Table};
use crate::wheel::{Timer, Wheel};

const DAY: Millis = 86_400_000;
/// How far `now` may run ahead of the epoch before it is moved.
const REBASE_AFTER: Millis = 40 * DAY;
/// Stale timers tolerated beyond the rows before the wheel is rebuilt.
const STALE_TIMERS: usize = 1024;
/// Most timers an ordinary call runs before its own work.
const OP_BUDGET: usize = 8;

/// How long until a window with `count` events since `start` admits another
/// one under `max` (0: no limit); 0 if it admits one now. A window ends
/// `window` after its start; one that has ended counts nothing.
#[inline]
pub(crate) fn window_wait(
    max: u32,
    window: Millis,
    start: Millis,
    count: u32,
    now: Millis,
) -> Millis {
    let end = start + window;
    if max > 0 && count >= max && now < end {
        end - now
    } else {
        0
    }
}

/// Counts one event in a fixed window: a new window starts with the first
/// event after the last one ended.
#[inline]
pub(crate) fn window_count(window: Millis, start: &mut Millis, count: &mut u32, now: Millis) {
    if *count == 0 || now >= *start + window {
        *start = now;
        *count = 1;
    } else {
        *count = count.saturating_add(1);
    }
}

/// One scope value's windows.
#[derive(Clone, Copy, Debug)]
struct ScopeRow {
    /// The (name, value) pair's table hash; 0: an empty row.
    hash: u64,
    issue_start: Millis,
    failure_start: Millis,
    /// Issues counted in the issue window (0: none running).
    issues: u32,
    /// Failures counted in the failure window (0: none running).
    failures: u32,
    /// The deadline of the row's live timer, from the shard's epoch.
    timer_at: u32,
    /// Which configured limit the row counts for.
    limit: u8,
}

impl Row for ScopeRow {
    const EMPTY: ScopeRow = ScopeRow {
        hash: 0,
        issue_start: 0,
        failure_start: 0,
        issues: 0,
        failures: 0,
        timer_at: 0,
        limit: 0,
    };
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl ScopeRow {
    /// When both windows have ended: the row holds nothing after that.
    fn forget_at(&self, limit: &ScopePolicy) -> Millis {
        let mut at = 0;
        if self.issues > 0 {
            at = self.issue_start + limit.issue_window;
        }
        if self.failures > 0 {
            at = at.max(self.failure_start + limit.failure_window);
        }
        at
    }
}

/// The scope rows whose hash picks this shard.
pub(crate) struct ScopeShard {
    table: Table<ScopeRow>,
    wheel: Wheel,
    epoch: Millis,
    /// The latest time any call brought here: time never runs back.
    now: Millis,
}

impl ScopeShard {
    pub(crate) fn new(now: Millis) -> Self {
        ScopeShard {
            table: Table::default(),
            wheel: Wheel::new(0),
            epoch: now,
            now,
        }
    }

    /// Scope values this shard holds state for.
    pub(crate) fn held(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by the table and the wheel.
    pub(crate) fn memory(&self) -> (usize, usize) {
        (self.table.allocation_size(), self.wheel.memory_bytes())
    }

    /// Every call starts here: time runs forward, and a few due timers run.
    pub(crate) fn begin(&mut self, shared: &Shared, now: Millis) -> Millis {
        let now = self.advance_to(now);
        self.reclaim(shared, now, OP_BUDGET);
        now
    }

    /// Runs up to `budget` due timers, forgetting rows whose windows have
    /// ended; returns how many ran.
    pub(crate) fn reclaim(&mut self, shared: &Shared, now: Millis, budget: usize) -> usize {
        let now = self.advance_to(now);
        let now32 = self.offset(now);
        let mut ran = 0;
        while ran < budget {
            let Some(timer) = self.wheel.pop_due(now32) else {
                break;
            };
            ran += 1;
            let Some(i) = self.table.find(timer.hash()) else {
                continue; // stale: the row is gone
            };
            let row = *self.table.get(i);
            if row.timer_at != timer.at {
                continue; // stale: the row has another timer
            }
            let forget_at = row.forget_at(&shared.policy.scopes[usize::from(row.limit)]);
            if forget_at > now {
                self.schedule(i, forget_at);
            } else {
                self.remove(shared, i);
            }
        }
        ran
    }

    /// How long until the scope `hash` admits another issue (0: now).
    pub(crate) fn issue_wait(&self, hash: u64, limit: &ScopePolicy, now: Millis) -> Millis {
        self.table.find(hash).map_or(0, |i| {
            let row = self.table.get(i);
            window_wait(
                limit.max_issues,
                limit.issue_window,
                row.issue_start,
                row.issues,
                now,
            )
        })
    }

    /// How long the scope `hash` answers `Locked` to every verify, if its
    /// failure budget is spent.
    pub(crate) fn lockout_left(
        &self,
        hash: u64,
        limit: &ScopePolicy,
        now: Millis,
    ) -> Option<Millis> {
        let i = self.table.find(hash)?;
        let row = self.table.get(i);
        let wait = window_wait(
            limit.max_failures,
            limit.failure_window,
            row.failure_start,
            row.failures,
            now,
        );
        (wait > 0).then_some(wait)
    }

    /// Whether counting on `hash` needs no new row (and so no capacity).
    pub(crate) fn holds(&self, hash: u64) -> bool {
        self.table.find(hash).is_some()
    }

    /// Counts an issue on the scope `hash`; a new row's capacity was reserved
    /// by the caller (see [`ScopeShard::holds`]).
    pub(crate) fn count_issue(&mut self, shared: &Shared, hash: u64, limit: usize, now: Millis) {
        let p = &shared.policy.scopes[limit];
        let i = self.row(hash, limit);
        let row = self.table.get_mut(i);
        window_count(p.issue_window, &mut row.issue_start, &mut row.issues, now);
        self.settle(shared, i);
    }

    /// Counts a failed verify on the scope `hash`, as [`ScopeShard::count_issue`].
    pub(crate) fn count_failure(&mut self, shared: &Shared, hash: u64, limit: usize, now: Millis) {
        let p = &shared.policy.scopes[limit];
        let i = self.row(hash, limit);
        let row = self.table.get_mut(i);
        window_count(
            p.failure_window,
            &mut row.failure_start,
            &mut row.failures,
            now,
        );
        self.settle(shared, i);
    }

    /// Forgets the scope `hash`: its lockout and both counts. True if it had a
    /// count in a running window.
    pub(crate) fn clear(&mut self, shared: &Shared, hash: u64, now: Millis) -> bool {
        let Some(i) = self.table.find(hash) else {
            return false;
        };
        let row = *self.table.get(i);
        let running = row.forget_at(&shared.policy.scopes[usize::from(row.limit)]) > now;
        self.remove(shared, i);
        running
    }

    /// The row of `hash`, made (under a reservation the caller holds) if absent.
    fn row(&mut self, hash: u64, limit: usize) -> RowAt {
        if let Some(i) = self.table.find(hash) {
            return i;
        }
        self.table.insert(ScopeRow {
            hash,
            limit: limit as u8, // at most 8 limits
            timer_at: u32::MAX,
            ..ScopeRow::EMPTY
        })
    }

    /// After a count: a new row gets its timer; a row already timed no later
    /// than its new end keeps it (it fires early and moves on).
    fn settle(&mut self, shared: &Shared, i: RowAt) {
        let row = *self.table.get(i);
        let forget_at = row.forget_at(&shared.policy.scopes[usize::from(row.limit)]);
        if row.timer_at == u32::MAX || self.epoch + Millis::from(row.timer_at) > forget_at {
            self.schedule(i, forget_at);
        }
    }

    fn schedule(&mut self, i: RowAt, when: Millis) {
        let at = self.offset(when.max(self.epoch));
        let row = self.table.get_mut(i);
        row.timer_at = at;
        self.wheel.insert(Timer::new(row.hash, at));
        if self.wheel.len() > 2 * self.table.len() + STALE_TIMERS {
            self.rebuild_wheel();
        }
    }

    fn remove(&mut self, shared: &Shared, i: RowAt) {
        self.table.remove(i);
        shared.held.fetch_sub(1, Ordering::Relaxed);
    }

    fn advance_to(&mut self, now: Millis) -> Millis {
        self.now = self.now.max(now);
        if self.now - self.epoch >= REBASE_AFTER {
            // Every row ends within a day of its last count, so no timer that
            // matters is before `now - DAY`; earlier ones are simply due.
            let epoch = self.now - DAY;
            let by = epoch - self.epoch;
            for row in self.table.rows_mut() {
                row.timer_at = Millis::from(row.timer_at).saturating_sub(by) as u32;
            }
            self.epoch = epoch;
            self.rebuild_wheel();
        }
        self.now
    }

    fn rebuild_wheel(&mut self) {
        let mut wheel = Wheel::new(self.offset(self.now));
        for row in self.table.rows() {
            wheel.insert(Timer::new(row.hash, row.timer_at));
        }
        self.wheel = wheel;
    }

    fn offset(&self, t: Millis) -> u32 {
        debug_assert!(t >= self.epoch && t - self.epoch <= Millis::from(u32::MAX));
        (t - self.epoch) as u32
    }

    /// Checks the ground rules; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self, shared: &Shared) {
        self.table.validate();
        self.wheel.validate();
        let timers: std::collections::HashSet<Timer> = self.wheel.timers().collect();
        for row in self.table.rows() {
            assert!(
                timers.contains(&Timer::new(row.hash, row.timer_at)),
                "scope row has a live timer at its timer_at"
            );
            let forget_at = row.forget_at(&shared.policy.scopes[usize::from(row.limit)]);
            assert!(
                self.epoch + Millis::from(row.timer_at) <= forget_at.max(self.now),
                "scope row is scheduled no later than its end"
            );
            assert!(
                row.issues > 0 || row.failures > 0,
                "a scope row counts something"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_max_events_then_waits_for_its_end() {
        let (mut start, mut count) = (0, 0);
        for t in [100, 200, 300] {
            assert_eq!(window_wait(3, 1000, start, count, t), 0);
            window_count(1000, &mut start, &mut count, t);
        }
        assert_eq!((start, count), (100, 3));
        assert_eq!(window_wait(3, 1000, start, count, 400), 700);
        assert_eq!(window_wait(3, 1000, start, count, 1100), 0);
        // The next event after the end starts a new window.
        window_count(1000, &mut start, &mut count, 1100);
        assert_eq!((start, count), (1100, 1));
        assert_eq!(window_wait(0, 1000, 0, u32::MAX, 0), 0, "0: no limit");
    }
}
