//! The table of one shard: open addressing with the rows inline, so finding a key
//! and reading its whole state is one cache line (sometimes its neighbour too),
//! not an index and then a slot elsewhere.
//!
//! # Layout
//! Rows are probed linearly from their home, `hash * capacity >> 64` (a
//! multiply instead of a power-of-two mask, so the capacity can grow by an
//! eighth at a time and memory follows the load closely). Insertion is Robin
//! Hood (a row that has come further from its home takes the place of one that
//! has come less far), so a lookup stops as soon as it meets a row closer to its
//! home than the probe is, and a miss costs about what a hit does. Deletion
//! shifts the rows after it back by one until a row at its home or an empty one:
//! no tombstones.
//!
//! A row's hash is its key's tag and its only link to the rest of the store: the
//! table recomputes homes from it when it resizes, and the timer wheel names rows
//! by it, because rows move (when they are inserted before, deleted behind, or
//! the table resizes).
//!
//! # Ground rules
//! - Hash 0 marks an empty row; every key's hash is non-zero.
//! - Robin Hood order: walking from any row to the next, the distance from home
//!   grows by at most one, and the row after an empty row is at its home.
//! - The table grows past 9/10 full (doubling while small, by an eighth once
//!   it is big) and halves below 1/4 full.

use std::mem;

/// What the table stores: a row with a non-zero hash, or the empty row.
pub(crate) trait Row: Copy {
    /// The empty row (hash 0).
    const EMPTY: Self;
    /// The row's key hash; 0 for the empty row.
    fn hash(&self) -> u64;
}

/// Where a row is in its table, as [`Table::find`] or [`Table::insert`] said.
/// Valid until the table next changes shape (an insertion or a deletion moves
/// other rows), so a shard never keeps one across such a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowAt(usize);

/// Fewest rows a non-empty table has.
const MIN_ROWS: usize = 16;

/// The next size up from `rows`: double while a shard's table is under 640 KiB
/// of rows (16,384 rows of 40 bytes), where memory is cheap and a young engine
/// grows fast, so a fill from empty copies about half as many rows (3 a key,
/// against 6 growing by a quarter: a tenth of a fresh engine's time from
/// Python, see BENCHMARKS.md); an eighth more from there, so a big table is
/// never under 4/5 full after growing (9/10 over 9/8). A small table is
/// emptier for it (0.69 full on average, against 0.81), by at most 640 KiB a
/// shard; a big one is as full either way (0.85). A rehash writes the new rows
/// nearly in order (homes are monotone in the hash), so it costs a streaming
/// copy, not a cache miss per row.
fn grown(rows: usize) -> usize {
    let step = if rows < 16_384 { rows } else { rows / 8 };
    (rows + step).max(MIN_ROWS)
}

/// Open-addressing rows, Robin Hood ordered.
pub(crate) struct Table<R> {
    rows: Vec<R>,
    len: usize,
}

impl<R: Row> Default for Table<R> {
    fn default() -> Self {
        Table {
            rows: Vec::new(),
            len: 0,
        }
    }
}

/// Where `hash` starts probing in a table of `rows` rows.
#[inline]
fn home(hash: u64, rows: usize) -> usize {
    ((u128::from(hash) * rows as u128) >> 64) as usize
}

/// How far the row at `pos` of `rows` is from its home.
#[inline]
fn distance_in<R: Row>(rows: &[R], pos: usize) -> usize {
    let n = rows.len();
    let home = home(rows[pos].hash(), n);
    if pos >= home {
        pos - home
    } else {
        pos + n - home
    }
}

/// The rows of `rows` in home order: from the first row at its home or empty,
/// once round, so a run that wraps past the end comes last, whole. (Starting
/// anywhere else, the rows before the start would come after rows with later
/// homes.)
fn in_home_order<R: Row>(rows: &[R]) -> impl Iterator<Item = &R> {
    let start = (0..rows.len())
        .find(|&p| rows[p].hash() == 0 || distance_in(rows, p) == 0)
        .unwrap_or(0);
    rows[start..]
        .iter()
        .chain(&rows[..start])
        .filter(|r| r.hash() != 0)
}

impl<R: Row> Table<R> {
    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated.
    pub(crate) fn allocation_size(&self) -> usize {
        self.rows.capacity() * mem::size_of::<R>()
    }

    /// Where the rows are, as (address of the first, count): published by the
    /// shard after each call, so that a caller can [`prefetch_home`] without
    /// the lock.
    pub(crate) fn extent(&self) -> (usize, usize) {
        (self.rows.as_ptr() as usize, self.rows.len())
    }

    /// How far the row at `pos` is from its home.
    #[inline]
    fn distance(&self, pos: usize) -> usize {
        distance_in(&self.rows, pos)
    }

    #[inline]
    fn next(&self, pos: usize) -> usize {
        if pos + 1 == self.rows.len() {
            0
        } else {
            pos + 1
        }
    }

    /// Where the row with `hash` is.
    #[inline]
    pub(crate) fn find(&self, hash: u64) -> Option<RowAt> {
        debug_assert_ne!(hash, 0);
        if self.rows.is_empty() {
            return None;
        }
        let mut pos = home(hash, self.rows.len());
        let mut probed = 0;
        loop {
            let h = self.rows[pos].hash();
            if h == hash {
                return Some(RowAt(pos));
            }
            if h == 0 || self.distance(pos) < probed {
                return None;
            }
            pos = self.next(pos);
            probed += 1;
        }
    }

    pub(crate) fn get(&self, at: RowAt) -> &R {
        &self.rows[at.0]
    }

    pub(crate) fn get_mut(&mut self, at: RowAt) -> &mut R {
        &mut self.rows[at.0]
    }

    /// Stores `row`, whose hash must not be in the table; returns where it went.
    /// Other rows may move.
    pub(crate) fn insert(&mut self, row: R) -> RowAt {
        debug_assert_ne!(row.hash(), 0);
        if (self.len + 1) * 10 > self.rows.len() * 9 {
            self.resize(grown(self.rows.len()));
        }
        self.len += 1;
        RowAt(self.place(row))
    }

    /// Puts `row` where Robin Hood order has it: before the first row of its
    /// run whose home is past its own. The rows from there to the run's end
    /// move on by one as a block (a `memmove`, not a swap and a distance per
    /// row: at 4/5 to 9/10 full a run is tens of rows long).
    fn place(&mut self, row: R) -> usize {
        let mut pos = home(row.hash(), self.rows.len());
        let mut probed = 0;
        loop {
            if self.rows[pos].hash() == 0 {
                self.rows[pos] = row;
                return pos;
            }
            if self.distance(pos) < probed {
                break;
            }
            pos = self.next(pos);
            probed += 1;
        }
        let mut empty = self.next(pos);
        while self.rows[empty].hash() != 0 {
            empty = self.next(empty);
        }
        self.shift_on(pos, empty);
        self.rows[pos] = row;
        pos
    }

    /// Moves the rows from `from` up to the empty row `empty` on by one, round
    /// the end of the table if the run wraps.
    fn shift_on(&mut self, from: usize, empty: usize) {
        if from < empty {
            self.rows.copy_within(from..empty, from + 1);
        } else {
            let last = self.rows.len() - 1;
            self.rows.copy_within(0..empty, 1);
            self.rows[0] = self.rows[last];
            self.rows.copy_within(from..last, from + 1);
        }
    }

    /// Deletes the row at `pos`. Other rows may move.
    pub(crate) fn remove(&mut self, at: RowAt) {
        debug_assert_ne!(self.rows[at.0].hash(), 0);
        // The rows after it that are away from their home move back by one:
        // those up to the first empty row or row at its home.
        let mut end = self.next(at.0);
        while self.rows[end].hash() != 0 && self.distance(end) != 0 {
            end = self.next(end);
        }
        self.shift_back(at.0, end);
        self.len -= 1;
        if self.rows.len() > MIN_ROWS && self.len * 4 < self.rows.len() {
            self.resize((self.rows.len() / 2).max(MIN_ROWS));
        }
    }

    /// Moves the rows after `hole` up to (not including) `end` back by one, as
    /// a block, round the end of the table if they wrap, and empties the row
    /// left behind: [`Table::shift_on`] undone.
    fn shift_back(&mut self, hole: usize, end: usize) {
        let n = self.rows.len();
        let last = if end == 0 { n - 1 } else { end - 1 };
        if hole <= last {
            self.rows.copy_within(hole + 1..=last, hole);
        } else {
            self.rows.copy_within(hole + 1..n, hole);
            self.rows[n - 1] = self.rows[0];
            self.rows.copy_within(1..=last, 0);
        }
        self.rows[last] = R::EMPTY;
    }

    /// Every row, in table order (which says nothing about the keys).
    pub(crate) fn rows(&self) -> impl Iterator<Item = &R> {
        self.rows.iter().filter(|r| r.hash() != 0)
    }

    /// Every row, mutably; the caller must not change any row's hash.
    pub(crate) fn rows_mut(&mut self) -> impl Iterator<Item = &mut R> {
        self.rows.iter_mut().filter(|r| r.hash() != 0)
    }

    /// Keeps only the rows for which `keep` holds, in one pass and one rebuild.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&R) -> bool) {
        let kept: Vec<R> = in_home_order(&self.rows)
            .filter(|r| keep(r))
            .copied()
            .collect();
        self.len = kept.len();
        let mut rows = MIN_ROWS;
        while self.len * 10 > rows * 9 {
            rows = grown(rows);
        }
        self.refill(if self.len == 0 { 0 } else { rows }, kept);
    }

    fn resize(&mut self, rows: usize) {
        let old = mem::take(&mut self.rows);
        self.refill(rows, in_home_order(&old).copied());
    }

    /// Fills a new table of `rows` rows from `sorted`, rows in home order
    /// ([`in_home_order`]), in one streaming pass. Homes in the new table come
    /// in the same order, so nearly every row goes at its home or right after
    /// the row placed before it, without probing. Two kinds go through
    /// [`Table::place`] instead: a row whose new home is before the last one
    /// placed (rows of one old home are in the order they came, not by hash),
    /// and the rows that wrap past the end.
    fn refill(&mut self, rows: usize, sorted: impl IntoIterator<Item = R>) {
        self.rows = allocate(rows);
        // Every row at or past `next_free` is still empty, until a row wraps.
        let (mut next_free, mut last_home) = (0, 0);
        for row in sorted {
            let home = home(row.hash(), rows);
            let pos = home.max(next_free);
            if home < last_home || pos == rows {
                self.place(row);
                if next_free < rows && self.rows[next_free].hash() != 0 {
                    next_free += 1;
                }
                continue;
            }
            self.rows[pos] = row;
            (next_free, last_home) = (pos + 1, home);
        }
    }

    /// Checks the ground rules; for tests.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn validate(&self) {
        let n = self.rows.len();
        let mut count = 0;
        for pos in 0..n {
            if self.rows[pos].hash() == 0 {
                continue;
            }
            count += 1;
            let hash = self.rows[pos].hash();
            assert_eq!(
                self.find(hash),
                Some(RowAt(pos)),
                "row {pos} is found from its home"
            );
            let prev = (pos + n - 1) % n;
            let before = if self.rows[prev].hash() == 0 {
                0
            } else {
                self.distance(prev) + 1
            };
            assert!(
                self.distance(pos) <= before,
                "Robin Hood order at row {pos}"
            );
        }
        assert_eq!(count, self.len);
        if n > 0 {
            assert!(self.len * 10 <= n * 9, "at most 9/10 full");
        }
    }
}

/// Starts loading the cache line of `hash`'s home row in a table of `rows` rows of
/// type `R` starting at `base` ([`Table::extent`]), so it arrives while the caller
/// takes the lock. The extent may be stale (the table resized since): a prefetch
/// is only a hint, and one of memory since freed does nothing.
#[inline]
#[allow(unsafe_code)] // the one intrinsic: a prefetch hint
pub(crate) fn prefetch_home<R>(base: usize, rows: usize, hash: u64) {
    if rows == 0 {
        return;
    }
    let addr = base.wrapping_add(home(hash, rows) * mem::size_of::<R>());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and makes nothing readable by the program,
    // whatever the address; no reference is made from it.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// `rows` empty rows. A table of megabytes asks for transparent huge pages
/// before its memory is first touched: at a million keys a lookup's row is
/// otherwise a TLB miss as well as a cache miss.
fn allocate<R: Row>(rows: usize) -> Vec<R> {
    let mut v: Vec<R> = Vec::with_capacity(rows);
    #[cfg(all(target_os = "linux", not(miri)))]
    advise_huge_pages(v.as_ptr().cast(), rows * mem::size_of::<R>());
    v.resize(rows, R::EMPTY);
    v
}

#[cfg(all(target_os = "linux", not(miri)))]
#[allow(unsafe_code)] // the one system call: a paging hint
fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let (start, end) = (start as usize, start as usize + len);
    let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if from < to {
        // SAFETY: [from, to) lies inside the allocation just made, which nothing
        // else uses yet; MADV_HUGEPAGE changes how it is paged, never what it holds,
        // and a kernel without transparent huge pages just says no.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Plain(u64);

    impl Row for Plain {
        const EMPTY: Plain = Plain(0);
        fn hash(&self) -> u64 {
            self.0
        }
    }

    /// A hash for `n`; few distinct high bits force long probe runs.
    fn hash_of(n: u32, spread: u32) -> u64 {
        let high = u64::from(n % spread).wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xFFFF_FFFF;
        high | u64::from(n) | 1 << 31
    }

    proptest! {
        /// Inserts and removes against a `HashSet`: every stored row is found,
        /// nothing else is, and the Robin Hood order holds after every step.
        #[test]
        fn matches_a_hash_set(
            ops in prop::collection::vec((any::<bool>(), 0u32..400), 1..600),
            spread in prop_oneof![Just(3u32), Just(40), Just(1 << 20)],
        ) {
            let mut table = Table::<Plain>::default();
            let mut model = HashSet::new();
            let steps = if cfg!(miri) { 60 } else { ops.len() };
            for (insert, n) in ops.into_iter().take(steps) {
                let h = hash_of(n, spread);
                match (insert, table.find(h)) {
                    (true, None) => {
                        let pos = table.insert(Plain(h));
                        prop_assert_eq!(table.get(pos).0, h);
                        model.insert(h);
                    }
                    (false, Some(pos)) => {
                        table.remove(pos);
                        model.remove(&h);
                    }
                    _ => {}
                }
                table.validate();
                for &h in &model {
                    prop_assert_eq!(table.find(h).map(|p| table.get(p).0), Some(h));
                }
                prop_assert_eq!(table.find(hash_of(7777, spread)), None);
                prop_assert_eq!(table.len(), model.len());
            }
        }
    }

    /// Rows whose homes are the last rows of the table wrap round to its start;
    /// they must stay findable, in Robin Hood order, as the table grows, shrinks
    /// and is rebuilt by `retain`.
    #[test]
    fn rows_that_wrap_survive_resizes() {
        let n: u64 = if cfg!(miri) { 400 } else { 4_000 };
        // Hashes packed in the top fifth of the range: one long run there,
        // more than the table's last rows hold.
        let h = |i: u64| u64::MAX - i * (1 << 50);
        let mut table = Table::<Plain>::default();
        for i in 0..n {
            table.insert(Plain(h(i)));
            if i % 50 == 0 {
                table.validate();
            }
        }
        table.validate();
        let grown = table.allocation_size();
        // Seven in eight go: the table halves on the way down.
        let kept = |i: u64| i.is_multiple_of(8);
        for i in (0..n).filter(|&i| !kept(i)) {
            table.remove(table.find(h(i)).unwrap());
            if i % 101 == 0 {
                table.validate();
            }
        }
        table.validate();
        assert!(
            table.allocation_size() * 2 <= grown,
            "shrunk: {} of {grown} bytes",
            table.allocation_size()
        );
        for i in 0..n {
            assert_eq!(table.find(h(i)).is_some(), kept(i), "row {i}");
        }
        // And `retain` rebuilds from the same order.
        table.retain(|r| ((u64::MAX - r.0) >> 50) & 8 == 0);
        table.validate();
        for i in 0..n {
            assert_eq!(table.find(h(i)).is_some(), i.is_multiple_of(16), "row {i}");
        }
    }

    #[test]
    fn grows_and_shrinks_with_the_load() {
        let n: u32 = if cfg!(miri) { 3_000 } else { 100_000 };
        let mut table = Table::<Plain>::default();
        let h = |i: u32| hash_of(i, 1 << 30);
        for i in 0..n {
            table.insert(Plain(h(i)));
        }
        let grown = table.allocation_size();
        // An eighth's growth at 9/10: never under 4/5 full.
        assert!(grown * 4 <= n as usize * 8 * 5, "{grown} bytes for {n}");
        for i in 0..n - 10 {
            table.remove(table.find(h(i)).unwrap());
        }
        assert!(
            table.allocation_size() <= 4 * MIN_ROWS * 8,
            "shrunk to a few rows"
        );
        for i in n - 10..n {
            assert!(table.find(h(i)).is_some());
        }
        table.retain(|r| r.0 != h(n - 1));
        table.validate();
        assert_eq!(table.len(), 9);
        assert_eq!(table.find(h(n - 1)), None);
    }
}
