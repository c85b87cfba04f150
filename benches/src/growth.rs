//! Telling a memory leak from a step, in memory sampled once a second over a soak.
//!
//! Ground rules. A healthy engine's RSS is not flat. The store's slot arrays and
//! index tables are resized in doubling steps while the held keys find their
//! level, and the held keys follow the throughput (abandoned keys linger for two
//! ttls), which moves when something else runs on the machine: under load a table
//! may halve and double again within one run. The pages of a new table or slot
//! array become resident only as they are written, so RSS also creeps up after
//! each resize. None of that is a leak, and all of it stays within what the store
//! has allocated. A leak differs in two ways at once, and the check asks for both:
//!
//! - **It keeps growing.** The run is cut into four quarters by time, the first
//!   is warm-up, and the median RSS must rise from the second quarter to the
//!   third and from the third to the fourth, each by more than half the limit (in
//!   percent of the second quarter's). One step moves one of the two medians; a
//!   steady leak moves both by half its total. Medians, not peaks, so one high
//!   sample decides nothing.
//! - **It is more than the store holds.** Resident memory without a leak is at
//!   most what the process had before the run (its baseline, with the load
//!   generator's own records) plus what the store has allocated at its largest:
//!   the last quarter's median RSS must go beyond that. glibc would keep freed
//!   large blocks (a table replaced on a resize) resident in its arenas, which
//!   would break this; `make soak` sets `MALLOC_MMAP_THRESHOLD_` so that they go
//!   back to the kernel.
//!
//! Measured on the 2-core machine (see the closing note of the issue that added
//! this): five 60 s soaks under two busy loops all pass; a leak of one byte per
//! call fails within the minute, loaded or not.

/// One sample of the process's memory during the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// Milliseconds since the timed run started.
    pub at_ms: u64,
    /// Resident set size of the process, in bytes.
    pub rss: u64,
    /// Bytes the engine's store has allocated (`Engine::memory_usage().total()`).
    pub store_bytes: u64,
    /// Keys the store holds state for (`Stats::held`).
    pub held: u64,
}

/// The medians of each quarter of the run, in the order of the quarters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuarterMedians {
    /// Median RSS per quarter, in bytes.
    pub rss: [u64; 4],
    /// Median bytes allocated by the store per quarter.
    pub store_bytes: [u64; 4],
    /// Median keys held per quarter.
    pub held: [u64; 4],
    /// The most bytes the store had allocated in any sample.
    pub store_bytes_peak: u64,
}

impl QuarterMedians {
    /// Splits `samples` into four quarters of `run_ms` by their time and takes
    /// each quarter's medians. A quarter without samples has medians of 0.
    pub fn of(samples: &[MemorySample], run_ms: u64) -> Self {
        let mut medians = QuarterMedians {
            store_bytes_peak: samples.iter().map(|s| s.store_bytes).max().unwrap_or(0),
            ..QuarterMedians::default()
        };
        for quarter in 0..4 {
            let (from, to) = (run_ms * quarter / 4, run_ms * (quarter + 1) / 4);
            let in_quarter: Vec<&MemorySample> = samples
                .iter()
                .filter(|s| (from..to).contains(&s.at_ms) || (quarter == 3 && s.at_ms >= to))
                .collect();
            let q = quarter as usize;
            medians.rss[q] = median(in_quarter.iter().map(|s| s.rss));
            medians.store_bytes[q] = median(in_quarter.iter().map(|s| s.store_bytes));
            medians.held[q] = median(in_quarter.iter().map(|s| s.held));
        }
        medians
    }

    /// RSS growth from the second quarter's median to the fourth's, in percent
    /// of the second's.
    pub fn rss_growth_percent(&self) -> f64 {
        percent(self.rss[1], self.rss[3])
    }

    /// The most RSS the run may end with and not leak: `baseline` (the process
    /// before the run) plus the store's largest allocation.
    pub fn explained_rss(&self, baseline: u64) -> u64 {
        baseline + self.store_bytes_peak
    }

    /// `Err` with what grew and by how much when memory leaked (see the module
    /// docs): RSS grew across each of the last two quarters by more than half of
    /// `limit_percent`, and ends above what `baseline` and the store explain.
    pub fn judge(&self, limit_percent: f64, baseline: u64) -> Result<(), String> {
        let [_, second, third, fourth] = self.rss;
        let step = limit_percent / 2.0;
        let persistent = percent(second, third) > step
            && percent(second, fourth) - percent(second, third) > step;
        let explained = self.explained_rss(baseline);
        if !persistent || fourth <= explained {
            return Ok(());
        }
        let growth = self.rss_growth_percent();
        let held_growth = percent(self.held[1], self.held[3]);
        Err(format!(
            "memory kept growing across the last two quarters of the run: median RSS {} -> {} -> {} MiB \
             (+{growth:.1}%, more than --max-rss-growth {limit_percent}%), {} MiB more than the store \
             and the process before the run explain ({} MiB: the store's largest allocation {} MiB, \
             the baseline {} MiB); the store's held keys {} -> {} -> {} ({held_growth:+.1}%), its \
             allocated bytes {} -> {} -> {} MiB",
            mib(second),
            mib(third),
            mib(fourth),
            mib(fourth - explained),
            mib(explained),
            mib(self.store_bytes_peak),
            mib(baseline),
            self.held[1],
            self.held[2],
            self.held[3],
            mib(self.store_bytes[1]),
            mib(self.store_bytes[2]),
            mib(self.store_bytes[3]),
        ))
    }
}

fn median(values: impl Iterator<Item = u64>) -> u64 {
    let mut values: Vec<u64> = values.collect();
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[values.len() / 2]
}

fn percent(from: u64, to: u64) -> f64 {
    if from == 0 {
        return 0.0;
    }
    (to as f64 / from as f64 - 1.0) * 100.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    /// The process before the run; with the 40 MiB store, 60 MiB are explained.
    const BASELINE: u64 = 20 * MIB;

    /// 60 samples a second apart, RSS from `rss_at(second)`, a level store.
    fn run(rss_at: impl Fn(u64) -> u64) -> Vec<MemorySample> {
        (0..60)
            .map(|s| MemorySample {
                at_ms: s * 1000,
                rss: rss_at(s),
                store_bytes: 40 * MIB,
                held: 300_000,
            })
            .collect()
    }

    /// Noise of 1 MiB (more than the soak shows: its RSS moves in steps) from a
    /// fixed sequence, so the tests do not depend on luck.
    fn noise(second: u64) -> u64 {
        (second * 7919 % 5) * MIB / 4
    }

    #[test]
    fn level_memory_with_noise_passes() {
        let q = QuarterMedians::of(&run(|s| 88 * MIB + noise(s)), 60_000);
        assert_eq!(q.judge(10.0, BASELINE), Ok(()));
    }

    #[test]
    fn one_step_passes_wherever_it_falls() {
        // A 13% step (the false alarm of the old last-third check) at every second
        // of the run after warm-up.
        for at in 15..60 {
            let q = QuarterMedians::of(
                &run(|s| if s < at { 88 * MIB } else { 100 * MIB } + noise(s)),
                60_000,
            );
            assert_eq!(q.judge(10.0, BASELINE), Ok(()), "step at {at} s: {q:?}");
        }
    }

    #[test]
    fn steady_growth_fails_naming_what_grew() {
        // 0.5 MiB a second: 15 MiB over the last half, about 16% of 91 MiB.
        let q = QuarterMedians::of(&run(|s| 80 * MIB + s * MIB / 2 + noise(s)), 60_000);
        let message = q.judge(10.0, BASELINE).expect_err("a leak must fail");
        assert!(message.contains("median RSS"), "{message}");
        assert!(
            message.contains("held keys 300000 -> 300000 -> 300000 (+0.0%)"),
            "{message}"
        );
        assert!(q.rss_growth_percent() > 10.0);
    }

    #[test]
    fn growth_under_the_limit_passes() {
        // 0.05 MiB a second: 1.5 MiB over the last half, under 2% of 88 MiB.
        let q = QuarterMedians::of(&run(|s| 88 * MIB + s * MIB / 20), 60_000);
        assert_eq!(q.judge(10.0, BASELINE), Ok(()));
    }

    #[test]
    fn a_creep_that_slows_passes() {
        // Pages touched as a slot array reaches new highs: fast at first, then
        // slower (as the square root of time), 3% over the second quarter.
        let q = QuarterMedians::of(
            &run(|s| 55 * MIB + ((s as f64).sqrt() * 1.2 * MIB as f64) as u64),
            60_000,
        );
        assert_eq!(q.judge(10.0, BASELINE), Ok(()), "{q:?}");
    }

    #[test]
    fn growth_with_the_held_keys_shows_their_growth() {
        let samples: Vec<MemorySample> = (0..60)
            .map(|s| MemorySample {
                at_ms: s * 1000,
                rss: 80 * MIB + s * MIB / 2,
                store_bytes: 40 * MIB + s * MIB / 2,
                held: 300_000 + s * 5_000,
            })
            .collect();
        let message = QuarterMedians::of(&samples, 60_000)
            .judge(10.0, BASELINE)
            .expect_err("a leak must fail");
        assert!(
            message.contains("(+36."),
            "the held keys' growth is shown: {message}"
        );
    }

    #[test]
    fn growth_within_what_the_store_allocated_passes() {
        // Seen under load: the tables halve, double again in the third quarter,
        // and their new pages become resident through the fourth: 52.8 -> 58.2 ->
        // 62.7 MiB, with 84 MiB allocated and a baseline of 8 MiB.
        let samples: Vec<MemorySample> = (0..60)
            .map(|s| MemorySample {
                at_ms: s * 1000,
                rss: if s < 30 {
                    53 * MIB
                } else {
                    53 * MIB + (s - 30) * MIB / 3
                },
                store_bytes: if s < 30 { 44 * MIB } else { 84 * MIB },
                held: 310_000,
            })
            .collect();
        let q = QuarterMedians::of(&samples, 60_000);
        assert!(q.rss_growth_percent() > 10.0, "it grew: {q:?}");
        assert_eq!(q.judge(10.0, 8 * MIB), Ok(()), "{q:?}");
        let leaky: Vec<MemorySample> = samples
            .iter()
            .map(|s| MemorySample {
                rss: s.rss + s.at_ms * MIB / 1000,
                ..*s
            })
            .collect();
        let message = QuarterMedians::of(&leaky, 60_000)
            .judge(10.0, 8 * MIB)
            .expect_err("beyond the store, it leaks");
        assert!(message.contains("more than the store"), "{message}");
    }

    #[test]
    fn quarters_take_medians_not_peaks() {
        let mut samples = run(|_| 88 * MIB);
        samples[50].rss = 500 * MIB; // one wild sample in the last quarter
        let q = QuarterMedians::of(&samples, 60_000);
        assert_eq!(q.rss, [88 * MIB; 4]);
    }
}
