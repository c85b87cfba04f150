//! After fork() the child draws other codes than its parent, and the reaper thread
//! (which does not survive into the child) never leaves the child stuck on a lock.
#![cfg(unix)]

use std::time::{Duration, Instant};

use otpengine_core::{Config, Engine};

const ROUNDS: usize = 60;
const CODES: usize = 16;

fn issue_all(engine: &Engine) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..CODES {
        out.extend_from_slice(engine.issue(format!("k{i}"), "").unwrap().code.as_bytes());
    }
    out
}

#[allow(unsafe_code)]
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
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe() to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only issues codes (the engine's own locks are
        // fork-safe, glibc's malloc is), writes to a pipe and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let codes = issue_all(&engine);
            // SAFETY: writing our own buffer to our own pipe, then leaving without
            // running the parent's destructors or test harness.
            unsafe {
                libc::write(fds[1], codes.as_ptr().cast(), codes.len());
                libc::_exit(0);
            }
        }
        let parent_codes = issue_all(&engine);
        // SAFETY: closing our copy of the write end, then reading into a buffer we own.
        let child_codes = unsafe {
            libc::close(fds[1]);
            let mut buf = vec![0u8; parent_codes.len()];
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while got < buf.len() && Instant::now() < deadline {
                let mut pfd = libc::pollfd {
                    fd: fds[0],
                    events: libc::POLLIN,
                    revents: 0,
                };
                if libc::poll(&mut pfd, 1, 100) > 0 {
                    let n = libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got);
                    if n <= 0 {
                        break;
                    }
                    got += n as usize;
                }
            }
            libc::close(fds[0]);
            if got < buf.len() {
                libc::kill(pid, libc::SIGKILL);
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert_eq!(
                got,
                buf.len(),
                "round {round}: the child did not answer in 20 s (deadlock?)"
            );
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "round {round}: child failed"
            );
            buf
        };
        assert_ne!(
            parent_codes, child_codes,
            "round {round}: the child repeated the parent's codes"
        );
    }
}
