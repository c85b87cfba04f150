"""Calls per second from Python: issue + verify one by one, through the batch calls, and
a pure-Python dict store of the same rules for comparison.

Run with `make bench-python` (or `.venv/bin/python python/bench/bench.py` after
`pip install ./python`). Prints the median of five runs of each; not a test.
"""

from __future__ import annotations

import hmac
import secrets
import statistics
import time

import otpengine

KEYS = [f"user-{i}".encode() for i in range(100_000)]
BATCH = 1_000
TTL = 300.0
ATTEMPTS = 5


class DictStore:
    """What a Python service writes without otpengine: codes from `secrets`, compared
    with `hmac.compare_digest`, attempts and expiry, in a dict (and none of the
    engine's other rules: no digests, limits or timer wheel)."""

    def __init__(self) -> None:
        self.codes: dict[bytes, tuple[str, int, float]] = {}

    def issue(self, key: bytes) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        self.codes[key] = (code, ATTEMPTS, time.monotonic() + TTL)
        return code

    def verify(self, key: bytes, typed: str) -> bool:
        entry = self.codes.get(key)
        if entry is None:
            return False
        code, attempts, expires_at = entry
        if time.monotonic() >= expires_at:
            del self.codes[key]
            return False
        if hmac.compare_digest(code, typed):
            del self.codes[key]
            return True
        if attempts > 1:
            self.codes[key] = (code, attempts - 1, expires_at)
        else:
            del self.codes[key]
        return False


def dict_store_phases() -> float:
    """The dict store, all codes issued and then all verified, one call each."""
    store = DictStore()
    start = time.perf_counter()
    codes = [store.issue(key) for key in KEYS]
    for key, code in zip(KEYS, codes):
        store.verify(key, code)
    return 2 * len(KEYS) / (time.perf_counter() - start)


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


def batches_of_1000() -> float:
    """`issue_many` then `verify_many` on 1,000 keys at a time."""
    e = engine()
    start = time.perf_counter()
    for at in range(0, len(KEYS), BATCH):
        keys = KEYS[at : at + BATCH]
        codes = e.issue_many(keys)
        e.verify_many([(k, c) for k, c in zip(keys, codes) if isinstance(c, str)])
    return 2 * len(KEYS) / (time.perf_counter() - start)


def main() -> None:
    runs = [
        ("pairs, one call each        ", pairs_one_by_one),
        ("phases, one call each       ", phases_one_by_one),
        ("phases, issue_many etc.     ", phases_batched),
        ("batches of 1,000            ", batches_of_1000),
        ("dict store, phases, one each", dict_store_phases),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(5):  # interleaved: every kind once per round
        for name, run in runs:
            rates[name].append(run())
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, _ in runs:
        print(f"{name}: {medians[name] / 1e6:.2f} M calls/s (issue + verify, median of 5)")
    single = medians[runs[1][0]] / medians[runs[4][0]]
    print(f"single calls (phases) / dict store: {single:.2f}x (issue 17 asks for 3x)")
    ratio = medians[runs[3][0]] / medians[runs[4][0]]
    print(f"batches of 1,000 / dict store: {ratio:.2f}x")


if __name__ == "__main__":
    main()
