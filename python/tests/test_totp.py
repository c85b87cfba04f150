"""The authenticator-app functions: RFC vectors, and agreement with pyotp, an
implementation nobody here wrote, for random secrets, times, digits and hashes."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

import otpengine

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
