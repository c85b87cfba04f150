//! Real Redis servers for the tests (std only, so that the ffi crate's tests
//! include this file too): where they are, and what happens when they are not
//! there. `scripts/with-redis.sh` (run by `make test`) starts them and
//! sets the variables below; a plain `cargo test` without them skips the Redis
//! variants, saying so loudly, unless `OTPENGINE_REQUIRE_REDIS=1`, which makes
//! a missing server a failure.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A standalone server: `redis://127.0.0.1:<port>/0`.
pub const STANDALONE: &str = "OTPENGINE_REDIS_URL";
/// A 3-node cluster: `redis+cluster://127.0.0.1:<p1>,...`.
pub const CLUSTER: &str = "OTPENGINE_REDIS_CLUSTER";
/// A TLS-only server: `rediss://127.0.0.1:<port>/0`, its certificate signed by
/// [`TLS_CA`].
pub const TLS: &str = "OTPENGINE_REDIS_TLS_URL";
/// A TLS-only server that requires a client certificate signed by [`TLS_CA`].
pub const MTLS: &str = "OTPENGINE_REDIS_MTLS_URL";
/// The CA (PEM file) of both TLS servers' certificates and of the client's.
pub const TLS_CA: &str = "OTPENGINE_REDIS_TLS_CA";
/// A CA that signed nothing of the servers'.
pub const TLS_OTHER_CA: &str = "OTPENGINE_REDIS_TLS_OTHER_CA";
/// The client certificate and key (PEM files) for [`MTLS`].
pub const TLS_CLIENT_CERT: &str = "OTPENGINE_REDIS_TLS_CLIENT_CERT";
pub const TLS_CLIENT_KEY: &str = "OTPENGINE_REDIS_TLS_CLIENT_KEY";
/// A server with `requirepass` ([`AUTH_PASSWORD`]) and an ACL user ([`ACL_USER`]).
pub const AUTH: &str = "OTPENGINE_REDIS_AUTH_URL";
pub const AUTH_PASSWORD: &str = "OTPENGINE_REDIS_AUTH_PASSWORD";
pub const ACL_USER: &str = "OTPENGINE_REDIS_ACL_USER";
pub const ACL_PASSWORD: &str = "OTPENGINE_REDIS_ACL_PASSWORD";

/// The value of one of the variables above (`with-redis.sh` sets them all
/// together with the URLs, so a test that has its URL has these).
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set with the servers' URLs"))
}

/// The `redis-server` binary, for tests that start (and stop) a server of their own.
pub const SERVER_BINARY: &str = "OTPENGINE_REDIS_SERVER";
/// Set to 1: a missing server fails the tests instead of skipping them.
pub const REQUIRE: &str = "OTPENGINE_REQUIRE_REDIS";

/// The URL in `var`; `None` (after a loud message, once per variable) when it is
/// not set and Redis is not required, a panic when it is.
pub fn redis_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_or_fail(&format!(
                "{var} is not set: the Redis tests of this binary are SKIPPED.\n\
                 Run them with real servers: scripts/with-redis.sh cargo test --workspace \
                 (make test does), or point {var} at a server of your own."
            ));
            None
        }
    }
}

/// Says loudly that something is skipped (straight to stderr, past the test
/// harness's capture, once per message), or fails under `OTPENGINE_REQUIRE_REDIS=1`.
pub fn skip_or_fail(message: &str) {
    if std::env::var(REQUIRE).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE}=1 but {message}");
    }
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.iter().any(|m| m == message) {
        let bar = "!".repeat(78);
        let _ = writeln!(std::io::stderr(), "\n{bar}\n{message}\n{bar}");
        said.push(message.to_string());
    }
}

/// A namespace no other test (or earlier run against the same server) uses.
pub fn unique_namespace(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t-{label}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `redis-server` this test started and alone controls: stopped, paused or
/// restarted on the same port without touching the servers other tests share.
/// Killed (and its directory removed) when dropped.
pub struct OwnServer {
    binary: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    /// Arguments beyond the port, the bind address and persistence off.
    extra_args: Vec<String>,
}

impl OwnServer {
    /// Starts a server on a free loopback port, persistence off; `None` (after a
    /// loud message) when no binary is configured and Redis is not required.
    pub fn start() -> Option<OwnServer> {
        Self::start_with(&[])
    }

    /// A node of a Redis Cluster of the test's own (`cluster-enabled`, its
    /// config file in the server's directory), not yet part of any cluster.
    pub fn start_cluster_node() -> Option<OwnServer> {
        Self::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
    }

    /// As [`OwnServer::start`], with `extra_args` for `redis-server`.
    pub fn start_with(extra_args: &[&str]) -> Option<OwnServer> {
        let Ok(binary) = std::env::var(SERVER_BINARY) else {
            skip_or_fail(&format!(
                "{SERVER_BINARY} is not set: the tests that stop and restart a Redis server \
                 of their own are SKIPPED (scripts/with-redis.sh sets it)."
            ));
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(unique_namespace("redis-dir"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = OwnServer {
            binary,
            port,
            dir,
            child: None,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing was persisted),
    /// and waits, a bounded poll, until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} did not start within 10 s",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends the server SIGSTOP (`pause: true`) or SIGCONT: a stopped server
    /// accepts connections but answers nothing, as a hung one would.
    pub fn pause(&self, pause: bool) {
        let pid = self.child.as_ref().expect("the server is running").id();
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill(); // SIGKILL ends a stopped process too

        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
