"""The dashboard's panels: each one renders a slice of the latest :class:`Snapshot`."""

from tui.widgets.gauges import AgeGauge, BufferGauge
from tui.widgets.log import TransitionLog
from tui.widgets.metrics import MetricsPanel
from tui.widgets.sessions import SessionsTable
from tui.widgets.state_strip import StateStrip
from tui.widgets.transcript import Transcript

__all__ = [
    "AgeGauge",
    "BufferGauge",
    "MetricsPanel",
    "SessionsTable",
    "StateStrip",
    "Transcript",
    "TransitionLog",
]
