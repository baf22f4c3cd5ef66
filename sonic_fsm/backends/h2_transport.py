"""The AWS SDK's HTTP/2 transport on the event loop: ``h2`` for the protocol, ``ssl`` for TLS.

The SDK takes its transport as a setting (``transport=``: any ``HTTPClient`` that declares
``SUPPORTS_DUPLEX_STREAMING``). With this one it still does all it does with its own CRT
transport: it builds and signs the request, serialises, signs and frames every event, and
parses every event it receives. Only the bytes travel differently.

Why: the CRT transport does its I/O on a thread of its own, so every event frame crosses
threads twice. The CRT thread takes the GIL to complete each write and each read and wakes
the event loop for it, and while the loop is busy that hand-over waits. One conversation
sends about 16 frames a second; with tens of conversations in one process the hand-overs
cost more than everything else, and the loop falls behind real time
(``sonic-fsm bench --concurrent``; the figures are in the README's scale-out section).
Here a frame is written where it is made, on the loop, with no thread in between.

One transport is one connection (a session's, so a dying stream takes no other with it);
it can carry several streams. Received data is acknowledged at once, with receive windows
as large as the CRT's; sent data honours the server's windows and the socket's
back-pressure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from smithy_core.aio.interfaces import StreamingBlob
from smithy_http import Field, Fields
from smithy_http.aio.interfaces import HTTPRequest, HTTPRequestConfiguration, HTTPResponse
from smithy_http.exceptions import SmithyHTTPError

WINDOW = 16 << 20
"""Receive window of the connection and of each stream, in bytes (the CRT's)."""

_NOT_SENT = frozenset({"host", "connection", "keep-alive", "proxy-connection", "upgrade"})
"""Request headers HTTP/2 does not carry (``host`` travels as ``:authority``)."""


@functools.cache
def ssl_context(ca_file: str = "") -> ssl.SSLContext:
    """A client TLS context offering only ``h2``: the system's trust store, or only
    ``ca_file`` when given. Built once per process for each (reading a trust store takes
    milliseconds)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.set_alpn_protocols(["h2"])
    return context


class _Stream:
    """One request and its response, fed by the connection."""

    def __init__(self, connection: _Connection, stream_id: int) -> None:
        loop = asyncio.get_running_loop()
        self.id = stream_id
        self.connection = connection
        self.response: asyncio.Future[list[tuple[str, str]]] = loop.create_future()
        self.window = asyncio.Event()  # set when the server may have opened its window
        self.writer: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.ended = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection -------------------------------------------------------------

    def on_headers(self, headers: list[tuple[str, str]]) -> None:
        if not self.response.done():
            self.response.set_result(headers)

    def on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def on_end(self) -> None:
        self.ended = True
        if not self.response.done():
            self.response.set_exception(ConnectionError("the stream ended before a response"))
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The stream cannot go on: its reads raise ``error`` once the data is read."""
        if self.ended or self.error is not None:
            return
        self.error = error
        if not self.response.done():
            self.response.set_exception(error)
        self.window.set()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- read by the SDK -----------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[bytes]:
        """The response body as it arrives; raises the stream's error if it failed."""
        while True:
            if self._chunks:
                yield self._chunks.popleft()
            elif self.error is not None:
                raise self.error
            elif self.ended:
                return
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                self._waiter = None


class _Response(HTTPResponse):
    def __init__(self, status: int, fields: Fields, stream: _Stream) -> None:
        self._status = status
        self._fields = fields
        self._stream = stream

    @property
    def status(self) -> int:
        return self._status

    @property
    def fields(self) -> Fields:
        return self._fields

    @property
    def reason(self) -> str | None:
        return None  # HTTP/2 has no reason phrase

    @property
    def body(self) -> AsyncIterable[bytes]:
        return self._stream.chunks()


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine, driven by the socket's callbacks."""

    def __init__(self) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self.streams: dict[int, _Stream] = {}
        self.socket: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.last_stream_id: int | None = None  # the server's GOAWAY: no new streams
        self.writable = asyncio.Event()
        self.writable.set()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.socket = transport
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.flush()  # h2 has queued its GOAWAY
            self._fail_all(ConnectionError(f"HTTP/2 protocol error from the server: {e}"))
            if self.socket is not None:
                self.socket.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        why = f": {exc}" if exc else ""
        self.lost = ConnectionError(f"the connection was closed{why}")
        self._fail_all(self.lost)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # -- the h2 events -----------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived):
            if stream is not None:
                stream.on_headers(list(event.headers or []))  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream is not None and event.data:
                stream.on_data(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            if stream is not None:
                stream.on_end()
        elif isinstance(event, h2.events.StreamReset):
            if stream is not None:
                stream.fail(ConnectionError(f"the server reset the stream ({event.error_code!r})"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.last_stream_id = event.last_stream_id or 0
            error = ConnectionError(f"the server closed the connection ({event.error_code!r})")
            for sid, s in self.streams.items():
                if sid > self.last_stream_id:
                    s.fail(error)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for s in self.streams.values():
                s.window.set()

    def _fail_all(self, error: BaseException) -> None:
        for s in self.streams.values():
            s.fail(error)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.socket is not None and not self.socket.is_closing():
            self.socket.write(data)

    # -- used by the transport -----------------------------------------------------------

    def open_stream(self, headers: list[tuple[str, str]]) -> _Stream:
        if self.lost is not None:
            raise self.lost
        if self.last_stream_id is not None:
            raise ConnectionError("the server is closing the connection (GOAWAY)")
        sid = self.h2.get_next_available_stream_id()
        stream = _Stream(self, sid)
        self.streams[sid] = stream
        self.h2.send_headers(sid, headers, end_stream=False)
        self.flush()
        return stream

    async def send_data(self, stream: _Stream, data: bytes) -> None:
        """Write ``data`` on ``stream`` within the server's windows; waits while the socket
        is full."""
        view = memoryview(data)
        while view:
            if stream.error is not None:
                raise stream.error
            window = min(
                self.h2.local_flow_control_window(stream.id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                stream.window.clear()
                await stream.window.wait()
                continue
            size = min(len(view), window)
            self.h2.send_data(stream.id, view[:size].tobytes())
            view = view[size:]
        self.flush()
        if not self.writable.is_set():
            await self.writable.wait()
            if self.lost is not None:
                raise self.lost

    def end_stream(self, stream: _Stream) -> None:
        if stream.error is None and self.lost is None:
            self.h2.end_stream(stream.id)
            self.flush()

    def reset(self, stream: _Stream, error: BaseException) -> None:
        stream.fail(error)
        if self.lost is None:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.CANCEL)
            self.flush()

    def close(self) -> None:
        if self.socket is None or self.socket.is_closing():
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection()
            self.flush()
        self.socket.close()
        self._fail_all(ConnectionError("the transport was closed"))


class H2Transport:
    """An ``HTTPClient`` for the SDK: HTTPS with HTTP/2 only, on the running event loop."""

    SUPPORTS_DUPLEX_STREAMING = True
    TIMEOUT_EXCEPTIONS = (TimeoutError,)

    def __init__(self, *, ssl_context: ssl.SSLContext, connect_timeout: float) -> None:
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._streams: list[_Stream] = []
        self._closed = False

    def __deepcopy__(self, memo: Any) -> H2Transport:
        return self  # connections are state, not configuration

    async def send(
        self, request: HTTPRequest, *, request_config: HTTPRequestConfiguration | None = None
    ) -> HTTPResponse:
        """Send the request's headers, stream its body in a task of its own, and return
        once the response headers arrive (the body then streams both ways)."""
        if self._closed:
            raise SmithyHTTPError("Cannot send a request after the HTTP client has been closed.")
        url = request.destination
        if url.scheme != "https":
            raise SmithyHTTPError(
                f"the h2 transport speaks HTTP/2 over TLS only, not {url.scheme}://"
            )
        connection = await self._connection(url.host, url.port or 443)
        stream = connection.open_stream(self._headers(request))
        self._streams.append(stream)
        stream.writer = asyncio.create_task(self._write_body(stream, request.body))
        raw = await stream.response
        status = 0
        fields = Fields()
        for name, value in raw:
            if name == ":status":
                status = int(value)
            elif not name.startswith(":"):
                if name in fields:
                    fields[name].add(value)
                else:
                    fields[name] = Field(name=name, values=[value], kind="header")
        return _Response(status, fields, stream)

    @staticmethod
    def _headers(request: HTTPRequest) -> list[tuple[str, str]]:
        url = request.destination
        authority = url.netloc
        rest: list[tuple[str, str]] = []
        for f in request.fields.entries.values():
            if f.kind != "header":
                continue
            name = f.name.lower()
            if name == "host" and f.values:
                authority = f.values[0]
            elif name not in _NOT_SENT:
                rest += [(name, v) for v in f.values]
        path = (url.path or "/") + (f"?{url.query}" if url.query is not None else "")
        pseudo = [(":method", request.method), (":scheme", "https")]
        return [*pseudo, (":authority", authority), (":path", path), *rest]

    async def _connection(self, host: str, port: int) -> _Connection:
        key = (host, port)
        kept = self._connections.get(key)
        if kept is not None and kept.lost is None and kept.last_stream_id is None:
            return kept
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, host, port, ssl=self._ssl, server_hostname=host
                ),
                self._connect_timeout,
            )
        except TimeoutError:
            raise TimeoutError(
                f"no connection to {host}:{port} within {self._connect_timeout:g} s"
            ) from None
        assert connection.socket is not None
        tls = connection.socket.get_extra_info("ssl_object")
        alpn = tls.selected_alpn_protocol() if tls is not None else None
        if alpn != "h2":
            connection.close()
            raise ConnectionError(f"HTTP/2 could not be negotiated with {host}:{port} ({alpn})")
        self._connections[key] = connection
        return connection

    async def _write_body(self, stream: _Stream, body: StreamingBlob) -> None:
        connection = stream.connection
        try:
            if isinstance(body, bytes | bytearray):
                await connection.send_data(stream, bytes(body))
            elif isinstance(body, AsyncIterable):
                async for chunk in body:
                    await connection.send_data(stream, bytes(chunk))
            else:
                raise TypeError(f"the h2 transport cannot send a {type(body).__name__} body")
            connection.end_stream(stream)
        except ConnectionError:
            pass  # the stream has the error; its reader raises it
        except asyncio.CancelledError:
            connection.reset(stream, ConnectionError("the request body was cancelled"))
            raise
        except Exception as e:
            connection.reset(stream, e)

    def stream_failure(self) -> BaseException | None:
        """The error a stream failed with (a reset, a dropped connection), if any."""
        return next((s.error for s in self._streams if s.error is not None), None)

    def writer_tasks(self) -> list[asyncio.Task[None]]:
        """Each stream's request-body task (for its owner to reap)."""
        return [s.writer for s in self._streams if s.writer is not None]

    async def close(self) -> None:
        """Close every connection (a GOAWAY, then the socket)."""
        if self._closed:
            return
        self._closed = True
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


__all__ = ["H2Transport", "ssl_context"]
