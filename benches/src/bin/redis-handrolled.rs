//! redis-handrolled: the baseline `make bench-redis` measures the Redis backend
//! against, a Redis OTP store as a service might write it by hand.
//!
//! Issue is `SET otp:<user> "<code>:5" EX 300`; verify is one six-line Lua
//! script that compares the code and consumes it, or counts the attempt down
//! (and drops the code at zero). Nothing more: the code in plaintext, no rate
//! limits, no failure budget, no lockout, no context, no replay guard. Each
//! thread owns its users (user u belongs to thread u % threads) and, like
//! `otp-load --wrong 0`, alternates issue and verify of the right code; every
//! answer is checked, and a wrong one is an error exit. Prints one JSON object.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use otpengine_benches::SplitMix64;

/// Compares, consumes, or counts an attempt down: 1 verified, 0 no code, -1 wrong.
const VERIFY: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local code, left = string.match(v, '^(%w+):(%d+)$')
if code == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
if tonumber(left) <= 1 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], code .. ':' .. (left - 1), 'KEEPTTL') end
return -1";

#[derive(Parser, Debug)]
#[command(
    name = "redis-handrolled",
    about = "A hand-rolled Redis OTP store under load, the baseline of make bench-redis"
)]
struct Args {
    /// The server, as for otp-load --redis
    #[arg(long)]
    redis: String,
    /// Worker threads, each with its own connection
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Length of the timed run, in seconds
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Simulated users; each is given a code before the run starts
    #[arg(long, default_value_t = 2000)]
    keys: u64,
    /// Prefix of the Redis keys (`<prefix>:<user>`)
    #[arg(long, default_value = "otp")]
    prefix: String,
}

fn main() {
    let args = Args::parse();
    let client = redis::Client::open(args.redis.as_str()).expect("a Redis URL");
    let script = redis::Script::new(VERIFY);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(args.threads + 1));
    let workers: Vec<_> = (0..args.threads)
        .map(|t| {
            let mut con = client.get_connection().expect("a connection to Redis");
            let (script, stop, calls, start) =
                (script.clone(), stop.clone(), calls.clone(), start.clone());
            let users: Vec<u64> = (0..args.keys)
                .filter(|u| u % args.threads as u64 == t as u64)
                .collect();
            let prefix = args.prefix.clone();
            std::thread::spawn(move || {
                let mut rng = SplitMix64::new(0x5eed + t as u64);
                let mut issue = |con: &mut redis::Connection, user: u64| -> String {
                    let code = format!("{:06}", rng.next_u64() % 1_000_000);
                    let () = redis::cmd("SET")
                        .arg(format!("{prefix}:{user}"))
                        .arg(format!("{code}:5"))
                        .arg("EX")
                        .arg(300)
                        .query(con)
                        .expect("SET");
                    code
                };
                // The preload: every user holds a code, as in otp-load.
                let mut codes: Vec<String> = users.iter().map(|&u| issue(&mut con, u)).collect();
                start.wait();
                let mut n = 0u64;
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) && !users.is_empty() {
                    let user = users[i];
                    let verified: i64 = script
                        .key(format!("{prefix}:{user}"))
                        .arg(&codes[i])
                        .invoke(&mut con)
                        .expect("EVALSHA");
                    assert_eq!(verified, 1, "the right code verifies");
                    codes[i] = issue(&mut con, user);
                    n += 2;
                    i = (i + 1) % users.len();
                }
                calls.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a worker");
    }
    let elapsed = began.elapsed().as_secs_f64();
    let calls = calls.load(Ordering::Relaxed);
    println!(
        "{{\"calls\":{calls},\"seconds\":{elapsed:.3},\"calls_per_sec\":{:.1}}}",
        calls as f64 / elapsed
    );
}
