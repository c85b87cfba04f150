//! The statistics of dudect (Reparaz, Balasch and Verbauwhede, "Dude, is my code
//! constant time?", DATE 2017), as `otp-dudect` uses them.
//!
//! Each measurement is the time of one operation on an input of class 0 or 1,
//! the class drawn at random for every measurement. If the operation's time does
//! not depend on the class, the two classes' time distributions are the same and
//! Welch's t statistic between them stays near zero (it is approximately standard
//! normal); a leak makes |t| grow with the square root of the number of
//! measurements. Because classes are drawn independently of everything else, noise
//! from other processes, interrupts or frequency changes lands on both classes
//! alike: it widens the distributions but does not shift one against the other.
//!
//! As in dudect, the test runs on the raw times, on the times cropped at 100
//! percentiles (the long tail of interrupted measurements hides a shift in the
//! body; the crop keeps only measurements below a threshold, and the threshold
//! does not depend on the class), and on the squared deviation from the class
//! mean (a second-order test: a leak in the spread rather than the mean).

/// Welch's t-test between two classes, fed one measurement at a time: counts,
/// means and sums of squared deviations kept by Welford's method, so a million
/// measurements need no storage and lose no precision to cancellation.
#[derive(Clone, Debug, Default)]
pub struct Welch {
    n: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    /// Adds a measurement `x` of `class` (0 or 1).
    #[inline]
    pub fn push(&mut self, x: f64, class: usize) {
        let n = self.n[class] + 1.0;
        let delta = x - self.mean[class];
        self.n[class] = n;
        self.mean[class] += delta / n;
        self.m2[class] += delta * (x - self.mean[class]);
    }

    /// Measurements of `class` so far.
    pub fn count(&self, class: usize) -> u64 {
        self.n[class] as u64
    }

    /// Mean of `class` (0 before the first measurement).
    pub fn mean(&self, class: usize) -> f64 {
        self.mean[class]
    }

    /// Sample variance of `class` (0 with fewer than two measurements).
    pub fn variance(&self, class: usize) -> f64 {
        if self.n[class] < 2.0 {
            0.0
        } else {
            self.m2[class] / (self.n[class] - 1.0)
        }
    }

    /// The standard error of the difference of means, sqrt(var0 / n0 + var1 / n1).
    pub fn standard_error(&self) -> f64 {
        (self.variance(0) / self.n[0] + self.variance(1) / self.n[1]).sqrt()
    }

    /// Welch's t = (mean0 - mean1) / sqrt(var0 / n0 + var1 / n1); 0 until both
    /// classes have two measurements. Two classes with no spread at all and
    /// different means give an infinite t (a leak, however small).
    pub fn t(&self) -> f64 {
        if self.n[0] < 2.0 || self.n[1] < 2.0 {
            return 0.0;
        }
        let diff = self.mean[0] - self.mean[1];
        let se = self.standard_error();
        if se == 0.0 {
            return if diff == 0.0 {
                0.0
            } else {
                diff.signum() * f64::INFINITY
            };
        }
        diff / se
    }
}

/// Crop thresholds, as in dudect.
pub const CROPS: usize = 100;
/// A test enters the maximum only once each class has more measurements than
/// this (dudect's `ENOUGH_MEASUREMENTS`): the strongest crops keep a few percent
/// of the data, too little for t to mean anything in a short run.
pub const MIN_PER_CLASS: u64 = 10_000;

/// Which of the tests gave a statistic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TestKind {
    /// All measurements.
    Raw,
    /// Measurements below the `percentile`-th percentile of the warm-up times.
    Crop {
        /// Index of the crop, 0..CROPS (0 keeps the least).
        index: usize,
        /// Share of the warm-up measurements below the threshold, in percent.
        percentile: f64,
    },
    /// Squared deviations from the class mean (a difference in spread).
    SecondOrder,
}

impl std::fmt::Display for TestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestKind::Raw => f.write_str("raw"),
            TestKind::Crop { percentile, .. } => write!(f, "cropped at p{percentile:.1}"),
            TestKind::SecondOrder => f.write_str("second order"),
        }
    }
}

/// dudect's battery: the raw test, [`CROPS`] cropped tests and the second-order test.
#[derive(Clone, Debug)]
pub struct Dudect {
    /// Ascending time thresholds; crop i keeps measurements below `thresholds[i]`.
    thresholds: Vec<f64>,
    percentiles: Vec<f64>,
    raw: Welch,
    cropped: Vec<Welch>,
    second: Welch,
}

/// The outcome of a [`Dudect`] battery.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Measurements of class 0 and class 1.
    pub counts: [u64; 2],
    /// Mean time of class 0 and class 1, in the measurements' unit.
    pub means: [f64; 2],
    /// t on all measurements.
    pub t_raw: f64,
    /// t of the second-order test.
    pub t_second_order: f64,
    /// The largest |t| of the tests with enough measurements.
    pub max_abs_t: f64,
    /// The test that gave it.
    pub max_at: TestKind,
    /// How many tests had enough measurements to count.
    pub tests_counted: usize,
    /// The standard error of the difference of class means in the widest crop (all
    /// but the slowest 0.1% of the warm-up's times): times the threshold, about the
    /// smallest shift of every measurement (in the measurements' unit) that this
    /// crop alone would flag. The narrower crops can be more sensitive still, but
    /// over coarse timer ticks their variances say little about a shift.
    pub body_standard_error: f64,
    /// Mean of class 0 minus mean of class 1 in that crop: the size of a leak, or
    /// of the noise when there is none.
    pub body_difference: f64,
}

impl Dudect {
    /// A battery whose crop thresholds are dudect's percentiles of `warmup`,
    /// measurements taken before the counted ones and used for nothing else:
    /// crop i keeps times below the `1 - 0.5^(10 (i + 1) / CROPS)` quantile, so the
    /// crops run from the fastest 6.7% to all but a sliver of the tail.
    ///
    /// # Panics
    /// If `warmup` is empty.
    pub fn new(warmup: &[f64]) -> Self {
        assert!(!warmup.is_empty(), "the crop thresholds need warm-up times");
        let mut sorted = warmup.to_vec();
        sorted.sort_by(f64::total_cmp);
        let percentiles: Vec<f64> = (0..CROPS)
            .map(|i| 1.0 - 0.5f64.powf(10.0 * (i + 1) as f64 / CROPS as f64))
            .collect();
        let thresholds = percentiles
            .iter()
            .map(|p| sorted[((p * sorted.len() as f64) as usize).min(sorted.len() - 1)])
            .collect();
        Dudect {
            thresholds,
            percentiles: percentiles.iter().map(|p| p * 100.0).collect(),
            raw: Welch::default(),
            cropped: vec![Welch::default(); CROPS],
            second: Welch::default(),
        }
    }

    /// Adds a measurement `x` of `class` (0 or 1) to every test it belongs to.
    pub fn push(&mut self, x: f64, class: usize) {
        self.raw.push(x, class);
        // Thresholds ascend: the crops that keep x are a suffix.
        let first = self.thresholds.partition_point(|&limit| x >= limit);
        for test in &mut self.cropped[first..] {
            test.push(x, class);
        }
        // As dudect: centre on the running class mean once it has settled.
        if self.raw.count(0) > MIN_PER_CLASS {
            let centred = x - self.raw.mean(class);
            self.second.push(centred * centred, class);
        }
    }

    /// The statistics so far.
    pub fn summary(&self) -> Summary {
        let mut max_abs_t = 0.0;
        let mut max_at = TestKind::Raw;
        let mut tests_counted = 0;
        let tests = std::iter::once((TestKind::Raw, &self.raw))
            .chain(self.cropped.iter().enumerate().map(|(index, w)| {
                let percentile = self.percentiles[index];
                (TestKind::Crop { index, percentile }, w)
            }))
            .chain(std::iter::once((TestKind::SecondOrder, &self.second)));
        for (kind, w) in tests {
            if w.count(0) <= MIN_PER_CLASS || w.count(1) <= MIN_PER_CLASS {
                continue;
            }
            tests_counted += 1;
            let t = w.t().abs();
            if t > max_abs_t {
                max_abs_t = t;
                max_at = kind;
            }
        }
        Summary {
            counts: [self.raw.count(0), self.raw.count(1)],
            means: [self.raw.mean(0), self.raw.mean(1)],
            t_raw: self.raw.t(),
            t_second_order: self.second.t(),
            max_abs_t,
            max_at,
            tests_counted,
            body_standard_error: self.cropped[CROPS - 1].standard_error(),
            body_difference: self.cropped[CROPS - 1].mean(0) - self.cropped[CROPS - 1].mean(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    /// Two-pass reference: the textbook formulas on stored data.
    fn reference_t(a: &[f64], b: &[f64]) -> f64 {
        let stats = |v: &[f64]| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
            (n, mean, var)
        };
        let ((na, ma, va), (nb, mb, vb)) = (stats(a), stats(b));
        (ma - mb) / (va / na + vb / nb).sqrt()
    }

    #[test]
    fn welford_matches_the_two_pass_formulas() {
        let mut rng = SplitMix64::new(3);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut w = Welch::default();
        for _ in 0..10_000 {
            // A spread of 10 on top of a large offset, as timings are (a little
            // spread, far from zero), only more so.
            let class = (rng.next_u64() & 1) as usize;
            let x = 1e6 + rng.next_f64() * 10.0 + 0.1 * class as f64;
            w.push(x, class);
            // Exact (Sterbenz's lemma): the reference works on small numbers.
            let shifted = x - 1e6;
            if class == 0 {
                a.push(shifted);
            } else {
                b.push(shifted);
            }
        }
        // The textbook sum-of-squares formula would subtract two numbers near 1e16
        // to get one near 1e5; Welford's updates never form such numbers.
        let (t, want) = (w.t(), reference_t(&a, &b));
        assert!(
            (t - want).abs() < 1e-8 * want.abs().max(1.0),
            "{t} vs {want}"
        );
        assert_eq!(w.count(0) + w.count(1), 10_000);
    }

    #[test]
    fn same_distribution_gives_small_t_and_a_shift_gives_large_t() {
        let mut rng = SplitMix64::new(11);
        let warmup: Vec<f64> = (0..10_000).map(|_| 100.0 + rng.next_f64() * 20.0).collect();
        let (mut same, mut shifted) = (Dudect::new(&warmup), Dudect::new(&warmup));
        for _ in 0..200_000 {
            let class = (rng.next_u64() & 1) as usize;
            let x = 100.0 + rng.next_f64() * 20.0;
            same.push(x, class);
            shifted.push(x + 0.2 * class as f64, class);
        }
        let (same, shifted) = (same.summary(), shifted.summary());
        assert!(same.max_abs_t < 4.5, "{same:?}");
        // A 1% shift of the mean over 200,000 measurements: t near -8.
        assert!(shifted.max_abs_t > 4.5, "{shifted:?}");
        assert!(shifted.t_raw < 0.0, "class 1 is slower: negative t");
        assert_eq!(same.tests_counted, shifted.tests_counted);
    }

    #[test]
    fn crops_keep_the_fastest_measurements() {
        let warmup: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut d = Dudect::new(&warmup);
        assert!(d.thresholds.windows(2).all(|w| w[0] <= w[1]));
        // The first crop keeps the fastest 6.7%.
        assert_eq!(d.thresholds[0], 66.0);
        d.push(70.0, 0);
        assert_eq!(d.cropped[0].count(0), 0);
        assert_eq!(d.cropped[CROPS - 1].count(0), 1);
        assert_eq!(d.raw.count(0), 1);
    }

    #[test]
    fn no_spread_and_different_means_is_an_infinite_t() {
        let mut w = Welch::default();
        for _ in 0..3 {
            w.push(5.0, 0);
            w.push(6.0, 1);
        }
        assert_eq!(w.t(), f64::NEG_INFINITY);
    }
}
