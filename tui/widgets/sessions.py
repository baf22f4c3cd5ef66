"""The open sessions: id, role, age, ready, audio in and out."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from sonic_fsm.snapshot import SessionView, Snapshot
from tui.present import human_bytes

COLUMNS = ("session", "role", "age", "ready", "audio in", "audio out")


class SessionsTable(DataTable[Text | str]):
    """One row per session the engine still reports, current first as the engine lists them."""

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
        self._shown: tuple[SessionView, ...] | None = None

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        sessions = snap.sessions if snap else ()
        if sessions == self._shown:
            return
        self._shown = sessions
        self.clear()
        for s in sessions:
            self.add_row(*self._row(s), key=s.session_id)

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
