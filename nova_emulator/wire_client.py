"""A light client of the endpoint's wire: HTTP/2 + TLS, signed event-stream frames.

It speaks exactly what the AWS SDK speaks (signed request, chunk-signature chain, inner
``chunk`` frames) without the SDK's per-call overhead, so tests and benchmarks can open
many streams on one connection. Each :class:`WireStream` is a
:class:`~sonic_fsm.core.backend.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from sonic_fsm.errors import SessionError

from . import eventstream
from .sigv4 import Credentials, sign_chunk, sign_request

EVENT_STREAM = "application/vnd.amazon.eventstream"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class WireStream:
    """One bidirectional stream: ``send`` events, ``receive`` events, ``close``."""

    def __init__(self, client: WireClient, stream_id: int, signature: str) -> None:
        self._client = client
        self.id = stream_id
        self._prior = signature
        self._reader = eventstream.FrameReader()
        self._events: asyncio.Queue[dict[str, Any] | SessionError | None] = asyncio.Queue()
        self.window = asyncio.Event()
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.headers_ready = asyncio.Event()
        self._error_body = b""
        self._input_closed = False
        self._ended = False

    async def _send_signed(self, inner: bytes) -> None:
        when = self._client.clock()
        c = self._client
        _, sig = sign_chunk(
            prior=self._prior,
            payload=inner,
            when=when,
            key_secret=c.credentials.secret_access_key,
            region=c.region,
        )
        self._prior = sig.hex()
        await c.send_data(self, eventstream.signed_frame(inner, when, sig))

    async def send(self, event: dict[str, Any]) -> None:
        if self._input_closed:
            raise SessionError("ConnectionError", "input stream already closed")
        await self._send_signed(eventstream.chunk_frame(event))

    async def receive(self) -> dict[str, Any] | None:
        if self._ended and self._events.empty():
            return None
        item = await self._events.get()
        if item is None:
            self._ended = True
            return None
        if isinstance(item, SessionError):
            self._ended = True
            raise item
        return item

    async def close_input(self) -> None:
        """The signed empty frame, then END_STREAM: how the SDK closes its input."""
        if self._input_closed:
            return
        self._input_closed = True
        with contextlib.suppress(h2.exceptions.ProtocolError, ConnectionError):
            await self._send_signed(b"")
            await self._client.end_stream(self)

    async def close(self) -> None:
        await self.close_input()
        while not self._ended:
            try:
                await self.receive()
            except SessionError:
                break

    # ---- fed by the client's reader --------------------------------------------------

    def _on_headers(self, headers: dict[str, str]) -> None:
        self.response_headers = headers
        self.status = int(headers.get(":status", "0"))
        self.headers_ready.set()

    def _on_data(self, data: bytes) -> None:
        if self.status != 200:
            self._error_body += data
            return
        try:
            frames = self._reader.feed(data)
        except eventstream.FramingError as e:
            self._events.put_nowait(SessionError("ModelStreamErrorException", str(e)))
            return
        for frame in frames:
            kind = frame.headers.get(":message-type")
            if kind == "exception":
                code = str(frame.headers.get(":exception-type", ""))
                code = code[:1].upper() + code[1:]
                try:
                    message = str(json.loads(frame.payload).get("message", ""))
                except (ValueError, AttributeError):
                    message = frame.payload.decode(errors="replace")
                self._events.put_nowait(SessionError(code, message))
            elif kind == "error":
                self._events.put_nowait(
                    SessionError(
                        str(frame.headers.get(":error-code", "")),
                        str(frame.headers.get(":error-message", "")),
                    )
                )
            else:
                try:
                    self._events.put_nowait(eventstream.read_chunk(frame))
                except eventstream.ChunkError as e:
                    self._events.put_nowait(SessionError("ModelStreamErrorException", str(e)))

    def _on_end(self) -> None:
        if self.status is not None and self.status != 200:
            try:
                message = str(json.loads(self._error_body).get("message", ""))
            except (ValueError, AttributeError):
                message = self._error_body.decode(errors="replace")
            code = self.response_headers.get("x-amzn-errortype", f"HTTP{self.status}")
            self._events.put_nowait(SessionError(code, message))
        self._events.put_nowait(None)
        self.headers_ready.set()


class WireClient:
    """One HTTP/2 connection to the endpoint; many streams on it."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        region: str = "us-east-1",
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.clock = clock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
        )
        self.streams: dict[int, WireStream] = {}
        self.authority = ""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn_window = asyncio.Event()
        self._lock = asyncio.Lock()

    async def connect(self, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname="localhost"
        )
        self.authority = f"{host}:{port}"
        self.h2.initiate_connection()
        # As the CRT does: a large connection window, so streams do not wait for each other.
        self.h2.increment_flow_control_window((16 << 20) - 65535)
        self._flush()
        self._task = asyncio.create_task(self._read_loop())

    def _flush(self) -> None:
        assert self._writer is not None
        data = self.h2.data_to_send()
        if data:
            self._writer.write(data)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for ev in self.h2.receive_data(data):
                    self._dispatch(ev)
                self._flush()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            for stream in self.streams.values():
                if not stream._ended:
                    stream._events.put_nowait(SessionError("ConnectionError", "connection lost"))
                stream.headers_ready.set()
                stream.window.set()

    def _dispatch(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.ResponseReceived):
            s = self.streams.get(ev.stream_id)
            if s:
                s._on_headers({str(k): str(v) for k, v in ev.headers or []})
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s = self.streams.get(ev.stream_id)
            if s and ev.data:
                s._on_data(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            s = self.streams.get(ev.stream_id)
            if s:
                s._on_end()
        elif isinstance(ev, h2.events.StreamReset):
            s = self.streams.get(ev.stream_id)
            if s:
                s._events.put_nowait(SessionError("ConnectionError", "stream reset"))
                s.headers_ready.set()
                s.window.set()
        elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for s in self.streams.values():
                s.window.set()

    async def open(self, model_id: str = "amazon.nova-sonic-v1:0") -> WireStream:
        """Send a signed request; the stream is ready for ``send`` at once."""
        path = f"/model/{quote(model_id, safe='')}/invoke-with-bidirectional-stream"
        host = self.authority
        signed = sign_request(
            method="POST",
            path=path,
            headers={"host": host, "content-type": EVENT_STREAM},
            credentials=self.credentials,
            region=self.region,
            when=self.clock(),
        )
        signature = signed["authorization"].rsplit("Signature=", 1)[1]
        headers = [(":method", "POST"), (":scheme", "https"), (":path", path)]
        headers.append((":authority", host))
        headers += [(k, v) for k, v in signed.items() if k != "host"]
        async with self._lock:
            sid = self.h2.get_next_available_stream_id()
            stream = WireStream(self, sid, signature)
            self.streams[sid] = stream
            self.h2.send_headers(sid, headers, end_stream=False)
            self._flush()
        return stream

    async def send_data(self, stream: WireStream, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                window = self.h2.local_flow_control_window(stream.id)
            except h2.exceptions.StreamClosedError:
                raise SessionError("ConnectionError", "stream closed by the server") from None
            if window <= 0:
                stream.window.clear()
                await stream.window.wait()
                if self._task is not None and self._task.done():
                    raise SessionError("ConnectionError", "connection lost")
                continue
            size = min(len(view), window, self.h2.max_outbound_frame_size)
            self.h2.send_data(stream.id, bytes(view[:size]))
            view = view[size:]
            self._flush()
        assert self._writer is not None
        await self._writer.drain()

    async def end_stream(self, stream: WireStream) -> None:
        self.h2.end_stream(stream.id)
        self._flush()

    async def aclose(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            self.h2.close_connection()
            self._flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        self._writer = None
