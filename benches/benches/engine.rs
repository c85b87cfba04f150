//! criterion benches: otpengine beside what a user would write instead, single
//! thread and 1/2/4/16 threads, and the pieces (code generation, digests, clock,
//! expiry). Run with `cargo bench -p otpengine-benches`; figures in BENCHMARKS.md.
//! `cargo bench --bench engine -- targets` runs only the ratios the speed targets
//! are stated in.

mod baselines;

use std::hint::black_box;
use std::time::{Duration, Instant};

use baselines::{DashMapStore, MokaStore, MutexHashMap, OtpEngine, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otpengine_benches::{SplitMix64, Zipf};
use otpengine_core::code::generate;
use otpengine_core::digest::{DigestAlgorithm, Digester};
use otpengine_core::{Alphabet, Clock, Config, Engine, ManualClock, Secret};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn stores() -> Vec<Box<dyn Store>> {
    vec![
        Box::new(OtpEngine::new()),
        Box::new(DashMapStore::new()),
        Box::new(MutexHashMap::new()),
        Box::new(MokaStore::new()),
    ]
}

/// Keys drawn from `live` users, uniformly or by Zipf (0.99).
struct Keys {
    rng: SplitMix64,
    zipf: Option<Zipf>,
    live: u64,
}

impl Keys {
    fn new(live: u64, zipf: bool) -> Self {
        Keys {
            rng: SplitMix64::new(42),
            zipf: zipf.then(|| Zipf::new(live, 0.99)),
            live,
        }
    }
    fn next(&mut self) -> u64 {
        match &self.zipf {
            Some(z) => z.sample(&mut self.rng),
            None => self.rng.below(self.live),
        }
    }
}

fn single_thread(c: &mut Criterion) {
    for live in [1_000u64, 1_000_000] {
        for zipf in [false, true] {
            let dist = if zipf { "zipf" } else { "uniform" };
            let mut group = c.benchmark_group(format!("single_thread/{live}_keys/{dist}"));
            group.throughput(Throughput::Elements(2));
            for store in stores() {
                if store.name() == "moka" && live > 1_000 {
                    continue; // 10x slower: a million inserts take the whole budget
                }
                for k in 0..live {
                    store.issue(k);
                }
                let mut keys = Keys::new(live, zipf);
                group.bench_function(BenchmarkId::new("issue+verify", store.name()), |b| {
                    b.iter(|| {
                        let k = keys.next();
                        let code = store.issue(k);
                        black_box(store.verify(k, &code))
                    })
                });
            }
            group.finish();
        }
    }

    let mut group = c.benchmark_group("single_thread/otpengine_ops/1000000_keys");
    group.throughput(Throughput::Elements(1));
    let engine = OtpEngine::new();
    let live = 1_000_000u64;
    for k in 0..live {
        engine.issue(k);
    }
    let mut keys = Keys::new(live, false);
    group.bench_function("issue", |b| b.iter(|| black_box(engine.issue(keys.next()))));
    // Verify: each batch of 1024 keys is given fresh codes outside the timing.
    for (name, right) in [("verify_right", true), ("verify_wrong", false)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(1024);
                    let batch: Vec<(u64, [u8; 6])> = (0..n)
                        .map(|_| {
                            let k = keys.next();
                            let mut code = engine.issue(k);
                            if !right {
                                code[0] = if code[0] == b'9' { b'0' } else { code[0] + 1 };
                            }
                            (k, code)
                        })
                        .collect();
                    let start = Instant::now();
                    for (k, code) in &batch {
                        black_box(engine.verify(*k, code));
                    }
                    spent += start.elapsed();
                    done += n;
                }
                spent
            })
        });
    }
    group.finish();
}

fn threads(c: &mut Criterion) {
    let live = 1_000_000u64;
    let mut group = c.benchmark_group("threads/issue+verify/1000000_keys");
    for store in stores().into_iter().filter(|s| s.name() != "moka") {
        for k in 0..live {
            store.issue(k);
        }
        for threads in [1u64, 2, 4, 16] {
            group.throughput(Throughput::Elements(2));
            group.bench_function(BenchmarkId::new(store.name(), threads), |b| {
                b.iter_custom(|iters| pairs_on_threads(&*store, live, threads, iters))
            });
        }
    }
    group.finish();
}

/// `iters` issue+verify pairs of uniformly drawn keys out of `live`, split over
/// `threads` threads (each its own key sequence, the same for every store).
fn pairs_on_threads(store: &dyn Store, live: u64, threads: u64, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut rng = SplitMix64::new(t + 1);
                for _ in 0..per_thread {
                    let k = rng.below(live);
                    let code = store.issue(k);
                    black_box(store.verify(k, &code));
                }
            });
        }
    });
    start.elapsed()
}

/// The three ratios of the one-miss issue in one group, rerun with
/// `cargo bench --bench engine -- targets`: otpengine and the dashmap baseline in
/// the same loop (`pairs_on_threads`), the same keys in the same order, one right
/// after the other for each row: 1,000,000 keys on 1 and 2 threads, 1,000 keys
/// on 1. Read the ratio of each row's two medians.
fn targets(c: &mut Criterion) {
    let mut group = c.benchmark_group("targets");
    group.throughput(Throughput::Elements(2));
    for (live, threads) in [(1_000_000u64, 1u64), (1_000_000, 2), (1_000, 1)] {
        let stores: [Box<dyn Store>; 2] =
            [Box::new(OtpEngine::new()), Box::new(DashMapStore::new())];
        for store in stores {
            for k in 0..live {
                store.issue(k);
            }
            let row = format!("{live}_keys/{threads}_threads");
            group.bench_function(BenchmarkId::new(row, store.name()), |b| {
                b.iter_custom(|iters| pairs_on_threads(&*store, live, threads, iters))
            });
        }
    }
    group.finish();
}

fn pieces(c: &mut Criterion) {
    let mut group = c.benchmark_group("pieces");
    group.throughput(Throughput::Elements(1));
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    for alphabet in [Alphabet::Digits, Alphabet::Alphanumeric] {
        for len in [4u32, 6, 8, 10] {
            group.bench_function(
                BenchmarkId::new(format!("generate/{}", alphabet.name()), len),
                |b| b.iter(|| black_box(generate(&mut rng, alphabet, len))),
            );
        }
    }
    let secret = Secret::new(&[9; 32]).expect("32 bytes");
    for algorithm in [DigestAlgorithm::SipHash24, DigestAlgorithm::HmacSha256] {
        let d = Digester::new(&secret, algorithm);
        let name = format!("{algorithm:?}");
        group.bench_function(BenchmarkId::new("key_id", &name), |b| {
            b.iter(|| black_box(d.key_id(black_box(b"+15551234567/login"))))
        });
        let id = d.key_id(b"+15551234567/login");
        group.bench_function(BenchmarkId::new("code_digest", &name), |b| {
            b.iter(|| {
                black_box(
                    d.code_prefix(id, black_box(b""))
                        .finish(black_box(b"123456")),
                )
            })
        });
    }
    group.bench_function("clock/Instant::now", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    group.finish();

    // Expiry: the cost per entry of reclaiming N codes that fell due together.
    let mut group = c.benchmark_group("pieces/expire");
    // Each sample rebuilds an engine outside the timing: keep the samples few.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(1));
    for n in [1_000u64, 100_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let clock = ManualClock::new();
                    let engine = Engine::new(Config {
                        clock: Clock::manual(&clock),
                        resend_cooldown: Duration::ZERO,
                        max_issues_per_window: 0,
                        max_failures_per_key: 0,
                        reaper_interval: None,
                        ..Config::default()
                    })
                    .expect("valid config");
                    for k in 0..n {
                        engine.issue(k.to_le_bytes(), "").expect("issued");
                    }
                    clock.advance(Duration::from_secs(600));
                    let start = Instant::now();
                    assert_eq!(engine.len(), 0);
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = targets, single_thread, threads, pieces
}
criterion_main!(benches);
