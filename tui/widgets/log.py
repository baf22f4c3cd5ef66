"""The transition log: the same lines the headless run prints, appended as they come."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import RichLog

from sonic_fsm.core.snapshot import Snapshot
from tui.present import new_log_lines


class TransitionLog(RichLog):
    """Appends only the lines it has not shown (the engine may keep a rolling window)."""

    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    """The latest snapshot; the parent pushes it in."""

    def __init__(self, *, id: str | None = None, max_lines: int = 2000) -> None:
        super().__init__(
            id=id, max_lines=max_lines, min_width=20, wrap=True, markup=False, highlight=False
        )
        self._shown: tuple[str, ...] = ()

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        latest = snap.log if snap else ()
        if latest == self._shown:
            return
        append, lines = new_log_lines(self._shown, latest)
        if not append:
            self.clear()
        for line in lines:
            self.write(line.strip())
        self._shown = latest
