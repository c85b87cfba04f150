from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import otpengine

NO_LIMITS: dict[str, Any] = dict(resend_cooldown=0.0, max_issues_per_window=0, max_failures_per_key=0)


@pytest.fixture
def make_engine() -> Callable[..., otpengine.Engine]:
    def make(**kwargs: Any) -> otpengine.Engine:
        return otpengine.Engine(manual_clock=True, **kwargs)

    return make


@pytest.fixture
def engine(make_engine: Callable[..., otpengine.Engine]) -> otpengine.Engine:
    """Default engine with every per-key limit off, on the manual clock."""
    return make_engine(**NO_LIMITS)


def wrong(code: str) -> str:
    """A code of the same shape that is not `code`."""
    return "".join("0" if c == "9" else chr(ord(c) + 1) for c in code)
