//! otp-dudect: dudect-style constant-time checks of the code comparison and of
//! verify (Reparaz, Balasch and Verbauwhede, "Dude, is my code constant time?",
//! 2017).
//!
//! Each test times one operation over and over on inputs of two classes, the
//! class drawn at random for every measurement, and asks with Welch's t-test
//! whether the two classes' times differ (see `otpengine_benches::dudect`):
//!
//! - `ct-eq-fixed-vs-random`: `CodeDigest::ct_eq` of a fixed stored digest with
//!   itself (class 0) or with a random digest (class 1): does a match cost more
//!   or less than a mismatch?
//! - `ct-eq-first-vs-last-byte`: `ct_eq` of a random digest with one that differs
//!   in its first byte (class 0) or its last byte (class 1), in memory order: an
//!   early-exit comparison would stop at once for the first and run to the end
//!   for the last.
//! - `verify-first-vs-last-char`: `Engine::verify` of a wrong code that differs
//!   from the issued one in its first (class 0) or last (class 1) character: what
//!   an attacker who times the service would try, to learn a code character by
//!   character.
//!
//! Two controls (`--controls`) make sure the harness can see a leak at all: an
//! early-exit byte comparison of 16-byte arrays differing in the first or the last
//! byte, and verify followed by such a comparison of the typed and issued codes
//! (what a naive engine comparing plaintext codes would do). A control passes when
//! it is caught.
//!
//! Inputs are prepared in chunks before any of them is timed, so the preparation,
//! which differs by class, is never in a timed region; the timed region runs the
//! same instructions on the same addresses for both classes. The timer is
//! `std::time::Instant` (`clock_gettime` through the vDSO): portable, no
//! `unsafe`, and no coarser than `rdtsc` on the project's AMD EPYC machine, whose
//! TSC advances in steps of about 24 cycles (10 ns) either way. A pair of reads
//! costs 20 to 40 ns, the same for both classes; a measurement starts at a random
//! phase of the 10 ns tick, so the rounding is unbiased noise, not a shift. The
//! digest comparison, a nanosecond or two, is repeated `--batch` times per
//! measurement so it is not lost in the timer's cost and tick.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use otpengine_benches::dudect::{Dudect, Summary};
use otpengine_benches::SplitMix64;
use otpengine_core::digest::CodeDigest;
use otpengine_core::{
    Clock, Config, DigestAlgorithm, Engine, ManualClock, Verdict, MAX_ATTEMPTS_RANGE, TTL_RANGE,
};

/// Measurements prepared, then timed, then added to the statistics, at a time.
/// Small enough that a chunk's inputs stay in the L2 cache (10,000 x 16 bytes for
/// the digests), large enough that the warm-up chunk gives dudect's percentiles.
const CHUNK: usize = 10_000;
/// Keys the verify tests cycle through: one chunk verifies each key once.
const VERIFY_KEYS: usize = CHUNK;

#[derive(Parser, Debug)]
#[command(
    name = "otp-dudect",
    version,
    about = "dudect-style constant-time checks: Welch's t-test on the digest comparison and on verify"
)]
struct Args {
    /// Timed measurements per test (a warm-up chunk of 10,000 comes first and only
    /// sets the crop thresholds)
    #[arg(long, default_value_t = 1_000_000)]
    samples: u64,
    /// |t| at or above which a test reports a leak (dudect's "probably not
    /// constant time")
    #[arg(long, default_value_t = 4.5)]
    threshold: f64,
    /// Digest comparisons per measurement, so that a 1-2 ns comparison is not lost
    /// in the timer's 20-40 ns cost and 10 ns tick
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Tests to run, comma-separated [default: every test that is not a control]
    #[arg(long, value_enum, value_delimiter = ',')]
    test: Vec<TestName>,
    /// Also run the deliberately leaky controls, which pass only when they are caught
    #[arg(long)]
    controls: bool,
    /// The engine's digest for the verify tests
    #[arg(long, value_enum, default_value_t = Digest::Siphash)]
    digest: Digest,
    /// Seed for the classes and inputs [default: from the clock]
    #[arg(long)]
    seed: Option<u64>,
    /// Also print one JSON object on the last line of output
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Digest {
    /// SipHash-2-4 (the engine's default)
    Siphash,
    /// HMAC-SHA-256
    HmacSha256,
}

impl Digest {
    fn algorithm(self) -> DigestAlgorithm {
        match self {
            Digest::Siphash => DigestAlgorithm::SipHash24,
            Digest::HmacSha256 => DigestAlgorithm::HmacSha256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Digest::Siphash => "siphash",
            Digest::HmacSha256 => "hmac-sha256",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TestName {
    /// ct_eq: the stored digest itself vs a random digest
    CtEqFixedVsRandom,
    /// ct_eq: a digest differing in the first vs the last byte
    CtEqFirstVsLastByte,
    /// Engine::verify: a wrong code differing in the first vs the last character
    VerifyFirstVsLastChar,
    /// Control: early-exit compare of 16-byte arrays differing in the first vs the last byte
    ControlEarlyExit,
    /// Control: verify, then an early-exit compare of the typed and issued codes
    ControlVerifyPlaintext,
}

impl TestName {
    const ALL: [TestName; 5] = [
        TestName::CtEqFixedVsRandom,
        TestName::CtEqFirstVsLastByte,
        TestName::VerifyFirstVsLastChar,
        TestName::ControlEarlyExit,
        TestName::ControlVerifyPlaintext,
    ];

    fn name(self) -> &'static str {
        match self {
            TestName::CtEqFixedVsRandom => "ct-eq-fixed-vs-random",
            TestName::CtEqFirstVsLastByte => "ct-eq-first-vs-last-byte",
            TestName::VerifyFirstVsLastChar => "verify-first-vs-last-char",
            TestName::ControlEarlyExit => "control-early-exit",
            TestName::ControlVerifyPlaintext => "control-verify-plaintext",
        }
    }

    /// A control has a leak on purpose: it passes when the leak is seen.
    fn is_control(self) -> bool {
        matches!(
            self,
            TestName::ControlEarlyExit | TestName::ControlVerifyPlaintext
        )
    }

    /// Operations per measurement.
    fn ops(self, batch: u32) -> u32 {
        match self {
            TestName::VerifyFirstVsLastChar | TestName::ControlVerifyPlaintext => 1,
            _ => batch,
        }
    }
}

/// What a test times. `prepare` runs untimed and may differ by class; `measure`
/// must run the same code for both classes apart from the operation under test.
trait Target {
    /// Prepares the inputs of measurements `0..classes.len()` (class 0 or 1 each).
    fn prepare(&mut self, rng: &mut SplitMix64, classes: &[u8]);
    /// Times measurement `i` of the prepared ones, in nanoseconds.
    fn measure(&mut self, i: usize) -> u64;
    /// After a chunk: an error if an operation answered what it should not have.
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The time `op` takes, in nanoseconds. `Instant::now` is an opaque call and the
/// operations end in `black_box`, so nothing moves across the two clock reads.
#[inline(always)]
fn timed(op: impl FnOnce()) -> u64 {
    let start = Instant::now();
    op();
    start.elapsed().as_nanos() as u64
}

/// A comparison as naive code writes it: it stops at the first difference. (Not
/// `==` on the arrays: for 16 bytes that compiles to one wide comparison, with no
/// early exit, and the harness rightly finds no leak in it.)
#[inline(never)]
fn early_exit_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return false;
        }
    }
    true
}

/// `CodeDigest::ct_eq` on prepared pairs (stored, guess).
struct DigestCompare {
    fixed_vs_random: bool,
    fixed: CodeDigest,
    batch: u32,
    pairs: Vec<(CodeDigest, CodeDigest)>,
}

impl DigestCompare {
    fn new(fixed_vs_random: bool, batch: u32, rng: &mut SplitMix64) -> Self {
        DigestCompare {
            fixed_vs_random,
            fixed: CodeDigest(rng.next_u64()),
            batch,
            pairs: vec![(CodeDigest(0), CodeDigest(0)); CHUNK],
        }
    }
}

impl Target for DigestCompare {
    fn prepare(&mut self, rng: &mut SplitMix64, classes: &[u8]) {
        for (pair, &class) in self.pairs.iter_mut().zip(classes) {
            *pair = if self.fixed_vs_random {
                let guess = if class == 0 {
                    self.fixed
                } else {
                    CodeDigest(rng.next_u64())
                };
                (self.fixed, guess)
            } else {
                // Byte 0 in memory order is the low byte of the little-endian word.
                let stored = rng.next_u64();
                let flip = 1 + rng.below(255);
                let shift = if class == 0 { 0 } else { 56 };
                (CodeDigest(stored), CodeDigest(stored ^ (flip << shift)))
            };
        }
    }

    fn measure(&mut self, i: usize) -> u64 {
        let (stored, guess) = self.pairs[i];
        let batch = self.batch;
        timed(|| {
            for _ in 0..batch {
                black_box(black_box(stored).ct_eq(black_box(guess)));
            }
        })
    }
}

/// The leaky control: [`early_exit_eq`] on 16-byte arrays.
struct EarlyExit {
    batch: u32,
    pairs: Vec<([u8; 16], [u8; 16])>,
}

impl Target for EarlyExit {
    fn prepare(&mut self, rng: &mut SplitMix64, classes: &[u8]) {
        for (pair, &class) in self.pairs.iter_mut().zip(classes) {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            a[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            let mut b = a;
            let at = if class == 0 { 0 } else { 15 };
            b[at] ^= 1 + rng.below(255) as u8;
            *pair = (a, b);
        }
    }

    fn measure(&mut self, i: usize) -> u64 {
        let (a, b) = &self.pairs[i];
        let batch = self.batch;
        timed(|| {
            for _ in 0..batch {
                black_box(early_exit_eq(black_box(a), black_box(b)));
            }
        })
    }
}

/// `Engine::verify` of wrong codes for [`VERIFY_KEYS`] keys, each issued a code
/// outside the timed region. Limits are set so that every verify is an ordinary
/// counted mismatch: 100 attempts per code (the most allowed; the keys are issued
/// new codes before they run out), no failure budget, no issue limits, and a
/// manual clock that never moves, so nothing expires.
struct VerifyWrong {
    engine: Engine,
    /// With it, the control: an early-exit compare of typed and issued code too.
    plaintext_compare: bool,
    keys: Vec<[u8; 8]>,
    /// The codes issued, kept in plaintext by the harness alone.
    codes: Vec<[u8; 10]>,
    typed: Vec<[u8; 10]>,
    len: usize,
    /// Wrong verifies each key's code takes before the next would burn it.
    verifies_left: u32,
    /// Verdicts other than `Mismatch`: the harness would be timing something else.
    unexpected: u64,
}

impl VerifyWrong {
    fn new(plaintext_compare: bool, digest: DigestAlgorithm) -> Result<Self, String> {
        let config = Config {
            digest,
            ttl: TTL_RANGE.1,
            max_attempts: MAX_ATTEMPTS_RANGE.1,
            max_failures_per_key: 0,
            resend_cooldown: Duration::ZERO,
            max_issues_per_window: 0,
            clock: Clock::manual(&ManualClock::new()),
            reaper_interval: None,
            ..Config::default()
        };
        let engine = Engine::new(config).map_err(|e| e.to_string())?;
        let len = engine.code_length() as usize;
        let mut target = VerifyWrong {
            engine,
            plaintext_compare,
            keys: (0..VERIFY_KEYS as u64).map(u64::to_le_bytes).collect(),
            codes: vec![[0; 10]; VERIFY_KEYS],
            typed: vec![[0; 10]; VERIFY_KEYS],
            len,
            verifies_left: 0,
            unexpected: 0,
        };
        target.issue_all()?;
        Ok(target)
    }

    fn issue_all(&mut self) -> Result<(), String> {
        for (key, code) in self.keys.iter().zip(&mut self.codes) {
            let issued = self.engine.issue(key, "").map_err(|e| e.to_string())?;
            code[..self.len].copy_from_slice(issued.code.as_bytes());
        }
        self.verifies_left = MAX_ATTEMPTS_RANGE.1 - 1;
        Ok(())
    }
}

impl Target for VerifyWrong {
    fn prepare(&mut self, rng: &mut SplitMix64, classes: &[u8]) {
        assert!(classes.len() <= self.keys.len());
        if self.verifies_left == 0 {
            self.issue_all()
                .unwrap_or_else(|e| fail(&format!("issue failed: {e}")));
        }
        self.verifies_left -= 1;
        for ((typed, code), &class) in self.typed.iter_mut().zip(&self.codes).zip(classes) {
            *typed = *code;
            let at = if class == 0 { 0 } else { self.len - 1 };
            // Another digit, uniform over the nine wrong ones.
            let digit = u64::from(code[at] - b'0');
            typed[at] = b'0' + ((digit + 1 + rng.below(9)) % 10) as u8;
        }
    }

    fn measure(&mut self, i: usize) -> u64 {
        let key = &self.keys[i];
        let typed = &self.typed[i][..self.len];
        let code = &self.codes[i][..self.len];
        let mut verdict = None;
        let ns = timed(|| {
            verdict = Some(self.engine.verify(key, typed, ""));
            if self.plaintext_compare {
                black_box(early_exit_eq(black_box(typed), black_box(code)));
            }
        });
        if !matches!(verdict, Some(Ok(Verdict::Mismatch { .. }))) {
            self.unexpected += 1;
        }
        ns
    }

    fn check(&mut self) -> Result<(), String> {
        if self.unexpected > 0 {
            return Err(format!(
                "{} verifies of a wrong code did not answer Mismatch",
                self.unexpected
            ));
        }
        Ok(())
    }
}

/// Draws classes, prepares a chunk, then times it.
fn measure_chunk(
    target: &mut impl Target,
    rng: &mut SplitMix64,
    classes: &mut [u8],
    times: &mut [u64],
) -> Result<(), String> {
    for class in classes.iter_mut() {
        *class = (rng.next_u64() >> 63) as u8;
    }
    target.prepare(rng, classes);
    for (i, time) in times.iter_mut().enumerate() {
        *time = target.measure(i);
    }
    target.check()
}

/// What a run measured.
struct Measured {
    summary: Summary,
    /// Median time of a measurement of class 0 and class 1, in nanoseconds (the
    /// means are pulled up by interrupted measurements; the medians show the cost).
    medians: [u64; 2],
}

/// A warm-up chunk (caches, branch predictors and the CPU clock settle; its times
/// set the crop thresholds), then `samples` measurements into the statistics.
fn run(target: &mut impl Target, samples: u64, rng: &mut SplitMix64) -> Result<Measured, String> {
    let mut classes = vec![0u8; CHUNK];
    let mut times = vec![0u64; CHUNK];
    measure_chunk(target, rng, &mut classes, &mut times)?;
    let warmup: Vec<f64> = times.iter().map(|&t| t as f64).collect();
    let mut dudect = Dudect::new(&warmup);
    let histogram =
        || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    let mut histograms = [histogram(), histogram()];
    let mut done = 0;
    while done < samples {
        let n = (samples - done).min(CHUNK as u64) as usize;
        measure_chunk(target, rng, &mut classes[..n], &mut times[..n])?;
        for (&time, &class) in times[..n].iter().zip(&classes[..n]) {
            dudect.push(time as f64, usize::from(class));
            histograms[usize::from(class)].saturating_record(time.max(1));
        }
        done += n as u64;
    }
    Ok(Measured {
        summary: dudect.summary(),
        medians: histograms.map(|h| h.value_at_quantile(0.5)),
    })
}

struct Outcome {
    test: TestName,
    ops: u32,
    summary: Summary,
    medians: [u64; 2],
    /// About the smallest per-operation shift, in nanoseconds, that would have
    /// reached the threshold in the widest crop: what "no leak seen" rules out.
    resolution_ns: f64,
    /// Class 0 minus class 1 per operation in the widest crop, in nanoseconds.
    shift_ns: f64,
    seconds: f64,
    /// |t| reached the threshold.
    leak: bool,
}

impl Outcome {
    fn pass(&self) -> bool {
        self.leak == self.test.is_control()
    }
}

fn fail(message: &str) -> ! {
    eprintln!("otp-dudect: {message}");
    std::process::exit(2);
}

/// A JSON number; infinities (two classes without spread) become `null`.
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "null".to_string()
    }
}

fn main() {
    let args = Args::parse();
    if args.samples < 2 * dudect_min() {
        fail(&format!(
            "--samples must be at least {}, got {}",
            2 * dudect_min(),
            args.samples
        ));
    }
    if !(args.threshold > 0.0 && args.threshold.is_finite()) {
        fail(&format!(
            "--threshold must be a positive number, got {}",
            args.threshold
        ));
    }
    if args.batch == 0 {
        fail("--batch must be at least 1");
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id())
    });
    let tests: Vec<TestName> = if args.test.is_empty() {
        TestName::ALL
            .into_iter()
            .filter(|t| args.controls || !t.is_control())
            .collect()
    } else {
        args.test.clone()
    };

    println!(
        "otp-dudect: {} samples per test, threshold |t| {}, seed {seed}, {} digest compares per sample, verify with {}",
        args.samples,
        args.threshold,
        args.batch,
        args.digest.name()
    );
    println!(
        "  {:<26} {:>9} {:>9} {:>13} {:>7} {:>7} {:>8}  {:<17} {:>8} {:>8} {:>5}",
        "test",
        "class 0",
        "class 1",
        "median ns",
        "t raw",
        "t 2nd",
        "max |t|",
        "at",
        "shift ns",
        "res ns",
        "s"
    );
    let wall = Instant::now();
    let mut outcomes = Vec::new();
    for &test in &tests {
        let mut rng = SplitMix64::new(seed ^ test as u64);
        let start = Instant::now();
        let measured = match test {
            TestName::CtEqFixedVsRandom | TestName::CtEqFirstVsLastByte => {
                let fixed_vs_random = test == TestName::CtEqFixedVsRandom;
                let mut target = DigestCompare::new(fixed_vs_random, args.batch, &mut rng);
                run(&mut target, args.samples, &mut rng)
            }
            TestName::ControlEarlyExit => {
                let mut target = EarlyExit {
                    batch: args.batch,
                    pairs: vec![([0; 16], [0; 16]); CHUNK],
                };
                run(&mut target, args.samples, &mut rng)
            }
            TestName::VerifyFirstVsLastChar | TestName::ControlVerifyPlaintext => VerifyWrong::new(
                test == TestName::ControlVerifyPlaintext,
                args.digest.algorithm(),
            )
            .and_then(|mut target| run(&mut target, args.samples, &mut rng)),
        }
        .unwrap_or_else(|e| fail(&format!("{}: {e}", test.name())));
        let ops = test.ops(args.batch);
        let summary = measured.summary;
        let outcome = Outcome {
            test,
            ops,
            medians: measured.medians,
            resolution_ns: args.threshold * summary.body_standard_error / f64::from(ops),
            shift_ns: summary.body_difference / f64::from(ops),
            seconds: start.elapsed().as_secs_f64(),
            leak: summary.max_abs_t >= args.threshold,
            summary,
        };
        let s = &outcome.summary;
        println!(
            "  {:<26} {:>9} {:>9} {:>13} {:>7.2} {:>7.2} {:>8.2}  {:<17} {:>8.3} {:>8.3} {:>5.1}  {}",
            test.name(),
            s.counts[0],
            s.counts[1],
            format!("{} / {}", outcome.medians[0], outcome.medians[1]),
            s.t_raw,
            s.t_second_order,
            s.max_abs_t,
            s.max_at.to_string(),
            outcome.shift_ns,
            outcome.resolution_ns,
            outcome.seconds,
            match (test.is_control(), outcome.leak) {
                (false, false) => "no leak seen",
                (false, true) => "LEAK",
                (true, true) => "control caught",
                (true, false) => "CONTROL MISSED",
            }
        );
        let _ = std::io::stdout().flush();
        outcomes.push(outcome);
    }
    let wall = wall.elapsed().as_secs_f64();
    let ok = outcomes.iter().all(Outcome::pass);
    println!(
        "otp-dudect: {} in {wall:.1} s. max |t|: the largest over the raw times, {} crops and the second-order test (those with over {} samples per class); shift ns: class 0 minus class 1 per operation, res ns: about the smallest shift that would have reached |t| {} (both in the widest crop)",
        if ok { "passed" } else { "FAILED" },
        otpengine_benches::dudect::CROPS,
        dudect_min(),
        args.threshold
    );

    if args.json {
        let tests: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let s = &o.summary;
                format!(
                    concat!(
                        r#"{{"name":"{}","control":{},"samples":{},"class_counts":[{},{}],"ops_per_sample":{},"#,
                        r#""median_ns":[{},{}],"mean_ns":[{},{}],"t_raw":{},"t_second_order":{},"max_abs_t":{},"max_at":"{}","#,
                        r#""tests_counted":{},"shift_ns_per_op":{},"resolution_ns_per_op":{},"seconds":{:.3},"leak":{},"pass":{}}}"#
                    ),
                    o.test.name(),
                    o.test.is_control(),
                    s.counts[0] + s.counts[1],
                    s.counts[0],
                    s.counts[1],
                    o.ops,
                    o.medians[0],
                    o.medians[1],
                    json_num(s.means[0]),
                    json_num(s.means[1]),
                    json_num(s.t_raw),
                    json_num(s.t_second_order),
                    json_num(s.max_abs_t),
                    s.max_at,
                    s.tests_counted,
                    json_num(o.shift_ns),
                    json_num(o.resolution_ns),
                    o.seconds,
                    o.leak,
                    o.pass()
                )
            })
            .collect();
        println!(
            r#"{{"threshold":{},"seed":{seed},"samples_per_test":{},"batch":{},"digest":"{}","seconds":{wall:.3},"ok":{ok},"tests":[{}]}}"#,
            args.threshold,
            args.samples,
            args.batch,
            args.digest.name(),
            tests.join(",")
        );
    }
    let _ = std::io::stdout().flush();
    if !ok {
        for o in outcomes.iter().filter(|o| !o.pass()) {
            let s = &o.summary;
            if o.test.is_control() {
                eprintln!(
                    "otp-dudect: CONTROL MISSED: {}: max |t| = {:.2} < {}: the harness did not see a deliberate leak, so its passes mean nothing",
                    o.test.name(),
                    s.max_abs_t,
                    args.threshold
                );
            } else {
                eprintln!(
                    "otp-dudect: LEAK: {}: max |t| = {:.2} ({}) >= {} over {} samples",
                    o.test.name(),
                    s.max_abs_t,
                    s.max_at,
                    args.threshold,
                    s.counts[0] + s.counts[1]
                );
            }
        }
        std::process::exit(1);
    }
}

/// Samples per class a test needs before it counts.
fn dudect_min() -> u64 {
    otpengine_benches::dudect::MIN_PER_CLASS
}
