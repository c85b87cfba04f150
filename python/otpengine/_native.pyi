import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TypedDict, final

from otpengine._types import Stats, Status

__all__ = [
    "Engine",
    "Verdict",
    "__version__",
    "android_app_hash",
    "hotp",
    "ip_scope",
    "new_totp_secret",
    "qr_svg",
    "sms_segments",
    "sms_text",
    "totp",
    "totp_uri",
    "voice_text",
]
__version__: str

_Bytes = str | bytes

class _ScopeLimit(TypedDict, total=False):
    """One scope's budgets in ``Engine(scope_limits=...)``."""

    max_issues: int
    issue_window: float
    max_failures: int
    failure_window: float

@final
class Engine:
    """An OTP engine. Safe to share between threads; batch calls release the GIL.

    An in-memory engine belongs to one process: in a child forked after it was
    built, its copy starts empty, and the first call there emits one
    ``RuntimeWarning`` saying so (use ``redis_url`` for multi-process servers).
    """

    def __new__(
        cls,
        *,
        code_length: int | None = None,
        alphabet: str | None = None,
        ttl: float | None = None,
        max_attempts: int | None = None,
        resend_cooldown: float | None = None,
        max_issues_per_window: int | None = None,
        issue_window: float | None = None,
        max_failures_per_key: int | None = None,
        lockout: float | None = None,
        codes_per_key: int | None = None,
        capacity: int | None = None,
        shards: int | None = None,
        manual_clock: bool = False,
        redis_url: str | None = None,
        secret: bytes | None = None,
        redis_connect_timeout: float | None = None,
        redis_response_timeout: float | None = None,
        escalate_lockouts: bool | None = None,
        max_lockout: float | None = None,
        redis_namespace: str | None = None,
        redis_ca_file: str | os.PathLike[str] | None = None,
        redis_client_cert: str | os.PathLike[str] | None = None,
        redis_client_key: str | os.PathLike[str] | None = None,
        redis_username: str | None = None,
        redis_password: str | None = None,
        redis_accept_eviction: bool = False,
        redis_exact_counts: bool = False,
        scope_limits: Mapping[str, _ScopeLimit] | None = None,
    ) -> Engine:
        """``scope_limits`` gives each scope name a calls may use its budgets,
        e.g. ``{"ip": {"max_issues": 10, "issue_window": 3600, "max_failures": 50,
        "failure_window": 3600}}`` (up to 8 names of ``[a-z0-9_-]``; a count of 0
        or left out is no limit; windows in seconds, 1 to 86400). Failure budgets
        suit narrow scopes (an address, a tenant): on a broad one an attacker
        could lock everyone out."""
    def issue(
        self,
        key: _Bytes,
        context: _Bytes | None = None,
        ttl: float | None = None,
        *,
        scopes: Mapping[str, _Bytes] | None = None,
    ) -> str:
        """A code for ``key``. With ``scopes`` (scope name to this call's value,
        e.g. ``{"ip": otpengine.ip_scope(addr), "prefix": "+44"}``) the issue is
        allowed only when the key's own limits and every scope's allow it, and is
        then counted on each; ``RateLimited.scope`` names the scope that gave the
        longest wait (``None``: the key's own limits). A scope name with no
        configured limit is a ``ValueError``, and counts nothing."""
    def verify(
        self,
        key: _Bytes,
        code: _Bytes,
        context: _Bytes | None = None,
        *,
        scopes: Mapping[str, _Bytes] | None = None,
    ) -> Verdict:
        """What the person typed, checked. With ``scopes``, a scope that has
        spent its failure budget answers ``LOCKED`` without the code being looked
        at; a counted mismatch counts on the key and on every scope with a
        failure budget; ``VERIFIED`` resets the key's count, not a scope's."""
    def unlock_scope(self, name: str, value: _Bytes) -> bool:
        """Lifts the failure lockout of the scope ``name`` = ``value`` and clears
        its counts; ``True`` if it had a count in a running window."""
    def verify_totp(
        self,
        key: _Bytes,
        secret: _Bytes,
        code: str,
        *,
        digits: int | None = None,
        period: float | None = None,
        algorithm: str | None = None,
        skew_back: int | None = None,
        skew_ahead: int | None = None,
        at: float | datetime | None = None,
        scopes: Mapping[str, _Bytes] | None = None,
    ) -> Verdict:
        """Verifies an authenticator-app code (RFC 6238 TOTP) for ``key``.

        ``secret`` is the user's TOTP secret (raw ``bytes`` or base32 ``str``,
        16 to 64 bytes), kept by the application and never by the engine. The
        first right code for a time step later than the key's last accepted one
        is ``VERIFIED``; the same code again is ``REPLAYED`` (not a failure);
        anything else spends one failure of the key's budget (``MISMATCH`` with
        ``attempts_left``, or ``LOCKED`` with ``retry_after`` once spent; while
        locked the code is not looked at). The engine's ``max_failures_per_key``
        must be on (``ValueError`` otherwise). Parameters left ``None`` take the
        defaults: 6 digits, 30 s, ``"SHA1"``, one step of skew each way, and
        ``at`` now by this host's clock (Unix seconds or an aware ``datetime``).
        TOTP state is apart from the key's random codes. ``scopes`` as for
        ``verify``.
        """
    def revoke(self, key: _Bytes) -> bool:
        """Drops the key's codes; ``True`` if one was pending. Limits and failure counts stay."""
    def unlock(self, key: _Bytes) -> bool:
        """Lifts the key's lockout and clears its failure count; ``True`` if there was one."""
    def ping(self) -> None:
        """A cheap health check for readiness probes: returns when the store
        answers now (always, in memory), else raises ``BackendUnavailable``."""
    def unlock_totp(self, key: _Bytes) -> bool:
        """Lifts the lockout of the key's TOTP state and clears its failure count
        (``unlock`` is for its random codes); ``True`` if there was a count. The
        last accepted step stays."""
    def __len__(self) -> int:
        """Keys with a pending code."""
    def stats(self) -> Stats:
        """Counters of the engine's answers, and what it holds now (see ``Stats``)."""
    def prometheus(self) -> str:
        """The stats in the Prometheus text format, ``otpengine_rate_limited_total``
        with a ``scope`` label per refusing scope (``scope="key"``: the key's own)."""
    def advance(self, seconds: float) -> None:
        """Moves the manual clock on (``manual_clock=True`` only)."""
    def issue_many(self, keys: Iterable[_Bytes], context: _Bytes | None = None) -> list[str | Exception]:
        """A code per key, or the exception the single ``issue`` would raise for it."""
    def verify_many(
        self, items: Iterable[tuple[_Bytes, _Bytes] | tuple[_Bytes, _Bytes, _Bytes | None]]
    ) -> list[Status | Exception]:
        """A ``Status`` per item, or the exception the single ``verify`` would raise for it."""

@final
class Verdict:
    """The answer to Engine.verify: true only when verified."""

    @property
    def status(self) -> Status:
        """The outcome."""
    @property
    def attempts_left(self) -> int:
        """Wrong guesses left, on ``MISMATCH``; else 0."""
    @property
    def retry_after(self) -> float:
        """Seconds until the lockout ends, on ``LOCKED`` (0.0 for a burned code,
        which a new issue replaces); else 0.0."""
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def hotp(secret: _Bytes, counter: int, *, digits: int | None = None, algorithm: str | None = None) -> str:
    """The HOTP code (RFC 4226) of ``secret`` at ``counter``.

    ``secret`` is raw ``bytes`` or base32 ``str`` (as authenticator apps show it),
    16 to 64 bytes. ``digits`` is 6 to 8 (default 6); ``algorithm`` is ``"SHA1"``
    (default), ``"SHA256"`` or ``"SHA512"``. Bad values raise ``ValueError``
    naming the argument, its bounds and the value.
    """

def totp(
    secret: _Bytes,
    *,
    at: float | datetime | None = None,
    digits: int | None = None,
    period: float | None = None,
    algorithm: str | None = None,
) -> str:
    """The TOTP code (RFC 6238) of ``secret`` at ``at``.

    ``at`` is Unix seconds (``int`` or ``float``) or an aware ``datetime``
    (a naive one raises ``ValueError``); ``None`` is now, by this host's clock.
    ``period`` is whole seconds, 10 to 300 (default 30). Other arguments as for
    ``hotp``.
    """

def new_totp_secret(length: int | None = None) -> bytes:
    """A new random TOTP secret from the operating system: ``length`` bytes, 16 to
    64 (default 20, what authenticator apps expect)."""

def totp_uri(
    secret: _Bytes,
    *,
    issuer: str,
    account: str,
    digits: int | None = None,
    period: float | None = None,
    algorithm: str | None = None,
) -> str:
    """The enrolment URI an authenticator app scans:
    ``otpauth://totp/<issuer>:<account>?secret=<BASE32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30``,
    label and values percent-encoded and every parameter written out. Show it as
    a QR code with ``qr_svg``; the secret is in it, so treat the page as secret."""

def qr_svg(text: str) -> str:
    """``text`` as an SVG QR code, at least 200 pixels square (up to 2,331 bytes
    of text; longer raises ``ValueError``)."""

def ip_scope(addr: str) -> str:
    """The scope value for a client address: IPv4 as its ``/32``
    (``"203.0.113.7/32"``), IPv6 masked to its ``/64`` (``"2001:db8:1:2::/64"``),
    since one host is routinely given a whole ``/64``. ``ValueError`` for
    anything else."""

def sms_text(
    code: str,
    *,
    brand: str,
    ttl: float,
    webotp_domain: str | None = None,
    android_app_hash: str | None = None,
    template: str | None = None,
    allow_multipart: bool = False,
) -> str:
    """The SMS that carries ``code`` for ``brand``, valid for ``ttl`` seconds:
    ``"Acme: your code is 123456. It expires in 5 minutes. Do not share it."``,
    or ``template`` with ``{code}`` (required), ``{brand}`` and ``{minutes}``
    (whole minutes rounded down, seconds under a minute). ``android_app_hash``
    adds the SMS Retriever hash on a line of its own; ``webotp_domain`` adds the
    origin-bound last line ``@example.com #123456`` (WICG sms-one-time-codes),
    which browsers (WebOTP) and phone keyboards fill in on that site only.
    Raises ``ValueError`` naming what is wrong, also when the text would take
    more than one SMS segment and ``allow_multipart`` is false."""

def android_app_hash(package_name: str, signing_certificate: bytes) -> str:
    """The 11-character hash Google's SMS Retriever API looks for in an SMS:
    from the app's package name and the DER bytes of its signing certificate,
    by Google's recipe (SHA-256 of the name, a space and the certificate in
    lowercase hex; the first 9 bytes in base64, cut to 11 characters)."""

def sms_segments(text: str) -> tuple[str, int]:
    """The encoding ``text`` needs (``"GSM-7"``, with its extension table, or
    ``"UCS-2"``) and the SMS segments it is billed as (160/153 septets, or
    70/67 UTF-16 units, a segment)."""

def voice_text(code: str, *, brand: str) -> str:
    """What a voice call says: ``"Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1,
    2, 3, 4, 5, 6."``."""
