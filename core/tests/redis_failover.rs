//! A Redis Cluster failover under load, while threads issue and verify: a
//! replica takes over its primary, either gracefully (`CLUSTER FAILOVER`) or
//! after the primary dies (killed, then `CLUSTER FAILOVER TAKEOVER`, as an
//! operator or a managed service's monitor does). Calls in flight may answer
//! `Unavailable` (fail closed), never a wrong verdict; the engine keeps
//! working through the new primary without being rebuilt. The cluster is the
//! test's own (one primary holding every slot, one replica), since the shared
//! one has no replicas and must not change under other tests.

#![cfg(feature = "redis")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::Connection;
use otpengine_core::{Config, Engine, Error, RedisOptions, Verdict};

use common::OwnServer;

const THREADS: usize = 2;
/// Pairs that must succeed after the failover: the engine recovered.
const PAIRS_AFTER: u64 = 300;

fn connection(port: u16) -> Connection {
    ::redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn query(port: u16, args: &[&str]) -> String {
    let mut cmd = ::redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query::<::redis::Value>(&mut connection(port)).unwrap() {
        ::redis::Value::SimpleString(s) => s,
        ::redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        ::redis::Value::VerbatimString { text, .. } => text,
        other => format!("{other:?}"),
    }
}

/// Polls `done` (the cluster's own state, which changes by itself) until it
/// holds, for at most 20 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn role(port: u16) -> String {
    query(port, &["INFO", "replication"])
        .lines()
        .find_map(|line| line.strip_prefix("role:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// One primary holding every slot and its replica, both up and in sync.
fn two_node_cluster() -> Option<(OwnServer, OwnServer)> {
    let primary = OwnServer::start_cluster_node()?;
    let replica = OwnServer::start_cluster_node()?;
    let (p, r) = (primary.port(), replica.port());
    query(p, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    query(r, &["CLUSTER", "MEET", "127.0.0.1", &p.to_string()]);
    let primary_id = query(p, &["CLUSTER", "MYID"]);
    wait_for("the replica to know the primary", || {
        query(r, &["CLUSTER", "NODES"]).contains(&primary_id)
    });
    query(r, &["CLUSTER", "REPLICATE", &primary_id]);
    wait_for("the replica to be in sync", || {
        query(r, &["INFO", "replication"]).contains("master_link_status:up")
            && query(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            && query(r, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
    });
    Some((primary, replica))
}

/// How the replica takes over.
#[derive(Clone, Copy, PartialEq)]
enum Failover {
    /// `CLUSTER FAILOVER`: the primary stops taking writes, the replica catches
    /// up with it, then they swap roles. Nothing acknowledged is lost.
    Graceful,
    /// The primary is killed, then the replica promoted with `CLUSTER FAILOVER
    /// TAKEOVER`. Writes the replica had not yet received are lost with the
    /// primary: a code issued just before may then be `NotFound`.
    Crash,
}

#[test]
fn a_graceful_failover_loses_nothing_and_the_engine_carries_on() {
    failover_under_load(Failover::Graceful);
}

#[test]
fn after_a_primary_dies_calls_fail_closed_and_the_engine_carries_on() {
    failover_under_load(Failover::Crash);
}

fn failover_under_load(how: Failover) {
    let Some((mut primary, replica)) = two_node_cluster() else {
        return;
    };
    let (p, r) = (primary.port(), replica.port());
    let url = format!("redis+cluster://127.0.0.1:{p},127.0.0.1:{r}");
    let engine = Engine::new_redis(
        Config {
            resend_cooldown: Duration::ZERO,
            max_issues_per_window: 0,
            reaper_interval: None,
            ..Config::default()
        },
        RedisOptions {
            namespace: common::unique_namespace("failover"),
            response_timeout: Duration::from_millis(500),
            ..RedisOptions::new(url, common::secret())
        },
    )
    .unwrap();
    let before = engine.issue("issued before the failover", "").unwrap();

    let stop = AtomicBool::new(false);
    let failed_over = AtomicBool::new(false);
    let (pairs, pairs_after, unavailable, lost_codes) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (engine, stop, failed_over) = (&engine, &stop, &failed_over);
            let (pairs, pairs_after, unavailable, lost_codes) =
                (&pairs, &pairs_after, &unavailable, &lost_codes);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("user-{t}-{i}");
                    let after = failed_over.load(Ordering::Relaxed);
                    let code = match engine.issue(&key, "") {
                        Ok(issued) => issued.code,
                        Err(Error::Unavailable { .. }) => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) => panic!("issue {key}: {e}"),
                    };
                    // A verify whose reply was lost may have consumed the code:
                    // asked again, it is then NotFound; never anything else.
                    // After a crash the issue itself may be lost with the old
                    // primary (not yet replicated): NotFound too.
                    let mut lost = false;
                    loop {
                        match engine.verify(&key, code.as_str(), "") {
                            Ok(Verdict::Verified) => break,
                            Ok(Verdict::NotFound) if lost => break,
                            Ok(Verdict::NotFound) if how == Failover::Crash => {
                                lost_codes.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok(other) => panic!("verify {key} (lost before: {lost}): {other:?}"),
                            Err(Error::Unavailable { .. }) => {
                                unavailable.fetch_add(1, Ordering::Relaxed);
                                lost = true;
                            }
                            Err(e) => panic!("verify {key}: {e}"),
                        }
                    }
                    pairs.fetch_add(1, Ordering::Relaxed);
                    if after {
                        pairs_after.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        wait_for("traffic before the failover", || {
            pairs.load(Ordering::Relaxed) >= 200
        });
        match how {
            Failover::Graceful => {
                query(r, &["CLUSTER", "FAILOVER"]);
                wait_for("the replica to take over", || {
                    role(r) == "master" && role(p) == "slave"
                });
            }
            Failover::Crash => {
                primary.kill();
                query(r, &["CLUSTER", "FAILOVER", "TAKEOVER"]);
                wait_for("the replica to take over", || role(r) == "master");
            }
        }
        failed_over.store(true, Ordering::Relaxed);
        wait_for("the engine to carry on through the new primary", || {
            pairs_after.load(Ordering::Relaxed) >= PAIRS_AFTER
        });
        stop.store(true, Ordering::Relaxed);
    });

    // Issued long before the failover, so replicated: verifies, once.
    let code = before.code.as_str();
    assert_eq!(
        engine
            .verify("issued before the failover", code, "")
            .unwrap(),
        Verdict::Verified
    );
    assert_eq!(
        engine
            .verify("issued before the failover", code, "")
            .unwrap(),
        Verdict::NotFound
    );
    let unavailable = unavailable.load(Ordering::Relaxed);
    assert_eq!(engine.stats().unavailable, unavailable, "each counted once");
    let lost_codes = lost_codes.load(Ordering::Relaxed);
    if how == Failover::Graceful {
        assert_eq!(lost_codes, 0);
    }
    eprintln!(
        "failover ({}): {} pairs, {unavailable} calls answered Unavailable, {lost_codes} codes lost",
        if how == Failover::Graceful { "graceful" } else { "crash" },
        pairs.load(Ordering::Relaxed)
    );
}
