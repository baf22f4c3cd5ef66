"""The numbers that say whether the hand-offs work: count, productive time, duration, losses."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.table import Table
from rich.text import Text

from sonic_fsm.core.snapshot import Snapshot
from tui.present import bar_cells
from tui.widgets.panel import SnapshotPanel

MIC_FLOOR_DB = -60.0
METER_CELLS = 10


class MetricsPanel(SnapshotPanel):
    """Metrics from the snapshot's dict; a key the engine does not report yet shows as ``–``."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "metrics--label",
        "metrics--good",
        "metrics--bad",
        "metrics--meter",
    }

    def view_key(self, snap: Snapshot | None) -> object:
        if snap is None:
            return None
        return (
            tuple(sorted(snap.metrics.items())),
            snap.muted,
            snap.recording,
            round(snap.mic_level_db),
        )

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"metrics--{name}")

    def render(self) -> Table:
        snap = self.snapshot
        m = snap.metrics if snap else {}
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=self._style("label"), no_wrap=True, min_width=13)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        handoffs = _fmt(m.get("handoffs"), "{:.0f}")
        if m.get("recoveries"):
            handoffs += f" + {m['recoveries']:.0f} recovered"
        grid.add_row("hand-offs", Text(handoffs))
        grid.add_row("productive", _num(m.get("productive_pct"), "{:.1f} %"))
        switched = (m.get("handoffs") or 0) + (m.get("recoveries") or 0)
        last_ms = m.get("last_handoff_ms") if switched else None  # 0.0 means "none yet"
        grid.add_row("last hand-off", _num(last_ms, "{:.0f} ms"))
        lost, twice = m.get("utterances_lost"), m.get("answered_twice")
        bad = bool(lost) or bool(twice)
        grid.add_row(
            "lost / twice",
            Text(
                f"{_fmt(lost, '{:.0f}')} / {_fmt(twice, '{:.0f}')}",
                style=self._style("bad" if bad else "good"),
            ),
        )
        if m.get("frames_lost"):
            grid.add_row("frames lost", Text(f"{m['frames_lost']:.0f}", style=self._style("bad")))
        grid.add_row("mic", self.meter(snap))
        grid.add_row("recording", "● on" if snap and snap.recording else "off")
        return grid

    def meter(self, snap: Snapshot | None) -> Text:
        if snap is None:
            return Text("–")
        if snap.muted:
            return Text("muted", style=self._style("bad"))
        level = max(snap.mic_level_db, MIC_FLOOR_DB)
        cells = bar_cells(METER_CELLS, (level - MIC_FLOOR_DB) / -MIC_FLOOR_DB)
        text = Text("█" * cells, style=self._style("meter"))
        text.append("░" * (METER_CELLS - cells), style=self._style("label"))
        text.append(f" {snap.mic_level_db:4.0f} dB")
        return text


def _fmt(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _num(value: float | None, fmt: str) -> Text:
    return Text(_fmt(value, fmt))
