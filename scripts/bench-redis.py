#!/usr/bin/env python3
"""The Redis backend's throughput beside redis-benchmark on the same server.

Run by `make bench-redis` (under scripts/with-redis.sh, which provides the
server in OTPENGINE_REDIS_URL). For 1, 2 and 16 concurrent callers, round after
round (interleaved, so that a noisy machine hits every figure alike):

- redis-benchmark GET and SET with that many clients (one round trip each);
- otp-load --redis with that many threads: users issue a code, then verify it
  (--wrong 0), so every pair is one issue and one verify, each one EVALSHA;
  then the same in batches of 100 (issue_many / verify_many, one pipeline each);
- redis-handrolled with that many threads: the same pairs on a hand-rolled
  store (SET otp:<user> "<code>:5" EX 300, and a six-line Lua script that
  compares and consumes or counts down: plaintext, no limits), the baseline of
  what the engine's rules cost;
- with BENCH_BASELINE=<path to another build's otp-load>, that binary's single
  calls too (an A/B of two commits, interleaved on the same server).

Prints the medians and the ratios of engine calls to GET/SET requests per
second (one engine call is one round trip, like one GET), and writes every
figure to build/bench-redis.json. Beside the rates, which a busy machine moves
a lot, it reports what a busy machine hardly moves: redis-server's own CPU time
per request (INFO cpu, before and after each run), and Redis memory per key held
(used_memory before and after BENCH_MEMORY_KEYS keys are given a code, each
store measured from an empty database, so that every one pays the same hash
table growth).

Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS per otp-load run (5),
BENCH_KEYS users per run (2000), BENCH_REQUESTS per redis-benchmark test (100000),
BENCH_MEMORY_KEYS (100000), BENCH_BASELINE (none), BENCH_OUT (build/bench-redis.json).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLERS = (1, 2, 16)
BATCH = 100


def info(port: int, section: str) -> dict[str, str]:
    out = subprocess.run(["redis-cli", "-p", str(port), "info", section], check=True, capture_output=True,
                         text=True).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True,
                          text=True).stdout


def dbsize(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def server_cpu(port: int) -> float:
    """Seconds of CPU redis-server has used (user + system)."""
    cpu = info(port, "cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def redis_benchmark(port: int, clients: int, requests: int) -> dict[str, float]:
    figures = {}
    for test in ("get", "set"):
        before = server_cpu(port)
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-t", test, "-c", str(clients), "-n", str(requests),
             "-r", "10000", "--csv"],
            check=True, capture_output=True, text=True,
        ).stdout
        cpu = server_cpu(port) - before
        rows = list(csv.reader(io.StringIO(out)))
        figures[test] = float(rows[1][rows[0].index("rps")])
        figures[f"{test}_cpu_us"] = cpu / requests * 1e6
    return figures


OTP_LOAD = ROOT / "target/release/otp-load"
HANDROLLED = ROOT / "target/release/redis-handrolled"


def handrolled(url: str, threads: int, seconds: float, keys: int, port: int) -> dict[str, float]:
    before = server_cpu(port)
    out = subprocess.run(
        [str(HANDROLLED), "--redis", url, "--threads", str(threads), "--seconds", str(seconds), "--keys",
         str(keys)],
        check=True, capture_output=True, text=True,
    ).stdout
    cpu = server_cpu(port) - before
    report = json.loads(out.strip().splitlines()[-1])
    return {"handrolled_calls_per_sec": report["calls_per_sec"],
            "handrolled_call_cpu_us": cpu / (report["calls"] + keys) * 1e6}


def otp_load(url: str, threads: int, seconds: float, keys: int, port: int, batch: int = 0,
             binary: Path = OTP_LOAD) -> dict[str, float]:
    before = server_cpu(port)
    out = subprocess.run(
        [str(binary), "--redis", url, "--threads", str(threads),
         "--seconds", str(seconds), "--keys", str(keys), "--wrong", "0", "--batch", str(batch), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    cpu = server_cpu(port) - before
    report = json.loads(out.strip().splitlines()[-1])
    if not report["counts_add_up"]:
        sys.exit(f"otp-load: counts do not add up: {report}")
    calls = report["calls"] + keys  # the timed calls and the preload's issues
    return {
        "call_cpu_us": cpu / calls * 1e6,
        "calls_per_sec": report["calls_per_sec"],
        # With --wrong 0 a user alternates issue and verify: a pair is two calls.
        "pairs_per_sec": report["calls_per_sec"] / 2,
        "issue_p50_us": report["issue"]["p50_ns"] / 1e3,
        "verify_p50_us": report["verify"]["p50_ns"] / 1e3,
        "issue_p99_us": report["issue"]["p99_ns"] / 1e3,
        "verify_p99_us": report["verify"]["p99_ns"] / 1e3,
    }


def per_round_ratio(runs: list[dict[str, float]], num: str, den: str) -> float:
    """The median over rounds of num / den: each ratio taken at one moment, in one noise."""
    return statistics.median(run[num] / run[den] for run in runs)


def main() -> None:
    url = os.environ.get("OTPENGINE_REDIS_URL")
    if not url:
        sys.exit("OTPENGINE_REDIS_URL is not set: run under scripts/with-redis.sh (make bench-redis)")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    keys = int(os.environ.get("BENCH_KEYS", "2000"))
    requests = int(os.environ.get("BENCH_REQUESTS", "100000"))
    memory_keys = int(os.environ.get("BENCH_MEMORY_KEYS", "100000"))
    baseline = Path(os.environ["BENCH_BASELINE"]) if os.environ.get("BENCH_BASELINE") else None
    version = "Redis " + info(port, "server")["redis_version"].strip()
    print(f"{version}\n{rounds} rounds; per round and caller count: redis-benchmark GET+SET "
          f"({requests} requests each), then otp-load --redis, in batches, redis-handrolled"
          f"{' and the baseline' if baseline else ''} ({seconds:.0f} s, {keys} users each)", flush=True)

    runs: dict[int, list[dict[str, float]]] = {c: [] for c in CALLERS}
    for r in range(rounds):
        for c in CALLERS:
            figures = redis_benchmark(port, c, requests)
            figures.update(otp_load(url, c, seconds, keys, port))
            # Batches of 100 (issue_many / verify_many: one pipeline each), right after.
            batched = otp_load(url, c, seconds, keys, port, batch=BATCH)
            figures["batch_calls_per_sec"] = batched["calls_per_sec"]
            figures["batch_call_cpu_us"] = batched["call_cpu_us"]
            figures.update(handrolled(url, c, seconds, keys, port))
            if baseline:
                before = otp_load(url, c, seconds, keys, port, binary=baseline)
                figures["baseline_calls_per_sec"] = before["calls_per_sec"]
                figures["baseline_call_cpu_us"] = before["call_cpu_us"]
            runs[c].append(figures)
            print(f"round {r + 1}, {c:>2} callers: GET {figures['get']:>8.0f}/s  SET {figures['set']:>8.0f}/s  "
                  f"engine {figures['calls_per_sec']:>7.0f} calls/s = {figures['pairs_per_sec']:>7.0f} pairs/s; "
                  f"server CPU per request GET {figures['get_cpu_us']:.1f} µs, SET {figures['set_cpu_us']:.1f} µs, "
                  f"engine call {figures['call_cpu_us']:.1f} µs; batches of {BATCH}: "
                  f"{figures['batch_calls_per_sec']:>7.0f} calls/s, {figures['batch_call_cpu_us']:.1f} µs each; "
                  f"hand-rolled {figures['handrolled_calls_per_sec']:>7.0f} calls/s, "
                  f"{figures['handrolled_call_cpu_us']:.1f} µs each"
                  + (f"; baseline {figures['baseline_calls_per_sec']:>7.0f} calls/s, "
                     f"{figures['baseline_call_cpu_us']:.1f} µs each" if baseline else ""),
                  flush=True)

    print("\nmedians")
    print("| callers | redis-benchmark GET/s | SET/s | engine calls/s | issue+verify pairs/s "
          "| calls / GET | calls / SET | p50 issue, verify (µs) | p99 issue, verify (µs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for c in CALLERS:
        m = {k: statistics.median(run[k] for run in runs[c]) for k in runs[c][0]}
        # Ratios are taken per round (same moment, same noise), then their median.
        m["calls_per_get"] = per_round_ratio(runs[c], "calls_per_sec", "get")
        m["calls_per_set"] = per_round_ratio(runs[c], "calls_per_sec", "set")
        summary[c] = m
        print(f"| {c} | {m['get']:,.0f} | {m['set']:,.0f} | {m['calls_per_sec']:,.0f} | {m['pairs_per_sec']:,.0f} "
              f"| {m['calls_per_get']:.2f} | {m['calls_per_set']:.2f} "
              f"| {m['issue_p50_us']:.0f}, {m['verify_p50_us']:.0f} | {m['issue_p99_us']:.0f}, {m['verify_p99_us']:.0f} |")
    print(f"\nbatches of {BATCH} (issue_many / verify_many, one pipeline each) against one call at a time")
    print("| callers | calls/s one at a time | calls/s in batches | ratio | server CPU per call in batches |")
    print("|---|---|---|---|---|")
    for c in CALLERS:
        m = summary[c]
        m["batch_ratio"] = per_round_ratio(runs[c], "batch_calls_per_sec", "calls_per_sec")
        print(f"| {c} | {m['calls_per_sec']:,.0f} | {m['batch_calls_per_sec']:,.0f} | {m['batch_ratio']:.2f} "
              f"| {m['batch_call_cpu_us']:.1f} µs |")
    print("\nagainst the hand-rolled store (plaintext code, no limits), same server, alternated")
    print("| callers | engine calls/s | hand-rolled calls/s | ratio | server CPU per call, engine | hand-rolled |")
    print("|---|---|---|---|---|---|")
    for c in CALLERS:
        m = summary[c]
        m["handrolled_ratio"] = per_round_ratio(runs[c], "calls_per_sec", "handrolled_calls_per_sec")
        print(f"| {c} | {m['calls_per_sec']:,.0f} | {m['handrolled_calls_per_sec']:,.0f} "
              f"| {m['handrolled_ratio']:.2f} | {m['call_cpu_us']:.1f} µs | {m['handrolled_call_cpu_us']:.1f} µs |")
    if baseline:
        print(f"\nagainst the baseline build {baseline} (single calls), same server, alternated")
        print("| callers | calls/s, this build | baseline | ratio | server CPU per call, this build | baseline |")
        print("|---|---|---|---|---|---|")
        for c in CALLERS:
            m = summary[c]
            m["baseline_ratio"] = per_round_ratio(runs[c], "calls_per_sec", "baseline_calls_per_sec")
            m["baseline_cpu_ratio"] = per_round_ratio(runs[c], "call_cpu_us", "baseline_call_cpu_us")
            print(f"| {c} | {m['calls_per_sec']:,.0f} | {m['baseline_calls_per_sec']:,.0f} | {m['baseline_ratio']:.2f} "
                  f"| {m['call_cpu_us']:.1f} µs | {m['baseline_call_cpu_us']:.1f} µs ({m['baseline_cpu_ratio']:.2f}x) |")
    print("\nredis-server CPU per request (medians)")
    print("| callers | GET | SET | engine call (issue or verify) | call / GET |")
    print("|---|---|---|---|---|")
    for c in CALLERS:
        m = summary[c]
        m["cpu_call_per_get"] = per_round_ratio(runs[c], "call_cpu_us", "get_cpu_us")
        print(f"| {c} | {m['get_cpu_us']:.1f} µs | {m['set_cpu_us']:.1f} µs | {m['call_cpu_us']:.1f} µs "
              f"| {m['cpu_call_per_get']:.2f} |")

    # Memory: each store from an empty database (FLUSHALL; the script cache
    # stays), its users given a code each.
    stores = [("default", [str(OTP_LOAD)], 0), ("exact_counts", [str(OTP_LOAD), "--redis-exact-counts"], 2)]
    if baseline:
        stores.append(("baseline", [str(baseline)], 0))
    per_key = {}
    for label, command, index_keys in stores + [("hand-rolled", [str(HANDROLLED)], 0)]:
        redis_cli(port, "flushall", "sync")
        before = int(info(port, "memory")["used_memory"])
        extra = ["--wrong", "0", "--json"] if label != "hand-rolled" else []
        subprocess.run(
            [*command, "--redis", url, "--threads", "2", "--seconds", "0.1", "--keys", str(memory_keys), *extra],
            check=True, capture_output=True, text=True,
        )
        grown = int(info(port, "memory")["used_memory"]) - before
        keys = dbsize(port) - index_keys
        per_key[label] = grown / keys
        print(f"Redis memory, {label}: {grown / 2**20:.1f} MiB for {keys} keys held "
              f"= {per_key[label]:.0f} bytes per key")

    out = Path(os.environ.get("BENCH_OUT", ROOT / "build/bench-redis.json")).resolve()
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"server": version, "runs": runs, "medians": summary,
                               "redis_bytes_per_key": per_key}, indent=1))
    print(f"\nevery figure: {out}")


if __name__ == "__main__":
    main()
