//! After fork() the child draws other codes than its parent, its copy of a memory
//! engine starts empty, and the reaper thread (which does not survive into the
//! child) never leaves the child stuck on a lock.
#![cfg(unix)]

use std::time::{Duration, Instant};

use otpengine_core::{Config, Engine, Verdict};

const ROUNDS: usize = 60;
const CODES: usize = 16;

fn issue_all(engine: &Engine) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..CODES {
        out.extend_from_slice(engine.issue(format!("k{i}"), "").unwrap().code.as_bytes());
    }
    out
}

#[test]
fn a_forked_child_draws_other_codes_and_never_deadlocks() {
    let engine = Engine::new(Config {
        resend_cooldown: Duration::ZERO,
        max_issues_per_window: 0,
        // A busy reaper: fork() often lands while it sweeps.
        reaper_interval: Some(Duration::from_millis(1)),
        ..Config::default()
    })
    .unwrap();
    issue_all(&engine);
    for round in 0..ROUNDS {
        let child = in_child(|| issue_all(&engine));
        let parent_codes = issue_all(&engine);
        let child_codes = child.wait(parent_codes.len(), &format!("round {round}"));
        assert_ne!(
            parent_codes, child_codes,
            "round {round}: the child repeated the parent's codes"
        );
    }
}

/// A memory engine inherited across fork() starts empty in the child: no code,
/// attempt count, rate history or failure count of the parent's is answered
/// there, the parent keeps its own, and the child's copy works as a fresh engine
/// (a daemon that forks after building its engine keeps working).
#[test]
fn a_forked_child_starts_empty_and_the_parent_keeps_its_state() {
    let engine = Engine::new(Config {
        max_failures_per_key: 3,
        ..Config::default()
    })
    .unwrap();
    let pending = engine.issue("pending", "").unwrap().code;
    let _ = engine.issue("limited", "").unwrap(); // inside its resend cooldown
    let spent = engine.issue("spent", "").unwrap().code;
    for _ in 0..2 {
        assert!(matches!(
            engine.verify("spent", wrong(spent.as_str()), "").unwrap(),
            Verdict::Mismatch { .. }
        ));
    }
    let parent_pid = std::process::id();
    let child = in_child(|| {
        let reset = engine.reset_if_forked();
        let again = engine.reset_if_forked();
        let answers = [
            format!("{reset:?}"),
            format!("{again:?}"),
            format!(
                "{:?}",
                engine.verify("pending", pending.as_str(), "").unwrap()
            ),
            format!("{:?}", engine.stats().issued),
            format!("{:?}", engine.issue("limited", "").map(|_| ())),
            format!("{:?}", engine.verify("spent", spent.as_str(), "").unwrap()),
        ];
        let fresh = engine.issue("fresh", "").unwrap().code;
        let fresh = engine.verify("fresh", fresh.as_str(), "").unwrap();
        format!("{}|{fresh:?}", answers.join("|")).into_bytes()
    });
    let expected = format!(
        "Some(ForkReset {{ parent_pid: {parent_pid} }})|None|NotFound|0|Ok(())|NotFound|Verified"
    );
    let got = child.wait(expected.len(), "the child");
    assert_eq!(String::from_utf8_lossy(&got), expected);

    // The parent's state is its own, untouched by the child.
    assert_eq!(engine.reset_if_forked(), None);
    assert!(matches!(
        engine.issue("limited", ""),
        Err(otpengine_core::Error::RateLimited { .. })
    ));
    assert!(
        matches!(
            engine.verify("spent", wrong(spent.as_str()), "").unwrap(),
            Verdict::Locked { .. }
        ),
        "the parent's failure count was kept: the third failure locks"
    );
    assert_eq!(
        engine.verify("pending", pending.as_str(), "").unwrap(),
        Verdict::Verified
    );
}

fn wrong(code: &str) -> String {
    code.bytes()
        .map(|b| if b == b'9' { '0' } else { (b + 1) as char })
        .collect()
}

/// A forked child that runs `work`, sends its bytes through a pipe and leaves.
struct Child {
    pid: libc::pid_t,
    read_fd: i32,
}

#[allow(unsafe_code)]
fn in_child(work: impl FnOnce() -> Vec<u8>) -> Child {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe() to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only calls the engine (its own locks are fork-safe, and
    // glibc's malloc is), writes to a pipe and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let bytes = work();
        // SAFETY: writing our own buffer to our own pipe, then leaving without
        // running the parent's destructors or test harness.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end, which we own.
    unsafe { libc::close(fds[1]) };
    Child {
        pid,
        read_fd: fds[0],
    }
}

impl Child {
    /// Reads `len` bytes from the child (a bounded wait of 20 s), then reaps it.
    #[allow(unsafe_code)]
    fn wait(self, len: usize, what: &str) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        // SAFETY: polling and reading our own pipe into a buffer we own, then
        // closing it and reaping our own child.
        unsafe {
            while got < buf.len() && Instant::now() < deadline {
                let mut pfd = libc::pollfd {
                    fd: self.read_fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                if libc::poll(&mut pfd, 1, 100) > 0 {
                    let n = libc::read(
                        self.read_fd,
                        buf[got..].as_mut_ptr().cast(),
                        buf.len() - got,
                    );
                    if n <= 0 {
                        break;
                    }
                    got += n as usize;
                }
            }
            libc::close(self.read_fd);
            if got < buf.len() {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
            assert_eq!(
                got,
                buf.len(),
                "{what}: the child did not answer in 20 s (deadlock?): {:?}",
                String::from_utf8_lossy(&buf[..got])
            );
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{what}: the child failed"
            );
        }
        buf
    }
}
