"""The authenticator-app functions: RFC vectors, and agreement with pyotp, an
implementation nobody here wrote, for random secrets, times, digits and hashes."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

import otpengine
from otpengine import Status

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def b32(secret: bytes) -> str:
    return base64.b32encode(secret).decode().rstrip("=")


def test_hotp_gives_the_rfc_4226_vectors() -> None:
    want = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    for counter, code in enumerate(want):
        assert otpengine.hotp(b"12345678901234567890", counter) == code


@pytest.mark.parametrize(
    "algorithm, seed",
    [
        ("SHA1", b"12345678901234567890"),
        ("SHA256", b"12345678901234567890123456789012"),
        ("SHA512", b"1234567890123456789012345678901234567890123456789012345678901234"),
    ],
)
def test_totp_gives_the_rfc_6238_vectors(algorithm: str, seed: bytes) -> None:
    rows = {
        59: ("94287082", "46119246", "90693936"),
        1111111109: ("07081804", "68084774", "25091201"),
        1234567890: ("89005924", "91819424", "93441116"),
        20000000000: ("65353130", "77737706", "47863826"),
    }
    column = ["SHA1", "SHA256", "SHA512"].index(algorithm)
    for at, codes in rows.items():
        assert otpengine.totp(seed, at=at, digits=8, algorithm=algorithm) == codes[column]


def test_codes_agree_with_pyotp_for_random_secrets_times_digits_and_hashes() -> None:
    rng = random.Random(2026)
    for _ in range(300):
        secret = rng.randbytes(rng.randint(16, 64))
        algorithm = rng.choice(list(DIGESTS))
        digits = rng.randint(6, 8)
        period = rng.randint(10, 120)  # pyotp stops at 120 s; the engine takes up to 300
        at = rng.randint(0, 2**35)
        counter = rng.randint(0, 2**40)
        theirs = pyotp.TOTP(b32(secret), digits=digits, digest=DIGESTS[algorithm], interval=period)
        ours = otpengine.totp(secret, at=at, digits=digits, period=period, algorithm=algorithm)
        assert ours == theirs.at(at), (algorithm, digits, period, at)
        # A secret as apps show it (base32, lower case, in groups) is the same secret.
        spaced = " ".join(b32(secret).lower()[i : i + 4] for i in range(0, len(b32(secret)), 4))
        assert otpengine.totp(spaced, at=at, digits=digits, period=period, algorithm=algorithm) == ours
        hotp = pyotp.HOTP(b32(secret), digits=digits, digest=DIGESTS[algorithm])
        assert otpengine.hotp(secret, counter, digits=digits, algorithm=algorithm) == hotp.at(counter)


def test_at_takes_seconds_and_aware_datetimes_only() -> None:
    secret = otpengine.new_totp_secret()
    moment = datetime(2026, 12, 2, 12, 0, 29, tzinfo=timezone(timedelta(hours=5)))
    assert otpengine.totp(secret, at=moment) == otpengine.totp(secret, at=moment.timestamp())
    assert otpengine.totp(secret, at=moment) == pyotp.TOTP(b32(secret)).at(moment)
    with pytest.raises(ValueError, match="aware datetime"):
        otpengine.totp(secret, at=datetime(2026, 12, 2, 12, 0, 0))
    with pytest.raises(ValueError, match="at must be a time at or after 1970"):
        otpengine.totp(secret, at=-1)
    with pytest.raises(ValueError, match="at must be a time between 1970-01-01 and 9999-12-31 UTC"):
        otpengine.totp(secret, at=1e300)
    with pytest.raises(TypeError, match="at must be Unix seconds"):
        otpengine.totp(secret, at="now")  # type: ignore[arg-type]
    # None is now, by this host's clock, as pyotp's now().
    assert otpengine.totp(secret) in {pyotp.TOTP(b32(secret)).at(datetime.now(timezone.utc) + timedelta(seconds=d)) for d in (-1, 0, 1)}


def test_bad_arguments_name_the_argument_its_bounds_and_the_value() -> None:
    secret = otpengine.new_totp_secret()
    with pytest.raises(ValueError, match=r"^digits must be between 6 and 8, got 9$"):
        otpengine.totp(secret, digits=9)
    with pytest.raises(ValueError, match=r"^period must be between 10\.0 and 300\.0 seconds, got 5\.0$"):
        otpengine.totp(secret, period=5)
    with pytest.raises(ValueError, match=r"^period must be between 10\.0 and 300\.0 seconds, got 30\.5$"):
        otpengine.totp(secret, period=30.5)
    with pytest.raises(ValueError, match=r'^algorithm must be one of "SHA1", "SHA256", "SHA512", got "MD5"$'):
        otpengine.hotp(secret, 0, algorithm="MD5")
    with pytest.raises(ValueError, match=r"^secret must be between 16 and 64 bytes long, got 10 bytes$"):
        otpengine.hotp(b"0123456789", 0)
    with pytest.raises(ValueError, match=r"^secret must be base32") as refused:
        otpengine.hotp("NOT BASE32 1890!", 0)
    assert "1890" not in str(refused.value), "the error never repeats the secret"
    with pytest.raises(TypeError, match="secret must be bytes"):
        otpengine.hotp(12345, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^secret must be between 16 and 64 bytes long, got 65 bytes$"):
        otpengine.new_totp_secret(65)
    assert len(otpengine.new_totp_secret()) == 20
    assert len(otpengine.new_totp_secret(32)) == 32
    assert otpengine.new_totp_secret() != otpengine.new_totp_secret()


def test_the_enrolment_uri_agrees_with_pyotps_in_every_field() -> None:
    rng = random.Random(7)
    for issuer, account in [("Acme Bank", "alice@example.com"), ("Ünïcode & Co", "bob:smith/1"), ("x", "y")]:
        secret = rng.randbytes(20)
        algorithm = rng.choice(list(DIGESTS))
        digits, period = rng.randint(6, 8), rng.choice([30, 60])
        ours = urlparse(
            otpengine.totp_uri(secret, issuer=issuer, account=account, digits=digits, period=period, algorithm=algorithm)
        )
        theirs = urlparse(
            pyotp.TOTP(b32(secret), digits=digits, digest=DIGESTS[algorithm], interval=period).provisioning_uri(
                name=account, issuer_name=issuer
            )
        )
        assert (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc) == ("otpauth", "totp")
        assert unquote(ours.path) == unquote(theirs.path) == f"/{issuer}:{account}"
        our_query = {k: v[0] for k, v in parse_qs(ours.query).items()}
        their_query = {k: v[0] for k, v in parse_qs(theirs.query).items()}
        # pyotp leaves parameters at their defaults out; the apps read them as the same.
        defaults = {"algorithm": "SHA1", "digits": "6", "period": "30"}
        assert our_query == {**defaults, **their_query}
        assert our_query["secret"] == b32(secret)
        # And the URI parsed back by pyotp makes the same codes.
        parsed = pyotp.parse_uri(otpengine.totp_uri(secret, issuer=issuer, account=account, digits=digits, period=period, algorithm=algorithm))
        assert isinstance(parsed, pyotp.TOTP)
        assert parsed.at(1_700_000_000) == otpengine.totp(secret, at=1_700_000_000, digits=digits, period=period, algorithm=algorithm)


def test_qr_svg_draws_any_text_up_to_the_largest_code() -> None:
    svg = otpengine.qr_svg(otpengine.totp_uri(otpengine.new_totp_secret(), issuer="Acme", account="alice"))
    assert svg.startswith("<?xml") and "<svg" in svg
    with pytest.raises(ValueError, match="text must be"):
        otpengine.qr_svg("x" * 3000)


# ---- verify_totp ------------------------------------------------------------------

T0 = 1_700_000_000


def test_verify_totp_accepts_pyotps_code_once_and_a_replay_is_not_a_failure(
    make_engine: Callable[..., otpengine.Engine],
) -> None:
    engine = make_engine(max_failures_per_key=3, lockout=600.0)
    secret = otpengine.new_totp_secret()
    code = pyotp.TOTP(b32(secret)).at(T0)
    first = engine.verify_totp("alice", secret, code, at=T0)
    assert first.status is Status.VERIFIED and bool(first)
    again = engine.verify_totp("alice", b32(secret), code, at=T0 + 1)  # the base32 form is the same secret
    assert again.status is Status.REPLAYED and not again
    assert engine.stats()["replayed"] == 1
    wrong_code = engine.verify_totp("alice", secret, "000000" if code != "000000" else "111111", at=T0)
    assert (wrong_code.status, wrong_code.attempts_left) == (Status.MISMATCH, 2)
    engine.verify_totp("alice", secret, "nope", at=T0)
    locked = engine.verify_totp("alice", secret, "nope", at=T0)
    assert (locked.status, locked.retry_after) == (Status.LOCKED, 600.0)
    assert engine.unlock("alice") is False, "unlock is for random codes"
    assert engine.unlock_totp("alice") is True
    assert engine.verify_totp("alice", secret, code, at=T0).status is Status.REPLAYED
    engine.verify_totp("alice", secret, "nope", at=T0)
    engine.verify_totp("alice", secret, "nope", at=T0)
    assert engine.verify_totp("alice", secret, "nope", at=T0).status is Status.LOCKED
    engine.advance(600)
    later = pyotp.TOTP(b32(secret)).at(T0 + 600)
    assert engine.verify_totp("alice", secret, later, at=datetime.fromtimestamp(T0 + 600, timezone.utc))
    # The skew edges: one step each way by default, two with skew_back=2.
    assert engine.verify_totp("k1", secret, pyotp.TOTP(b32(secret)).at(T0 - 30), at=T0)
    assert engine.verify_totp("k2", secret, pyotp.TOTP(b32(secret)).at(T0 - 60), at=T0).status is Status.MISMATCH
    assert engine.verify_totp("k3", secret, pyotp.TOTP(b32(secret)).at(T0 - 60), at=T0, skew_back=2)


def test_verify_totp_is_apart_from_random_codes_and_needs_a_budget(
    make_engine: Callable[..., otpengine.Engine],
) -> None:
    engine = make_engine(max_failures_per_key=1)
    secret = otpengine.new_totp_secret()
    issued = engine.issue("alice")
    assert engine.verify_totp("alice", secret, "000000", at=T0).status in {Status.LOCKED, Status.MISMATCH}
    assert engine.verify("alice", issued), "the random code did not notice"
    with pytest.raises(ValueError, match="^max_failures_per_key must be at least 1 for verify_totp"):
        make_engine(max_failures_per_key=0).verify_totp("alice", secret, "000000", at=T0)
    with pytest.raises(ValueError, match="^secret must be between 16 and 64 bytes long, got 8 bytes$"):
        engine.verify_totp("alice", b"12345678", "000000", at=T0)
    with pytest.raises(TypeError, match="code must be a str"):
        engine.verify_totp("alice", secret, b"000000", at=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware datetime"):
        engine.verify_totp("alice", secret, "000000", at=datetime(2026, 1, 1))


@pytest.mark.parametrize("var", ["OTPENGINE_REDIS_URL", "OTPENGINE_REDIS_CLUSTER"])
def test_a_totp_code_verified_on_one_instance_is_replayed_on_the_other(var: str) -> None:
    url = os.environ.get(var, "")
    if not url:
        pytest.skip(f"{var} is not set (make test sets it)")
    a, b = (
        otpengine.Engine(redis_url=url, secret=b"otpengine Python test secret 32b", max_failures_per_key=5)
        for _ in range(2)
    )
    key = f"py-totp-{os.getpid()}-{time.time_ns()}"
    secret = otpengine.new_totp_secret()
    code = otpengine.totp(secret, at=T0)
    assert a.verify_totp(key, secret, code, at=T0).status is Status.VERIFIED
    assert b.verify_totp(key, secret, code, at=T0).status is Status.REPLAYED
    assert b.verify_totp(key, secret, "000000" if code != "000000" else "1" * 6, at=T0).attempts_left == 4
