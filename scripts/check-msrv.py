#!/usr/bin/env python3
"""The workspace's rust-version (MSRV) is true: no package in a lock file
(Cargo.lock, fuzz/Cargo.lock) declares a higher one, and the README's
prerequisites name the same version.

Reads `cargo metadata --locked`, which lists every package the lock file
resolves (normal, build and dev dependencies) with the rust-version each
declares. Exits 1, naming each offender, when one needs a newer Rust.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def packages(manifest: Path) -> list[dict]:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--manifest-path", str(manifest)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["packages"]


def main() -> int:
    problems = []
    ours = [p for p in packages(ROOT / "Cargo.toml") if p["source"] is None]
    declared = {p["rust_version"] for p in ours}
    if len(declared) != 1 or None in declared:
        print(f"ERROR: the workspace members do not share one rust-version: {sorted(map(str, declared))}", file=sys.stderr)
        return 1
    msrv = declared.pop()
    highest = ("0", "nothing")
    for manifest in (ROOT / "Cargo.toml", ROOT / "fuzz" / "Cargo.toml"):
        for p in packages(manifest):
            needs = p.get("rust_version")
            if not needs or p["source"] is None:
                continue
            if version(needs) > version(highest[0]):
                highest = (needs, f"{p['name']} {p['version']}")
            if version(needs) > version(msrv):
                lock = manifest.parent.relative_to(ROOT) / "Cargo.lock"
                problems.append(
                    (version(needs), f"{p['name']} {p['version']} (in {lock}) needs Rust {needs}, "
                     f"above the workspace's rust-version {msrv}")
                )
    readme = (ROOT / "README.md").read_text()
    if not re.search(rf"Rust {re.escape(msrv)} or newer", readme):
        problems.append(((), f"README.md's prerequisites do not say 'Rust {msrv} or newer'"))
    # The neediest first, and no more than a screenful.
    ranked = sorted(set(problems), reverse=True)
    for _, problem in ranked[:15]:
        print(f"ERROR: {problem}", file=sys.stderr)
    if len(ranked) > 15:
        print(f"ERROR: ... and {len(ranked) - 15} more", file=sys.stderr)
    if problems:
        return 1
    print(f"check-msrv: rust-version {msrv} holds; the highest any locked package needs is {highest[0]} ({highest[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
