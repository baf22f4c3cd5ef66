"""Open and close Bedrock sessions through the real SDK against the local endpoint, timed.

open_ms: ``backend.open()`` + the opening events sent + the response headers received
(the stream is live); close_ms: the clean close (input closed, output drained, stream and
transport closed). Sequential, then 2 at once (a hand-off briefly holds two).

Run: .venv/bin/python scripts/measure/bedrock_open.py [--n 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nova_emulator.server import Endpoint, EndpointThread
from nova_emulator.sigv4 import Credentials as EndpointCredentials
from nova_emulator.tls import ensure_certificates, server_context
from sonic_fsm import credentials
from sonic_fsm.backends.bedrock import BedrockBackend
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.core import protocol as pr
from sonic_fsm.settings import load

KEY, SECRET = "AKIDMEASUREOPEN00001", "measure-open-secret"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 1)


async def one(backend: BedrockBackend, sid: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    s = await backend.open(sid)
    for e in [
        pr.session_start(),
        pr.prompt_start("p", "matthew"),
        *pr.text_block("p", "sys", "SYSTEM", "hi", 1024),
        pr.audio_content_start("p", "mic"),
    ]:
        await s.send(e)
    await asyncio.wait({s._output_task})  # the response has started: the stream is live
    t1 = time.perf_counter()
    for e in [pr.content_end("p", "mic"), pr.prompt_end("p"), pr.session_end()]:
        await s.send(e)
    await s.close()
    t2 = time.perf_counter()
    return 1000 * (t1 - t0), 1000 * (t2 - t1)


async def run(url: str, ca: str, n: int) -> None:
    settings = load(None, [f"backend.endpoint_uri='{url}'", "backend.kind=bedrock"])
    backend = BedrockBackend(settings, credentials=credentials.static(KEY, SECRET), ca_file=ca)
    await one(backend, "warm")
    seq = [await one(backend, f"s{i}") for i in range(n)]
    pairs = []
    for i in range(n // 2):
        pairs += await asyncio.gather(one(backend, f"a{i}"), one(backend, f"b{i}"))
    for name, xs in (("sequential", seq), ("two at once", pairs)):
        opens, closes = [x[0] for x in xs], [x[1] for x in xs]
        print(
            f"{name:12} open_ms p50 {pct(opens, 50)} p99 {pct(opens, 99)}   "
            f"close_ms p50 {pct(closes, 50)} p99 {pct(closes, 99)}   (n={len(xs)})"
        )
    await backend.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tls = ensure_certificates(Path(tmp))
        settings = load(None, [])

        def make() -> Endpoint:
            return Endpoint(
                backend=LocalBackend(settings),
                credentials=EndpointCredentials(access_key_id=KEY, secret_access_key=SECRET),
                tls=server_context(tls),
            )

        with EndpointThread(make) as endpoint:
            asyncio.run(run(endpoint.url, str(tls.ca_cert), args.n))


if __name__ == "__main__":
    main()
