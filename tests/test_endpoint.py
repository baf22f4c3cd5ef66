"""The local endpoint: the real AWS SDK against it, signatures, errors, flow control, load.

The server runs on its own event loop in a thread (port 0); clients run on the test's loop.
Every wait has a timeout: a broken endpoint fails a test, it never hangs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.settings
import pytest

from nova_emulator import eventstream
from nova_emulator.server import Endpoint, EndpointThread, parse_path
from nova_emulator.sigv4 import (
    AuthError,
    ChunkVerifier,
    Credentials,
    ensure_credentials,
    sign_chunk,
    sign_request,
    verify_request,
)
from nova_emulator.tls import TlsFiles, client_context, ensure_certificates
from nova_emulator.wire_client import WireClient
from sonic_fsm import local_endpoint, testsignal
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench.load import end_session, one_turn
from sonic_fsm.core import protocol as pr
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings, replace

CREDS = Credentials(access_key_id="AKIALOCALTEST", secret_access_key="the-secret")
REGION = "us-east-1"
NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---- a tiny echo session: the wire without the model ------------------------------------


class EchoSession:
    """Answers each input event with ``{"event": {"echo": {"of": NAME}}}``.

    ``textInput`` content ``fail`` raises a ValidationException, ``raise:CODE`` that code;
    ``big:N`` answers with an event of N bytes (to exercise flow control).
    """

    def __init__(self, backend: EchoBackend) -> None:
        self.backend = backend
        self.q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def send(self, event: dict[str, Any]) -> None:
        name = pr.event_name(event)
        body = event["event"][name]
        content = body.get("content", "")
        if name == "textInput" and content == "fail":
            raise SessionError("ValidationException", "textInput: you asked for it")
        if name == "textInput" and content.startswith("raise:"):
            raise SessionError(content[6:], "as requested")
        if name == "textInput" and content.startswith("big:"):
            await self.q.put({"event": {"big": {"data": "x" * int(content[4:])}}})
            return
        await self.q.put({"event": {"echo": {"of": name}}})
        if name == "sessionEnd":
            await self.q.put(None)

    async def receive(self) -> dict[str, Any] | None:
        return await self.q.get()

    async def close(self) -> None:
        self.backend.closed += 1
        await self.q.put(None)


class EchoBackend:
    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    async def open(self, session_id: str) -> EchoSession:
        self.opened += 1
        return EchoSession(self)

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_certificates(tmp_path_factory.mktemp("endpoint-state"))


@contextlib.contextmanager
def serving(tls_files: TlsFiles, backend: Any) -> Iterator[tuple[Endpoint, EndpointThread]]:
    with local_endpoint.on_thread(lambda: backend, tls_files, key=CREDS) as served:
        yield served.endpoint, served.thread


async def wire(endpoint: Endpoint, tls_files: TlsFiles, **kw: Any) -> WireClient:
    client = WireClient(credentials=kw.pop("credentials", CREDS), region=REGION)
    await client.connect("127.0.0.1", endpoint.port, client_context(tls_files), **kw)
    return client


# ---- SigV4: pure checks --------------------------------------------------------------------


def _signed(
    creds: Credentials = CREDS, path: str = "/model/m%3A0/invoke-with-bidirectional-stream"
):
    return sign_request(
        method="POST",
        path=path,
        headers={"host": "127.0.0.1:1", "content-type": "application/vnd.amazon.eventstream"},
        credentials=creds,
        region=REGION,
        when=NOW,
    )


def test_request_signature_verifies_with_the_secret() -> None:
    headers = _signed()
    auth = verify_request(
        method="POST",
        path="/model/m%3A0/invoke-with-bidirectional-stream",
        headers=headers,
        credentials=CREDS,
        now=NOW,
    )
    assert (auth.region, auth.service) == (REGION, "bedrock")
    assert headers["authorization"].endswith(auth.signature)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "wrong"}, "InvalidSignatureException"),
        ({"key": "AKIAOTHER"}, "UnrecognizedClientException"),
        ({"path": "/model/other/invoke-with-bidirectional-stream"}, "InvalidSignatureException"),
        ({"header": ("content-type", "text/plain")}, "InvalidSignatureException"),
        ({"now": NOW + datetime.timedelta(minutes=16)}, "InvalidSignatureException"),
        ({"drop": "authorization"}, "MissingAuthenticationTokenException"),
    ],
)
def test_request_signature_refusals(change: dict[str, Any], code: str) -> None:
    creds = Credentials(
        access_key_id=change.get("key", CREDS.access_key_id),
        secret_access_key=change.get("secret", CREDS.secret_access_key),
    )
    headers = _signed(creds)
    if "header" in change:
        headers[change["header"][0]] = change["header"][1]
    if "drop" in change:
        del headers[change["drop"]]
    with pytest.raises(AuthError) as err:
        verify_request(
            method="POST",
            path=change.get("path", "/model/m%3A0/invoke-with-bidirectional-stream"),
            headers=headers,
            credentials=CREDS,
            now=change.get("now", NOW),
        )
    assert err.value.code == code


def _chain(
    n: int, secret: str = CREDS.secret_access_key
) -> tuple[str, list[tuple[bytes, bytes, bytes]]]:
    """A request signature and ``n`` signed frames (header bytes, signature, payload)."""
    seed = _signed()["authorization"].rsplit("Signature=", 1)[1]
    prior, frames = seed, []
    for i in range(n):
        payload = eventstream.chunk_frame({"event": {"n": {"i": i}}}) if i < n - 1 else b""
        when = NOW + datetime.timedelta(milliseconds=1234 * i)
        _, sig = sign_chunk(
            prior=prior, payload=payload, when=when, key_secret=secret, region=REGION
        )
        frame = eventstream.decode(eventstream.signed_frame(payload, when, sig))
        frames.append((frame.header_bytes, sig, payload))
        prior = sig.hex()
    return seed, frames


def _verifier(seed: str) -> ChunkVerifier:
    from nova_emulator.sigv4 import RequestAuth

    auth = RequestAuth(access_key_id="k", region=REGION, service="bedrock", signature=seed)
    return ChunkVerifier(auth=auth, credentials=CREDS)


def test_chunk_chain_verifies_and_ends_with_the_empty_frame() -> None:
    seed, frames = _chain(4)
    v = _verifier(seed)
    for header_bytes, sig, payload in frames:
        v.verify(header_bytes, sig, payload)
    assert v.finished
    with pytest.raises(AuthError, match="after the final frame"):
        v.verify(*frames[0])


@pytest.mark.parametrize("attack", ["tamper", "reorder", "drop", "replay", "wrong-secret"])
def test_chunk_chain_refuses_any_break(attack: str) -> None:
    seed, frames = _chain(
        4, secret="wrong" if attack == "wrong-secret" else CREDS.secret_access_key
    )
    if attack == "tamper":
        h, s, p = frames[1]
        frames[1] = (h, s, p.replace(b"bytes", b"bytez"))
    elif attack == "reorder":
        frames[0], frames[1] = frames[1], frames[0]
    elif attack == "drop":
        del frames[1]
    elif attack == "replay":
        frames.insert(1, frames[0])
    v = _verifier(seed)
    with pytest.raises(AuthError) as err:
        for frame in frames:
            v.verify(*frame)
    assert err.value.code == "InvalidSignatureException"


def test_path_parsing_accepts_encoded_ids_and_a_trailing_question_mark() -> None:
    suffix = "/invoke-with-bidirectional-stream"
    assert parse_path(f"/model/amazon.nova-sonic-v1%3A0{suffix}") == "amazon.nova-sonic-v1:0"
    assert parse_path(f"/model/amazon.nova-2-sonic-v1%3A0{suffix}?") == "amazon.nova-2-sonic-v1:0"
    assert parse_path(f"/model/a/b{suffix}") is None
    assert parse_path("/model/x/invoke") is None


def test_state_dir_keys_are_private_and_kept(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)
    creds = ensure_credentials(tmp_path)
    for key in (files.server_key, tmp_path / "ca-key.pem", tmp_path / "credentials.json"):
        assert key.stat().st_mode & 0o777 == 0o600
    ca = files.ca_cert.read_bytes()
    assert ensure_certificates(tmp_path).ca_cert.read_bytes() == ca
    assert ensure_credentials(tmp_path) == creds


# ---- the real SDK --------------------------------------------------------------------------


async def sdk_client(url: str, secret: str = CREDS.secret_access_key) -> Any:
    """The real client, configured only through its public config (and SSL_CERT_FILE)."""
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
    from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

    config = await AsyncBedrockRuntimeConfig.resolve(
        endpoint_uri=url,
        region=REGION,
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=secret,
        transport=AWSCRTHTTPClient(client_config=AWSCRTHTTPClientConfig(force_http_2=True)),
        config_file_path="/nonexistent/config",
        credentials_file_path="/nonexistent/credentials",
    )
    return AsyncBedrockRuntimeClient(config=config)


SDK_CLOSE_TIMEOUT_S = 10.0


class SdkStream:
    """The smallest adapter over the SDK's stream, for tests.

    Every way out of it is bounded: :meth:`finish` closes in the order that works within
    ``SDK_CLOSE_TIMEOUT_S`` and otherwise fails the test; :meth:`release` (for a stream
    that failed) closes the client's transport, which ends whatever the CRT still waits on.
    """

    def __init__(self, client: Any, stream: Any) -> None:
        self.client = client
        self.stream = stream
        self.receiver: Any = None

    @classmethod
    async def open(cls, client: Any, model_id: str = "amazon.nova-sonic-v1:0") -> SdkStream:
        from aws_sdk_bedrock_runtime.models import InvokeModelWithBidirectionalStreamOperationInput

        op = InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id)
        stream = await asyncio.wait_for(client.invoke_model_with_bidirectional_stream(op), 10)
        return cls(client, stream)

    async def send(self, event: dict[str, Any]) -> None:
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
        )

        part = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
        await self.stream.input_stream.send(
            InvokeModelWithBidirectionalStreamInputChunk(value=part)
        )

    async def receive(self) -> dict[str, Any] | None:
        if self.receiver is None:
            _, self.receiver = await asyncio.wait_for(self.stream.await_output(), 10)
        chunk = await asyncio.wait_for(self.receiver.receive(), 10)
        return None if chunk is None else json.loads(chunk.value.bytes_)

    async def finish(self) -> list[dict[str, Any]]:
        """Close the input, drain the output, close the stream (the order that works)."""
        rest: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(SDK_CLOSE_TIMEOUT_S):
                await self.stream.input_stream.close()
                while (event := await self.receive()) is not None:
                    rest.append(event)
                await self.stream.close()
        except TimeoutError:
            await self.release()
            pytest.fail(f"the SDK's stream did not close within {SDK_CLOSE_TIMEOUT_S:g} s")
        return rest

    async def release(self) -> None:
        """End the stream whatever state it is in, within a bounded time."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.input_stream.close(), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.close(), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 2)
        # The CRT's request-body writer (it holds no reference of ours) ends with the
        # transport; cancel one that still waits so the loop can finish.
        writers = [
            t
            for t in asyncio.all_tasks()
            if "request_body" in getattr(t.get_coro(), "__qualname__", "")
        ]
        for task in writers:
            task.cancel()
        if writers:
            await asyncio.wait(writers, timeout=2)


@pytest.fixture
def trust(tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow  # the real SDK over HTTP/2
def test_sdk_talks_to_the_endpoint_echo(tls_files: TlsFiles, trust: None) -> None:
    backend = EchoBackend()

    async def go(url: str) -> list[dict[str, Any]]:
        s = await SdkStream.open(await sdk_client(url))
        await s.send(pr.session_start())
        got = [await s.receive()]
        await s.send(pr.session_end())
        return got + await s.finish()

    with serving(tls_files, backend) as (endpoint, thread):
        got = run(go(endpoint.url))
        stats = thread.call(lambda: endpoint.stats)
    assert got == [
        {"event": {"echo": {"of": "sessionStart"}}},
        {"event": {"echo": {"of": "sessionEnd"}}},
    ]
    assert (stats.streams_completed, stats.auth_refused) == (1, 0)
    assert stats.frames_in == 3  # two events and the signed empty frame


@pytest.mark.slow  # the real SDK over HTTP/2
def test_sdk_wrong_secret_is_refused(tls_files: TlsFiles, trust: None) -> None:
    from smithy_core.exceptions import CallError

    async def go(url: str) -> None:
        s = await SdkStream.open(await sdk_client(url, secret="not-the-secret"))
        await s.send(pr.session_start())
        await s.receive()

    with serving(tls_files, EchoBackend()) as (endpoint, thread):
        t0 = time.monotonic()
        with pytest.raises(CallError, match="InvalidSignatureException") as err:
            run(go(endpoint.url), timeout=15)
        assert time.monotonic() - t0 < 10
        assert "403" in str(err.value)
        assert thread.call(lambda: endpoint.stats.auth_refused) == 1


@pytest.mark.slow  # the real SDK over HTTP/2
def test_sdk_raises_the_modeled_exception_echo(tls_files: TlsFiles, trust: None) -> None:
    from aws_sdk_bedrock_runtime.models import ValidationException

    async def go(url: str) -> None:
        s = await SdkStream.open(await sdk_client(url))
        await s.send(pr.session_start())
        assert await s.receive() == {"event": {"echo": {"of": "sessionStart"}}}
        await s.send({"event": {"textInput": {"content": "fail"}}})
        try:
            await s.receive()
        finally:
            await s.release()

    with (
        serving(tls_files, EchoBackend()) as (endpoint, _),
        pytest.raises(ValidationException, match="you asked for it"),
    ):
        run(go(endpoint.url), timeout=15)


# ---- the wire, through the light client ----------------------------------------------------


def test_tampered_frame_is_refused_with_the_services_error(tls_files: TlsFiles) -> None:
    backend = EchoBackend()

    async def go(endpoint: Endpoint) -> tuple[dict[str, Any] | None, SessionError]:
        client = await wire(endpoint, tls_files)
        s = await client.open()
        await s.send(pr.session_start())
        first = await s.receive()
        # Sign one event, then alter its payload on the way: the chain must break.
        inner = eventstream.chunk_frame(pr.session_end())
        when = datetime.datetime.now(datetime.UTC)
        _, sig = sign_chunk(
            prior=s._prior,
            payload=inner,
            when=when,
            key_secret=CREDS.secret_access_key,
            region=REGION,
        )
        tampered = eventstream.chunk_frame({"event": {"sessionEnd": {"x": 1}}})
        await client.send_data(s, eventstream.signed_frame(tampered, when, sig))
        with pytest.raises(SessionError) as err:
            await s.receive()
        await s.close_input()
        await client.aclose()
        return first, err.value

    with serving(tls_files, backend) as (endpoint, thread):
        first, error = run(go(endpoint))
        stats = thread.call(lambda: endpoint.stats)
    assert first == {"event": {"echo": {"of": "sessionStart"}}}
    assert error.code == "InvalidSignatureException"
    assert "signature" in error.message
    assert stats.auth_refused == 1
    assert backend.closed == 1  # the session was released


def test_malformed_chunk_is_a_validation_exception(tls_files: TlsFiles) -> None:
    async def go(endpoint: Endpoint) -> SessionError:
        client = await wire(endpoint, tls_files)
        s = await client.open()
        bad = eventstream.encode(eventstream.CHUNK_HEADERS, b'{"bytes": "%%%"}')
        await s._send_signed(bad)
        with pytest.raises(SessionError) as err:
            await s.receive()
        await client.aclose()
        return err.value

    with serving(tls_files, EchoBackend()) as (endpoint, _):
        error = run(go(endpoint))
    assert error.code == "ValidationException"
    assert "base64" in error.message


def test_sending_honours_a_small_flow_control_window(tls_files: TlsFiles) -> None:
    """The client allows 1 KB per stream: the server must wait for WINDOW_UPDATEs.

    h2 on the client side raises a flow-control error if the server overruns the window.
    """
    size = 300_000

    async def go(endpoint: Endpoint) -> int:
        client = WireClient(credentials=CREDS, region=REGION)
        client.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024}
        )
        await client.connect("127.0.0.1", endpoint.port, client_context(tls_files))
        s = await client.open()
        await s.send({"event": {"textInput": {"content": f"big:{size}"}}})
        event = await s.receive()
        await s.send(pr.session_end())
        rest = []
        await s.close_input()
        while (e := await s.receive()) is not None:
            rest.append(e)
        await client.aclose()
        assert rest == [{"event": {"echo": {"of": "sessionEnd"}}}]
        assert event is not None
        return len(event["event"]["big"]["data"])

    with serving(tls_files, EchoBackend()) as (endpoint, _):
        assert run(go(endpoint)) == size


def test_a_client_that_vanishes_releases_its_sessions(tls_files: TlsFiles) -> None:
    backend = EchoBackend()

    async def go(endpoint: Endpoint) -> None:
        client = await wire(endpoint, tls_files)
        streams = [await client.open() for _ in range(3)]
        for s in streams:
            await s.send(pr.session_start())
            await s.receive()
        assert client._writer is not None
        client._writer.transport.abort()  # no GOAWAY, no END_STREAM
        await asyncio.sleep(0.05)

    with serving(tls_files, backend) as (endpoint, thread):
        run(go(endpoint))
        deadline = time.monotonic() + 5
        while thread.call(lambda: endpoint.stats.active) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert thread.call(lambda: endpoint.stats.active) == 0
    assert backend.opened == 3
    assert backend.closed == 3


def test_unknown_path_and_model_are_refused(tls_files: TlsFiles) -> None:
    async def go(endpoint: Endpoint) -> SessionError:
        client = await wire(endpoint, tls_files)
        s = await client.open(model_id="anthropic.claude")
        with pytest.raises(SessionError) as err:
            await s.receive()
        await client.aclose()
        return err.value

    with serving(tls_files, EchoBackend()) as (endpoint, _):
        error = run(go(endpoint))
    assert error.code == "ValidationException"
    assert "model identifier" in error.message


# ---- the serve command ---------------------------------------------------------------------


def test_serve_refuses_a_non_loopback_host_without_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = local_endpoint.main(["serve", "--host", "192.0.2.1", "--state-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err
    assert len(err.strip().splitlines()) == 1


def test_serve_reports_a_bad_setting_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = local_endpoint.main(["serve", "--state-dir", str(tmp_path), "--set", "nope=1"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow  # a shell runs as a process
def test_exports_are_shell_safe(tls_files: TlsFiles) -> None:
    creds = Credentials(access_key_id="AKIA", secret_access_key="a b'c$d")
    lines = local_endpoint.exports("https://127.0.0.1:1", tls_files, creds, "us-east-1")
    script = "\n".join([*lines, 'printf %s "$AWS_SECRET_ACCESS_KEY"'])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "a b'c$d"
    assert lines[0].startswith("# ")


@pytest.mark.slow  # a process, the real SDK and SIGTERM
def test_serve_command_exports_drive_the_sdk_and_sigterm_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user runs it: start the command, eval its exports, talk to it with the SDK."""
    cmd = [sys.executable, "-m", "sonic_fsm.local_endpoint", "serve", "--port", "0"]
    cmd += ["--state-dir", str(tmp_path), "--set", "emulator.speed=20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        assert lines[0].startswith("# sonic-fsm emulator endpoint: https://127.0.0.1:")
        script = "".join(lines) + "env | grep -E '^(AWS_|SSL_CERT_FILE=)'"
        env_out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
        env = dict(line.split("=", 1) for line in env_out.stdout.splitlines())
        assert set(env) >= {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            "SSL_CERT_FILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

        async def go() -> list[dict[str, Any]]:
            from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
            from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
            from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

            # Endpoint, region and keys come from the exported environment alone.
            config = await AsyncBedrockRuntimeConfig.resolve(
                transport=AWSCRTHTTPClient(client_config=AWSCRTHTTPClientConfig(force_http_2=True)),
                config_file_path=str(tmp_path / "no-config"),
                credentials_file_path=str(tmp_path / "no-credentials"),
            )
            s = await SdkStream.open(AsyncBedrockRuntimeClient(config=config))
            events = await one_turn(s, 3)
            await end_session(s)
            await s.finish()
            return events

        assert_turn(run(go(), timeout=20), 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- a conversation turn through the endpoint, with the emulated model ------------------------


def fast_settings() -> Settings:
    """The emulator generating 20x faster than real time: a turn takes a fraction of a second."""
    return replace(Settings(), emulator__speed=20.0)


def assert_turn(events: list[dict[str, Any]], n: int) -> None:
    """Transcript, then SPECULATIVE text, then the answer's audio, then FINAL text."""
    parsed = [pr.parse_output(e) for e in events]
    stages = {p.content_id: p.stage for p in parsed if isinstance(p, pr.ContentStart)}
    order: list[str] = []
    audio = b""
    for p in parsed:
        if isinstance(p, pr.TextOutput) and p.role == "USER":
            order.append(f"USER:{p.text}")
        elif isinstance(p, pr.TextOutput) and p.role == "ASSISTANT":
            assert not p.interrupted, "nothing was playing: no barge-in"
            order.append(f"{stages[p.content_id]}:{p.text}")
        elif isinstance(p, pr.AudioOutput):
            if not order or order[-1] != "AUDIO":
                order.append("AUDIO")
            audio += p.pcm
    assert order[0] == f"USER:utterance {n}"
    assert [o.split(":")[0] for o in order[1:]] == ["SPECULATIVE", "AUDIO", "FINAL"]
    assert order[1].split(":", 1)[1] == order[3].split(":", 1)[1]
    marks = [(m.kind, m.number) for m in testsignal.decode_marks(audio, 24000)]
    assert marks == [("A", n), ("B", n)]  # the whole marked answer arrived, in order


@pytest.mark.slow  # the real SDK over HTTP/2
def test_sdk_completes_a_turn_with_the_emulator(tls_files: TlsFiles, trust: None) -> None:
    async def go(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        s = await SdkStream.open(await sdk_client(url))
        events = await one_turn(s, 7)
        await end_session(s)
        return events, await s.finish()

    with serving(tls_files, LocalBackend(fast_settings())) as (endpoint, thread):
        events, rest = run(go(endpoint.url))
        stats = thread.call(lambda: endpoint.stats)
    assert_turn(events, 7)
    assert [pr.event_name(e) for e in rest][-1] == "completionEnd"
    assert (stats.streams_completed, stats.streams_failed, stats.auth_refused) == (1, 0, 0)


@pytest.mark.slow  # the real SDK over HTTP/2
def test_sdk_raises_a_validation_exception_from_the_emulator(
    tls_files: TlsFiles, trust: None
) -> None:
    """Audio before promptStart breaks the service's order: the SDK's modeled exception."""
    from aws_sdk_bedrock_runtime.models import ValidationException

    async def go(url: str) -> None:
        s = await SdkStream.open(await sdk_client(url))
        await s.send(pr.session_start())
        await s.send(pr.audio_content_start("p", "mic"))
        try:
            while await s.receive() is not None:
                pass
        finally:
            await s.release()

    with (
        serving(tls_files, LocalBackend(fast_settings())) as (endpoint, _),
        pytest.raises(ValidationException, match="promptStart"),
    ):
        run(go(endpoint.url), timeout=15)


EMPTY_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # length 0, type SETTINGS, stream 0
PREFACE_AND_EMPTY_SETTINGS = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + EMPTY_SETTINGS


@pytest.mark.slow
def test_idle_connections_are_capped_and_closed_while_real_ones_are_served(
    tls_files: TlsFiles,
) -> None:
    """Hundreds of loopback connections that never open a stream (half of those let in
    never even start TLS): the endpoint turns away those over its cap, closes the rest
    after its idle timeout, and then serves a real client."""
    n_idle, cap, idle_s = 300, 100, 5.0

    async def ended(reader: asyncio.StreamReader) -> bool:
        try:
            await asyncio.wait_for(reader.read(), 15)  # to the end: the server closed it
        except (ConnectionError, ssl.SSLError):
            pass
        except TimeoutError:
            return False
        return True

    async def go(endpoint: Endpoint, thread: EndpointThread) -> tuple[Any, ...]:
        socks = []
        for i in range(n_idle):  # the first ``cap`` are let in, in order; the rest refused
            reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
            if i % 2 and i < cap:  # TLS and the HTTP/2 preface, then nothing
                await writer.start_tls(client_context(tls_files), server_hostname="127.0.0.1")
                writer.write(PREFACE_AND_EMPTY_SETTINGS)
            socks.append((reader, writer))
        async with asyncio.timeout(idle_s + 15):
            while thread.call(lambda: endpoint.stats.connections_refused) < n_idle - cap:
                await asyncio.sleep(0.05)
            refused = thread.call(lambda: endpoint.stats.connections_refused)
            # Until the idle ones are closed the cap is full; then a real client gets in.
            while thread.call(lambda: endpoint.stats.connections) > 0:
                await asyncio.sleep(0.05)
        client = await wire(endpoint, tls_files)
        s = await client.open()
        await s.send(pr.session_start())
        first = await s.receive()
        await s.close()
        await client.aclose()
        done = await asyncio.gather(*(ended(reader) for reader, _ in socks))
        for _, writer in socks:
            writer.close()
        still_open = [i for i, ok in enumerate(done) if not ok]
        return refused, first, thread.call(lambda: endpoint.stats), still_open

    capped = local_endpoint.on_thread(
        EchoBackend, tls_files, key=CREDS, max_connections=cap, idle_timeout=idle_s
    )
    with capped as served:
        refused, first, stats, still_open = run(go(served.endpoint, served.thread), timeout=60)
    assert refused == n_idle - cap
    assert first == {"event": {"echo": {"of": "sessionStart"}}}
    assert (stats.peak_connections, stats.connections_idle_closed) == (cap, cap)
    assert stats.connections == 0
    assert still_open == []  # each idle connection was closed from the server's side


def test_a_stream_opened_before_the_servers_settings_still_gets_its_window(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRT can open its stream before it applies the server's SETTINGS, and then never
    widens that stream's window past HTTP/2's default 65,535 bytes. A server that grants
    its stream window only through SETTINGS_INITIAL_WINDOW_SIZE believes the client may
    send 1 MB, the client believes 64 KB: after 64 KB of audio the input stalls for good
    (the SDK's ``input_stream.close()`` then waits forever for its buffer to drain)."""
    import h2.connection

    # A client that ignores a SETTINGS change of the initial window, as the CRT did.
    monkeypatch.setattr(
        h2.connection.H2Connection, "_flow_control_change_from_settings", lambda *a: None
    )

    async def go(endpoint: Endpoint) -> list[dict[str, Any]]:
        client = await wire(endpoint, tls_files)
        try:
            s = await client.open()
            events = await one_turn(s, 5, timeout=5)  # about 170 KB of audio
            await end_session(s)
            await s.close()
            return events
        finally:
            await client.aclose()

    with serving(tls_files, LocalBackend(fast_settings())) as (endpoint, _):
        assert_turn(run(go(endpoint), timeout=20), 5)


@pytest.mark.slow  # fifty streams in real time (over the SDK or the wire)
@pytest.mark.parametrize("client_kind", ["sdk", "wire"])
def test_fifty_concurrent_streams_each_complete_a_turn(
    tls_files: TlsFiles, trust: None, client_kind: str
) -> None:
    """Fifty sessions at once on one endpoint: through one real SDK client (the CRT
    multiplexes them), and through the light client on five connections of ten streams."""
    n_streams, per_conn = 50, 10

    together = asyncio.Barrier(n_streams)  # all streams open before any turn starts

    async def wire_session(client: WireClient, n: int) -> list[dict[str, Any]]:
        s = await client.open()
        await together.wait()
        events = await one_turn(s, n)
        await end_session(s)
        await s.close()
        return events

    async def sdk_session(client: Any, n: int) -> list[dict[str, Any]]:
        s = await SdkStream.open(client)
        await together.wait()
        events = await one_turn(s, n)
        await end_session(s)
        await s.finish()
        return events

    async def go(endpoint: Endpoint) -> list[list[dict[str, Any]]]:
        if client_kind == "sdk":
            sdk = await sdk_client(endpoint.url)
            return await asyncio.gather(*(sdk_session(sdk, 100 + i) for i in range(n_streams)))
        clients = [await wire(endpoint, tls_files) for _ in range(n_streams // per_conn)]
        try:
            return await asyncio.gather(
                *(wire_session(clients[i // per_conn], 100 + i) for i in range(n_streams))
            )
        finally:
            for c in clients:
                await c.aclose()

    with serving(tls_files, LocalBackend(fast_settings())) as (endpoint, thread):
        results = run(go(endpoint), timeout=60)
        stats = thread.call(lambda: endpoint.stats)
    for i, events in enumerate(results):
        assert_turn(events, 100 + i)
    assert stats.streams_completed == n_streams
    assert stats.streams_failed == 0
    assert stats.peak_active == n_streams


@pytest.mark.slow  # the real SDK over HTTP/2
def test_a_refused_start_reaches_the_sdk_as_its_throttling_exception(
    tls_files: TlsFiles, trust: None
) -> None:
    """A session the backend refuses to open is an HTTP 429 with ``x-amzn-errortype``."""
    from aws_sdk_bedrock_runtime.models import ThrottlingException

    from nova_emulator.faults import Faults

    async def go(url: str) -> None:
        s = await SdkStream.open(await sdk_client(url))
        await s.send(pr.session_start())
        await s.receive()

    backend = LocalBackend(fast_settings(), faults=lambda n: Faults(refuse_start=True))
    with (
        serving(tls_files, backend) as (endpoint, _),
        pytest.raises(ThrottlingException, match="Too many requests"),
    ):
        run(go(endpoint.url), timeout=20)


@pytest.mark.slow  # a process and SIGINT
def test_sigint_ends_open_streams_and_exits_cleanly(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "sonic_fsm.local_endpoint", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        env = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        creds = Credentials(
            access_key_id=env["AWS_ACCESS_KEY_ID"], secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
        )
        port = int(env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"].rsplit(":", 1)[1])
        ca = TlsFiles(ca_cert=Path(env["SSL_CERT_FILE"]), server_cert=Path(), server_key=Path())

        async def go() -> str:
            client = WireClient(credentials=creds, region=env["AWS_REGION"])
            await client.connect("127.0.0.1", port, client_context(ca))
            s = await client.open()
            await s.send(pr.session_start())
            await s.send(pr.prompt_start("p", "matthew"))
            await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            try:
                while await asyncio.wait_for(s.receive(), 10) is not None:
                    pass
                return "ended"
            except SessionError as e:
                return e.code
            finally:
                await client.aclose()

        assert run(go(), timeout=20) == "ServiceUnavailableException"  # retryable
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # the real SDK over HTTP/2
def test_a_frame_altered_after_the_sdk_signed_it_is_refused(
    tls_files: TlsFiles, trust: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK signs its second event, then one bit of it flips on the way."""
    import aws_sdk_signers.signers as signers
    from smithy_aws_event_stream.exceptions import UnmodeledEventError

    sign = signers.AsyncEventSigner.sign
    signed = 0

    async def sign_then_flip(self: Any, **kw: Any) -> Any:
        nonlocal signed
        out = await sign(self, **kw)
        signed += 1
        if signed == 2:
            out.payload = out.payload[:-1] + bytes([out.payload[-1] ^ 1])
        return out

    monkeypatch.setattr(signers.AsyncEventSigner, "sign", sign_then_flip)

    async def go(url: str) -> dict[str, Any] | None:
        s = await SdkStream.open(await sdk_client(url))
        await s.send(pr.session_start())
        first = await s.receive()
        await s.send(pr.session_end())
        try:
            await s.receive()
        finally:
            await s.release()
        return first

    with serving(tls_files, EchoBackend()) as (endpoint, thread):
        with pytest.raises(UnmodeledEventError, match="InvalidSignatureException"):
            run(go(endpoint.url), timeout=15)
        assert thread.call(lambda: endpoint.stats.auth_refused) == 1


@pytest.mark.parametrize(
    "code",
    [
        "ValidationException",
        "ModelTimeoutException",
        "ModelStreamErrorException",
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelNotReadyException",  # not in the stream's union: sent as an unmodeled error
    ],
)
def test_every_session_error_reaches_the_client_with_its_code(
    tls_files: TlsFiles, code: str
) -> None:
    async def go(endpoint: Endpoint) -> SessionError:
        client = await wire(endpoint, tls_files)
        s = await client.open()
        await s.send({"event": {"textInput": {"content": f"raise:{code}"}}})
        with pytest.raises(SessionError) as err:
            await s.receive()
        await s.close_input()
        await client.aclose()
        return err.value

    with serving(tls_files, EchoBackend()) as (endpoint, _):
        error = run(go(endpoint))
    assert (error.code, error.message) == (code, "as requested")
