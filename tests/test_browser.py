"""The voice page in a real browser: headless Chromium (the Debian package) driven by
Playwright, its microphone a test-signal WAV, the server on the in-process emulator with
short sessions. The page keeps what it sent and what it played (``?tap``); the oracle
scores the two, across three hand-offs and a barge-in."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path

import pytest
from test_server import running

from sonic_fsm import testsignal
from sonic_fsm.audio.wav import write_wav
from sonic_fsm.bench import oracle, script
from sonic_fsm.bench.script import Line
from sonic_fsm.settings import load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
SHORT_SESSIONS = [
    "session_limit_seconds=40",
    "transition_threshold_seconds=15",
    "hard_deadline_margin_seconds=6",
]
BARGE_IN = 1234567  # a long utterance (nine keys): spoken over the answer before it


def the_lines() -> list[Line]:
    """Utterances 10 s apart (more than the 2 s endpointing pause plus the longest answer);
    one more talks over the answer to the second, 3 s after the second ends (its answer
    begins about 2 s after and lasts 3.4 s; the first session is still young, so no hand-off
    is under way), and the third waits until the answer to that one has been given."""
    first = [Line(number=1, at=1.0), Line(number=2, at=8.0)]
    second_ends = first[-1].at + len(testsignal.utterance(2)) / 32000
    barge_in = Line(number=BARGE_IN, at=second_ends + 3.0)
    rest = script.evenly(7, 10.0, first=barge_in.at + 12.0, start_number=3)
    return [*first, barge_in, *rest]


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (scripts/system-deps installs it)")
    return CHROMIUM


async def converse_in_browser(executable: str, wav: Path, shot: Path | None) -> dict[str, object]:
    from playwright.async_api import async_playwright

    settings = load(None, SHORT_SESSIONS)
    speech_seconds = max(line.at for line in the_lines()) + 8.0
    async with running(settings) as server, async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
                "--autoplay-policy=no-user-gesture-required",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"http://{server.url}/?raw&tap", timeout=15000)
            await page.click("#start", timeout=5000)
            await page.wait_for_function(
                "window.sonic.stats().audioIn > 0", timeout=15000, polling=200
            )
            async with asyncio.timeout(speech_seconds + 60):
                while True:
                    stats = await page.evaluate("window.sonic.stats()")
                    seconds = stats["audioIn"] / 32000
                    if seconds >= speech_seconds or stats["closed"] is not None:
                        break
                    await asyncio.sleep(1.0)
            if shot is not None:
                await page.screenshot(path=str(shot))
            tap = await page.evaluate("window.sonic.tap()")
            transcript = await page.inner_text("#transcript")
            transitions = await page.inner_text("#transitions")
            state = await page.inner_text("#state")
        finally:
            await browser.close()
    return {
        "stats": stats,
        "sent": base64.b64decode(tap["sent"]),
        "played": base64.b64decode(tap["played"]),
        "transcript": transcript,
        "transitions": transitions,
        "state": state,
        "errors": errors,
    }


def test_a_conversation_in_the_browser_loses_nothing(chromium: str, tmp_path: Path) -> None:
    wav = tmp_path / "talk.wav"
    write_wav(wav, script.render(the_lines()), 16000)
    out = asyncio.run(converse_in_browser(chromium, wav, None))
    stats = out["stats"]
    sent, played = out["sent"], out["played"]
    assert isinstance(stats, dict) and isinstance(sent, bytes) and isinstance(played, bytes)
    assert out["errors"] == [] and stats["closed"] is None
    s = oracle.score(sent, played)
    assert s.spoken == len(the_lines()), s.as_dict()
    assert s.lost == [] and s.answered_twice == [] and s.restarted == [], s.as_dict()
    assert s.cut_without_barge_in == [], s.as_dict()
    assert s.truncated == [2], s.as_dict()  # the answer talked over, and only that one
    assert s.talk_over == [], s.talk_over_ms  # no assistant audio while the user speaks
    assert stats["handoffs"] >= 3 and stats["stops"] >= 1
    assert "utterance 1" in str(out["transcript"]) and "(interrupted)" in str(out["transcript"])
    assert "BUFFERING → HANDOFF" in str(out["transitions"])
    assert out["state"] in ("NORMAL", "MONITORING", "BUFFERING", "HANDOFF", "PROMOTED")
