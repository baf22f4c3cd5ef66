"""The real Amazon Nova Sonic backend: every use of aws-sdk-bedrock-runtime lives here.

The SDK's API changed three times in a year (client renamed in 0.8, config built only by
``await ...Config.resolve()`` since 0.10, the default transport unable to stream both ways
since 0.11), so it is pinned exactly and kept behind this one adapter. What the rest of
sonic-fsm sees is the small :mod:`sonic_fsm.core.backend` protocol: dicts in, dicts out,
:class:`~sonic_fsm.errors.SessionError` on failure.

Facts this module is built on (see ``nova-sonic-protocol.md`` section 2 and 3):

- the transport must stream both ways (the aiohttp default raises
  ``UnsupportedTransportError``): by default it is :mod:`sonic_fsm.backends.h2_transport`,
  HTTP/2 on the event loop; ``backend.transport = "crt"`` takes the CRT client with HTTP/2
  forced (without forcing it, a plain endpoint hangs), whose I/O runs on its own thread;
- ``invoke_model_with_bidirectional_stream`` returns before the connection is made: a dead
  endpoint or an untrusted certificate only shows when the output is awaited, so the
  open timeout is applied there (without blocking sends: the service may wait for the
  first event before it answers);
- the SDK's own retries are switched off (``max_attempts=1``): the engine replaces a
  failed session with its own bounded backoff, and two retry loops would multiply;
- clean shutdown is: close input, drain the output until it ends, close the stream, close
  the transport. Closing in another order leaves a CRT future holding an unretrieved
  ``AWS_ERROR_HTTP_STREAM_HAS_COMPLETED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import ssl
from typing import Any

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    InvokeModelWithBidirectionalStreamOutputChunk,
    ServiceError,
)
from awscrt import io as crt_io
from smithy_aws_core.identity.static import StaticCredentialsResolver
from smithy_core.exceptions import CallError, SmithyError, SmithyIdentityError
from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig, _AWSCRTEventLoop

from sonic_fsm import credentials as creds
from sonic_fsm.backends.h2_transport import H2Transport, ssl_context
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings, SettingsError

log = logging.getLogger(__name__)

_END = object()
"""Queue marker: the output stream ended (``receive`` returns ``None`` from then on)."""

_STATUS_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)


class _Transport(AWSCRTHTTPClient):
    """The CRT client with HTTP/2 forced, on a TLS context shared by the backend's sessions.

    Every session gets its own transport (its own connection, so one dying stream takes no
    other with it), but not its own TLS context: building one reads the trust store, which
    blocks the event loop for 5 to 15 ms, at every hand-off, for every conversation in the
    process. So this sets up what ``AWSCRTHTTPClient.__init__`` sets up (the SDK is pinned;
    a test checks the attributes still match) with the context it is given.
    """

    def __init__(self, *, eventloop: _AWSCRTEventLoop, tls_ctx: Any) -> None:
        self._config = AWSCRTHTTPClientConfig(force_http_2=True)
        self._eventloop = eventloop
        self._client_bootstrap = eventloop.bootstrap
        self._tls_ctx = tls_ctx
        self._socket_options = crt_io.SocketOptions()
        self._connections = {}
        self._closed = False
        self.crt_streams: list[Any] = []
        """Every CRT stream this transport started, so their writer tasks can be reaped."""

    def __deepcopy__(self, memo: Any) -> _Transport:
        return _Transport(eventloop=self._eventloop, tls_ctx=self._tls_ctx)

    async def _await_response(self, stream: Any) -> Any:
        self.crt_streams.append(stream)
        return await super()._await_response(stream)

    def stream_failure(self) -> BaseException | None:
        """The error a CRT stream completed with (a reset, a dropped connection), if any."""
        for s in self.crt_streams:
            done = getattr(s, "_completion_future", None)
            if done is not None and done.done() and done.exception() is not None:
                return done.exception()  # type: ignore[no-any-return]
        return None

    def writer_tasks(self) -> list[asyncio.Future[Any]]:
        """The CRT's request-body writer tasks (one per stream; it owns no reference)."""
        return [w for s in self.crt_streams if (w := getattr(s, "_writer", None)) is not None]


@functools.cache
def tls_context(ca_file: str = "") -> Any:
    """The CRT's TLS context: the system's trust store, or only ``ca_file`` when given;
    built once per process for each (reading the trust store blocks for 5 to 15 ms).

    The CRT reads ``SSL_CERT_FILE`` only once per process, so a test that starts a TLS
    endpoint in-process hands its CA over here instead.
    """
    options = crt_io.TlsContextOptions()
    if ca_file:
        options.override_default_trust_store_from_path(ca_filepath=ca_file)
    return crt_io.ClientTlsContext(options)


def check_ca_file(path: str, name: str) -> None:
    """A CA file that cannot be read fails now, as one line; the CRT would only time out."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        why = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise SettingsError(
            f"{name} {path}: not a file of CA certificates that can be read ({why})"
        ) from None


def _hint(code: str, backend: Any) -> str:
    """What a person can do about a fatal error, appended to the service's message."""
    if code in _AUTH_CODES:
        return "the AWS credentials were rejected: check the secret key and session token"
    if code == "AccessDeniedException":
        return (
            f"request access to {backend.model_id} in the Bedrock console ({backend.region}) "
            "and allow bedrock:InvokeModelWithBidirectionalStream"
        )
    if code == "ResourceNotFoundException":
        return f"model {backend.model_id!r} is not available in {backend.region}"
    return ""


def session_error(exc: BaseException, backend: Any = None) -> SessionError:
    """Map anything the SDK or the CRT raises to a SessionError with the service's code."""
    if isinstance(exc, SessionError):
        return exc
    if isinstance(exc, ServiceError):
        code, message = type(exc).__name__, exc.message or str(exc)
    elif isinstance(exc, CallError):
        # Unmodeled errors: "Unknown error for operation ... - status: 403 - id: ns#Code"
        match = re.search(r"- id: (?:[\w.]+#)?(\w+)", exc.message)
        status = exc.response_metadata.http_status_code
        if match:
            code = match.group(1)
        elif status is not None:
            code = _STATUS_CODES.get(status, "InternalServerException" if status >= 500 else "")
            code = code or f"HTTP{status}"
        else:
            code = "ConnectionError"
        message = f"the endpoint answered HTTP {status} {code}" if status else exc.message
    elif isinstance(exc, SmithyIdentityError):
        code, message = "CredentialsError", str(exc)
    elif type(exc).__name__ == "UnmodeledEventError":
        code, message = getattr(exc, "code", "InternalServerException"), str(exc)
    elif isinstance(exc, TimeoutError) or type(exc).__name__ == "_CRTTimeoutError":
        code, message = "Timeout", str(exc) or "timed out"
    elif isinstance(exc, OSError | SmithyError) or type(exc).__module__.startswith("awscrt"):
        cause = exc.__cause__ or exc
        code, message = "ConnectionError", str(exc)
        if cause is not exc and str(cause) not in message:
            message = f"{message} ({type(cause).__name__}: {cause})"
    else:
        code, message = type(exc).__name__, str(exc)
    message = " ".join(str(message).split()) or code
    if backend is not None and (hint := _hint(code, backend)):
        message = f"{message} ({hint})"
    return SessionError(code, message)


class BedrockSession:
    """One bidirectional stream. ``send``, ``receive`` and ``close`` as in the base protocol.

    A single pump task reads the SDK's output stream into a queue, so ``close`` can drain
    the stream (the order that leaves no stray CRT error) even while a worker is blocked
    in ``receive``; the worker then sees whatever was queued and ``None``.
    """

    def __init__(
        self,
        *,
        session_id: str,
        client: AsyncBedrockRuntimeClient,
        transport: _Transport | H2Transport,
        stream: Any,
        open_timeout: float,
        close_timeout: float,
        credentials_expire_at: float | None,
        backend: Any,
    ) -> None:
        self.session_id = session_id
        self.credentials_expire_at = credentials_expire_at
        """Epoch seconds when the credentials that signed this stream expire (or None)."""
        self._client = client
        self._transport = transport
        self._stream = stream
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._backend = backend
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._live = asyncio.Event()  # the pump has the response and reads the output
        self._output_task = asyncio.ensure_future(stream.await_output())
        self._pump_task = asyncio.ensure_future(self._pump())
        self._sending: dict[asyncio.Task[Any], bool] = {}  # tasks in a send: cut short?
        self._pump_task.add_done_callback(self._cut_send)
        self._error: SessionError | None = None
        self._closing: asyncio.Future[None] | None = None
        self.on_closed: Any = None

    # -- the output side ---------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            await self._await_output()
            _, receiver = self._output_task.result()
            self._live.set()
            while True:
                item = await receiver.receive()
                if item is None:
                    # The CRT ends a reset stream like a finished one: tell them apart.
                    if (reset := self._transport.stream_failure()) is not None:
                        raise reset
                    break
                self._queue.put_nowait(self._decode(item))
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            err = session_error(e, self._backend)
            self._error = self._error or err
            self._queue.put_nowait(err)
        finally:
            self._queue.put_nowait(_END)

    async def _await_output(self) -> None:
        """Wait for the response within the open timeout, or for the stream to fail.

        Polled, because a stream the server resets right after its headers can leave the
        CRT's status future unresolved forever; its completion future does say so.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._open_timeout
        while not self._output_task.done():
            if (failure := self._transport.stream_failure()) is not None:
                raise failure
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SessionError(
                    "Timeout",
                    f"no response from the endpoint within {self._open_timeout:g} s "
                    "(backend.open_timeout_seconds)",
                )
            await asyncio.wait({self._output_task}, timeout=min(0.05, remaining))

    async def accepted(self) -> None:
        """Wait until the service has answered the request: the stream is live on its side.

        Sends complete as soon as the bytes are written; only the response says a session
        was really started, so a hand-off waits for it (a slow start is then seen as one).
        """
        # Decided by the pump, not by the SDK's response future: that one is done before the
        # pump has turned a refusal into the session's error.
        live = asyncio.ensure_future(self._live.wait())
        try:
            await asyncio.wait({live, self._pump_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            live.cancel()
        if self._error is not None:
            raise self._error

    @staticmethod
    def _decode(item: Any) -> dict[str, Any] | SessionError:
        if not isinstance(item, InvokeModelWithBidirectionalStreamOutputChunk):
            value = getattr(item, "value", None)
            if isinstance(value, Exception):  # an error variant the receiver did not raise
                return session_error(value)
            return SessionError("MalformedEvent", f"unexpected output variant {item!r}")
        raw = item.value.bytes_ or b""
        try:
            event = json.loads(raw)
        except ValueError as e:
            return SessionError("MalformedEvent", f"output event is not JSON: {e}")
        if not isinstance(event, dict):
            return SessionError("MalformedEvent", "output event is not a JSON object")
        return event

    async def receive(self) -> dict[str, Any] | None:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later call sees the end too
            return None
        if isinstance(item, SessionError):
            raise item
        return item  # type: ignore[no-any-return]

    # -- the input side ----------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        if self._closing is not None:
            raise SessionError("ConnectionError", "send on a closed session")
        if self._error is not None:
            raise self._error
        if self._pump_task.done():
            raise SessionError("ConnectionError", "the stream ended during a send")
        payload = json.dumps(event, separators=(",", ":")).encode()
        chunk = InvokeModelWithBidirectionalStreamInputChunk(
            value=BidirectionalInputPayloadPart(bytes_=payload)
        )
        # A send blocks while the SDK's buffer is full, which on a dead connection is
        # forever: the output side notices the failure and cuts the send short (as
        # asyncio.timeout does: a cancel of this task, taken back here). Awaited in the
        # caller's task, not in one of its own per event.
        sender = asyncio.current_task()
        assert sender is not None
        self._sending[sender] = False
        try:
            await self._stream.input_stream.send(chunk)
        except asyncio.CancelledError:
            if not self._sending[sender] or sender.uncancel() > 0:
                raise
            raise self._error or SessionError(
                "ConnectionError", "the stream ended during a send"
            ) from None
        except Exception as e:
            raise session_error(e, self._backend) from None
        finally:
            del self._sending[sender]

    def _cut_send(self, pump: asyncio.Future[None]) -> None:
        """The output side ended: a send still waiting can never complete."""
        for sender, cut in self._sending.items():
            if not cut:
                self._sending[sender] = True
                sender.cancel()

    # -- shutdown ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close input, drain output, close the stream, close the transport; idempotent."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            try:
                await asyncio.wait_for(self._close_in_order(), self._close_timeout)
            except TimeoutError:
                log.warning(
                    "session %s: close took over %g s", self.session_id, self._close_timeout
                )
            await self._release()
        finally:
            self._closing.set_result(None)
            if self.on_closed is not None:
                self.on_closed(self)

    async def _close_in_order(self) -> None:
        if self._pump_task.done():
            # The output has ended or failed, so nothing reads the input any more: closing
            # it would wait for a reader forever. Releasing the transport ends it.
            return
        with contextlib.suppress(Exception):
            await self._stream.input_stream.close()
        await asyncio.wait({self._pump_task})
        output = self._output_task
        if output.done() and not output.cancelled() and output.exception() is None:
            _, receiver = output.result()
            with contextlib.suppress(Exception):
                await receiver.close()

    async def _release(self) -> None:
        """Close the transport, then retrieve every task's outcome so nothing is left stray."""
        with contextlib.suppress(Exception):
            await self._client.close()
        if self._error is None:
            for task in (self._pump_task, self._output_task):
                if not task.done():
                    # The transport is closed, so a pending read fails soon; wait a moment.
                    await asyncio.wait({task}, timeout=1.0)
        # A writer still pending here waits on input nobody will send: cancel it. Either
        # way its outcome is retrieved (the CRT keeps no reference to it).
        for task in (self._pump_task, self._output_task, *self._transport.writer_tasks()):
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # mark retrieved


class BedrockBackend:
    """Opens Nova Sonic sessions on Amazon Bedrock (or any endpoint that speaks its wire).

    Call :meth:`start` once at startup: it finds the credentials and raises
    :class:`sonic_fsm.credentials.CredentialsError` with one line when there are none.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: creds.Credentials | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        ca = ca_file if ca_file is not None else settings.backend.ca_file
        self._ca_file = os.path.expanduser(ca) if ca else ""
        if self._ca_file and not os.path.isfile(self._ca_file):
            raise SettingsError(f"setting backend.ca_file: {self._ca_file} is not a file")
        if self._ca_file:
            check_ca_file(self._ca_file, "setting backend.ca_file:")
        if env_ca := os.environ.get("SSL_CERT_FILE"):
            check_ca_file(env_ca, "SSL_CERT_FILE")
        self._eventloop: _AWSCRTEventLoop | None = None
        self._tls_ctx: Any = None
        self._sessions: set[BedrockSession] = set()

    @property
    def credentials_expire_at(self) -> float | None:
        """Epoch seconds when the newest session's credentials expire, or ``None``."""
        if self.credentials is None:
            return None
        return self.credentials.resolver.last_expires_at

    async def start(self) -> creds.Credentials:
        """Find credentials (once). Raises CredentialsError with a one-line explanation."""
        if self.credentials is None:
            self.credentials = await creds.resolve(
                self.settings.backend, margin_seconds=self.settings.session_limit_seconds
            )
            log.info(
                "bedrock: credentials from %s (%s)",
                self.credentials.source,
                self.credentials.key_hint,
            )
        return self.credentials

    def _transport(self) -> _Transport | H2Transport:
        """A new session's transport: its own connection (so a dying stream takes no other
        with it), on a TLS context shared by the backend's sessions."""
        b = self.settings.backend
        if b.transport == "h2":
            return H2Transport(
                ssl_context=ssl_context(self._ca_file), connect_timeout=b.open_timeout_seconds
            )
        if self._eventloop is None:
            self._eventloop = _AWSCRTEventLoop()
        if self._tls_ctx is None:
            self._tls_ctx = tls_context(self._ca_file)
        return _Transport(eventloop=self._eventloop, tls_ctx=self._tls_ctx)

    async def _config(
        self, transport: _Transport | H2Transport, identity: Any
    ) -> AsyncBedrockRuntimeConfig:
        b = self.settings.backend
        overrides: dict[str, Any] = {
            "region": b.region,
            "transport": transport,
            # Pinned: the SDK asks for the identity again for every event frame, and the
            # frames' signature chain must use the key that signed the request. A refreshed
            # key belongs to the next session, not to this one.
            "aws_credentials_identity_resolver": StaticCredentialsResolver(identity),
            "max_attempts": 1,
        }
        if b.endpoint_uri:
            overrides["endpoint_uri"] = b.endpoint_uri
        return await AsyncBedrockRuntimeConfig.resolve(**overrides)

    async def open(self, session_id: str) -> BedrockSession:
        """Open a stream (nothing sent yet). Fails with SessionError, within the open timeout."""
        await self.start()
        assert self.credentials is not None
        b = self.settings.backend
        transport = self._transport()
        client: AsyncBedrockRuntimeClient | None = None
        try:
            # A fresh key for each session (refreshed when it would expire within a session's
            # lifetime); the session records when it expires, for the engine's hand-off.
            identity = await self.credentials.resolver.get_identity(properties={})
            expires_at = self.credentials.resolver.last_expires_at
            client = AsyncBedrockRuntimeClient(config=await self._config(transport, identity))
            request = InvokeModelWithBidirectionalStreamOperationInput(model_id=b.model_id)
            stream = await asyncio.wait_for(
                client.invoke_model_with_bidirectional_stream(request), b.open_timeout_seconds
            )
        except BaseException as e:
            with contextlib.suppress(Exception):
                await (client.close() if client is not None else transport.close())
            if isinstance(e, asyncio.CancelledError):
                raise
            raise session_error(e, b) from None
        session = BedrockSession(
            session_id=session_id,
            client=client,
            transport=transport,
            stream=stream,
            open_timeout=b.open_timeout_seconds,
            close_timeout=b.close_timeout_seconds,
            credentials_expire_at=expires_at,
            backend=b,
        )
        self._sessions.add(session)
        session.on_closed = self._sessions.discard
        return session

    async def aclose(self) -> None:
        """Close every session still open (each in the clean order)."""
        sessions, self._sessions = list(self._sessions), set()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


__all__ = ["BedrockBackend", "BedrockSession", "session_error"]
