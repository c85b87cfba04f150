"""Calls per second from Python: issue + verify one by one, and through the batch calls.

Run with `make bench-python` (or `.venv/bin/python python/bench/bench.py` after
`pip install ./python`). Prints the median of five runs of each; not a test.
"""

from __future__ import annotations

import statistics
import time

import otpengine

KEYS = [f"user-{i}".encode() for i in range(100_000)]


def engine() -> otpengine.Engine:
    return otpengine.Engine(resend_cooldown=0.0, max_issues_per_window=0, max_failures_per_key=0)


def pairs_one_by_one() -> float:
    """Each code verified right after it is issued (its slot still in cache)."""
    e = engine()
    start = time.perf_counter()
    for key in KEYS:
        code = e.issue(key)
        e.verify(key, code)
    return 2 * len(KEYS) / (time.perf_counter() - start)


def phases_one_by_one() -> float:
    """All codes issued, then all verified: the same order as the batches."""
    e = engine()
    start = time.perf_counter()
    codes = [e.issue(key) for key in KEYS]
    for key, code in zip(KEYS, codes):
        e.verify(key, code)
    return 2 * len(KEYS) / (time.perf_counter() - start)


def phases_batched() -> float:
    e = engine()
    start = time.perf_counter()
    codes = e.issue_many(KEYS)
    e.verify_many([(k, c) for k, c in zip(KEYS, codes) if isinstance(c, str)])
    return 2 * len(KEYS) / (time.perf_counter() - start)


def main() -> None:
    runs = [
        ("pairs, one call each   ", pairs_one_by_one),
        ("phases, one call each  ", phases_one_by_one),
        ("phases, issue_many etc.", phases_batched),
    ]
    for name, run in runs:
        rates = [run() for _ in range(5)]
        print(f"{name}: {statistics.median(rates) / 1e6:.2f} M calls/s (issue + verify, median of 5)")


if __name__ == "__main__":
    main()
