"""The conversation as the person hears it: user and assistant turns and the hand-off points.

A tool call is a line of its own: its name, then how long it took, or that it failed.

SPECULATIVE assistant text shows dimmed until the FINAL text of the same turn replaces it;
an answer the user talked over is marked; a hand-off is a rule across the flow.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from sonic_fsm.core.snapshot import Snapshot, TranscriptLine
from tui.present import tool_line, visible_transcript

SPEAKERS = {"user": "you", "assistant": "bot", "tool": "fn"}
INTERRUPTED = "interrupted"


class Transcript(VerticalScroll):
    """Scrolls to the newest line whenever the transcript changes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "transcript--user",
        "transcript--assistant",
        "transcript--speculative",
        "transcript--interrupted",
        "transcript--handoff",
        "transcript--session",
        "transcript--tool",
        "transcript--failed",
    }

    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    """The latest snapshot; the parent pushes it in."""

    def __init__(self, *, id: str | None = None, keep: int = 300) -> None:
        super().__init__(id=id)
        self.keep = keep
        self._shown: tuple[TranscriptLine, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="transcript-text")

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        lines = snap.transcript if snap else ()
        if lines == self._shown or not self.is_mounted:
            return
        self._shown = lines
        following = self.scroll_y >= self.max_scroll_y  # a reader who scrolled up stays put
        self.query_one("#transcript-text", Static).update(self.text_for(lines))
        if following:
            self.scroll_end(animate=False)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"transcript--{name}")

    def text_for(self, lines: tuple[TranscriptLine, ...]) -> Text:
        shown = visible_transcript(lines)[-self.keep :]
        text = Text()
        if not shown:
            text.append("(nothing said yet)", style=self._style("session"))
        for i, line in enumerate(shown):
            if i:
                text.append("\n")
            if line.kind == "handoff":
                label = line.text.replace("->", "→") if line.text else line.session_id
                text.append(f"──── hand-off {label} ────", style=self._style("handoff"))
                continue
            who = SPEAKERS.get(line.kind, line.kind)
            text.append(
                f"{who:>3} ", style=self._style(line.kind if line.kind in SPEAKERS else "session")
            )
            if line.kind == "tool":
                text.append(tool_line(line), style=self._style("failed" if line.failed else "tool"))
                continue
            if line.interrupted and line.text.strip("() ") in ("", INTERRUPTED):
                text.append(f"— {INTERRUPTED} by the user —", style=self._style("interrupted"))
                continue
            if line.final:
                text.append(line.text)
            else:
                text.append(f"{line.text} …", style=self._style("speculative"))
            if line.interrupted:
                text.append(f"  — {INTERRUPTED}", style=self._style("interrupted"))
        return text
