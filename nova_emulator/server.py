"""The local endpoint: Bedrock's bidirectional-stream operation over HTTP/2 + TLS.

The real AWS SDK connects here as it would to Bedrock. Each HTTP/2 stream is one Nova Sonic
session of a :class:`~sonic_fsm.core.backend.Backend` (the in-process emulator by default);
this module only carries the wire: TLS with ALPN ``h2`` (the CRT transport has no cleartext
HTTP/2), event-stream frames both ways, the SigV4 request signature and chunk-signature
chain, HTTP/2 flow control when sending, and the service's errors as the SDK expects them.

Per stream: frames in -> verify chain -> inner ``chunk`` -> JSON event -> ``session.send``;
``session.receive`` -> ``chunk`` frame -> DATA. A :class:`SessionError` becomes a modeled
``exception`` frame (or, before the response starts, an HTTP error with
``x-amzn-errortype``). The response ends only after the client's END_STREAM.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from sonic_fsm.core.backend import Backend, Session
from sonic_fsm.errors import SessionError

from . import eventstream
from .sigv4 import AuthError, ChunkVerifier, Credentials, RequestAuth, verify_request

log = logging.getLogger(__name__)

PATH_PREFIX = "/model/"
PATH_SUFFIX = "/invoke-with-bidirectional-stream"
EVENT_STREAM = "application/vnd.amazon.eventstream"
MAX_CONCURRENT_STREAMS = 256
DEFAULT_WINDOW = 65535  # HTTP/2's initial window, which we never change by SETTINGS
STREAM_WINDOW = 1 << 20  # what we let a client send ahead, per stream
CONNECTION_WINDOW = 16 << 20  # and on the whole connection
OUTPUT_END_TIMEOUT_S = 30.0  # after the input closed, the longest the output may take to end
CLOSE_TIMEOUT_S = 5.0
ERROR_END_GRACE_S = 5.0  # after an exception frame, how long we wait for END_STREAM

# The output union's modeled exceptions; anything else is sent as an unmodeled error.
STREAM_EXCEPTIONS = {
    "ValidationException": "validationException",
    "ThrottlingException": "throttlingException",
    "ModelTimeoutException": "modelTimeoutException",
    "ModelStreamErrorException": "modelStreamErrorException",
    "InternalServerException": "internalServerException",
    "ServiceUnavailableException": "serviceUnavailableException",
}
HTTP_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
    "InternalServerException": 500,
    "ModelStreamErrorException": 424,
    "ServiceUnavailableException": 503,
}


def endpoint_url(host: str, port: int) -> str:
    """``https://host:port``; a wildcard bind is reached through loopback."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def exception_member(code: str) -> str | None:
    """``ValidationException`` -> ``validationException`` when the stream models it."""
    return STREAM_EXCEPTIONS.get(code)


def parse_path(path: str) -> str | None:
    """The model id of ``/model/{id}/invoke-with-bidirectional-stream[?...]``, else None."""
    raw = path.split("?", 1)[0]
    if not raw.startswith(PATH_PREFIX) or not raw.endswith(PATH_SUFFIX):
        return None
    model = raw[len(PATH_PREFIX) : -len(PATH_SUFFIX)]
    if not model or "/" in model:
        return None
    return unquote(model)


@dataclass
class Stats:
    """Counters an operator (and the benchmark) reads; updated on the server's loop only."""

    connections: int = 0  # open now (from the TCP accept, TLS handshake included)
    peak_connections: int = 0
    connections_refused: int = 0  # turned away at the cap
    connections_idle_closed: int = 0  # closed because they never opened a stream in time
    streams_opened: int = 0
    streams_completed: int = 0
    streams_failed: int = 0
    auth_refused: int = 0
    active: int = 0
    peak_active: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class _Fault:
    """A frame the service refuses, queued behind the events that came before it."""

    code: str
    message: str


class _Stream:
    """One HTTP/2 stream = one session; owned by its connection."""

    def __init__(self, conn: _Connection, stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.reader = eventstream.FrameReader()
        self.verifier: ChunkVerifier | None = None
        self.inbox: asyncio.Queue[dict[str, Any] | _Fault | None] = asyncio.Queue()
        self.input_ended = asyncio.Event()  # client END_STREAM
        self.window = asyncio.Event()
        self.session: Session | None = None
        self.task: asyncio.Task[None] | None = None
        self.response_started = False
        self.response_ended = False
        self.partial = False  # part of a frame is sent, the rest waits for the window
        self.failed = False


class _Connection:
    """One TLS connection: an h2 state machine fed from the socket, many streams."""

    def __init__(
        self,
        endpoint: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams: dict[int, _Stream] = {}
        self.closed = False
        self.had_stream = False

    # ---- socket side -----------------------------------------------------------------

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.writer.write(data)

    async def drain(self) -> None:
        self.flush()
        if not self.closed:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def run(self) -> None:
        # The stream window is opened per stream with WINDOW_UPDATE, not announced with
        # SETTINGS_INITIAL_WINDOW_SIZE: the CRT client can open a stream before it applies
        # our SETTINGS and then keeps that stream's window at the default 65,535 bytes,
        # while we believe we granted more; its input then stalls for good at 64 KB.
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            },
        )
        self.h2.initiate_connection()
        # Many streams share one connection: a 64 KB connection window would make every
        # stream's audio wait for the others' WINDOW_UPDATEs (head-of-line blocking).
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        await self.drain()
        loop = asyncio.get_running_loop()
        idle_deadline = loop.time() + self.endpoint.idle_timeout
        try:
            while not self.closed:
                # A connection that never opens a stream only holds memory: it gets
                # ``idle_timeout`` seconds to open one (PINGs and SETTINGS do not count).
                wait = None if self.had_stream else max(0.0, idle_deadline - loop.time())
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), wait)
                except TimeoutError:
                    self.endpoint.stats.connections_idle_closed += 1
                    await self.shutdown(goaway=True)
                    break
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    log.info("endpoint: HTTP/2 protocol error: %s", e)
                    self.flush()
                    break
                for event in events:
                    self._dispatch(event)
                await self.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.shutdown()

    async def shutdown(self, goaway: bool = False, goodbye: bool = False) -> None:
        """Close the connection: with ``goaway`` send GOAWAY first, and with ``goodbye`` tell
        each open stream why (a retryable ``serviceUnavailableException``)."""
        if goaway and not self.closed:
            with contextlib.suppress(Exception):
                for stream in list(self.streams.values()) if goodbye else []:
                    self._say_goodbye(stream)
                self.h2.close_connection()
                await self.drain()
        self.closed = True
        tasks = [s.task for s in self.streams.values() if s.task and not s.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    def _say_goodbye(self, stream: _Stream) -> None:
        if not stream.response_started or stream.response_ended or stream.partial:
            return  # (mid-frame, an exception frame would corrupt the stream: reset instead)
        frame = eventstream.exception_frame(
            "serviceUnavailableException", "The endpoint is shutting down; open a new session."
        )
        try:
            fits = self.h2.local_flow_control_window(stream.id) >= len(frame)
            if fits:
                self.h2.send_data(stream.id, frame, end_stream=True)
                stream.response_ended = True
        except h2.exceptions.ProtocolError:
            pass

    # ---- h2 events -------------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.had_stream = True
            stream = _Stream(self, event.stream_id)
            self.streams[event.stream_id] = stream
            self.h2.increment_flow_control_window(
                STREAM_WINDOW - DEFAULT_WINDOW, stream_id=event.stream_id
            )
            headers = {str(k): str(v) for k, v in (event.headers or [])}
            # The request is checked now, before this batch's DATA events: the chunk
            # chain starts at the request's signature.
            refusal = self.endpoint._accept(stream, headers)
            stream.task = asyncio.create_task(self.endpoint._serve_stream(stream, refusal))
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            target = self.streams.get(event.stream_id)
            if target is not None and event.data:
                self.endpoint._on_data(target, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            target = self.streams.get(event.stream_id)
            if target is not None:
                target.input_ended.set()
                target.inbox.put_nowait(None)
        elif isinstance(event, h2.events.StreamReset):
            target = self.streams.get(event.stream_id)
            if target is not None:
                target.response_ended = True
                target.input_ended.set()
                if target.task:
                    target.task.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            ids = (
                list(self.streams)
                if isinstance(event, h2.events.RemoteSettingsChanged) or event.stream_id == 0
                else [event.stream_id]
            )
            for sid in ids:
                if sid in self.streams:
                    self.streams[sid].window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    # ---- sending ---------------------------------------------------------------------

    async def send_headers(
        self, stream: _Stream, headers: list[tuple[str, str]], end: bool
    ) -> None:
        if self.closed or stream.response_ended:
            return
        self.h2.send_headers(stream.id, headers, end_stream=end)
        stream.response_started = True
        stream.response_ended = end
        await self.drain()

    async def send_data(self, stream: _Stream, data: bytes, end: bool = False) -> None:
        """Send ``data`` within the peer's flow-control windows, waiting for WINDOW_UPDATEs."""
        try:
            await self._send_all(stream, memoryview(data), end)
        finally:
            stream.partial = False

    async def _send_all(self, stream: _Stream, view: memoryview, end: bool) -> None:
        while not self.closed and not stream.response_ended:
            if not view and not end:
                return
            try:
                window = self.h2.local_flow_control_window(stream.id)
            except h2.exceptions.StreamClosedError:
                stream.response_ended = True
                return
            if view and window <= 0:
                stream.window.clear()
                await stream.window.wait()
                continue
            size = min(len(view), window, self.h2.max_outbound_frame_size)
            last = end and size == len(view)
            self.h2.send_data(stream.id, bytes(view[:size]), end_stream=last)
            view = view[size:]
            stream.partial = bool(view)
            if last:
                stream.response_ended = True
            await self.drain()
            if not view and not end:
                return

    def reset(self, stream: _Stream) -> None:
        if self.closed or stream.response_ended:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream.id, error_code=h2.errors.ErrorCodes.NO_ERROR)
        stream.response_ended = True
        self.flush()


@dataclass
class Endpoint:
    """The HTTP/2 server. ``start()`` binds; ``aclose()`` stops it and ends every session."""

    backend: Backend
    credentials: Credentials
    tls: ssl.SSLContext
    host: str = "127.0.0.1"
    port: int = 0
    model_ids: frozenset[str] | None = None  # None: any id naming a Sonic model
    max_connections: int = 256
    """Connections open at once (TLS handshakes included); more are closed at once."""
    idle_timeout: float = 10.0
    """Seconds a connection gets to finish its TLS handshake and open its first stream."""
    clock: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )
    stats: Stats = field(default_factory=Stats)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _conns: dict[_Connection, asyncio.Task[Any]] = field(
        default_factory=dict, init=False, repr=False
    )
    _handshakes: set[asyncio.Task[Any]] = field(default_factory=set, init=False, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), init=False)

    @property
    def url(self) -> str:
        return endpoint_url(self.host, self.port)

    async def start(self) -> None:
        # TLS is started per connection, after it is counted against the cap, so a
        # handshake that never finishes is bounded too.
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self, *, goodbye: bool = False) -> None:
        """Stop listening, send GOAWAY, end every stream and close its session.

        With ``goodbye`` (an operator stopping the server), each open stream is first told
        why, with a retryable ``serviceUnavailableException``; without it the streams just
        drop, as when a connection to the service is lost.
        """
        if self._server is not None:
            self._server.close()
        for handshake in list(self._handshakes):
            handshake.cancel()
        tasks = list(self._conns.values())
        for conn in list(self._conns):
            await conn.shutdown(goaway=True, goodbye=goodbye)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stats = self.stats
        if stats.connections >= self.max_connections:
            stats.connections_refused += 1
            writer.transport.abort()
            return
        stats.connections += 1
        stats.peak_connections = max(stats.peak_connections, stats.connections)
        try:
            task = asyncio.current_task()
            assert task is not None
            self._handshakes.add(task)
            try:
                await writer.start_tls(self.tls, ssl_handshake_timeout=self.idle_timeout)
            except (ConnectionAbortedError, TimeoutError):  # the handshake took too long
                stats.connections_idle_closed += 1
                writer.transport.abort()
                return
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                writer.transport.abort()
                return
            finally:
                self._handshakes.discard(task)
            ssl_obj = writer.get_extra_info("ssl_object")
            if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
                writer.close()  # HTTP/1.1 cannot carry a bidirectional stream
                return
            conn = _Connection(self, reader, writer)
            self._conns[conn] = task
            try:
                await conn.run()
            finally:
                self._conns.pop(conn, None)
        finally:
            stats.connections -= 1

    # ---- one stream --------------------------------------------------------------------

    async def _refuse(self, stream: _Stream, status: int, code: str, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        headers = [
            (":status", str(status)),
            ("content-type", "application/json"),
            ("x-amzn-errortype", code),
            ("x-amzn-requestid", str(uuid.uuid4())),
            ("content-length", str(len(body))),
        ]
        await stream.conn.send_headers(stream, headers, end=False)
        await stream.conn.send_data(stream, body, end=True)

    def _check_request(self, headers: dict[str, str]) -> tuple[str, RequestAuth]:
        method = headers.get(":method", "")
        path = headers.get(":path", "")
        model = parse_path(path)
        if method != "POST" or model is None:
            raise AuthError("UnknownOperationException", f"No operation at {method} {path}.", 404)
        known = model in self.model_ids if self.model_ids is not None else "sonic" in model
        if not known:
            raise AuthError(
                "ValidationException", f"The provided model identifier is invalid: {model}.", 400
            )
        signed = {k: v for k, v in headers.items() if not k.startswith(":")}
        signed.setdefault("host", headers.get(":authority", ""))
        auth = verify_request(
            method=method, path=path, headers=signed, credentials=self.credentials, now=self.clock()
        )
        return model, auth

    def _on_data(self, stream: _Stream, data: bytes) -> None:
        """Frames in: checked and queued synchronously, in arrival order."""
        if stream.failed or stream.verifier is None:
            return
        try:
            for outer in stream.reader.feed(data):
                self.stats.frames_in += 1
                stream.verifier.verify(
                    outer.header_bytes, outer.headers.get(":chunk-signature"), outer.payload
                )
                if not outer.payload:
                    continue  # the signed empty frame: the client's input is complete
                event = eventstream.read_chunk(eventstream.decode(outer.payload))
                stream.inbox.put_nowait(event)
        except AuthError as e:
            self.stats.auth_refused += 1
            stream.failed = True
            stream.inbox.put_nowait(_Fault("InvalidSignatureException", e.message))
        except (eventstream.FramingError, eventstream.ChunkError) as e:
            stream.failed = True
            stream.inbox.put_nowait(_Fault("ValidationException", str(e)))

    def _accept(self, stream: _Stream, headers: dict[str, str]) -> AuthError | None:
        """Check the request and arm the stream's chunk verifier; the refusal, if any."""
        self.stats.streams_opened += 1
        try:
            _, auth = self._check_request(headers)
        except AuthError as e:
            if e.status == 403:
                self.stats.auth_refused += 1
            stream.failed = True
            return e
        stream.verifier = ChunkVerifier(auth=auth, credentials=self.credentials)
        return None

    async def _serve_stream(self, stream: _Stream, refusal: AuthError | None) -> None:
        conn = stream.conn
        self.stats.active += 1
        self.stats.peak_active = max(self.stats.peak_active, self.stats.active)
        ok = False
        try:
            if refusal is not None:
                await self._refuse(stream, refusal.status, refusal.code, refusal.message)
                return
            try:
                stream.session = await self.backend.open(f"endpoint-{next(self._ids)}")
            except SessionError as e:
                await self._refuse(stream, HTTP_STATUS.get(e.code, 500), e.code, e.message)
                return
            await conn.send_headers(
                stream,
                [
                    (":status", "200"),
                    ("content-type", EVENT_STREAM),
                    ("x-amzn-requestid", str(uuid.uuid4())),
                ],
                end=False,
            )
            ok = await self._pump(stream, stream.session)
        except asyncio.CancelledError:
            conn.reset(stream)
            raise
        finally:
            self.stats.active -= 1
            if ok:
                self.stats.streams_completed += 1
            else:
                self.stats.streams_failed += 1
            if stream.session is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.session.close(), CLOSE_TIMEOUT_S)
            conn.streams.pop(stream.id, None)

    async def _pump(self, stream: _Stream, session: Session) -> bool:
        """Run both directions until the output ends; True when it ended without an error."""
        failure: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        inp = asyncio.create_task(self._guard(self._input(stream, session, failure), failure))
        out = asyncio.create_task(self._guard(self._output(stream, session, failure), failure))
        both: set[asyncio.Future[Any]] = {inp, out, failure}
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if not failure.done() and out.done():
                # The output ended by itself; the response still ends only after END_STREAM.
                await asyncio.wait(_futs(inp, failure), return_when=asyncio.FIRST_COMPLETED)
            elif not failure.done():
                # The client closed its input and all of it reached the session: close the
                # session's input too; its output ends once what it owes has been sent.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.close(), CLOSE_TIMEOUT_S)
                await asyncio.wait(
                    _futs(out, failure),
                    timeout=OUTPUT_END_TIMEOUT_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if failure.done():
                out.cancel()
                code, message = failure.result()
                member = exception_member(code)
                frame = (
                    eventstream.exception_frame(member, message)
                    if member
                    else eventstream.error_frame(code, message)
                )
                await self._send_frame(stream, frame)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.input_ended.wait(), ERROR_END_GRACE_S)
                await stream.conn.send_data(stream, b"", end=True)
                return False
            await stream.conn.send_data(stream, b"", end=True)
            return True
        finally:
            for task in (inp, out):
                task.cancel()
            for task in (inp, out):
                with contextlib.suppress(BaseException):
                    await task

    @staticmethod
    async def _guard(
        work: Coroutine[Any, Any, None], failure: asyncio.Future[tuple[str, str]]
    ) -> None:
        """A bug in a session is the service's internal error, not a hung stream."""
        try:
            await work
        except Exception as e:
            log.exception("endpoint: session failed")
            if not failure.done():
                failure.set_result(("InternalServerException", f"{type(e).__name__}: {e}"))

    async def _input(
        self, stream: _Stream, session: Session, failure: asyncio.Future[tuple[str, str]]
    ) -> None:
        while True:
            event = await stream.inbox.get()
            if event is None:
                return
            if isinstance(event, _Fault):
                if not failure.done():
                    failure.set_result((event.code, event.message))
                return
            try:
                await session.send(event)
            except SessionError as e:
                if not failure.done():
                    failure.set_result((e.code, e.message))
                return

    async def _output(
        self, stream: _Stream, session: Session, failure: asyncio.Future[tuple[str, str]]
    ) -> None:
        while True:
            try:
                event = await session.receive()
            except SessionError as e:
                if not failure.done():
                    failure.set_result((e.code, e.message))
                return
            if event is None:
                return
            await self._send_frame(stream, eventstream.chunk_frame(event))

    async def _send_frame(self, stream: _Stream, frame: bytes) -> None:
        self.stats.frames_out += 1
        self.stats.bytes_out += len(frame)
        await stream.conn.send_data(stream, frame)


def _futs(*items: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
    return set(items)


class EndpointThread:
    """An :class:`Endpoint` on its own event loop in a daemon thread (tests, benchmarks).

    Keeping the server off the client's loop measures it honestly and keeps a slow client
    from stalling the server.
    """

    def __init__(self, make_endpoint: Callable[[], Endpoint]) -> None:
        self._make = make_endpoint
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sonic-endpoint", daemon=True
        )
        self.endpoint: Endpoint | None = None

    def __enter__(self) -> Endpoint:
        self._thread.start()

        async def start() -> Endpoint:
            ep = self._make()
            await ep.start()
            return ep

        self.endpoint = asyncio.run_coroutine_threadsafe(start(), self._loop).result(15)
        return self.endpoint

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (to read stats safely)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def __exit__(self, *exc: object) -> None:
        if self.endpoint is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.endpoint.aclose(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
