"""Bad values are ValueError naming the keyword, bad types TypeError; nothing changes."""

from __future__ import annotations

import pytest

import otpengine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(code_length=3), "code_length must be between 4 and 10, got 3"),
        (dict(code_length=-1), "code_length must be between 4 and 10, got -1"),
        (dict(alphabet="hex"), 'alphabet must be one of "digits", "alphanumeric", got "hex"'),
        (dict(ttl=0.0), "ttl must be between 1.0 and 86400.0 seconds, got 0.0"),
        (dict(ttl=-5.0), "ttl must be between 1.0 and 86400.0 seconds, got -5.0"),
        (dict(ttl=float("inf")), "ttl must be between 1.0 and 86400.0 seconds, got inf"),
        (dict(max_attempts=0), "max_attempts must be between 1 and 100, got 0"),
        (dict(resend_cooldown=3601.0), "resend_cooldown must be between 0.0 and 3600.0 seconds, got 3601.0"),
        (dict(max_issues_per_window=1001), "max_issues_per_window must be between 0 and 1000, got 1001"),
        (dict(issue_window=0.5), "issue_window must be between 1.0 and 86400.0 seconds, got 0.5"),
        (dict(max_failures_per_key=-1), "max_failures_per_key must be between 0 and 10000, got -1"),
        (dict(lockout=0.0), "lockout must be between 1.0 and 2592000.0 seconds, got 0.0"),
        (dict(codes_per_key=5), "codes_per_key must be between 1 and 4, got 5"),
        (dict(capacity=0), "capacity must be between 1 and 4294967296, got 0"),
        (dict(shards=3), "shards must be a power of two between 1 and 65536, got 3"),
        # Found in review: these were an unnamed OverflowError.
        (dict(capacity=2**64), f"capacity must be between 1 and 4294967296, got {2**64}"),
        (dict(code_length=2**63), f"code_length must be between 4 and 10, got {2**63}"),
        (dict(shards=10**30), f"shards must be a power of two between 1 and 65536, got {10**30}"),
        (dict(ttl=10**400), "ttl must be between 1.0 and 86400.0 seconds, got 1" + "0" * 400),
    ],
)
def test_bad_config_values_name_the_keyword_bound_and_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        otpengine.Engine(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [dict(code_length="6"), dict(code_length=6.0), dict(capacity=True), dict(ttl="300"), dict(manual_clock="yes"), dict(colour=1)],
)
def test_wrong_types_are_type_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        otpengine.Engine(**kwargs)  # type: ignore[arg-type]


def test_bad_call_arguments_change_nothing() -> None:
    engine = otpengine.Engine(manual_clock=True)
    code = engine.issue("alice")
    before = engine.stats()
    with pytest.raises(ValueError, match="key must be between 1 and 1024 bytes long, got 0 bytes"):
        engine.issue("")
    with pytest.raises(ValueError, match="key must be between 1 and 1024 bytes long, got 1025 bytes"):
        engine.verify("k" * 1025, code)
    with pytest.raises(ValueError, match="context must be at most 1024 bytes long"):
        engine.issue("bob", context=b"x" * 1025)
    with pytest.raises(ValueError, match="ttl must be between 1.0 and 86400.0 seconds, got 0.5"):
        engine.issue("bob", ttl=0.5)
    with pytest.raises(TypeError, match="key must be str or bytes, got int"):
        engine.issue(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code must be str or bytes, got NoneType"):
        engine.verify("alice", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context must be str or bytes, got list"):
        engine.verify("alice", code, context=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single str"):
        engine.issue_many("alice")  # not five keys "a", "l", "i", "c", "e"
    with pytest.raises(TypeError):
        engine.issue_many(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.verify_many(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl must be between"):
        engine.issue("bob", ttl=10**400)
    with pytest.raises(ValueError, match="key must be encodable as UTF-8"):
        engine.issue("\ud800")
    with pytest.raises(ValueError):
        engine.advance(-1.0)
    assert engine.stats() == before
    assert engine.verify("alice", code), "the pending code is intact"


def test_a_bad_item_in_a_batch_is_that_items_error() -> None:
    # As the single call would raise it, in the item's place; the items around it
    # are answered.
    engine = otpengine.Engine(manual_clock=True)
    ok, empty, wrong_type = engine.issue_many(["ok", "", 42])  # type: ignore[list-item]
    assert isinstance(ok, str) and len(ok) == 6
    assert isinstance(empty, ValueError) and "key must be between 1 and 1024 bytes long, got 0 bytes" in str(empty)
    assert isinstance(wrong_type, TypeError) and "key must be str or bytes, got int" in str(wrong_type)
    short, empty_key, verified = engine.verify_many([("ok",), ("", "123456"), ("ok", ok)])  # type: ignore[list-item]
    assert isinstance(short, TypeError) and "got one of 1 elements" in str(short)
    assert isinstance(empty_key, ValueError)
    assert verified is otpengine.Status.VERIFIED
    assert engine.stats()["issued"] == 1 and engine.stats()["verified"] == 1


def test_exceptions_are_real_classes_of_the_package() -> None:
    for cls in (otpengine.RateLimited, otpengine.KeyLocked, otpengine.CapacityExceeded):
        assert issubclass(cls, otpengine.OtpError) and cls.__module__ == "otpengine"
    assert issubclass(otpengine.OtpError, Exception)
    assert [s.name for s in otpengine.Status] == ["VERIFIED", "MISMATCH", "LOCKED", "EXPIRED", "NOT_FOUND", "REPLAYED"]
    assert set(otpengine.__all__) >= {"Engine", "Verdict", "Status", "OtpError", "RateLimited", "KeyLocked", "CapacityExceeded"}


def test_verdicts_compare_by_value_and_not_with_other_types() -> None:
    engine = otpengine.Engine(manual_clock=True)
    engine.issue("alice")
    engine.issue("bob")
    alice = engine.verify("alice", "------")  # never a code: a mismatch, 4 attempts left
    bob = engine.verify("bob", "------")
    assert alice == bob and hash(alice) == hash(bob)
    assert engine.verify("bob", "------") != bob, "3 attempts left now"
    assert engine.verify("nobody", "1") == engine.verify("nobody", "2")
    assert alice.__eq__("mismatch") is NotImplemented
    assert (alice == "mismatch") is False


def test_every_public_item_of_the_stubs_has_a_docstring() -> None:
    """The stubs are the Python API's documentation: every class, method,
    property and function in them says what it does."""
    import ast
    from pathlib import Path

    stubs = Path(otpengine.__file__).with_name("_native.pyi")
    missing = []
    for node in ast.walk(ast.parse(stubs.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                missing.append(node.name)
    assert missing == []
