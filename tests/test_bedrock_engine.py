"""The whole engine on the Bedrock backend: real SDK, real TLS, the emulator's endpoint.

Real time (the CRT does real I/O), so the emulator's session limit is short: a handful of
seconds per session gives several hand-offs in a test that takes well under a minute.
The oracle is the DTMF test signal: every utterance answered exactly once, every
uninterrupted answer heard whole (its start mark and its end mark on the speaker).
"""

from __future__ import annotations

import asyncio
import datetime
import gc
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from nova_emulator.faults import Faults
from nova_emulator.sigv4 import Credentials as EndpointCredentials
from nova_emulator.tls import TlsFiles, ensure_certificates
from sonic_fsm import credentials, testsignal
from sonic_fsm.audio.talker import Talker, TalkerConfig
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.local_endpoint import on_thread
from sonic_fsm.runner import Runner, RunResult
from sonic_fsm.settings import load
from sonic_fsm.tools import Tool

pytestmark = pytest.mark.slow  # the real SDK over HTTP/2 against the endpoint, in real time

KEY_ID = "AKIDSONICFSMTEST0002"
SECRET = "emulator-secret-for-engine-tests"
KEY = EndpointCredentials(access_key_id=KEY_ID, secret_access_key=SECRET)

SHORT_SESSIONS = [
    "transition_threshold_seconds=3",
    "session_limit_seconds=7",
    "hard_deadline_margin_seconds=1.5",
    "emulator.speed=8.0",
    "emulator.end_of_speech_ms=300",
]


# The conversation paces itself (the talker waits for every answer): a loaded machine makes it
# longer, not wrong. This bounds a hang, well inside the tests' own pytest timeout.
RUN_LIMIT_S = 240.0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_certificates(tmp_path_factory.mktemp("tls"))


def converse(
    tls: TlsFiles,
    lines: int,
    faults: Callable[[int], Faults] = lambda n: Faults(),
    extra: tuple[str, ...] = (),
    secret: str = SECRET,
    creds: credentials.Credentials | None = None,
    sessions: tuple[str, ...] = tuple(SHORT_SESSIONS),
    tools: tuple[Tool, ...] = (),
    tool_every: int = 0,
) -> tuple[RunResult, Talker, TimelineSink, Any]:
    """``tools`` are offered besides the settings'; every ``tool_every``-th line is a tool
    question."""
    server_settings = load(None, list(sessions))

    with on_thread(lambda: LocalBackend(server_settings, faults), tls, key=KEY) as served:
        settings, backend = served.bedrock(
            load(
                None,
                [
                    *sessions,
                    "backend.open_timeout_seconds=5",
                    "backend.close_timeout_seconds=2",
                    "backend.retry_base_seconds=0.2",
                    "backend.retry_max_seconds=1.0",
                    *extra,
                ],
            ),
            creds or credentials.static(KEY_ID, secret),
        )
        sink = TimelineSink(None)
        holder: dict[str, Runner] = {}
        talker = Talker(
            TalkerConfig(
                script=tuple(f"line {i}" for i in range(lines)),
                voice="tones",
                lead_in_seconds=0.5,
                think_seconds=0.3,
                tool_every=tool_every,
            ),
            assistant_busy=lambda: holder["conv"].assistant_busy(),
        )
        conv = Runner(settings, backend, talker, sink, tools=tools)
        holder["conv"] = conv
        stray: list[dict[str, Any]] = []

        async def main() -> RunResult:
            asyncio.get_running_loop().set_exception_handler(lambda _l, c: stray.append(c))
            try:
                return await asyncio.wait_for(conv.run(), timeout=RUN_LIMIT_S)
            except TimeoutError:
                raise AssertionError(
                    f"the conversation did not end within {RUN_LIMIT_S:g} s: "
                    f"state {conv.conversation.state}, "
                    f"said {[u.number for u in talker.spoken]}, "
                    f"unanswered {talker.unanswered}"
                ) from None

        result = asyncio.run(main())
        gc.collect()
        assert stray == [], stray
        return result, talker, sink, served.endpoint.stats


def heard_once(sink: TimelineSink, lines: int) -> None:
    heard = Counter(
        (m.kind, m.number) for m in testsignal.decode_marks(bytes(sink.timeline), 24000)
    )
    assert dict(heard) == {(k, n): 1 for n in range(1, lines + 1) for k in "AB"}


def test_three_handoffs_over_the_sdk_every_utterance_answered_once(tls: TlsFiles) -> None:
    lines = 4
    result, talker, sink, stats = converse(tls, lines)
    assert result.reason == "the input ended"
    assert result.metrics["handoffs"] >= 3, result.metrics
    assert result.metrics["failures"] == 0 and result.metrics["frames_lost"] == 0
    assert [u.number for u in talker.spoken] == list(range(1, lines + 1))
    heard_once(sink, lines)
    assert stats.auth_refused == 0 and stats.streams_failed == 0


def test_stream_killed_mid_answer_recovers_and_nothing_is_lost(tls: TlsFiles) -> None:
    lines = 1
    result, _talker, sink, stats = converse(
        tls, lines, faults=lambda n: Faults(die_mid_answer=1) if n == 1 else Faults()
    )
    assert result.metrics["recoveries"] >= 1, result.metrics
    assert stats.streams_failed >= 1
    numbers = Counter(
        m.number for m in testsignal.decode_marks(bytes(sink.timeline), 24000) if m.kind == "B"
    )
    # every utterance's answer ends on the speaker exactly once, the killed one included
    assert dict(numbers) == {n: 1 for n in range(1, lines + 1)}


def test_throttled_starts_back_off_then_succeed(tls: TlsFiles) -> None:
    lines = 1
    result, _talker, sink, stats = converse(
        tls, lines, faults=lambda n: Faults(refuse_start=n <= 2), extra=("backend.max_retries=4",)
    )
    assert result.reason == "the input ended"
    assert result.metrics["failures"] >= 2, result.metrics
    assert stats.streams_opened >= 3
    heard_once(sink, lines)


def test_wrong_secret_stops_with_one_line_and_no_retry_storm(tls: TlsFiles) -> None:
    result, _talker, _sink, stats = converse(
        tls, 1, extra=("backend.max_retries=5",), secret="not-the-secret"
    )
    assert result.reason.startswith("InvalidSignatureException")
    assert "credentials were rejected" in result.reason and "\n" not in result.reason
    assert stats.streams_opened == 1 and stats.auth_refused == 1  # one request, no retries
    assert result.seconds < 5


class ShortLived:
    """A role whose credentials live ``lifetime`` seconds of wall time from each fetch."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.fetches = 0

    async def get_identity(self, *, properties: Any) -> Any:
        from smithy_aws_core.identity import AWSCredentialsIdentity

        self.fetches += 1
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.lifetime)
        return AWSCredentialsIdentity(
            access_key_id=KEY_ID, secret_access_key=SECRET, session_token="t", expiration=expires
        )

    async def invalidate(self) -> None:
        pass


def test_expiring_credentials_hand_off_before_they_expire(tls: TlsFiles) -> None:
    """Sessions could live 30 s, but each key lives 6 s: every session is replaced before its
    key expires (hard deadline = expiry - margin), and nothing is lost on the way."""
    role = ShortLived(lifetime=6.0)
    creds = credentials.Credentials(
        source="test role",
        access_key_id=KEY_ID,
        expires_at=None,
        resolver=credentials.RefreshingResolver(role, margin_seconds=30.0),
    )
    long_sessions = (
        "transition_threshold_seconds=20",
        "session_limit_seconds=30",
        "hard_deadline_margin_seconds=2",
        "emulator.speed=8.0",
        "emulator.end_of_speech_ms=300",
    )
    lines = 2
    result, _talker, sink, stats = converse(tls, lines, creds=creds, sessions=long_sessions)
    assert result.reason == "the input ended"
    assert result.metrics["handoffs"] + result.metrics["recoveries"] >= 2, result.metrics
    assert result.metrics["failures"] == 0  # replaced in time: no session died of its key
    assert stats.streams_failed == 0
    heard_once(sink, lines)
