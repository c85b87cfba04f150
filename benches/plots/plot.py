"""Plots otp-load throughput against threads and against live keys.

Reads JSON lines, one otp-load `--json` report per line (what `make plots`
collects in build/plots/runs.jsonl), and writes a PNG with two panels. Each
point is the median of the runs at that setting; the whiskers span min to max.

Usage: python benches/plots/plot.py RUNS.jsonl OUT.png
"""

import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def series(runs, sweep):
    """(x, median, min, max) per setting, for runs tagged with `sweep`."""
    by_x = defaultdict(list)
    for run in runs:
        if run.get("sweep") == sweep:
            x = run["threads"] if sweep == "threads" else run["keys"]
            by_x[x].append(run["calls_per_sec"] / 1e6)
    xs = sorted(by_x)
    return (
        xs,
        [statistics.median(by_x[x]) for x in xs],
        [min(by_x[x]) for x in xs],
        [max(by_x[x]) for x in xs],
    )


def panel(ax, xs, med, lo, hi, xlabel, title, log_x):
    ax.errorbar(
        xs,
        med,
        yerr=[[m - l for m, l in zip(med, lo)], [h - m for m, h in zip(med, hi)]],
        marker="o",
        capsize=3,
    )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("M calls/s (issue + verify)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def main():
    runs = load(sys.argv[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs, med, lo, hi = series(runs, "threads")
    keys = next((r["keys"] for r in runs if r.get("sweep") == "threads"), 0)
    panel(left, xs, med, lo, hi, "threads", f"against threads ({keys:,} keys)", True)
    left.set_xticks(xs, [str(x) for x in xs])
    xs, med, lo, hi = series(runs, "keys")
    threads = next((r["threads"] for r in runs if r.get("sweep") == "keys"), 0)
    panel(right, xs, med, lo, hi, "live keys", f"against live keys ({threads} threads)", True)
    fig.suptitle("otp-load, default mix (10% wrong first attempts), limits off")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
