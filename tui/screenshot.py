"""Write an SVG screenshot of the dashboard (for the README).

``python -m tui.screenshot docs/dashboard.svg`` draws the fixed BUFFERING sample (the same
screen the snapshot test keeps); ``--live`` runs the demo conversation on the in-process
emulator and takes the picture the first time it sees ``--state`` (default BUFFERING).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from tui.app import Dashboard
from tui.sample import FixedSource, buffering

SIZE = (120, 40)


async def shoot(app: Dashboard, target: Path, state: str | None, timeout: float) -> str:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if state is not None:
            deadline = time.monotonic() + timeout
            while app.snapshot is None or app.snapshot.state != state:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshot", description=__doc__)
    parser.add_argument("target", nargs="?", default="docs/dashboard.svg", type=Path)
    parser.add_argument("--live", action="store_true", help="run the demo on the emulator")
    parser.add_argument("--state", default="BUFFERING", help="with --live: the state to catch")
    parser.add_argument("--timeout", type=float, default=90.0, help="with --live: give up after")
    args = parser.parse_args(argv)
    if args.live:
        from sonic_fsm import settings
        from sonic_fsm.runner import build_conversation
        from tui.app import DEMO_OVERRIDES

        s = settings.load(None, DEMO_OVERRIDES)
        app = Dashboard(build_conversation(s, mic=None, speaker=None), settings=s)
        seen = asyncio.run(shoot(app, args.target, args.state, args.timeout))
    else:
        app = Dashboard(FixedSource(buffering()), poll_seconds=None)
        seen = asyncio.run(shoot(app, args.target, None, 0))
    print(f"wrote {args.target} ({seen})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
