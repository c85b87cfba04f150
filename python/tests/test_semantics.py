"""Every semantic rule of the engine, from Python, on the manual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import otpengine
from otpengine import Status
from conftest import NO_LIMITS, wrong

Make = Callable[..., otpengine.Engine]


def test_issue_returns_a_code_of_the_configured_shape(make_engine: Make) -> None:
    engine = make_engine(code_length=8, alphabet="alphanumeric")
    code = engine.issue("alice")
    assert len(code) == 8 and set(code) <= set("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")


def test_right_code_verifies_once(engine: otpengine.Engine) -> None:
    engine.ping()  # in memory: always healthy
    code = engine.issue("alice")
    result = engine.verify("alice", code)
    assert result and result.status is Status.VERIFIED
    again = engine.verify("alice", code)
    assert not again and again.status is Status.NOT_FOUND


def test_a_new_issue_replaces_the_code(engine: otpengine.Engine) -> None:
    old = engine.issue("alice")
    new = next(c for c in iter(lambda: engine.issue("alice"), None) if c != old)
    assert engine.verify("alice", old).status is Status.MISMATCH
    assert engine.verify("alice", new)


def test_str_and_bytes_keys_are_the_same_key(engine: otpengine.Engine) -> None:
    code = engine.issue("ünïcode")
    assert engine.verify("ünïcode".encode(), code.encode())
    code = engine.issue(b"\x00\xff", context=b"\x01")
    assert engine.verify(b"\x00\xff", code, context=b"\x01")


def test_wrong_code_counts_attempts_then_burns(engine: otpengine.Engine) -> None:
    code = engine.issue("alice")
    for left in (4, 3, 2, 1):
        result = engine.verify("alice", wrong(code))
        assert (result.status, result.attempts_left) == (Status.MISMATCH, left)
        assert repr(result) == f"Verdict(status=Status.MISMATCH, attempts_left={left})"
    assert engine.verify("alice", wrong(code)).status is Status.LOCKED
    burned = engine.verify("alice", code)
    assert burned.status is Status.LOCKED and burned.retry_after == 0.0


def test_context_binding(engine: otpengine.Engine) -> None:
    transfer = "EUR 250.00 to DE89 3704 0044 0532 0130 00"
    code = engine.issue("alice", context=transfer)
    assert engine.verify("alice", code, context="EUR 2500.00 to DE89 3704").status is Status.MISMATCH
    assert engine.verify("alice", code).status is Status.MISMATCH
    assert engine.verify("alice", code, context=transfer)


def test_expiry_is_exact_and_remembered_for_one_ttl(engine: otpengine.Engine) -> None:
    code = engine.issue("alice", ttl=10.0)
    engine.advance(9.999)
    other = engine.issue("bob", ttl=10.0)
    engine.advance(0.001)
    assert engine.verify("alice", code).status is Status.EXPIRED
    assert engine.verify("bob", other)
    engine.advance(10.0)
    assert engine.verify("alice", code).status is Status.NOT_FOUND


def test_cooldown_raises_rate_limited_with_retry_after(make_engine: Make) -> None:
    engine = make_engine(max_issues_per_window=0)
    code = engine.issue("alice")
    engine.advance(12.345)
    with pytest.raises(otpengine.RateLimited) as raised:
        engine.issue("alice")
    assert raised.value.retry_after == pytest.approx(17.655)
    assert isinstance(raised.value, otpengine.OtpError)
    assert "retry after" in str(raised.value)
    assert engine.verify("alice", code), "the refused issue changed nothing"


def test_window_limit(make_engine: Make) -> None:
    engine = make_engine(resend_cooldown=0.0, max_issues_per_window=2, issue_window=60.0)
    engine.issue("alice")
    engine.advance(10)
    engine.issue("alice")
    with pytest.raises(otpengine.RateLimited) as raised:
        engine.issue("alice")
    assert raised.value.retry_after == pytest.approx(50.0)
    engine.advance(50)
    engine.issue("alice")


def test_failure_budget_locks_the_key_and_unlock_lifts_it(make_engine: Make) -> None:
    engine = make_engine(resend_cooldown=0.0, max_issues_per_window=0, max_failures_per_key=3, lockout=60.0)
    code = engine.issue("alice")
    assert engine.verify("alice", wrong(code)).attempts_left == 2
    code = engine.issue("alice")  # a new code does not reset the count
    assert engine.verify("alice", wrong(code)).attempts_left == 1
    locked = engine.verify("alice", wrong(code))
    assert locked.status is Status.LOCKED and locked.retry_after == 60.0
    assert repr(locked) == "Verdict(status=Status.LOCKED, retry_after=60.0)"
    engine.advance(1)
    with pytest.raises(otpengine.KeyLocked) as raised:
        engine.issue("alice")
    assert raised.value.retry_after == 59.0
    assert engine.verify("alice", code).status is Status.LOCKED
    assert engine.unlock("alice") and not engine.unlock("alice")
    code = engine.issue("alice")
    assert engine.verify("alice", code)


def spend_budget(engine: otpengine.Engine, key: str) -> float:
    """Spends the key's budget of 2 on a fresh code; the lockout's wait."""
    code = engine.issue(key)
    assert engine.verify(key, wrong(code)).status is Status.MISMATCH
    locked = engine.verify(key, wrong(code))
    assert locked.status is Status.LOCKED
    return locked.retry_after


def test_lockouts_escalate_up_to_max_lockout(make_engine: Make) -> None:
    limits = dict(resend_cooldown=0.0, max_issues_per_window=0, max_failures_per_key=2, lockout=60.0)
    engine = make_engine(max_lockout=240.0, **limits)
    for want in (60.0, 120.0, 240.0, 240.0):
        assert spend_budget(engine, "alice") == want
        engine.advance(want)
    assert engine.unlock("alice"), "the strikes are cleared"
    assert spend_budget(engine, "alice") == 60.0
    engine = make_engine(escalate_lockouts=False, max_lockout=30.0, **limits)
    spend_budget(engine, "bob")
    engine.advance(60)
    assert spend_budget(engine, "bob") == 60.0, "escalation off"
    with pytest.raises(ValueError, match="max_lockout must be between 60.0 and 31536000.0 seconds, got 30.0"):
        make_engine(max_lockout=30.0, **limits)


def test_several_codes_per_key(make_engine: Make) -> None:
    engine = make_engine(codes_per_key=2, **NO_LIMITS)
    first = engine.issue("alice")
    engine.issue("alice")
    assert engine.verify("alice", first), "a late SMS still works"
    assert engine.verify("alice", first).status is Status.NOT_FOUND


def test_normalisation(make_engine: Make) -> None:
    engine = make_engine(alphabet="alphanumeric", **NO_LIMITS)
    code = engine.issue("alice")
    assert engine.verify("alice", f" {code[:3].lower()}-{code[3:]} ")
    code = engine.issue("bob")
    assert engine.verify("bob", code + "X").status is Status.MISMATCH
    assert engine.verify("bob", "\uff11" * 6).status is Status.MISMATCH


def test_revoke_len_and_stats(make_engine: Make) -> None:
    engine = make_engine(capacity=3, max_issues_per_window=0)
    a = engine.issue("a")
    engine.issue("b")
    engine.issue("c")
    assert len(engine) == 3
    with pytest.raises(otpengine.CapacityExceeded):
        engine.issue("d")
    with pytest.raises(otpengine.RateLimited):
        engine.issue("a")
    assert engine.revoke("b") and not engine.revoke("b") and not engine.revoke("nobody")
    assert engine.verify("a", a)
    assert engine.verify("a", a).status is Status.NOT_FOUND
    assert engine.verify("c", "------").status is Status.MISMATCH
    stats = engine.stats()
    assert {k: stats[k] for k in ("issued", "verified", "mismatched", "locked", "expired", "rate_limited", "revoked", "live")} == {
        "issued": 3, "verified": 1, "mismatched": 1, "locked": 0, "expired": 0, "rate_limited": 1, "revoked": 1, "live": 1,
    }
    assert stats["capacity_exceeded"] == 1 and stats["not_found"] == 1
    assert len(engine) == 1
    assert "otpengine_issued_total 3" in engine.prometheus()


def test_batches(engine: otpengine.Engine) -> None:
    keys = [f"user-{i}" for i in range(100)]
    codes = engine.issue_many(keys, context="login")
    assert all(isinstance(c, str) and len(c) == 6 for c in codes)
    items: list[tuple[str, str, str] | tuple[str, str]] = [
        (k, c, "login") for k, c in zip(keys, codes) if isinstance(c, str)
    ]
    items.append(("user-0", "123456", "login"))
    items.append(("nobody", "123456"))
    statuses = engine.verify_many(items)
    assert statuses[:100] == [Status.VERIFIED] * 100
    assert statuses[100:] == [Status.NOT_FOUND, Status.NOT_FOUND]


def test_issue_many_gives_the_exception_where_refused(make_engine: Make) -> None:
    engine = make_engine(max_issues_per_window=0)  # the 30 s cooldown stays on
    first, again, other = engine.issue_many(["a", "a", "b"])
    assert isinstance(first, str) and isinstance(other, str)
    assert isinstance(again, otpengine.RateLimited) and again.retry_after == 30.0
    assert engine.stats()["rate_limited"] == 1
    # Each answer is what the single calls, one after the other, give.
    assert engine.verify_many([("a", first), ("b", first), ("b", other)]) == [
        Status.VERIFIED,
        Status.MISMATCH,
        Status.VERIFIED,
    ]


def test_the_manual_clock_is_the_only_one_that_moves() -> None:
    engine = otpengine.Engine()
    with pytest.raises(otpengine.OtpError, match="manual clock"):
        engine.advance(1.0)
