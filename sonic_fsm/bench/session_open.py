"""``sonic-fsm bench --scenario session-open``: opening and closing Bedrock sessions, timed.

Through the real AWS SDK against the emulator's local endpoint (:mod:`sonic_fsm.local_endpoint`).
``open_ms``: ``backend.open()``, the opening events sent and the response received (the
stream is live); ``close_ms``: the clean close (input closed, output drained, stream and
transport closed). ``--opens`` sessions one after the other, then as many in pairs opened
at once (a hand-off briefly holds two).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sonic_fsm.backends.bedrock import BedrockBackend
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.metrics import percentile
from sonic_fsm.local_endpoint import on_thread
from sonic_fsm.settings import Settings

TIMEOUT_SECONDS = 30.0  # one open and close; far beyond what either takes


async def _one(backend: BedrockBackend, session_id: str) -> tuple[float, float]:
    async with asyncio.timeout(TIMEOUT_SECONDS):
        t0 = time.perf_counter()
        session = await backend.open(session_id)
        for event in [
            pr.session_start(),
            pr.prompt_start("p", "matthew"),
            *pr.text_block("p", "sys", "SYSTEM", "hi", 1024),
            pr.audio_content_start("p", "mic"),
        ]:
            await session.send(event)
        await session.accepted()
        t1 = time.perf_counter()
        for event in [pr.content_end("p", "mic"), pr.prompt_end("p"), pr.session_end()]:
            await session.send(event)
        await session.close()
        t2 = time.perf_counter()
    return 1000 * (t1 - t0), 1000 * (t2 - t1)


def _figures(timings: list[tuple[float, float]]) -> dict[str, Any]:
    opens, closes = sorted(t[0] for t in timings), sorted(t[1] for t in timings)
    return {
        "n": len(timings),
        "open_ms_p50": percentile(opens, 50),
        "open_ms_p99": percentile(opens, 99),
        "close_ms_p50": percentile(closes, 50),
        "close_ms_p99": percentile(closes, 99),
    }


def run(settings: Settings, opens: int = 30) -> dict[str, Any]:
    async def measure(backend: BedrockBackend) -> dict[str, Any]:
        try:
            await _one(backend, "warm")
            one_by_one = [await _one(backend, f"s{i}") for i in range(opens)]
            pairs: list[tuple[float, float]] = []
            for i in range(max(1, opens // 2)):
                pairs += await asyncio.gather(_one(backend, f"a{i}"), _one(backend, f"b{i}"))
        finally:
            await backend.aclose()
        return {"sequential": _figures(one_by_one), "two_at_once": _figures(pairs)}

    with on_thread(lambda: LocalBackend(settings)) as endpoint:
        _, backend = endpoint.bedrock(settings)
        return asyncio.run(measure(backend))
