"""The voice server over real sockets: uvicorn on a free port, WebSocket clients of the
``websockets`` library speaking the protocol of the README, the in-process emulator behind.
Real time, so every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from nova_emulator import voice
from sonic_fsm import testsignal
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.core.backend import Backend
from sonic_fsm.settings import Settings, load
from sonic_fsm.web import messages as msg
from sonic_fsm.web.server import make_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FRAME = 640  # 20 ms of 16 kHz 16-bit audio


@dataclass
class Server:
    url: str
    backends: list[LocalBackend] = field(default_factory=list)


@asynccontextmanager
async def running(
    settings: Settings, make: Callable[[Settings], LocalBackend] | None = None
) -> AsyncIterator[Server]:
    server = Server(url="")

    def backend(s: Settings) -> Backend:
        b = make(s) if make else LocalBackend(s, speaker=voice.synthetic)
        server.backends.append(b)
        return b

    config = uvicorn.Config(
        make_app(settings, backend),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws_max_size=4 * msg.MAX_AUDIO_BYTES,
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    try:
        async with asyncio.timeout(10):
            while not uv.started:
                await asyncio.sleep(0.02)
        port = uv.servers[0].sockets[0].getsockname()[1]
        server.url = f"127.0.0.1:{port}"
        yield server
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class Client:
    ws: ClientConnection
    texts: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0

    async def speak(self, pcm: bytes) -> None:
        """Real time, 20 ms frames, as a page does; silence after, until cancelled."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i = 0
        while True:
            frame = pcm[i * FRAME : (i + 1) * FRAME].ljust(FRAME, b"\0")
            await asyncio.sleep(max(0.0, t0 + i * 0.02 - loop.time()))
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return
            i += 1

    async def until(self, done: Any, seconds: float = 20.0) -> None:
        async with asyncio.timeout(seconds):
            async for m in self.ws:
                if isinstance(m, bytes):
                    self.audio_bytes += len(m)
                else:
                    self.texts.append(json.loads(m))
                if done(self):
                    return

    def heard(self) -> list[str]:
        return [t["text"] for t in self.texts if t["type"] == "transcript" and t["role"] == "user"]

    def answers(self) -> list[str]:
        return [
            t["text"]
            for t in self.texts
            if t["type"] == "transcript" and t["role"] == "assistant" and t["stage"] == "final"
        ]


def question(n: int) -> bytes:
    return bytes(16000) + testsignal.utterance(n)


def answered(n: int) -> Any:
    return lambda c: f"answer to utterance {n}" in c.answers() and c.audio_bytes > 0


async def closed(ws: ClientConnection) -> tuple[int, str]:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed) as e:
            while True:
                await ws.recv()
    assert e.value.rcvd is not None
    return e.value.rcvd.code, e.value.rcvd.reason


def settings() -> Settings:
    return load(None, [])


def test_two_clients_are_two_independent_conversations() -> None:
    async def main() -> None:
        async with running(settings()) as server:
            async with (
                connect(f"ws://{server.url}/ws") as a_ws,
                connect(f"ws://{server.url}/ws") as b_ws,
            ):
                a, b = Client(a_ws), Client(b_ws)
                ready = json.loads(await asyncio.wait_for(a_ws.recv(), 5))
                assert ready == {
                    "type": "ready",
                    "input_rate": 16000,
                    "output_rate": 24000,
                    "max_audio_bytes": msg.MAX_AUDIO_BYTES,
                }
                await asyncio.wait_for(b_ws.recv(), 5)
                talk = [
                    asyncio.create_task(a.speak(question(11))),
                    asyncio.create_task(b.speak(question(22))),
                ]
                await asyncio.gather(a.until(answered(11)), b.until(answered(22)))
                for t in talk:
                    t.cancel()
                assert a.heard() == ["utterance 11"] and b.heard() == ["utterance 22"]
                assert "answer to utterance 22" not in a.answers()
                assert "answer to utterance 11" not in b.answers()
                assert any(t["type"] == "snapshot" for t in a.texts)
                await a_ws.send(json.dumps({"type": "stop"}))
                await a.until(lambda c: c.texts[-1]["type"] == "ended", 10)
                assert a.texts[-1]["reason"] == "stopped by the operator"
                # b goes on after a has ended
                b.texts.clear()
                talk = [asyncio.create_task(b.speak(question(23)))]
                await b.until(answered(23))
                talk[0].cancel()
            assert len(server.backends) == 2

    asyncio.run(main())


def test_a_client_that_leaves_mid_answer_ends_its_conversation() -> None:
    async def main() -> None:
        async with running(settings()) as server:
            ws = await connect(f"ws://{server.url}/ws")
            c = Client(ws)
            talk = asyncio.create_task(c.speak(question(5)))
            await c.until(lambda c: c.audio_bytes > 0)  # the answer has begun
            talk.cancel()
            await ws.close()
            (backend,) = server.backends
            async with asyncio.timeout(10):
                while not all(s._closed for s in backend.sessions):
                    await asyncio.sleep(0.05)
            assert backend.sessions and all(s.model.finished or s._closed for s in backend.sessions)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("send", "code", "reason"),
    [
        ("this is not json", msg.INVALID, "text message is not JSON"),
        ('{"type": "dance"}', msg.UNSUPPORTED, "unknown message type 'dance'"),
        ('{"type": "played", "bytes": -1}', msg.INVALID, 'played: "bytes" must be'),
        ('{"type": "played", "bytes": 999999}', msg.INVALID, "more than the 0 bytes delivered"),
        ('{"type": "played", "bytes": 0, "queued_seconds": -1}', msg.INVALID, "queued_seconds"),
        (b"\x01\x02\x03", msg.INVALID, "3 bytes: 16-bit PCM comes in 2-byte samples"),
        (bytes(msg.MAX_AUDIO_BYTES + 2), msg.TOO_BIG, "at most 32000"),
        (bytes(msg.MAX_AUDIO_BYTES * 8), msg.TOO_BIG, ""),  # refused by uvicorn itself
    ],
)
def test_a_bad_message_closes_only_that_client(send: str | bytes, code: int, reason: str) -> None:
    async def main() -> None:
        async with (
            running(settings()) as server,
            connect(f"ws://{server.url}/ws") as bad_ws,
        ):
            await asyncio.wait_for(bad_ws.recv(), 5)  # ready: its backend is the first
            good_ws = await connect(f"ws://{server.url}/ws")
            good = Client(good_ws)
            talk = asyncio.create_task(good.speak(question(7)))
            await bad_ws.send(send)
            got_code, got_reason = await closed(bad_ws)
            assert got_code == code and reason in got_reason
            await good.until(answered(7))
            talk.cancel()
            await good_ws.close()
            bad_backend = server.backends[0]
            async with asyncio.timeout(10):
                while not all(s._closed for s in bad_backend.sessions):
                    await asyncio.sleep(0.05)

    asyncio.run(main())


def test_the_page_is_served() -> None:
    async def main() -> None:
        async with running(settings()) as server, httpx.AsyncClient() as http:
            page = await http.get(f"http://{server.url}/")
            assert page.status_code == 200 and "sonic-fsm" in page.text
            for name in ("app.js", "capture-worklet.js", "style.css"):
                r = await http.get(f"http://{server.url}/static/{name}")
                assert r.status_code == 200 and r.text

    asyncio.run(main())


class NoCredentials(LocalBackend):
    async def start(self) -> None:
        raise RuntimeError("no AWS credentials found")


def test_a_conversation_that_cannot_start_says_why_and_closes() -> None:
    async def main() -> None:
        async with (
            running(settings(), NoCredentials) as server,
            connect(f"ws://{server.url}/ws") as ws,
        ):
            c = Client(ws)
            with pytest.raises(ConnectionClosed):
                await c.until(lambda c: False, 10)
            assert [t["type"] for t in c.texts] == ["ready", "error", "ended"]
            assert c.texts[-1]["reason"] == "failed: no AWS credentials found"
            assert ws.close_code == 1011
            assert ws.close_reason == "the conversation failed: no AWS credentials found"

    asyncio.run(main())


def test_serve_with_two_worker_processes_holds_two_conversations() -> None:
    """``sonic-fsm serve --workers 2``: uvicorn's own worker processes (the app factory by
    import string), both accepting on one loopback port; two conversations at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "sonic_fsm.cli", "serve", "--workers", "2"]
    command += ["--port", str(port), "--set", "emulator.voice=synthetic"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr
    assert stderr is not None

    def drain() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        workers: set[str] = set()
        started = 0
        deadline = time.monotonic() + 60
        while started < 2:
            assert proc.poll() is None, f"serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the workers did not start within 60 s"
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=0.5)
                if m := re.search(r"Started server process \[(\d+)\]", line):
                    workers.add(m[1])
                started += "Application startup complete" in line
        assert len(workers) == 2 and str(proc.pid) not in workers

        async def main() -> None:
            async with (
                connect(f"ws://127.0.0.1:{port}/ws") as a_ws,
                connect(f"ws://127.0.0.1:{port}/ws") as b_ws,
            ):
                a, b = Client(a_ws), Client(b_ws)
                talk = [
                    asyncio.create_task(a.speak(question(31))),
                    asyncio.create_task(b.speak(question(32))),
                ]
                await asyncio.gather(a.until(answered(31), 30), b.until(answered(32), 30))
                for t in talk:
                    t.cancel()
                assert a.heard() == ["utterance 31"] and b.heard() == ["utterance 32"]

        asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == 0
