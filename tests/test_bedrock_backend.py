"""The Bedrock backend: error mapping (unit), then end to end through the real SDK.

The end-to-end tests run the emulator's HTTP/2 + TLS endpoint (SigV4 verified on every
frame) on its own loop in a thread, and talk to it with aws-sdk-bedrock-runtime 0.12
exactly as they would talk to Bedrock: same client, same wire, on each of the backend's two
transports (``backend.transport``: h2 on the event loop, the default, and the SDK's CRT).
No AWS, no network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_sdk_bedrock_runtime.models import (
    AccessDeniedException,
    ModelStreamErrorException,
    ThrottlingException,
    ValidationException,
)
from smithy_core.exceptions import CallError
from smithy_core.response import ResponseMetadata

from nova_emulator.faults import Faults
from nova_emulator.sigv4 import Credentials as EndpointCredentials
from nova_emulator.tls import TlsFiles, ensure_certificates
from sonic_fsm import credentials, testsignal
from sonic_fsm.backends.bedrock import BedrockBackend, session_error
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.core import effects as fx
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.engine import Engine
from sonic_fsm.errors import SessionError
from sonic_fsm.local_endpoint import ThreadEndpoint, on_thread
from sonic_fsm.settings import Settings, SettingsError, load

pytestmark = pytest.mark.slow  # the real SDK against the endpoint, in real time

KEY_ID = "AKIDSONICFSMTEST0001"
SECRET = "emulator-secret-for-tests"
KEY = EndpointCredentials(access_key_id=KEY_ID, secret_access_key=SECRET)
PROMPT = "p1"
TRANSPORT = "h2"  # what client() asks for; set by the ``transport`` fixture

# ---- unit: mapping what the SDK raises -----------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (ThrottlingException(message="slow down"), "ThrottlingException", True),
        (ModelStreamErrorException(message="boom"), "ModelStreamErrorException", True),
        (ValidationException(message="bad event order"), "ValidationException", False),
        (
            ValidationException(message="InternalErrorCode=531 try again"),
            "ValidationException",
            True,
        ),
        (ValidationException(message="System instability"), "ValidationException", True),
        (AccessDeniedException(message="no access"), "AccessDeniedException", False),
        (OSError("Failed to read from stream."), "ConnectionError", True),
        (TimeoutError(), "Timeout", True),
    ],
)
def test_sdk_errors_map_to_codes(exc: BaseException, code: str, retryable: bool) -> None:
    err = session_error(exc)
    assert (err.code, err.retryable) == (code, retryable)
    assert "\n" not in err.message


def test_unmodeled_http_errors_keep_the_service_code() -> None:
    sig = CallError(
        message="Unknown error for operation com.amazonaws.bedrockruntime#X - status: 403"
        " - id: com.amazonaws.bedrockruntime#InvalidSignatureException",
        response_metadata=ResponseMetadata(http_status_code=403),
    )
    err = session_error(sig, load().backend)
    assert err.code == "InvalidSignatureException" and not err.retryable
    assert "credentials were rejected" in err.message
    throttled = CallError(message="x", response_metadata=ResponseMetadata(http_status_code=429))
    assert session_error(throttled).code == "ThrottlingException"
    assert session_error(throttled).retryable


def test_access_denied_says_how_to_get_model_access() -> None:
    err = session_error(AccessDeniedException(message="denied"), load().backend)
    assert "Bedrock console" in err.message and "amazon.nova-sonic-v1:0" in err.message


def test_connection_error_names_the_cause() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise OSError("Failed to read from stream.") from inner
    except OSError as e:
        err = session_error(e)
    assert err.code == "ConnectionError" and "peer reset" in err.message


# ---- end to end: the real SDK against the emulator's endpoint -------------------------


class Stray:
    """Collects what asyncio would print as 'exception was never retrieved'."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def install(self) -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: self.items.append(ctx))


RUN_TIMEOUT_S = 120.0  # every test's own waits are shorter; this bounds a hang in the SDK


def run(coro_fn: Callable[[Stray], Any]) -> Any:
    """Run one test's coroutine on a fresh loop, bounded. The sessions it opens close
    within ``backend.close_timeout_seconds`` (the backend's own bound, then its transport is
    released), so the loop can always finish."""
    stray = Stray()

    async def main() -> Any:
        stray.install()
        async with asyncio.timeout(RUN_TIMEOUT_S):
            return await coro_fn(stray)

    result = asyncio.run(main())
    gc.collect()
    assert stray.items == [], stray.items
    return result


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_certificates(tmp_path_factory.mktemp("tls"))


def server_settings() -> Settings:
    return load(None, ["emulator.speed=8.0", "emulator.end_of_speech_ms=300"])


@pytest.fixture(params=["h2", "crt"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on an endpoint runs on both of the backend's transports."""
    monkeypatch.setattr(sys.modules[__name__], "TRANSPORT", request.param)
    return str(request.param)


@pytest.fixture
def serve(tls: TlsFiles, transport: str) -> Iterator[Callable[..., ThreadEndpoint]]:
    """Starts endpoints serving the emulator (with ``faults``); its ``endpoint.backend`` is
    the :class:`LocalBackend`. Each one stopped at the end, if the test did not."""
    with contextlib.ExitStack() as started:

        def start(faults: Callable[[int], Faults] = lambda n: Faults()) -> ThreadEndpoint:
            served = on_thread(lambda: LocalBackend(server_settings(), faults), tls, key=KEY)
            return started.enter_context(served)

        yield start


def client(served: ThreadEndpoint, secret: str = SECRET, *extra: str) -> BedrockBackend:
    settings = load(
        None,
        [
            "backend.open_timeout_seconds=5",
            "backend.close_timeout_seconds=5",
            f"backend.transport={TRANSPORT}",
            *extra,
        ],
    )
    return served.bedrock(settings, credentials.static(KEY_ID, secret))[1]


def opening(voice: str = "matthew") -> list[dict[str, Any]]:
    return [
        pr.session_start(),
        pr.prompt_start(PROMPT, voice),
        *pr.text_block(PROMPT, "sys", "SYSTEM", "You are a test.", 1024),
        pr.audio_content_start(PROMPT, "mic"),
    ]


def closing() -> list[dict[str, Any]]:
    return [pr.content_end(PROMPT, "mic"), pr.prompt_end(PROMPT), pr.session_end()]


async def speak(session: Any, n: int, silence_s: float = 1.0) -> None:
    """Utterance ``n`` then silence, in 64 ms chunks, a little faster than real time."""
    pcm = testsignal.utterance(n) + bytes(int(silence_s * 16000) * 2)
    step = 2048
    for i in range(0, len(pcm), step):
        await session.send(pr.audio_input(PROMPT, "mic", pcm[i : i + step]))
        await asyncio.sleep(0.01)


async def read_answer(session: Any, timeout: float = 20.0) -> tuple[list[str], bytes]:
    """Event names and assistant audio until the assistant's FINAL text arrives."""
    names: list[str] = []
    audio = b""
    final_text: set[str] = set()
    async with asyncio.timeout(timeout):
        while True:
            event = await session.receive()
            assert event is not None, f"stream ended early after {names}"
            parsed = pr.parse_output(event)
            names.append(pr.event_name(event))
            match parsed:
                case pr.AudioOutput(pcm=pcm):
                    audio += pcm
                case pr.ContentStart(content_id=cid, role="ASSISTANT", stage=pr.FINAL):
                    final_text.add(cid)
                case pr.ContentEnd(content_id=cid) if cid in final_text:
                    return names, audio


def closed_by_timeout(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings of closes that the close timeout ended, rather than the clean order."""
    return [r.getMessage() for r in caplog.records if "close took over" in r.getMessage()]


def test_a_turn_completes_through_the_real_sdk(
    serve: Any, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve()

    async def main(stray: Stray) -> tuple[list[str], bytes]:
        backend = client(served)
        session = await backend.open("s1")
        for event in opening():
            await session.send(event)
        speaker = asyncio.create_task(speak(session, 7))
        names, audio = await read_answer(session)
        await speaker
        for event in closing():
            await session.send(event)
        await session.close()
        assert not closed_by_timeout(caplog)  # the clean order ended it, not the timeout
        while await session.receive() is not None:  # what came after the answer, then the end
            pass
        assert await session.receive() is None
        await backend.aclose()
        return names, audio

    names, audio = run(main)
    marks = [(m.kind, m.number) for m in testsignal.decode_marks(audio, 24000)]
    assert marks == [("A", 7), ("B", 7)]
    assert "completionStart" in names and "audioOutput" in names
    stats = served.stats()
    assert stats.streams_opened == 1 and stats.auth_refused == 0
    assert stats.streams_completed == 1 and stats.streams_failed == 0


def test_the_engines_opening_events_reach_the_service_unchanged(serve: Any, tls: TlsFiles) -> None:
    """The endpointing setting among them: the emulated session ends turns at that level."""
    served = serve()
    settings = load(None, ["backend.endpointing_sensitivity=LOW"])
    effects = Engine(settings, 0.0).start(0.0)
    (send,) = [e for e in effects if isinstance(e, fx.Send) and e.opening]
    assert send.events[0]["event"]["sessionStart"]["turnDetectionConfiguration"] == {
        "endpointingSensitivity": "LOW"
    }

    async def main(stray: Stray) -> None:
        backend = client(served)
        session = await backend.open(send.session_id)
        for event in send.events:
            await session.send(event)
        prompt = send.events[1]["event"]["promptStart"]["promptName"]
        for event in (pr.prompt_end(prompt), pr.session_end()):
            await session.send(event)
        await session.close()
        await backend.aclose()

    run(main)
    (model,) = [s.model for s in served.endpoint.backend.sessions]
    assert model.endpointing == "LOW" and model.turn_pause_seconds() == 0.3  # server override
    assert model.system == settings.backend.system_prompt


def test_wrong_secret_is_a_clear_authentication_error_without_retries(
    serve: Any, tls: TlsFiles
) -> None:
    served = serve()

    async def main(stray: Stray) -> SessionError:
        backend = client(served, "not-the-secret")
        session = await backend.open("s1")
        with pytest.raises(SessionError) as caught:
            for event in opening():
                await session.send(event)
            await session.receive()
        await session.close()
        await backend.aclose()
        return caught.value

    err = run(main)
    assert err.code == "InvalidSignatureException"
    assert not err.retryable  # the engine stops instead of replacing the session
    assert "credentials were rejected" in err.message and "\n" not in err.message
    stats = served.stats()
    assert stats.streams_opened == 1  # one request: the SDK's own retries are off


def test_modeled_exception_mid_stream_arrives_with_its_code(serve: Any, tls: TlsFiles) -> None:
    served = serve(lambda n: Faults(die_mid_answer=1))

    async def main(stray: Stray) -> SessionError:
        backend = client(served)
        session = await backend.open("s1")
        for event in opening():
            await session.send(event)
        speaker = asyncio.create_task(speak(session, 3))
        with pytest.raises(SessionError) as caught:
            await read_answer(session)
        speaker.cancel()
        await asyncio.gather(speaker, return_exceptions=True)
        await session.close()
        await backend.aclose()
        return caught.value

    err = run(main)
    assert err.code == "ModelStreamErrorException" and err.retryable


def test_connection_dropped_mid_answer_is_a_retryable_connection_error(
    serve: Any, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """The endpoint goes away (GOAWAY, socket closed) while it is answering."""
    served = serve()

    async def main(stray: Stray) -> SessionError:
        backend = client(served)
        session = await backend.open("s1")
        for event in opening():
            await session.send(event)
        speaker = asyncio.create_task(speak(session, 4))
        with pytest.raises(SessionError) as caught:
            async with asyncio.timeout(20):
                while True:
                    event = await session.receive()
                    assert event is not None, "a dropped connection must not look like an end"
                    if pr.event_name(event) == "audioOutput":
                        await asyncio.to_thread(served.stop)
        speaker.cancel()
        await asyncio.gather(speaker, return_exceptions=True)
        await session.close()
        return caught.value

    err = run(main)
    assert err.code == "ConnectionError" and err.retryable
    assert not closed_by_timeout(caplog)  # nothing left to drain: the close did not wait


def test_throttled_start_is_a_retryable_throttling_error(serve: Any, tls: TlsFiles) -> None:
    served = serve(lambda n: Faults(refuse_start=True))

    async def main(stray: Stray) -> SessionError:
        backend = client(served)
        session = await backend.open("s1")
        with pytest.raises(SessionError) as caught:
            await session.send(pr.session_start())
            await session.receive()
        await session.close()
        return caught.value

    err = run(main)
    assert err.code == "ThrottlingException" and err.retryable


def test_unknown_model_is_fatal(serve: Any, tls: TlsFiles) -> None:
    served = serve()

    async def main(stray: Stray) -> SessionError:
        backend = client(served, SECRET, "backend.model_id='amazon.titan-text-v1'")
        session = await backend.open("s1")
        with pytest.raises(SessionError) as caught:
            await session.send(pr.session_start())
            await session.receive()
        await session.close()
        return caught.value

    err = run(main)
    assert err.code == "ValidationException" and not err.retryable


def test_slow_start_hits_the_open_timeout(serve: Any, tls: TlsFiles) -> None:
    served = serve(lambda n: Faults(start_delay_seconds=5.0))

    async def main(stray: Stray) -> tuple[SessionError, float]:
        backend = client(served, SECRET, "backend.open_timeout_seconds=0.5")
        t0 = time.monotonic()
        session = await backend.open("s1")
        with pytest.raises(SessionError) as caught:
            await session.send(pr.session_start())
            await session.receive()
        elapsed = time.monotonic() - t0
        await session.close()
        return caught.value, elapsed

    err, elapsed = run(main)
    assert err.code == "Timeout" and err.retryable
    assert elapsed < 5.0  # the 0.5 s open timeout ended it, not the 5 s start


def test_accepted_waits_for_a_slow_start_and_reports_a_refused_one(
    serve: Any, tls: TlsFiles
) -> None:
    """Sends finish as soon as bytes are written; only the response says the session exists.

    Judged by what was known when the sends finished (the response had not come), not by how
    fast they were: on a loaded machine the connection alone can take a second."""
    start_delay = 2.0
    served = serve(
        lambda n: Faults(start_delay_seconds=start_delay) if n == 1 else Faults(refuse_start=True)
    )

    async def main(stray: Stray) -> tuple[bool, float, SessionError]:
        backend = client(served)
        t0 = time.monotonic()
        session = await backend.open("s1")
        for event in opening():
            await session.send(event)
        waiting = asyncio.ensure_future(session.accepted())
        await asyncio.sleep(0)  # one step: done at once if the response were already there
        answered_before_sends_ended = waiting.done()
        await asyncio.wait_for(waiting, timeout=30)
        accepted = time.monotonic() - t0
        await session.close()
        refused = await backend.open("s2")
        with pytest.raises(SessionError) as caught:
            await refused.send(pr.session_start())
            await refused.accepted()
        await refused.close()
        return answered_before_sends_ended, accepted, caught.value

    answered_before_sends_ended, accepted, err = run(main)
    assert not answered_before_sends_ended  # the sends did not wait for the slow start
    assert accepted >= start_delay - 0.1  # accepted() did
    assert err.code == "ThrottlingException"


def _threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))  # native threads too (the CRT's are)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_the_default_transport_sends_and_receives_on_the_event_loop(
    serve: Any, transport: str
) -> None:
    """No thread per backend or session: a frame is written where it is made. (The CRT
    transport runs an event-loop thread and a resolver thread, and each frame sent or
    received crosses to and from them.)"""
    served = serve()

    async def main(stray: Stray) -> set[str]:
        # The loop's executor (a name lookup may use it, once per open) is not counted.
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        before = _threads()
        # The default settings; the test runs once for each transport fixture value, and
        # its crt run sets the transport to show what the test tells apart.
        extra = [] if transport == "h2" else ["backend.transport=crt"]
        backend = served.bedrock(load(None, extra), credentials.static(KEY_ID, SECRET))[1]
        sessions = [await backend.open(f"s{i}") for i in range(3)]
        for session in sessions:
            for event in opening():
                await session.send(event)
            await session.accepted()
        during = _threads()
        await backend.aclose()
        return during - before  # threads started meanwhile (others may have ended)

    if transport == "h2":
        assert run(main) == set()
    else:
        assert run(main)


def test_refused_connection_fails_fast_and_closes_cleanly(
    tls: TlsFiles, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main(stray: Stray) -> SessionError:
        settings = load(
            None, ["backend.endpoint_uri='https://127.0.0.1:9'", f"backend.transport={transport}"]
        )
        backend = BedrockBackend(
            settings, credentials=credentials.static(KEY_ID, SECRET), ca_file=str(tls.ca_cert)
        )
        session = await backend.open("s1")
        with pytest.raises(SessionError) as caught:
            for event in opening():  # sends must not hang on a dead connection
                await session.send(event)
            await session.receive()
        await session.close()
        return caught.value

    err = run(main)
    assert err.code == "ConnectionError" and err.retryable
    assert not closed_by_timeout(caplog)  # nothing left to drain: the close did not wait


def test_close_is_idempotent_and_send_after_close_fails(serve: Any, tls: TlsFiles) -> None:
    served = serve()

    async def main(stray: Stray) -> None:
        backend = client(served)
        session = await backend.open("s1")
        await session.send(pr.session_start())
        await asyncio.gather(session.close(), session.close())
        await session.close()
        with pytest.raises(SessionError):
            await session.send(pr.session_start())
        assert await session.receive() is None

    run(main)


def test_sessions_have_their_own_connections_on_one_tls_context(serve: Any, tls: TlsFiles) -> None:
    """Building a TLS context reads the trust store and blocks the event loop; a hand-off
    must not pay it, for every conversation in the process. A connection each still."""
    served = serve()

    async def main(stray: Stray) -> None:
        backend = client(served)
        one, two = await backend.open("s1"), await backend.open("s2")
        for session in (one, two):
            await session.send(pr.session_start())
        assert one._transport is not two._transport
        context = "_ssl" if TRANSPORT == "h2" else "_tls_ctx"
        assert getattr(one._transport, context) is getattr(two._transport, context)
        await asyncio.gather(one.close(), two.close())
        await backend.aclose()

    run(main)
    assert served.stats().streams_opened == 2


def test_the_transport_sets_up_what_the_sdk_client_sets_up() -> None:
    """The transport copies ``AWSCRTHTTPClient.__init__`` to share a TLS context; if a new
    SDK adds state there, this fails instead of a session failing at run time."""
    from smithy_http.aio.crt import AWSCRTHTTPClient, _AWSCRTEventLoop

    from sonic_fsm.backends.bedrock import _Transport, tls_context

    loop = _AWSCRTEventLoop()
    base = AWSCRTHTTPClient(eventloop=loop)
    ours = _Transport(eventloop=loop, tls_ctx=tls_context())
    assert set(vars(base)) <= set(vars(ours))
    assert ours._config.force_http_2


def test_session_records_when_its_credentials_expire(serve: Any, tls: TlsFiles) -> None:
    served = serve()

    async def main(stray: Stray) -> float | None:
        backend = client(served)
        expiry = time.time() + 3600

        class Expiring(credentials.RefreshingResolver):
            async def get_identity(self, *, properties: Any) -> Any:
                identity = await super().get_identity(properties=properties)
                self.last_expires_at = expiry
                return identity

        assert backend.credentials is not None
        inner = backend.credentials.resolver
        backend.credentials = credentials.Credentials(
            source="test",
            access_key_id=KEY_ID,
            expires_at=expiry,
            resolver=Expiring(inner, margin_seconds=0),
        )
        session = await backend.open("s1")
        await session.close()
        assert backend.credentials_expire_at == expiry
        return session.credentials_expire_at

    assert run(main) == pytest.approx(time.time() + 3600, abs=60)


class Rotating:
    """A role that hands out the right key first, then (after a refresh) another one."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.fetches = 0

    async def get_identity(self, *, properties: Any) -> Any:
        from smithy_aws_core.identity import AWSCredentialsIdentity

        secret = self.secrets[min(self.fetches, len(self.secrets) - 1)]
        self.fetches += 1
        return AWSCredentialsIdentity(access_key_id=KEY_ID, secret_access_key=secret)

    async def invalidate(self) -> None:
        pass


def test_a_session_keeps_signing_with_the_key_it_opened_with(serve: Any, tls: TlsFiles) -> None:
    """The SDK asks for credentials for every frame; a rotated key must not reach a live
    stream (its frame signatures chain from the request's), only the next session."""
    served = serve()

    async def main(stray: Stray) -> tuple[bytes, SessionError]:
        backend = client(served)
        role = Rotating([SECRET, "rotated-secret-unknown-to-the-endpoint"])
        backend.credentials = credentials.Credentials(
            source="test",
            access_key_id=KEY_ID,
            expires_at=None,
            resolver=credentials.RefreshingResolver(role, margin_seconds=0),
        )
        session = await backend.open("s1")  # fetch 1: the right key, pinned to this session
        for event in opening():
            await session.send(event)
        speaker = asyncio.create_task(speak(session, 2))
        _, audio = await read_answer(session)
        await speaker
        await session.close()
        second = await backend.open("s2")  # fetch 2: the rotated key
        with pytest.raises(SessionError) as caught:
            await second.send(pr.session_start())
            await second.receive()
        await second.close()
        return audio, caught.value

    audio, err = run(main)
    assert [(m.kind, m.number) for m in testsignal.decode_marks(audio, 24000)] == [
        ("A", 2),
        ("B", 2),
    ]
    assert err.code == "InvalidSignatureException"


def test_start_without_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    backend = BedrockBackend(load(None, ["backend.kind=bedrock"]))
    with pytest.raises(credentials.CredentialsError) as caught:
        asyncio.run(backend.start())
    assert str(caught.value) == credentials.NO_CREDENTIALS
    with pytest.raises(credentials.CredentialsError):  # open() checks the same way
        asyncio.run(backend.open("s1"))


def test_missing_ca_file_is_a_one_line_settings_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SettingsError, match=r"backend.ca_file: .*nope.pem is not a file"):
        BedrockBackend(load(None, [f"backend.ca_file='{missing}'"]))


class _RefusingStream:
    """An SDK stream whose response is a refusal, ``after`` seconds after the request."""

    def __init__(self, after: float) -> None:
        self.after = after

    async def await_output(self) -> Any:
        await asyncio.sleep(self.after)
        raise ThrottlingException(message="Too many requests, please wait")


class _QuietTransport:
    def stream_failure(self) -> None:
        return None

    def writer_tasks(self) -> list[asyncio.Task[Any]]:
        return []


def _session_on(stream: Any) -> Any:
    """A BedrockSession on a stand-in for the SDK's stream (no connection, no client)."""
    from sonic_fsm.backends.bedrock import BedrockSession

    return BedrockSession(
        session_id="s1",
        client=None,  # type: ignore[arg-type]
        transport=_QuietTransport(),  # type: ignore[arg-type]
        stream=stream,
        open_timeout=5.0,
        close_timeout=1.0,
        credentials_expire_at=None,
        backend=None,
    )


@pytest.mark.parametrize("asked", [0.0, 0.01, 0.03, 0.049])
@pytest.mark.parametrize("after", [0.06, 0.1, 0.13, 0.2])
def test_accepted_reports_a_refusal_whenever_it_comes(asked: float, after: float) -> None:
    """accepted() is called ``asked`` s into the wait for the response and the refusal comes
    ``after`` s: whatever the two fall on in the output side's polling, accepted() raises the
    refusal, never returns as if the session were live (a hand-off would then promote it)."""

    async def main() -> None:
        session = _session_on(_RefusingStream(after))
        await asyncio.sleep(asked)
        try:
            with pytest.raises(SessionError) as caught:
                await asyncio.wait_for(session.accepted(), timeout=10)
            assert caught.value.code == "ThrottlingException"
        finally:
            await asyncio.wait_for(session.close(), timeout=10)

    asyncio.run(main())


class _StuckInput:
    """An input stream whose buffer is full for good: a send never completes."""

    async def send(self, chunk: Any) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


class _DyingStream:
    """An SDK stream whose input never drains and whose output fails ``after`` seconds in."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.input_stream = _StuckInput()

    async def await_output(self) -> Any:
        await asyncio.sleep(self.after)
        raise ConnectionResetError("connection reset by peer")


def _dying_session(after: float) -> Any:
    return _session_on(_DyingStream(after))


def test_a_send_stuck_on_a_dead_stream_ends_with_the_streams_error() -> None:
    """The send waits in the caller's task; the output side failing cuts it short with the
    session's error, and the caller's task is left as it was (not cancelled after)."""

    async def main() -> None:
        session = _dying_session(0.05)
        try:
            with pytest.raises(SessionError) as caught:
                await asyncio.wait_for(session.send(pr.session_start()), timeout=10)
            assert caught.value.code == "ConnectionError"
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
            await asyncio.sleep(0)  # no cancel left pending for this task
            with pytest.raises(SessionError):  # and a later send fails at once
                await asyncio.wait_for(session.send(pr.session_start()), timeout=10)
        finally:
            await asyncio.wait_for(session.close(), timeout=10)

    asyncio.run(main())


def test_cancelling_a_stuck_send_cancels_it_even_when_the_stream_dies_meanwhile() -> None:
    async def main() -> None:
        session = _dying_session(0.05)
        try:
            sending = asyncio.ensure_future(session.send(pr.session_start()))
            await asyncio.sleep(0.01)
            sending.cancel()
            await asyncio.wait({sending}, timeout=10)
            assert sending.cancelled()
        finally:
            await asyncio.wait_for(session.close(), timeout=10)

    asyncio.run(main())
