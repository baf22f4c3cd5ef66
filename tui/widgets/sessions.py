"""The open sessions: id, role, age, ready, audio in and out."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from sonic_fsm.core.snapshot import SessionView, Snapshot
from tui.present import human_bytes

COLUMNS = {"session": 8, "role": 8, "age": 7, "ready": 5, "audio in": 9, "audio out": 9}
"""Column label -> fixed width: fixed widths let a cell change without a new layout."""


class SessionsTable(DataTable[Text | str]):
    """One row per session the engine reports, in the engine's order.

    Ages and byte counts change on every frame: those cells are updated in place, and the
    rows are rebuilt only when a session appears, goes or changes role.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = DataTable.COMPONENT_CLASSES | {
        "sessions--current",
        "sessions--next",
        "sessions--closing",
        "sessions--failed",
        "sessions--closed",
    }

    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    """The latest snapshot; the parent pushes it in."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=False, show_cursor=False)
        self._shown: tuple[SessionView, ...] = ()
        self.rebuilds = 0
        """How many times the rows were rebuilt rather than updated in place."""

    def on_mount(self) -> None:
        for label, width in COLUMNS.items():
            self.add_column(label, key=label, width=width)

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        sessions = snap.sessions if snap else ()
        if sessions == self._shown:
            return
        same_rows = [(s.session_id, s.role) for s in sessions] == [
            (s.session_id, s.role) for s in self._shown
        ]
        if same_rows:
            for new, old in zip(sessions, self._shown, strict=True):
                if new == old:
                    continue
                for label, cell, before in zip(
                    COLUMNS, self._row(new), self._row(old), strict=True
                ):
                    if cell != before:
                        self.update_cell(new.session_id, label, cell)
        else:
            self.rebuilds += 1
            self.clear()
            for s in sessions:
                self.add_row(*self._row(s), key=s.session_id)
        self._shown = sessions

    def _row(self, s: SessionView) -> tuple[Text | str, ...]:
        key = f"sessions--{s.role}"
        style = self.get_component_rich_style(key) if key in self.COMPONENT_CLASSES else None
        return (
            Text(s.session_id, style=style or ""),
            Text(s.role, style=style or ""),
            f"{s.age_seconds:.1f} s",
            "yes" if s.ready else "no",
            human_bytes(s.audio_in_bytes),
            human_bytes(s.audio_out_bytes),
        )
