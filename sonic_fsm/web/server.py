"""``sonic-fsm serve``: the voice server. One page, one WebSocket; each connection is one
conversation (:class:`sonic_fsm.api.Conversation`) on the configured backend.

A connection's two directions run side by side: the reader feeds the conversation from the
client's messages, the writer sends the conversation's events (and a snapshot four times a
second) from one outbox. A protocol violation closes that connection, with a close code and
a reason, and ends its conversation; no other connection is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sonic_fsm.api import Conversation, ConversationClosed, Ended
from sonic_fsm.core.backend import Backend
from sonic_fsm.settings import Settings, as_dict, from_dict
from sonic_fsm.web import messages as msg

STATIC = Path(__file__).parent / "static"
SNAPSHOT_SECONDS = 0.25
SETTINGS_ENV = "SONIC_FSM_SERVE_SETTINGS"
"""The settings every worker process serves with, as JSON (``sonic-fsm serve`` sets it)."""
APP_FACTORY = "sonic_fsm.web.server:app_from_env"
"""The app factory by import string: what uvicorn's worker processes each import and call."""
log = logging.getLogger("sonic_fsm.web")

BackendFactory = Callable[[Settings], Backend]


def default_backend(settings: Settings) -> Backend:
    from sonic_fsm.wiring import make_backend

    return make_backend(settings)


class _Connection:
    """One WebSocket and its conversation."""

    def __init__(self, ws: WebSocket, conv: Conversation) -> None:
        self.ws = ws
        self.conv = conv
        self.outbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()

    async def read(self) -> None:
        """Client messages into the conversation, until the client leaves or misbehaves."""
        ws, conv = self.ws, self.conv
        while True:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    conv.send_audio(msg.parse_audio(message["bytes"]))
                    continue
                parsed = msg.parse_text(message.get("text") or "")
                if isinstance(parsed, msg.Played):
                    try:
                        conv.played(parsed.bytes, parsed.queued_seconds)
                    except ValueError as e:
                        raise msg.ProtocolViolation(msg.INVALID, str(e)) from None
                elif parsed.name == "stop":
                    conv.stop()
                elif parsed.name == "force_handoff":
                    conv.force_handoff()
                else:
                    conv.set_muted(parsed.muted)
            except ConversationClosed:
                continue  # audio still arriving after the conversation ended: dropped
            except msg.ProtocolViolation as e:
                log.info("closing a connection: %s", e.reason)
                await ws.close(code=e.code, reason=e.reason)
                return

    async def events(self) -> None:
        async for event in self.conv.events():
            self.outbox.put_nowait(msg.event_message(event))
            if isinstance(event, Ended):
                break
        self.outbox.put_nowait(None)

    async def snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            snap = self.conv.snapshot()
            if snap is not None:
                self.outbox.put_nowait(msg.snapshot_message(snap, self.conv.played_seconds))

    async def write(self) -> None:
        """The one writer of the socket. Stops at the conversation's end or a dead socket."""
        ws = self.ws
        while (item := await self.outbox.get()) is not None:
            if ws.application_state is not WebSocketState.CONNECTED:
                return
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_text(item)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return


def make_app(settings: Settings, backend_factory: BackendFactory = default_backend) -> Starlette:
    """The ASGI app: ``/`` the page, ``/static`` its files, ``/ws`` one conversation each."""

    async def index(request: object) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def voice(ws: WebSocket) -> None:
        await ws.accept()
        conv = Conversation(settings, backend_factory(settings))
        conn = _Connection(ws, conv)
        audio = settings.audio
        await ws.send_text(msg.ready_message(audio.input_sample_rate, audio.output_sample_rate))
        reader = asyncio.create_task(conn.read(), name="ws-reader")
        events = asyncio.create_task(conn.events(), name="ws-events")
        snapshots = asyncio.create_task(conn.snapshots(), name="ws-snapshots")
        writer = asyncio.create_task(conn.write(), name="ws-writer")
        failed: str | None = None
        try:
            async with conv:
                # Until the client leaves (or is closed for a violation) or the conversation ends.
                await asyncio.wait({reader, events}, return_when=asyncio.FIRST_COMPLETED)
                conv.stop()  # every session is closed before the ``async with`` lets go
        except Exception as e:  # the conversation could not run (e.g. no credentials)
            log.warning("a conversation failed: %s", e)
            failed = f"the conversation failed: {e}"
        # Send what is left (the end of the answer, ``ended``), then let the socket go.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(events), 5)
        snapshots.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), 5)
        for t in (reader, events, snapshots, writer):
            t.cancel()
        if ws.application_state is WebSocketState.CONNECTED:
            code, reason = (1011, failed[:120]) if failed else (1000, "the conversation ended")
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code=code, reason=reason)

    return Starlette(
        routes=[
            Route("/", index),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            WebSocketRoute("/ws", voice),
        ]
    )


def app_from_env() -> Starlette:
    """The app of one worker process: the settings from :data:`SETTINGS_ENV` (the defaults
    when it is unset). ``uvicorn --factory sonic_fsm.web.server:app_from_env`` runs it too."""
    text = os.environ.get(SETTINGS_ENV)
    return make_app(from_dict(json.loads(text)) if text else Settings())


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve until interrupted; ``workers`` > 1: uvicorn's own worker processes, each with
    its own conversations, all accepting on the one socket."""
    import uvicorn

    os.environ[SETTINGS_ENV] = json.dumps(as_dict(settings))  # inherited by the workers
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws_max_size=4 * msg.MAX_AUDIO_BYTES,  # larger still is refused by uvicorn itself (1009)
        log_level="info",
    )
