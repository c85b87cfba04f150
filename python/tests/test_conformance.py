"""tests/conformance.txt: each bad configuration is a ValueError naming the
keyword argument (Python's spelling); the C and Go suites read the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import otpengine

TABLE = Path(__file__).resolve().parents[2] / "tests" / "conformance.txt"


def cases() -> list[tuple[str, dict[str, str], str]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = [c.strip() for c in line.split("|")]
        settings = dict(kv.split("=", 1) for kv in cols[1].split(","))
        rows.append((cols[0], settings, cols[4]))
    return rows


def kwargs(settings: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    scope: dict[str, float] = {}
    for key, value in settings.items():
        if key.endswith("_ms") and not key.startswith("scope_"):
            out[key[:-3]] = int(value) / 1000
        elif key in ("code_length", "max_attempts", "shards"):
            out[key] = int(value)
        elif key == "scope_name":
            out["scope_limits"] = {value: scope}
        elif key == "scope_max_issues":
            scope["max_issues"] = int(value)
        elif key == "scope_issue_window_ms":
            scope["issue_window"] = int(value) / 1000
        elif key == "redis_url":
            out["redis_url"] = value
        elif key == "secret":
            out["secret"] = value.encode()
        else:
            raise AssertionError(f"a setting this test does not know: {key}")
    return out


def test_the_table_is_read() -> None:
    assert len(cases()) >= 10


@pytest.mark.parametrize(("case", "settings", "field"), cases(), ids=[c[0] for c in cases()])
def test_every_bad_configuration_names_its_field(case: str, settings: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError) as refused:
        otpengine.Engine(**kwargs(settings))
    assert str(refused.value).startswith(f"{field} must"), f"{case}: {refused.value}"
