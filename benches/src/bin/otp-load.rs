//! otp-load: simulated users on the embedded engine, on every core.
//!
//! Each user is given a code before the timed run (so the store holds `--keys`
//! live entries), then, over and over: types the code (`--wrong` of first
//! attempts are mistyped, then the right code follows), and asks for a new code
//! once the old one is used up. Every call, issue or verify, counts as one call.
//! Users are split between threads (user u belongs to thread u % threads), so
//! every thread knows exactly which answer each call should get; the answers are
//! tallied, checked against the engine's own counters at the end, and any
//! disagreement is an error exit.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use otpengine_benches::growth::{MemorySample, QuarterMedians};
use otpengine_benches::{rss_bytes, SplitMix64, Zipf};
use otpengine_core::{Config, Engine, Error, RedisOptions, Secret, Stats, Verdict};

/// One call in this many has its latency recorded (two clock reads cost about
/// as much as a fast call; sampling keeps them from halving the throughput).
const LATENCY_SAMPLE: u64 = 8;
/// Calls between two updates of the shared progress counter.
const PUBLISH_EVERY: u64 = 1024;
/// Bytes the generator itself keeps per user (code, flags, key generation), left
/// out of the engine's bytes per entry.
const GENERATOR_BYTES_PER_USER: u64 = 15;

#[derive(Parser, Debug)]
#[command(
    name = "otp-load",
    version,
    about = "Mixed issue/verify load on the embedded otpengine, with a report"
)]
struct Args {
    /// Worker threads [default: every core]
    #[arg(long)]
    threads: Option<usize>,
    /// Length of the timed run, in seconds
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Simulated users; each is given a code before the run starts
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// How users are picked for each step
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    dist: Dist,
    /// Share of first attempts that are mistyped, 0 to 1
    #[arg(long, default_value_t = 0.1)]
    wrong: f64,
    /// Code ttl, in seconds
    #[arg(long, default_value_t = 300.0)]
    ttl: f64,
    /// Turn the engine's default per-key limits on (cooldown, window, failure
    /// budget); by default they are off, to measure issue and verify themselves
    #[arg(long)]
    limits: bool,
    /// Also print one JSON object on the last line of output
    #[arg(long)]
    json: bool,
    /// Share of steps in which the user abandons its key, pending code and all, and
    /// starts over under a fresh one, 0 to 1 (a churning key space, for soaks)
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Fail if memory leaks: the median RSS rises across each of the run's last
    /// two quarters by more than half this many percent of the second quarter's
    /// (the first is warm-up; one step is not a leak), and ends above what the
    /// process had before plus the store's largest allocation. Run with
    /// MALLOC_MMAP_THRESHOLD_=131072 (make soak does), or glibc keeps freed tables
    /// resident
    #[arg(long)]
    max_rss_growth: Option<f64>,
    /// Test only: leak this many bytes per call (in written 4 KiB blocks), to show
    /// that --max-rss-growth catches a leak
    #[arg(long, hide = true, default_value_t = 0)]
    leak_bytes_per_call: u64,
    /// Run against the Redis backend at this URL (redis://host:port/db, or
    /// redis+cluster://host:port,...) instead of the embedded store; each run
    /// uses a fresh namespace and a random secret. Use far fewer --keys: every
    /// call is a round trip
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// With --redis: keep the store's key indexes (`RedisOptions::exact_counts`),
    /// so that live and held keys are counted (they read 0 without)
    #[arg(long)]
    redis_exact_counts: bool,
    /// Make the calls in batches of this many users (`issue_many` for those
    /// who need a code, `verify_many` for those who have one; each item counts
    /// as a call) instead of one at a time; 0: one at a time. Latency is then
    /// per batch, divided by its items
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Instead of the users above: an SMS-pumping bot (fresh premium numbers,
    /// one prefix, a few addresses) beside ordinary users, with these scope
    /// issue budgets per hour, e.g. `ip:1000` or `ip:1000,prefix:50000`
    /// (names: ip, prefix, global). Reports what each side was issued; fails
    /// if the bot got more than its scopes allow or (with ip alone) a user was
    /// refused
    #[arg(long, value_name = "NAME:N,...")]
    scopes: Option<String>,
    /// With --scopes: the addresses the bot sends from
    #[arg(long, default_value_t = 4)]
    bot_ips: u32,
    /// With --scopes: the share of steps that are the bot's, 0 to 1
    #[arg(long, default_value_t = 0.5)]
    bot_share: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dist {
    /// Every user equally likely
    Uniform,
    /// A few users very often, most rarely (exponent 0.99)
    Zipf,
}

impl Dist {
    fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipf => "zipf",
        }
    }
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    calls: u64,
    issued: u64,
    verified: u64,
    mismatch: u64,
    locked: u64,
    expired: u64,
    not_found: u64,
    rate_limited: u64,
    capacity_exceeded: u64,
    /// A verdict no correct engine gives (e.g. the right code answered Mismatch).
    surprises: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.calls += o.calls;
        self.issued += o.issued;
        self.verified += o.verified;
        self.mismatch += o.mismatch;
        self.locked += o.locked;
        self.expired += o.expired;
        self.not_found += o.not_found;
        self.rate_limited += o.rate_limited;
        self.capacity_exceeded += o.capacity_exceeded;
        self.surprises += o.surprises;
    }

    fn answers(&self) -> u64 {
        self.issued
            + self.verified
            + self.mismatch
            + self.locked
            + self.expired
            + self.not_found
            + self.rate_limited
            + self.capacity_exceeded
    }
}

/// A thread's users: the code each holds, and whether a mistyped attempt is due.
/// One simulated user, 16 bytes: everything the generator reads for a call sits
/// in one cache line, so the generator adds one memory miss per call, not three.
#[derive(Clone, Copy, Default)]
struct User {
    code: [u8; 10],
    /// bit 0: holds a pending code; bit 1: will mistype it first.
    flags: u8,
    /// How many times the user has moved to a fresh key (`--churn`).
    generation: u32,
}

const _: () = assert!(std::mem::size_of::<User>() == 16);

const PENDING: u8 = 1;
const MISTYPE: u8 = 2;

struct Worker {
    engine: Arc<Engine>,
    thread: u64,
    threads: u64,
    users: Vec<User>,
    rng: SplitMix64,
    zipf: Option<Zipf>,
    wrong: f64,
    churn: f64,
    /// Codes can be forgotten during the run (twice the ttl is shorter than the
    /// run): then a user who comes back late rightly hears NotFound.
    forgettable: bool,
    /// Users of all threads together: key ids of one generation never collide
    /// with those of another.
    total_users: u64,
    issue_latency: Histogram<u64>,
    verify_latency: Histogram<u64>,
    tally: Tally,
    /// `--leak-bytes-per-call`, and the bytes owed to the leak so far.
    leak_bytes_per_call: u64,
    leak_owed: u64,
}

/// Bytes of one block of the test-only leak: whole pages, written, so each one
/// shows in RSS.
const LEAK_BLOCK: u64 = 4096;

impl Worker {
    fn key(&self, local: usize) -> [u8; 8] {
        let user = local as u64 * self.threads + self.thread;
        (u64::from(self.users[local].generation) * self.total_users + user).to_le_bytes()
    }

    fn pick(&mut self) -> usize {
        let n = self.users.len() as u64;
        match &self.zipf {
            Some(z) => z.sample(&mut self.rng) as usize,
            None => self.rng.below(n) as usize,
        }
    }

    fn issue(&mut self, i: usize) {
        let key = self.key(i);
        let timed = self.tally.calls.is_multiple_of(LATENCY_SAMPLE);
        let start = timed.then(Instant::now);
        let result = self.engine.issue(key, "");
        if let Some(start) = start {
            let _ = self.issue_latency.record(start.elapsed().as_nanos() as u64);
        }
        self.record_issue(i, result);
    }

    fn record_issue(&mut self, i: usize, result: Result<otpengine_core::Issued, Error>) {
        self.tally.calls += 1;
        match result {
            Ok(issued) => {
                self.tally.issued += 1;
                self.users[i].code[..issued.code.len()].copy_from_slice(issued.code.as_bytes());
                let mistype = self.rng.next_f64() < self.wrong;
                self.users[i].flags = PENDING | if mistype { MISTYPE } else { 0 };
            }
            Err(Error::RateLimited { .. }) => self.tally.rate_limited += 1,
            Err(Error::Locked { .. }) => self.tally.locked += 1,
            Err(Error::CapacityExceeded { .. }) => self.tally.capacity_exceeded += 1,
            Err(e) => panic!("issue failed: {e}"),
        }
    }

    /// What user `i` types now: the code, or (mistyping) one digit off it.
    fn typed(&self, i: usize) -> [u8; 10] {
        let mut typed = self.users[i].code;
        if self.users[i].flags & MISTYPE != 0 {
            // One digit off: the same shape, never the right code.
            typed[0] = if typed[0] == b'9' { b'0' } else { typed[0] + 1 };
        }
        typed
    }

    fn verify(&mut self, i: usize, code_len: usize) {
        let key = self.key(i);
        let typed = self.typed(i);
        let timed = self.tally.calls.is_multiple_of(LATENCY_SAMPLE);
        let start = timed.then(Instant::now);
        let verdict = self
            .engine
            .verify(key, &typed[..code_len], "")
            .expect("valid key");
        if let Some(start) = start {
            let _ = self
                .verify_latency
                .record(start.elapsed().as_nanos() as u64);
        }
        self.record_verify(i, verdict);
    }

    /// One step for `batch` distinct users: one `issue_many` for those who
    /// need a code, one `verify_many` for those who have one.
    fn step_batch(&mut self, batch: usize, code_len: usize) {
        let mut picked: Vec<usize> = (0..batch).map(|_| self.pick()).collect();
        picked.sort_unstable();
        picked.dedup();
        let (verifying, issuing): (Vec<usize>, Vec<usize>) = picked
            .into_iter()
            .partition(|&i| self.users[i].flags & PENDING != 0);
        if !issuing.is_empty() {
            let keys: Vec<[u8; 8]> = issuing.iter().map(|&i| self.key(i)).collect();
            let start = Instant::now();
            let results = self.engine.issue_many(&keys, "");
            let each = start.elapsed().as_nanos() as u64 / issuing.len() as u64;
            let _ = self.issue_latency.record(each.max(1));
            for (&i, result) in issuing.iter().zip(results) {
                self.record_issue(i, result);
            }
        }
        if !verifying.is_empty() {
            let typed: Vec<([u8; 8], [u8; 10])> = verifying
                .iter()
                .map(|&i| (self.key(i), self.typed(i)))
                .collect();
            let items = typed.iter().map(|(k, t)| (k, &t[..code_len], ""));
            let start = Instant::now();
            let verdicts = self.engine.verify_many(items);
            let each = start.elapsed().as_nanos() as u64 / verifying.len() as u64;
            let _ = self.verify_latency.record(each.max(1));
            for (&i, verdict) in verifying.iter().zip(verdicts) {
                self.record_verify(i, verdict.expect("valid key"));
            }
        }
    }

    fn record_verify(&mut self, i: usize, verdict: Verdict) {
        let mistype = self.users[i].flags & MISTYPE != 0;
        self.tally.calls += 1;
        match verdict {
            Verdict::Verified => self.tally.verified += 1,
            Verdict::Mismatch { .. } => self.tally.mismatch += 1,
            Verdict::Locked { .. } => self.tally.locked += 1,
            Verdict::Expired => self.tally.expired += 1,
            Verdict::NotFound => self.tally.not_found += 1,
            _ => {} // a verdict this generator does not know: a surprise, below
        }
        let expected = match verdict {
            Verdict::Verified => !mistype,
            Verdict::Mismatch { .. } => mistype,
            // Possible with --limits (failure budget) or a short --ttl.
            Verdict::Locked { .. } | Verdict::Expired => true,
            Verdict::NotFound => self.forgettable,
            _ => false,
        };
        if !expected {
            self.tally.surprises += 1;
        }
        self.users[i].flags = match verdict {
            Verdict::Mismatch { .. } => PENDING, // the right code comes next
            _ => 0,                              // used up: ask for a new one
        };
    }

    fn run(&mut self, stop: &AtomicBool, progress: &AtomicU64, code_len: usize, batch: usize) {
        let start = Instant::now();
        let mut published = 0;
        while !stop.load(Ordering::Relaxed) {
            if batch > 0 {
                self.step_batch(batch, code_len);
                if self.tally.calls - published >= PUBLISH_EVERY {
                    progress.fetch_add(self.tally.calls - published, Ordering::Relaxed);
                    published = self.tally.calls;
                }
                continue;
            }
            let i = self.pick();
            if self.churn > 0.0 && self.rng.next_f64() < self.churn {
                // The user walks away, pending code and all, and starts over under a
                // fresh key: the abandoned state must expire and be reclaimed.
                self.users[i].generation = self.users[i].generation.wrapping_add(1);
                self.users[i].flags = 0;
            }
            if self.users[i].flags & PENDING != 0 {
                self.verify(i, code_len);
            } else {
                self.issue(i);
            }
            if self.leak_bytes_per_call > 0 {
                self.leak();
            }
            if self.tally.calls - published >= PUBLISH_EVERY {
                progress.fetch_add(self.tally.calls - published, Ordering::Relaxed);
                published = self.tally.calls;
            }
        }
        progress.fetch_add(self.tally.calls - published, Ordering::Relaxed);
        self.tally.elapsed = start.elapsed();
    }

    /// The test-only leak: blocks that are written and never freed.
    fn leak(&mut self) {
        self.leak_owed += self.leak_bytes_per_call;
        while self.leak_owed >= LEAK_BLOCK {
            self.leak_owed -= LEAK_BLOCK;
            // black_box: an allocation nobody reads may be elided by the optimiser.
            std::hint::black_box(Box::leak(
                vec![0xA5u8; LEAK_BLOCK as usize].into_boxed_slice(),
            ));
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn fail(message: &str) -> ! {
    eprintln!("otp-load: {message}");
    std::process::exit(2);
}

/// `--scopes`: the pumping bot beside ordinary users (`otpengine_benches::pumping`).
fn pumping(args: &Args, scopes: &str, threads: usize) {
    use otpengine_benches::pumping::{run, PumpingRun, PumpingScopes};
    let scopes = PumpingScopes::parse(scopes).unwrap_or_else(|e| fail(&e));
    if !(0.0..=1.0).contains(&args.bot_share) {
        fail(&format!(
            "--bot-share must be between 0 and 1, got {}",
            args.bot_share
        ));
    }
    if args.bot_ips == 0 || args.bot_ips > 256 {
        fail(&format!(
            "--bot-ips must be between 1 and 256, got {}",
            args.bot_ips
        ));
    }
    let report = run(&PumpingRun {
        scopes: scopes.clone(),
        threads,
        seconds: args.seconds,
        bot_ips: args.bot_ips,
        bot_share: args.bot_share,
    })
    .unwrap_or_else(|e| fail(&format!("the engine refused the scopes: {e}")));
    println!(
        "otp-load --scopes: {:.1} s, {threads} threads, {:.0} calls/s",
        args.seconds, report.calls_per_sec
    );
    println!(
        "  bot:   {} issues asked, {} sent ({} allowed by its scopes), {} refused ({:.2}% refused)",
        report.bot_attempts,
        report.bot_issued,
        report.bot_budget,
        report.bot_refused,
        100.0 * report.bot_refused as f64 / report.bot_attempts.max(1) as f64
    );
    println!(
        "  users: {} issues asked, {} sent, {} refused, {} codes verified",
        report.user_attempts, report.user_issued, report.user_refused, report.user_verified
    );
    let holds = report.holds(&scopes);
    if args.json {
        println!(
            r#"{{"scopes":{:?},"bot_attempts":{},"bot_issued":{},"bot_budget":{},"bot_refused":{},"user_attempts":{},"user_issued":{},"user_refused":{},"user_verified":{},"calls_per_sec":{:.0},"holds":{}}}"#,
            args.scopes.as_deref().unwrap_or_default(),
            report.bot_attempts,
            report.bot_issued,
            report.bot_budget,
            report.bot_refused,
            report.user_attempts,
            report.user_issued,
            report.user_refused,
            report.user_verified,
            report.calls_per_sec,
            holds
        );
    }
    if !holds {
        fail("the scopes did not hold: the bot got more than its budget, or a user was refused");
    }
}

fn main() {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.wrong) {
        fail(&format!(
            "--wrong must be between 0 and 1, got {}",
            args.wrong
        ));
    }
    if !(0.0..=1.0).contains(&args.churn) {
        fail(&format!(
            "--churn must be between 0 and 1, got {}",
            args.churn
        ));
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        fail(&format!(
            "--seconds must be a positive number, got {}",
            args.seconds
        ));
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 || args.keys < threads as u64 {
        fail(&format!(
            "--threads must be between 1 and --keys, got {threads}"
        ));
    }
    if let Some(scopes) = &args.scopes {
        pumping(&args, scopes, threads);
        return;
    }
    let rss_before = rss_bytes();

    let mut config = Config {
        ttl: Duration::try_from_secs_f64(args.ttl)
            .unwrap_or_else(|_| fail("--ttl must be a positive number")),
        capacity: (args.keys * 2).max(Config::default().capacity),
        ..Config::default()
    };
    if !args.limits {
        config.resend_cooldown = Duration::ZERO;
        config.max_issues_per_window = 0;
        config.max_failures_per_key = 0;
    }
    let engine = match &args.redis {
        None => Engine::new(config),
        Some(url) => {
            let namespace = format!(
                "otp-load-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            );
            Engine::new_redis(
                config,
                RedisOptions {
                    namespace,
                    exact_counts: args.redis_exact_counts,
                    ..RedisOptions::new(url.as_str(), Secret::random())
                },
            )
        }
    };
    let engine = Arc::new(engine.unwrap_or_else(|e| fail(&e.to_string())));
    let code_len = engine.code_length() as usize;

    // Every user gets a code before the clock starts, each thread its own users.
    let preload = Instant::now();
    let mut workers: Vec<Worker> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let engine = Arc::clone(&engine);
                let n = (args.keys - t).div_ceil(threads as u64) as usize;
                let (wrong, dist, churn) = (args.wrong, args.dist, args.churn);
                let leak_bytes_per_call = args.leak_bytes_per_call;
                s.spawn(move || {
                    let mut w = Worker {
                        engine,
                        thread: t,
                        threads: threads as u64,
                        users: vec![User::default(); n],
                        rng: SplitMix64::new(0x5EED ^ t),
                        zipf: (dist == Dist::Zipf).then(|| Zipf::new(n as u64, 0.99)),
                        wrong,
                        churn: 0.0, // set after the preload gives every user a first key
                        forgettable: 2.0 * args.ttl < args.seconds,
                        total_users: args.keys,
                        issue_latency: histogram(),
                        verify_latency: histogram(),
                        tally: Tally::default(),
                        leak_bytes_per_call: 0, // not during the preload
                        leak_owed: 0,
                    };
                    for i in 0..n {
                        w.issue(i);
                    }
                    w.tally = Tally::default();
                    w.issue_latency.reset();
                    w.churn = churn;
                    w.leak_bytes_per_call = leak_bytes_per_call;
                    w
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("preload thread"))
            .collect()
    });
    let preload = preload.elapsed();
    let stats_before = engine.stats();

    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let go = Barrier::new(threads + 1);
    let bar = ProgressBar::new((args.seconds * 1000.0) as u64).with_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut memory_samples: Vec<MemorySample> = Vec::new();
    let sample_memory = |start: Instant| MemorySample {
        at_ms: start.elapsed().as_millis() as u64,
        rss: rss_bytes(),
        store_bytes: engine.memory_usage().total() as u64,
        held: engine.stats().held,
    };
    let wall = std::thread::scope(|s| {
        for w in workers.iter_mut() {
            let (stop, progress, go, batch) = (&stop, &progress, &go, args.batch);
            s.spawn(move || {
                go.wait();
                w.run(stop, progress, code_len, batch);
            });
        }
        go.wait();
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(args.seconds);
        let mut next_sample = start;
        while Instant::now() < end {
            if Instant::now() >= next_sample {
                memory_samples.push(sample_memory(start));
                next_sample += Duration::from_secs(1);
            }
            std::thread::sleep(
                Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
            );
            let elapsed = start.elapsed();
            bar.set_position(elapsed.as_millis() as u64);
            let rate = progress.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
            bar.set_message(format!("{:.2} M calls/s", rate / 1e6));
        }
        stop.store(true, Ordering::Relaxed);
        start
    });
    bar.finish_and_clear();
    let wall = wall.elapsed();

    let mut total = Tally::default();
    let mut issue_latency = histogram();
    let mut verify_latency = histogram();
    for w in &workers {
        total.add(&w.tally);
        issue_latency.add(&w.issue_latency).expect("same bounds");
        verify_latency.add(&w.verify_latency).expect("same bounds");
    }
    let stats = engine.stats();
    let rss = rss_bytes();
    let engine_rss = rss
        .saturating_sub(rss_before)
        .saturating_sub(GENERATOR_BYTES_PER_USER * args.keys);
    let per = |n: u64| {
        if n == 0 {
            0.0
        } else {
            engine_rss as f64 / n as f64
        }
    };
    let (bytes_per_entry, bytes_per_held) = (per(stats.live), per(stats.held));
    let seconds = wall.as_secs_f64();
    let calls_per_sec = total.calls as f64 / seconds;

    let report = Report {
        args: &args,
        threads,
        preload,
        seconds,
        calls_per_sec,
        total: &total,
        workers: &workers,
        stats: &stats,
        rss,
        bytes_per_entry,
        bytes_per_held,
        issue_latency: &issue_latency,
        verify_latency: &verify_latency,
    };
    report.print();

    memory_samples.push(MemorySample {
        at_ms: wall.as_millis() as u64,
        rss,
        store_bytes: engine.memory_usage().total() as u64,
        held: stats.held,
    });
    let quarters = QuarterMedians::of(&memory_samples, wall.as_millis() as u64);
    // The process before the engine existed, and the generator's own records.
    let baseline = rss_before + std::mem::size_of::<User>() as u64 * args.keys;
    let peaks = peaks_by_third(&memory_samples, wall.as_millis() as u64);
    let list = |values: &[u64]| {
        values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mib_list = |values: &[u64]| {
        values
            .iter()
            .map(|&b| format!("{:.1}", mib(b)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "rss curve   start {:.1} MiB; medians by quarter {} MiB (store {} MiB, held keys {}); end {:.1} MiB ({} samples, 1 a second); explained {:.1} MiB",
        mib(memory_samples[0].rss),
        mib_list(&quarters.rss),
        mib_list(&quarters.store_bytes),
        list(&quarters.held),
        mib(rss),
        memory_samples.len(),
        mib(quarters.explained_rss(baseline))
    );
    let mut problems = check(&total, &stats_before, &stats);
    if let Some(limit) = args.max_rss_growth {
        if let Err(growth) = quarters.judge(limit, baseline) {
            problems.push(growth);
        }
    }
    if args.json {
        let json = report.json(problems.is_empty());
        let samples_mib: Vec<String> = memory_samples
            .iter()
            .map(|s| format!("{:.1}", mib(s.rss)))
            .collect();
        let curve = format!(
            concat!(
                r#","rss_start_bytes":{},"rss_peak_bytes_by_third":[{}],"rss_end_bytes":{},"rss_samples_mib":[{}],"#,
                r#""rss_median_bytes_by_quarter":[{}],"store_bytes_median_by_quarter":[{}],"held_keys_median_by_quarter":[{}],"#,
                r#""store_bytes_peak":{},"rss_explained_bytes":{}}}"#
            ),
            memory_samples[0].rss,
            list(&peaks),
            rss,
            samples_mib.join(","),
            list(&quarters.rss),
            list(&quarters.store_bytes),
            list(&quarters.held),
            quarters.store_bytes_peak,
            quarters.explained_rss(baseline),
        );
        println!("{}{curve}", json.trim_end_matches('}'));
    }
    let _ = std::io::stdout().flush();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("otp-load: CHECK FAILED: {p}");
        }
        std::process::exit(1);
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The peak RSS of each third of the run (reported; the leak check is
/// `QuarterMedians::judge`).
fn peaks_by_third(samples: &[MemorySample], run_ms: u64) -> [u64; 3] {
    let mut peaks = [0; 3];
    for s in samples {
        let third = (s.at_ms * 3 / run_ms.max(1)).min(2) as usize;
        peaks[third] = peaks[third].max(s.rss);
    }
    peaks
}

/// The tallies must add up to the calls made and agree with the engine's counters.
fn check(total: &Tally, before: &Stats, after: &Stats) -> Vec<String> {
    let mut problems = Vec::new();
    if total.answers() != total.calls {
        problems.push(format!(
            "answers add up to {}, but {} calls were made",
            total.answers(),
            total.calls
        ));
    }
    if total.surprises != 0 {
        problems.push(format!(
            "{} answers were not what the user's state called for",
            total.surprises
        ));
    }
    let pairs = [
        ("issued", total.issued, after.issued - before.issued),
        ("verified", total.verified, after.verified - before.verified),
        (
            "mismatch",
            total.mismatch,
            after.mismatched - before.mismatched,
        ),
        ("locked", total.locked, after.locked - before.locked),
        ("expired", total.expired, after.expired - before.expired),
        (
            "not_found",
            total.not_found,
            after.not_found - before.not_found,
        ),
        (
            "rate_limited",
            total.rate_limited,
            after.rate_limited - before.rate_limited,
        ),
        (
            "capacity_exceeded",
            total.capacity_exceeded,
            after.capacity_exceeded - before.capacity_exceeded,
        ),
    ];
    for (name, seen, counted) in pairs {
        if seen != counted {
            problems.push(format!(
                "{name}: the threads saw {seen}, the engine counted {counted}"
            ));
        }
    }
    problems
}

struct Report<'a> {
    args: &'a Args,
    threads: usize,
    preload: Duration,
    seconds: f64,
    calls_per_sec: f64,
    total: &'a Tally,
    workers: &'a [Worker],
    stats: &'a Stats,
    rss: u64,
    bytes_per_entry: f64,
    bytes_per_held: f64,
    issue_latency: &'a Histogram<u64>,
    verify_latency: &'a Histogram<u64>,
}

fn ns(v: u64) -> String {
    match v {
        0..=999 => format!("{v} ns"),
        1_000..=999_999 => format!("{:.1} µs", v as f64 / 1e3),
        _ => format!("{:.1} ms", v as f64 / 1e6),
    }
}

fn latency_json(h: &Histogram<u64>) -> String {
    format!(
        r#"{{"count":{},"p50_ns":{},"p99_ns":{},"p999_ns":{},"max_ns":{}}}"#,
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

impl Report<'_> {
    /// The Redis server the run used, if any (memory figures then describe only
    /// this process, not the store).
    fn stats_backend(&self) -> Option<&str> {
        self.args.redis.as_deref()
    }

    fn print(&self) {
        let a = self.args;
        let t = self.total;
        println!(
            "otp-load: {:.1} s, {} threads, {} keys ({}), {:.0}% first attempts wrong, ttl {} s, limits {}",
            self.seconds,
            self.threads,
            a.keys,
            a.dist.name(),
            a.wrong * 100.0,
            a.ttl,
            if a.limits { "on" } else { "off" }
        );
        if let Some(server) = self.stats_backend() {
            println!("backend     redis at {server}");
        }
        println!(
            "preload     every user given a code in {:.2} s",
            self.preload.as_secs_f64()
        );
        let per_thread: Vec<String> = self
            .workers
            .iter()
            .map(|w| {
                format!(
                    "{:.2}",
                    w.tally.calls as f64 / w.tally.elapsed.as_secs_f64() / 1e6
                )
            })
            .collect();
        println!(
            "throughput  {:.2} M calls/s in all; per thread {} M calls/s ({} calls)",
            self.calls_per_sec / 1e6,
            per_thread.join(", "),
            t.calls
        );
        println!(
            "latency     {:>8} {:>8} {:>8} {:>8}   (1 call in {LATENCY_SAMPLE} timed)",
            "p50", "p99", "p99.9", "max"
        );
        for (name, h) in [
            ("issue", self.issue_latency),
            ("verify", self.verify_latency),
        ] {
            println!(
                "  {name:<9} {:>8} {:>8} {:>8} {:>8}",
                ns(h.value_at_quantile(0.5)),
                ns(h.value_at_quantile(0.99)),
                ns(h.value_at_quantile(0.999)),
                ns(h.max())
            );
        }
        println!(
            "answers     issued {}, verified {}, mismatch {}, locked {}, expired {}, not found {}, rate limited {}, capacity exceeded {}: {} of {} calls",
            t.issued, t.verified, t.mismatch, t.locked, t.expired, t.not_found, t.rate_limited, t.capacity_exceeded, t.answers(), t.calls
        );
        println!(
            "memory      {} live entries, {} keys held; RSS {:.1} MiB; {:.0} bytes per live entry, {:.0} per key held",
            self.stats.live,
            self.stats.held,
            self.rss as f64 / (1024.0 * 1024.0),
            self.bytes_per_entry,
            self.bytes_per_held,
        );
    }

    fn json(&self, ok: bool) -> String {
        let t = self.total;
        format!(
            concat!(
                r#"{{"calls_per_sec":{:.0},"threads":{},"keys":{},"seconds":{:.3},"dist":"{}","wrong":{},"limits":{},"#,
                r#""calls":{},"issue":{},"verify":{},"live_entries":{},"held_keys":{},"rss_bytes":{},"bytes_per_live_entry":{:.1},"bytes_per_held_key":{:.1},"#,
                r#""issued":{},"verified":{},"mismatch":{},"locked":{},"expired":{},"not_found":{},"rate_limited":{},"capacity_exceeded":{},"#,
                r#""backend":"{}","counts_add_up":{},"batch":{}}}"#
            ),
            self.calls_per_sec,
            self.threads,
            self.args.keys,
            self.seconds,
            self.args.dist.name(),
            self.args.wrong,
            self.args.limits,
            t.calls,
            latency_json(self.issue_latency),
            latency_json(self.verify_latency),
            self.stats.live,
            self.stats.held,
            self.rss,
            self.bytes_per_entry,
            self.bytes_per_held,
            t.issued,
            t.verified,
            t.mismatch,
            t.locked,
            t.expired,
            t.not_found,
            t.rate_limited,
            t.capacity_exceeded,
            if self.args.redis.is_some() {
                "redis"
            } else {
                "memory"
            },
            ok,
            self.args.batch
        )
    }
}
