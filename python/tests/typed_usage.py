"""A small program checked by `mypy --strict` against the package's stubs."""

from __future__ import annotations

import asyncio

import otpengine


def login(engine: otpengine.Engine, phone: str, typed: str) -> bool:
    result: otpengine.Verdict = engine.verify(f"{phone}/login", typed)
    if result.status is otpengine.Status.MISMATCH:
        left: int = result.attempts_left
        print(f"{left} attempts left")
    return bool(result)


def send(engine: otpengine.Engine, phone: str) -> str | None:
    try:
        return engine.issue(f"{phone}/login", context=None, ttl=120.0)
    except otpengine.RateLimited as e:
        wait: float = e.retry_after
        print(f"retry in {wait:.0f} s")
    except otpengine.KeyLocked as e:
        print(f"locked for {e.retry_after:.0f} s")
    except otpengine.CapacityExceeded:
        pass
    return None


def shared(url: str, secret: bytes) -> otpengine.Engine | None:
    """An engine over Redis, shared by the instances of a service (not run here)."""
    try:
        return otpengine.Engine(redis_url=url, secret=secret, redis_connect_timeout=0.5, redis_response_timeout=0.25)
    except otpengine.BackendUnavailable as e:
        print(f"Redis is down: {e}")
        return None


def main() -> None:
    engine = otpengine.Engine(code_length=6, alphabet="digits", ttl=300.0, manual_clock=True)
    code = send(engine, "+15551234567")
    if code is not None:
        assert login(engine, "+15551234567", code)
    codes: list[str | Exception] = engine.issue_many(["a", b"b"], context=b"ctx")
    first = codes[0] if isinstance(codes[0], str) else ""
    statuses: list[otpengine.Status | Exception] = engine.verify_many([("a", first), (b"b", "000000", b"ctx")])
    stats: otpengine.Stats = engine.stats()
    engine.advance(1.5)
    print(len(engine), statuses, stats["issued"], otpengine.__version__)
    enrol()
    asyncio.run(serve())


async def serve() -> None:
    """The asyncio engine, with scopes."""
    engine = otpengine.aio.Engine(manual_clock=True, scope_limits={"ip": {"max_issues": 10, "issue_window": 3600}})
    scopes = {"ip": otpengine.ip_scope("203.0.113.7")}
    code: str = await engine.issue("alice", scopes=scopes)
    verdict: otpengine.Verdict = await engine.verify("alice", code, scopes=scopes)
    stats: otpengine.Stats = await engine.stats()
    try:
        await engine.issue("alice", scopes=scopes)
    except otpengine.RateLimited as refused:
        where: str | None = refused.scope
        print(where)
    print(bool(verdict), stats["verified"])


def enrol() -> None:
    """Authenticator-app enrolment with the pure functions."""
    secret: bytes = otpengine.new_totp_secret()
    uri: str = otpengine.totp_uri(secret, issuer="Acme", account="alice@example.com")
    svg: str = otpengine.qr_svg(uri)
    now: str = otpengine.totp(secret, at=1_700_000_000, digits=6, period=30, algorithm="SHA1")
    token: str = otpengine.hotp(secret, 0)
    engine = otpengine.Engine(manual_clock=True)
    verdict: otpengine.Verdict = engine.verify_totp("alice", secret, now, at=1_700_000_000)
    replayed: bool = engine.verify_totp("alice", secret, now, at=1_700_000_000).status is otpengine.Status.REPLAYED
    print(len(svg), now, token, bool(verdict), replayed)


if __name__ == "__main__":
    main()
