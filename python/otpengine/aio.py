"""``otpengine`` for asyncio services (FastAPI, aiohttp, Starlette).

``otpengine.aio.Engine`` takes the constructor arguments of ``otpengine.Engine``
and has its methods, as coroutines::

    engine = otpengine.aio.Engine(redis_url=url, secret=secret)
    code = await engine.issue("+15551234567/login")
    verdict = await engine.verify("+15551234567/login", typed)

With ``redis_url`` every call waits on the network, so it runs in the event
loop's default executor (the engine releases the GIL while it waits): the loop
goes on serving other tasks. An in-memory engine answers in about a
microsecond, faster than a hop to a thread would take, so its calls run
straight through. The constructor connects to Redis, a round trip or two:
build the engine at start-up, not per request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from otpengine._native import Engine as _Engine
from otpengine._native import Verdict
from otpengine._types import Stats, Status

__all__ = ["Engine"]

_T = TypeVar("_T")
_Bytes = str | bytes


class Engine:
    """``otpengine.Engine`` with coroutine methods that never block the loop."""

    def __init__(self, **config: Any) -> None:
        """The arguments of ``otpengine.Engine``, all keyword-only."""
        self._engine = _Engine(**config)
        self._remote = config.get("redis_url") is not None

    @property
    def sync(self) -> _Engine:
        """The blocking engine underneath, for code outside the event loop."""
        return self._engine

    async def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if not self._remote:
            return call(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))

    async def issue(
        self,
        key: _Bytes,
        context: _Bytes | None = None,
        ttl: float | None = None,
        *,
        scopes: Mapping[str, _Bytes] | None = None,
    ) -> str:
        """``Engine.issue``."""
        return await self._call(self._engine.issue, key, context, ttl, scopes=scopes)

    async def verify(
        self,
        key: _Bytes,
        code: _Bytes,
        context: _Bytes | None = None,
        *,
        scopes: Mapping[str, _Bytes] | None = None,
    ) -> Verdict:
        """``Engine.verify``."""
        return await self._call(self._engine.verify, key, code, context, scopes=scopes)

    async def verify_totp(
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
        """``Engine.verify_totp``."""
        return await self._call(
            self._engine.verify_totp,
            key,
            secret,
            code,
            digits=digits,
            period=period,
            algorithm=algorithm,
            skew_back=skew_back,
            skew_ahead=skew_ahead,
            at=at,
            scopes=scopes,
        )

    async def revoke(self, key: _Bytes) -> bool:
        """``Engine.revoke``."""
        return await self._call(self._engine.revoke, key)

    async def unlock(self, key: _Bytes) -> bool:
        """``Engine.unlock``."""
        return await self._call(self._engine.unlock, key)

    async def unlock_totp(self, key: _Bytes) -> bool:
        """``Engine.unlock_totp``."""
        return await self._call(self._engine.unlock_totp, key)

    async def unlock_scope(self, name: str, value: _Bytes) -> bool:
        """``Engine.unlock_scope``."""
        return await self._call(self._engine.unlock_scope, name, value)

    async def ping(self) -> None:
        """``Engine.ping``."""
        await self._call(self._engine.ping)

    async def stats(self) -> Stats:
        """``Engine.stats``."""
        return await self._call(self._engine.stats)

    async def prometheus(self) -> str:
        """``Engine.prometheus``."""
        return await self._call(self._engine.prometheus)

    async def len(self) -> int:
        """``len(engine)``: keys with a pending code (a method, since ``len()``
        cannot wait)."""
        return await self._call(self._engine.__len__)

    async def advance(self, seconds: float) -> None:
        """``Engine.advance`` (the manual clock)."""
        await self._call(self._engine.advance, seconds)

    async def issue_many(self, keys: Iterable[_Bytes], context: _Bytes | None = None) -> list[str | Exception]:
        """``Engine.issue_many``."""
        return await self._call(self._engine.issue_many, list(keys), context)

    async def verify_many(
        self, items: Iterable[tuple[_Bytes, _Bytes] | tuple[_Bytes, _Bytes, _Bytes | None]]
    ) -> list[Status | Exception]:
        """``Engine.verify_many``."""
        return await self._call(self._engine.verify_many, list(items))
