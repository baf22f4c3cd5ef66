"""Write an SVG screenshot of the dashboard (for the README).

``python -m tui.screenshot docs/dashboard.svg`` draws the fixed BUFFERING sample (the same
screen the snapshot test keeps); ``--live`` runs the demo conversation on the in-process
emulator (a simulated talker, real time) and takes the picture the first time it sees
``--state`` after ``--handoffs`` hand-offs. The README's picture:

    .venv/bin/python -m tui.screenshot --live --handoffs 1 docs/dashboard.svg
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from tui.app import Dashboard
from tui.sample import FixedSource, buffering

SIZE = (120, 40)


async def shoot(
    app: Dashboard, target: Path, state: str | None, timeout: float, handoffs: int = 0
) -> str:
    def arrived() -> bool:
        snap = app.snapshot
        return (
            snap is not None and snap.state == state and snap.metrics.get("handoffs", 0) >= handoffs
        )

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if state is not None:
            deadline = time.monotonic() + timeout
            while not arrived():
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"screenshot: the dashboard did not reach {state} in {timeout:g} s"
                    )
                await pilot.pause(0.05)
            await pilot.pause(0.3)
        target.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=target.name, path=str(target.parent))
        seen = app.snapshot.state if app.snapshot else "?"
        await app.action_quit()
        await pilot.pause(0.5)
    return seen


async def live(target: Path, state: str, timeout: float, handoffs: int) -> str:
    """The demo on the emulator, the talker speaking test-signal utterances (which the
    emulator decodes exactly, so the transcript reads "utterance 7" / "answer to utterance 7"
    whether or not espeak-ng and a recogniser are installed)."""
    from sonic_fsm import settings
    from sonic_fsm.audio.talker import DEFAULT_SCRIPT, Talker, TalkerConfig
    from sonic_fsm.wiring import assistant_busy, build_conversation
    from tui.app import DEMO_OVERRIDES

    s = settings.load(None, DEMO_OVERRIDES)
    conv = build_conversation(s, mic="null", speaker="null", finish_when_input_ends=False)
    config = TalkerConfig(
        script=DEFAULT_SCRIPT,
        voice="tones",
        chunk_frames=s.audio.chunk_frames,
        repeat=True,
        interrupt_fraction=0.1,
    )
    conv.source = Talker(config, assistant_busy=lambda: assistant_busy([conv]))
    app = Dashboard(conv, settings=s)
    return await shoot(app, target, state, timeout, handoffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshot", description=__doc__)
    parser.add_argument("target", nargs="?", default="docs/dashboard.svg", type=Path)
    parser.add_argument("--live", action="store_true", help="run the demo on the emulator")
    parser.add_argument("--state", default="BUFFERING", help="with --live: the state to catch")
    parser.add_argument("--handoffs", type=int, default=0, help="with --live: after this many")
    parser.add_argument("--timeout", type=float, default=150.0, help="with --live: give up after")
    args = parser.parse_args(argv)
    if args.live:
        seen = asyncio.run(live(args.target, args.state, args.timeout, args.handoffs))
    else:
        app = Dashboard(FixedSource(buffering()), poll_seconds=None)
        seen = asyncio.run(shoot(app, args.target, None, 0))
    print(f"wrote {args.target} ({seen})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
