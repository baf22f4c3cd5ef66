"""Write an SVG screenshot of the dashboard (for the README).

``python -m tui.screenshot docs/dashboard.svg`` draws the fixed BUFFERING sample (the same
screen the snapshot test keeps); ``--live`` runs the demo conversation of ``make run`` on the
in-process emulator (the simulated talker, real time) and takes the picture the first time
it sees ``--state`` after ``--handoffs`` hand-offs, or with ``--recall`` once the talker's
"What did I ask you before?" after the last of them is answered. The README's picture:

    .venv/bin/python -m tui.screenshot --live --handoffs 1 --recall docs/dashboard.svg
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from sonic_fsm.audio.talker import RECALL
from tui.app import Dashboard
from tui.sample import FixedSource, buffering

SIZE = (120, 40)


def recall_answered(snap: Any, handoffs: int = 1) -> bool:
    """Whether, after the ``handoffs``-th hand-off in the transcript, the talker asked what it
    asked before and the assistant has answered."""
    if snap is None:
        return False
    lines = list(snap.transcript)
    at = [i for i, x in enumerate(lines) if x.kind == "handoff"]
    if len(at) < handoffs:
        return False
    after = lines[at[handoffs - 1] + 1 :]
    asked = [i for i, x in enumerate(after) if x.kind == "user" and x.text == RECALL]
    return bool(asked) and any(x.kind == "assistant" and x.final for x in after[asked[0] + 1 :])


async def shoot(
    app: Dashboard,
    target: Path,
    state: str | None,
    timeout: float,
    handoffs: int = 0,
    recall: bool = False,
) -> str:
    def arrived() -> bool:
        snap = app.snapshot
        if recall:
            return recall_answered(snap, max(1, handoffs))
        return (
            snap is not None and snap.state == state and snap.metrics.get("handoffs", 0) >= handoffs
        )

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if state is not None or recall:
            deadline = time.monotonic() + timeout
            while not arrived():
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"screenshot: the dashboard did not reach "
                        f"{'the recall' if recall else state} in {timeout:g} s"
                    )
                await pilot.pause(0.05)
            await pilot.pause(0.3)
        target.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=target.name, path=str(target.parent))
        seen = app.snapshot.state if app.snapshot else "?"
        await app.action_quit()
        await pilot.pause(0.5)
    return seen


async def live(target: Path, state: str, timeout: float, handoffs: int, recall: bool) -> str:
    """The demo of ``make run`` without a microphone: the emulator hears the talker's lines
    (espeak-ng and pocketsphinx; without them the talker speaks the test signal and the
    transcript reads "utterance 7" / "answer to utterance 7")."""
    from sonic_fsm import settings
    from sonic_fsm.wiring import build_conversation
    from tui.app import DEMO_OVERRIDES

    s = settings.load(None, DEMO_OVERRIDES)
    conv = build_conversation(s, mic="talker", speaker="null", finish_when_input_ends=False)
    app = Dashboard(conv, settings=s)
    return await shoot(app, target, state, timeout, handoffs, recall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshot", description=__doc__)
    parser.add_argument("target", nargs="?", default="docs/dashboard.svg", type=Path)
    parser.add_argument("--live", action="store_true", help="run the demo on the emulator")
    parser.add_argument("--state", default="BUFFERING", help="with --live: the state to catch")
    parser.add_argument("--handoffs", type=int, default=0, help="with --live: after this many")
    parser.add_argument(
        "--recall", action="store_true", help="with --live: once the recall is answered"
    )
    parser.add_argument("--timeout", type=float, default=150.0, help="with --live: give up after")
    args = parser.parse_args(argv)
    if args.live:
        seen = asyncio.run(live(args.target, args.state, args.timeout, args.handoffs, args.recall))
    else:
        app = Dashboard(FixedSource(buffering()), poll_seconds=None)
        seen = asyncio.run(shoot(app, args.target, None, 0))
    print(f"wrote {args.target} ({seen})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
