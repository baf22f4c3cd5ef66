"""Two bars: the current session's age against the limit, the transition buffer against its cap.

Both redraw from the latest snapshot only (the parent coalesces updates), and only when
what they show (a tenth of a second, a byte count) changed.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text

from sonic_fsm.core.snapshot import Snapshot
from tui.present import INPUT_BYTES_PER_SECOND, bar_cells, human_bytes
from tui.widgets.panel import SnapshotPanel

FULL, EMPTY, MARK = "█", "░", "┃"


class _Gauge(SnapshotPanel):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "gauge--ok",
        "gauge--warn",
        "gauge--danger",
        "gauge--empty",
        "gauge--label",
    }

    def style_of(self, name: str) -> Style:
        return self.get_component_rich_style(f"gauge--{name}")

    def _bar(self, width: int, fraction: float, fill: str, marks: dict[int, str]) -> Text:
        """``width`` cells filled to ``fraction``, with ``marks`` (cell -> style) drawn on top."""
        filled = bar_cells(width, fraction)
        text = Text(no_wrap=True, overflow="crop")
        for cell in range(width):
            if cell in marks:
                text.append(MARK, style=self.style_of(marks[cell]))
            elif cell < filled:
                text.append(FULL, style=self.style_of(fill))
            else:
                text.append(EMPTY, style=self.style_of("empty"))
        return text


class AgeGauge(_Gauge):
    """Session age from 0 to the limit; the threshold and the hard deadline are marked."""

    def view_key(self, snap: Snapshot | None) -> object:
        if snap is None:
            return None
        return (
            round(snap.session_age_seconds, 1),
            snap.threshold_seconds,
            snap.hard_deadline_seconds,
            snap.limit_seconds,
        )

    def render(self) -> Text:
        snap = self.snapshot
        width = max(self.content_size.width, 10)
        if snap is None or snap.limit_seconds <= 0:
            return Text("no session yet", style=self.style_of("label"))
        limit = snap.limit_seconds
        age = snap.session_age_seconds
        threshold_cell = min(bar_cells(width, snap.threshold_seconds / limit), width - 1)
        deadline_cell = min(bar_cells(width, snap.hard_deadline_seconds / limit), width - 1)
        if age >= snap.hard_deadline_seconds:
            fill = "danger"
        elif age >= snap.threshold_seconds:
            fill = "warn"
        else:
            fill = "ok"
        text = self._bar(
            width, age / limit, fill, {threshold_cell: "warn", deadline_cell: "danger"}
        )
        text.append("\n")
        text.append(
            _scale(
                width,
                [
                    (threshold_cell, f"{snap.threshold_seconds:g}s"),
                    (deadline_cell, f"{snap.hard_deadline_seconds:g}s"),
                    (width - 1, f"{limit:g}s"),
                ],
            ),
            style=self.style_of("label"),
        )
        text.append("\n")
        text.append(f"{age:5.1f} s", style=self.style_of(fill) + Style(bold=True))
        text.append(
            f" of {limit:g} s · threshold {snap.threshold_seconds:g} s"
            f" · hard deadline {snap.hard_deadline_seconds:g} s",
            style=self.style_of("label"),
        )
        return text


class BufferGauge(_Gauge):
    """The transition buffer's fill: seconds and bytes against its cap."""

    def view_key(self, snap: Snapshot | None) -> object:
        return None if snap is None else (snap.buffer_bytes, snap.buffer_cap_bytes)

    def render(self) -> Text:
        snap = self.snapshot
        width = max(self.content_size.width, 10)
        if snap is None or snap.buffer_cap_bytes <= 0:
            return Text("no buffer", style=self.style_of("label"))
        used, cap = snap.buffer_bytes, snap.buffer_cap_bytes
        fraction = used / cap
        fill = "danger" if fraction >= 0.999 else "warn" if fraction >= 0.8 else "ok"
        text = self._bar(width, fraction, fill, {})
        text.append("\n")
        text.append(
            f"{used / INPUT_BYTES_PER_SECOND:5.2f} s", style=self.style_of(fill) + Style(bold=True)
        )
        text.append(
            f" of {cap / INPUT_BYTES_PER_SECOND:g} s · {human_bytes(used)} of {human_bytes(cap)}",
            style=self.style_of("label"),
        )
        return text


def _scale(width: int, labels: list[tuple[int, str]]) -> str:
    """A line with each label ending under its cell; a label that would overlap is left out."""
    line = [" "] * width
    taken_until = -1
    for cell, label in sorted(labels):
        start = max(cell - len(label) + 1, 0)
        if start <= taken_until:
            continue
        line[start : start + len(label)] = label
        taken_until = start + len(label)
    return "".join(line[:width])
