"""otpengine.aio: the same engine as coroutines; on Redis the loop never blocks."""

from __future__ import annotations

import asyncio
import time

import otpengine
from otpengine import Status
from test_redis import SECRET, env, unique


def test_a_memory_engine_answers_straight_through() -> None:
    async def main() -> None:
        engine = otpengine.aio.Engine(manual_clock=True, resend_cooldown=0)
        code = await engine.issue("alice")
        assert (await engine.verify("alice", "x")).status is Status.MISMATCH
        assert (await engine.verify("alice", code)).status is Status.VERIFIED
        assert await engine.len() == 0
        stats = await engine.stats()
        assert stats["verified"] == 1 and stats["mismatched"] == 1
        issued = await engine.issue_many(["a", "b"])
        assert all(isinstance(code, str) for code in issued)
        await engine.advance(1)

    asyncio.run(main())


def test_redis_calls_never_block_the_event_loop() -> None:
    """200 concurrent verifies while Redis is paused for 300 ms: a ticker task
    keeps ticking every 10 ms, and the verifies wait for the pause."""
    url = env("OTPENGINE_REDIS_URL")
    engine = otpengine.aio.Engine(
        redis_url=url,
        secret=SECRET,
        redis_namespace=unique("aio"),
        resend_cooldown=0.0,
        max_issues_per_window=0,
    )

    async def main() -> tuple[float, float, list[Status]]:
        keys = [f"user-{n}" for n in range(200)]
        codes = await asyncio.gather(*(engine.issue(key) for key in keys))
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        pause = await asyncio.create_subprocess_exec("redis-cli", "-u", url, "CLIENT", "PAUSE", "300", "ALL")
        assert await pause.wait() == 0
        started = time.monotonic()
        verdicts = await asyncio.gather(*(engine.verify(key, code) for key, code in zip(keys, codes)))
        took = time.monotonic() - started
        done.set()
        await ticking
        return took, max(gaps), [v.status for v in verdicts]

    took, longest_gap, statuses = asyncio.run(main())
    assert statuses == [Status.VERIFIED] * 200
    assert took > 0.2, f"the verifies did not wait for the paused server ({took:.3f} s)"
    assert longest_gap < 0.1, f"the event loop stalled for {longest_gap:.3f} s"
