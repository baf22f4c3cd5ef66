"""The base of the panels that draw themselves from a snapshot.

The engine's snapshot changes on every event (its clock moves), but most of what a panel
shows does not: each panel names the few values it shows (``view_key``) and repaints only
when they change. That keeps a ten-a-second stream of snapshots from repainting the
whole screen ten times a second.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.reactive import reactive
from textual.widget import Widget

from sonic_fsm.core.snapshot import Snapshot


class SnapshotPanel(Widget):
    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    """The latest snapshot; the parent pushes it in."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._view_key: Hashable = object()
        self.repaints = 0
        """How many snapshots changed what this panel shows."""

    def view_key(self, snap: Snapshot | None) -> Hashable:
        """The values this panel shows; a snapshot that leaves them alone costs nothing."""
        return snap

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        key = self.view_key(snap)
        if key != self._view_key:
            self._view_key = key
            self.repaints += 1
            self.refresh()
