"""The README's Python examples run as written (the Redis one against the test server)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "the README has a Python quick start and a Redis example"
    for block in blocks:
        if "redis_url" in block:
            url = os.environ.get("OTPENGINE_REDIS_URL")
            if not url:
                assert os.environ.get("OTPENGINE_REQUIRE_REDIS") != "1", "OTPENGINE_REDIS_URL is not set"
                continue  # test_redis.py says loudly that Redis tests are skipped
            monkeypatch.setenv("OTP_REDIS_URL", url)
            monkeypatch.setenv("OTP_SECRET", "a secret of 32 bytes for the doc")
        scope: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), scope)
        if "redis_url" in block:
            assert scope["ok"] is True
