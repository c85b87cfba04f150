"""Exceptions and the Status enum, as real Python classes the native module raises and returns."""

from __future__ import annotations

import enum
from typing import TypedDict


class Status(enum.Enum):
    """The outcome of a verify."""

    VERIFIED = "verified"
    """The right code, in time, with the right context; it is now consumed."""
    MISMATCH = "mismatch"
    """A wrong code or context (or not a code at all); the failure was counted."""
    LOCKED = "locked"
    """The code's attempts are used up, or the key is locked out."""
    EXPIRED = "expired"
    """The code's time is over."""
    NOT_FOUND = "not_found"
    """No code is pending for the key."""
    REPLAYED = "replayed"
    """``verify_totp`` only: the right authenticator code for a time step the key
    already accepted (a code works once); not counted as a failure."""


class Stats(TypedDict):
    """What ``Engine.stats()`` returns: the engine's answers since it was built,
    and what it holds now. Per-scope counts are in ``Engine.prometheus()``."""

    issued: int
    """Codes issued."""
    verified: int
    """Verifies answered ``VERIFIED``."""
    mismatched: int
    """Verifies answered ``MISMATCH``."""
    locked: int
    """Issues and verifies answered ``LOCKED`` / ``KeyLocked`` (a scope's lockout too)."""
    expired: int
    """Verifies answered ``EXPIRED``."""
    rate_limited: int
    """Issues refused with ``RateLimited`` (the key's own limits or a scope's)."""
    revoked: int
    """Revokes that dropped a pending code."""
    not_found: int
    """Verifies answered ``NOT_FOUND``."""
    capacity_exceeded: int
    """Calls refused with ``CapacityExceeded``."""
    unavailable: int
    """Calls that raised ``BackendUnavailable`` (Redis only)."""
    replayed: int
    """TOTP verifies answered ``REPLAYED``."""
    live: int
    """Keys with a pending code now (with Redis: the whole store's)."""
    held: int
    """Keys and scope values with any state now, against the capacity."""


class OtpError(Exception):
    """Base class of the engine's refusals."""


class RateLimited(OtpError):
    """An issue inside the key's resend cooldown, beyond its issue window, or
    beyond the issue budget of a scope the call named."""

    retry_after: float
    """Seconds until an issue for this key would be allowed: the longest wait
    among the limits that refuse it."""

    scope: str | None
    """The scope whose limit gives that wait; ``None`` for the key's own."""

    def __init__(self, message: str, retry_after: float, scope: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope


class KeyLocked(OtpError):
    """An issue for a key locked out after too many failed verifies."""

    retry_after: float
    """Seconds until the lockout ends (or until ``unlock`` is called)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CapacityExceeded(OtpError):
    """The engine holds state for as many keys as its capacity allows."""


class BackendUnavailable(OtpError):
    """An engine built with ``redis_url`` could not reach Redis, or Redis did not
    answer within ``redis_response_timeout``. Nothing was verified; the message
    names the server and why. The engine reconnects by itself."""


for _cls in (Status, OtpError, RateLimited, KeyLocked, CapacityExceeded, BackendUnavailable):
    _cls.__module__ = "otpengine"
