"""Threads share one engine safely; a forked child draws other codes, and its copy
of an in-memory engine starts empty, with one RuntimeWarning saying so."""

from __future__ import annotations

import os
import threading
import warnings
from collections import Counter

import otpengine
from otpengine import Status
from conftest import NO_LIMITS


def test_eight_threads_verifying_one_code_get_exactly_one_success() -> None:
    engine = otpengine.Engine(manual_clock=True, **NO_LIMITS)
    for round_ in range(100):
        key = f"user-{round_}"
        code = engine.issue(key)
        barrier = threading.Barrier(8)
        results: list[Status] = []
        lock = threading.Lock()

        def worker() -> None:
            barrier.wait()
            status = engine.verify(key, code).status
            with lock:
                results.append(status)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert Counter(results) == {Status.VERIFIED: 1, Status.NOT_FOUND: 7}, results


def test_threads_hammering_overlapping_keys_keep_the_stats_exact() -> None:
    engine = otpengine.Engine(manual_clock=True, resend_cooldown=0.0, max_issues_per_window=0)
    tallies: list[Counter[str]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        tally: Counter[str] = Counter()
        for i in range(2000):
            key = f"k{(seed * 7 + i) % 24}"
            # Racing threads replace each other's codes, so a key can spend its
            # failure budget (more often on a loaded machine): a refused issue is
            # counted as `locked` too.
            if i % 3 == 2:
                issued = engine.issue_many([key, f"batch-{seed}-{i}"])
                codes = [c if isinstance(c, str) else None for c in issued]
                tally["issued"] += sum(c is not None for c in codes)
                tally["locked"] += sum(isinstance(c, otpengine.KeyLocked) for c in issued)
                statuses = engine.verify_many([(key, codes[0] or "000000"), (f"batch-{seed}-{i}", codes[1] or "")])
                tally.update(s.value for s in statuses if isinstance(s, Status))
                continue
            try:
                code = engine.issue(key)
            except otpengine.KeyLocked:
                tally["locked"] += 1
                continue
            tally["issued"] += 1
            tally[engine.verify(key, code if i % 4 else "000000").status.value] += 1
        with lock:
            tallies.append(tally)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total: Counter[str] = sum(tallies, Counter())
    stats = engine.stats()
    assert stats["issued"] == total["issued"]
    assert stats["verified"] == total["verified"]
    assert stats["mismatched"] == total["mismatch"]
    assert stats["locked"] == total["locked"]
    assert stats["not_found"] == total["not_found"]
    assert total["verified"] > 1000 and total["mismatch"] > 100


def test_a_forked_child_draws_other_codes() -> None:
    engine = otpengine.Engine(**NO_LIMITS)
    keys = [f"k{i}" for i in range(16)]
    engine.issue_many(keys)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # tested below
                codes = engine.issue_many(keys)
            os.write(write_fd, ",".join(c if isinstance(c, str) else "" for c in codes).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    parent = [str(c) for c in engine.issue_many(keys)]
    with os.fdopen(read_fd, "rb") as pipe:
        child = pipe.read().decode().split(",")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert len(child) == len(parent) and all(child)
    assert child != parent, "the child repeated the parent's codes"


def test_a_forked_child_starts_empty_and_warns_once() -> None:
    engine = otpengine.Engine()  # default limits: a cooldown and a failure budget
    code = engine.issue("pending")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                answers = [
                    engine.verify("pending", code).status.name,  # warns, then answers
                    engine.verify("pending", code).status.name,  # no second warning
                    str(engine.stats()["issued"]),
                    engine.verify("fresh", engine.issue("fresh")).status.name,
                ]
            messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
            os.write(write_fd, "\n".join(answers + messages).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        lines = pipe.read().decode().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert lines[:4] == ["NOT_FOUND", "NOT_FOUND", "0", "VERIFIED"]
    assert lines[4:] == [
        f"this in-memory engine was built in process {os.getpid()}; each process has its own "
        "state, so codes issued in one worker cannot be verified in another: use the Redis "
        "backend for multi-process servers"
    ]
    # The parent's code was not consumed in the child, and the parent is not warned.
    assert engine.verify("pending", code).status is Status.VERIFIED
