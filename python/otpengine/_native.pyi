from collections.abc import Iterable
from typing import final

from otpengine._types import Status

__all__ = ["Engine", "Verdict", "__version__"]
__version__: str

_Bytes = str | bytes

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
    ) -> Engine: ...
    def issue(self, key: _Bytes, context: _Bytes | None = None, ttl: float | None = None) -> str: ...
    def verify(self, key: _Bytes, code: _Bytes, context: _Bytes | None = None) -> Verdict: ...
    def revoke(self, key: _Bytes) -> bool: ...
    def unlock(self, key: _Bytes) -> bool: ...
    def __len__(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def prometheus(self) -> str: ...
    def advance(self, seconds: float) -> None: ...
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
    def status(self) -> Status: ...
    @property
    def attempts_left(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
