//! Shared pieces of the load generator and the benchmarks: a fast non-crypto
//! random source for picking keys, a Zipf sampler, the process's RSS, telling a
//! leak from a step in memory sampled over a soak, and the statistics of the
//! constant-time checks (`otp-dudect`).

pub mod dudect;
pub mod growth;
pub mod pumping;

/// SplitMix64: a tiny, fast generator for choosing keys and mistakes (the codes
/// themselves come from the engine's ChaCha).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Zipf-distributed ranks in [0, n): rank k is drawn with probability
/// proportional to 1 / (k + 1)^s. Rejection-inversion (Hörmann and Derflinger,
/// 1996): O(1) per draw, no table.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    threshold: f64,
}

impl Zipf {
    /// Ranks in [0, n) with exponent `s` (> 0, not 1 exactly; 0.99 is the usual "Zipf").
    pub fn new(n: u64, s: f64) -> Self {
        assert!(
            n >= 1 && s > 0.0 && (s - 1.0).abs() > 1e-9,
            "Zipf needs n >= 1 and s > 0, s != 1"
        );
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            threshold: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(z.n + 0.5);
        z.threshold = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// x^-s
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// The integral of h: (x^(1-s) - 1) / (1 - s).
    fn h_integral(&self, x: f64) -> f64 {
        ((1.0 - self.s) * x.ln()).exp_m1() / (1.0 - self.s)
    }

    fn h_integral_inverse(&self, y: f64) -> f64 {
        (((1.0 - self.s) * y).ln_1p() / (1.0 - self.s)).exp()
    }

    /// A rank in [0, n).
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            let u = self.h_n + rng.next_f64() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inverse(u);
            let k = x.round().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64 - 1;
            }
        }
    }
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`), or 0 elsewhere.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_in_the_expected_proportion() {
        let zipf = Zipf::new(1000, 0.99);
        let mut rng = SplitMix64::new(1);
        let mut counts = vec![0u64; 1000];
        for _ in 0..200_000 {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        // P(rank 0) / P(rank 1) = 2^0.99 ~ 1.99; P(0) / P(9) = 10^0.99 ~ 9.77.
        let r01 = counts[0] as f64 / counts[1] as f64;
        let r09 = counts[0] as f64 / counts[9] as f64;
        assert!((1.8..2.2).contains(&r01), "{r01}");
        assert!((8.5..11.0).contains(&r09), "{r09}");
        assert!(counts.iter().all(|&c| c > 0), "every rank is drawn");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(7);
        assert!((0..10_000).all(|_| rng.below(3) < 3));
    }
}
