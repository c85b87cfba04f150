//! Telling a memory leak from a step, in memory sampled once a second over a soak.
//!
//! Ground rules. A healthy engine's memory is not flat: the store's slot arrays
//! and index tables grow in doubling steps while the held keys find their level,
//! and the held keys follow the throughput (abandoned keys linger for two ttls),
//! which moves when something else runs on the machine. A leak is different in
//! one way that the noise is not: it keeps growing. So the run is cut into four
//! quarters by time, the first is warm-up, and memory leaks only when the median
//! RSS rises from the second quarter to the third **and** from the third to the
//! fourth (each by more than a third of the limit), and by more than the limit
//! in all. One step, wherever it falls, moves only one of the two medians (the
//! other by no more than the noise); a steady leak moves both by half its total,
//! so the per-quarter bar costs nothing against one. Medians, not peaks, so one
//! high sample decides nothing.
//!
//! The store's held keys and allocated bytes are sampled beside RSS and named in
//! the verdict. The held keys wander with the throughput by several percent, and
//! the allocated bytes count capacity the process may not have touched yet (so
//! RSS minus them means nothing): neither decides, but a failure shows them, so
//! whoever reads it can tell RSS growing with the held keys (keys not freed)
//! from RSS growing beyond them.

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
}

impl QuarterMedians {
    /// Splits `samples` into four quarters of `run_ms` by their time and takes
    /// each quarter's medians. A quarter without samples has medians of 0.
    pub fn of(samples: &[MemorySample], run_ms: u64) -> Self {
        let mut medians = QuarterMedians::default();
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

    /// `Err` with what grew and by how much when RSS grew across both of the last
    /// two quarters and by more than `limit_percent` in all (see the module docs).
    pub fn judge(&self, limit_percent: f64) -> Result<(), String> {
        let [_, second, third, fourth] = self.rss;
        let step = limit_percent / 3.0;
        let persistent = percent(second, third) > step
            && percent(second, fourth) - percent(second, third) > step;
        let growth = self.rss_growth_percent();
        if !(persistent && growth > limit_percent) {
            return Ok(());
        }
        let held_growth = percent(self.held[1], self.held[3]);
        Err(format!(
            "memory kept growing across the last two quarters of the run: median RSS {} -> {} -> {} MiB \
             (+{growth:.1}%, more than --max-rss-growth {limit_percent}%); the store's held keys {} -> {} -> {} \
             ({held_growth:+.1}%), its allocated bytes {} -> {} -> {} MiB",
            mib(second),
            mib(third),
            mib(fourth),
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
        assert_eq!(q.judge(5.0), Ok(()));
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
            assert_eq!(q.judge(5.0), Ok(()), "step at {at} s: {q:?}");
        }
    }

    #[test]
    fn steady_growth_fails_naming_what_grew() {
        // 0.3 MiB a second: 9 MiB over the last half, about 10% of 90 MiB.
        let q = QuarterMedians::of(&run(|s| 80 * MIB + s * 3 * MIB / 10 + noise(s)), 60_000);
        let message = q.judge(5.0).expect_err("a leak must fail");
        assert!(message.contains("median RSS"), "{message}");
        assert!(
            message.contains("held keys 300000 -> 300000 -> 300000 (+0.0%)"),
            "{message}"
        );
        assert!(q.rss_growth_percent() > 5.0);
    }

    #[test]
    fn growth_under_the_limit_passes() {
        // 0.05 MiB a second: 1.5 MiB over the last half, under 2% of 88 MiB.
        let q = QuarterMedians::of(&run(|s| 88 * MIB + s * MIB / 20), 60_000);
        assert_eq!(q.judge(5.0), Ok(()));
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
            .judge(5.0)
            .expect_err("a leak must fail");
        assert!(
            message.contains("(+36."),
            "the held keys' growth is shown: {message}"
        );
    }

    #[test]
    fn quarters_take_medians_not_peaks() {
        let mut samples = run(|_| 88 * MIB);
        samples[50].rss = 500 * MIB; // one wild sample in the last quarter
        let q = QuarterMedians::of(&samples, 60_000);
        assert_eq!(q.rss, [88 * MIB; 4]);
    }
}
