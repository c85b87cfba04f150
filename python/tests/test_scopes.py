"""Scope limits from Python: the same rules as every other language."""

import pytest

import otpengine
from otpengine import RateLimited, Status


def scoped_engine() -> otpengine.Engine:
    return otpengine.Engine(
        manual_clock=True,
        resend_cooldown=0,
        max_issues_per_window=0,
        scope_limits={
            "ip": {"max_issues": 2, "issue_window": 3600, "max_failures": 2, "failure_window": 3600},
            "global": {"max_issues": 100, "issue_window": 60},
        },
    )


def test_ip_scope_gives_the_host_or_its_slash_64() -> None:
    assert otpengine.ip_scope("203.0.113.7") == "203.0.113.7/32"
    assert otpengine.ip_scope("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    with pytest.raises(ValueError, match="ip_address must be an IPv4 or IPv6 address"):
        otpengine.ip_scope("example.com")


def test_a_scopes_issue_budget_holds_across_keys() -> None:
    engine = scoped_engine()
    scopes = {"ip": otpengine.ip_scope("203.0.113.7"), "global": b""}
    engine.issue("+447700900001", scopes=scopes)
    engine.issue("+447700900002", scopes=scopes)
    with pytest.raises(RateLimited) as refused:
        engine.issue("+447700900003", scopes=scopes)
    assert refused.value.scope == "ip"
    assert refused.value.retry_after == 3600.0
    engine.issue("+447700900003", scopes={"ip": "198.51.100.1/32"})
    with_cooldown = otpengine.Engine(manual_clock=True)
    with_cooldown.issue("k", scopes={})
    with pytest.raises(RateLimited) as own:
        with_cooldown.issue("k")
    assert own.value.scope is None


def test_unknown_scopes_and_bad_limits_are_value_errors() -> None:
    engine = scoped_engine()
    with pytest.raises(ValueError, match='scopes must be the name of a configured scope limit, got "tenant"'):
        engine.issue("k", scopes={"tenant": "acme"})
    with pytest.raises(ValueError, match="scope_issue_window must be between 1.0 and 86400.0 seconds, got 0.0"):
        otpengine.Engine(scope_limits={"ip": {"max_issues": 1, "issue_window": 0}})
    with pytest.raises(ValueError, match="scope_name must be 1 to 31 bytes"):
        otpengine.Engine(scope_limits={"IP": {"max_issues": 1}})
    with pytest.raises(ValueError, match='has no field "max_issue"'):
        otpengine.Engine(scope_limits={"ip": {"max_issue": 1}})


def test_a_spent_failure_budget_locks_the_scope_without_looking() -> None:
    engine = scoped_engine()
    office = {"ip": "office"}
    codes = {key: engine.issue(key) for key in ("x", "y", "z")}
    for key in ("x", "y"):
        wrong = "111111" if codes[key] == "000000" else "000000"
        assert engine.verify(key, wrong, scopes=office).status is Status.MISMATCH
    locked = engine.verify("z", codes["z"], scopes=office)
    assert locked.status is Status.LOCKED and locked.retry_after == 3600.0
    assert engine.unlock_scope("ip", "office") is True
    assert engine.unlock_scope("ip", "office") is False
    assert engine.verify("z", codes["z"], scopes=office).status is Status.VERIFIED
    assert 'otpengine_rate_limited_total{scope="key"} 0' in engine.prometheus()
