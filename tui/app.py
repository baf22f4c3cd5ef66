"""The dashboard: a view of one running conversation, and the operator's keys.

The app owns one reactive, ``snapshot``, and binds it into every panel. It polls the
source about ten times a second and sets the reactive only when the snapshot changed, so
the engine never waits for the screen and a burst of engine events costs one repaint.
It takes any source with ``snapshot()`` and the public API's operator calls (and,
optionally, an ``async run()`` that it runs as a worker): the real conversation
(:class:`sonic_fsm.runner.Runner` on :class:`sonic_fsm.api.Conversation`), or a fixed one
in tests.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from sonic_fsm import settings as settings_mod
from sonic_fsm.audio.base import AudioDeviceError
from sonic_fsm.audio.talker import TalkerError
from sonic_fsm.audio.wav import WavFormatError
from sonic_fsm.core.snapshot import Snapshot
from sonic_fsm.credentials import CredentialsError
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings, SettingsError
from sonic_fsm.wiring import build_conversation
from tui.present import endpointing_note, settings_toml, state_name
from tui.screens import ErrorScreen, HelpScreen, SettingsScreen
from tui.widgets import (
    AgeGauge,
    BufferGauge,
    MetricsPanel,
    SessionsTable,
    StateStrip,
    Transcript,
    TransitionLog,
)

DEMO_OVERRIDES = [
    "backend.kind=emulator",
    "session_limit_seconds=60",
    "transition_threshold_seconds=30",
    "hard_deadline_margin_seconds=8",
    "audio_start_timeout_seconds=10",
    "next_session_ready_timeout_seconds=10",
]
"""The demo profile (``make run`` without a settings file): a full hand-off within a minute.

The threshold at 30 s prepares a hand-off at the next turn boundary; if the assistant does
not start speaking within 10 s it goes anyway; the hard deadline (60 − 8 = 52 s) forces it.
"""

POLL_SECONDS = 0.1
DIAGRAM_FILE = "sonic-fsm-diagram.md"


class Source(Protocol):
    """What the dashboard needs from a conversation: what :class:`sonic_fsm.api.Conversation`
    offers (``run`` is optional)."""

    def snapshot(self) -> Snapshot | None:
        """The latest state of the conversation; ``None`` until it has started."""
        ...

    def force_handoff(self) -> None: ...

    def set_muted(self, muted: bool) -> None: ...

    def set_recording(self, on: bool) -> None: ...

    def stop(self) -> None: ...


class Dashboard(App[int]):
    """State strip, gauges, sessions, metrics, transcript and log of one conversation."""

    CSS_PATH = "app.tcss"
    TITLE = "sonic-fsm"
    ENABLE_COMMAND_PALETTE = False
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (34, "-tall")]
    """Below 34 rows the upper panels shrink so the transcript and the log keep some room."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "handoff", "Hand off"),
        Binding("m", "mute", "Mute"),
        Binding("r", "recording", "Record"),
        Binding("d", "diagram", "Diagram"),
        Binding("s", "settings", "Settings"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    snapshot: reactive[Snapshot | None] = reactive(None, repaint=False)
    """The latest snapshot shown; every panel is bound to it (and repaints only itself)."""

    def __init__(
        self,
        source: Source,
        *,
        settings: Settings | None = None,
        poll_seconds: float | None = POLL_SECONDS,
        export_dir: Path | None = None,
        stop_timeout_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.settings = settings if settings is not None else getattr(source, "settings", None)
        self.poll_seconds = poll_seconds
        self.export_dir = export_dir
        if stop_timeout_seconds is None:
            close = self.settings.backend.close_timeout_seconds if self.settings else 5.0
            stop_timeout_seconds = close + 2.0
        self.stop_timeout_seconds = stop_timeout_seconds
        self.polls = 0
        """How many times the source was asked for a snapshot."""
        self.renders = 0
        """How many of those snapshots were new and pushed into the panels."""
        self.engine: Worker[Any] | None = None
        self.engine_error: BaseException | None = None
        self.exit_code = 0
        """0, or 1 when the engine failed, 2 when it failed for want of a working set-up."""
        self.snapshot_error: BaseException | None = None
        self.stopping = False

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield _titled(StateStrip(id="strip"), "state machine").data_bind(Dashboard.snapshot)
        with Horizontal(id="gauges"):
            yield _titled(AgeGauge(id="age"), "session age").data_bind(Dashboard.snapshot)
            yield _titled(BufferGauge(id="buffer"), "transition buffer").data_bind(
                Dashboard.snapshot
            )
        with Horizontal(id="middle"):
            yield _titled(SessionsTable(id="sessions"), "sessions").data_bind(Dashboard.snapshot)
            yield _titled(MetricsPanel(id="metrics"), "metrics").data_bind(Dashboard.snapshot)
        with Horizontal(id="bottom"):
            yield _titled(Transcript(id="transcript"), "transcript").data_bind(Dashboard.snapshot)
            yield _titled(TransitionLog(id="log"), "transition log").data_bind(Dashboard.snapshot)
        yield Footer()

    def on_mount(self) -> None:
        self.poll()
        if self.poll_seconds:
            self.set_interval(self.poll_seconds, self.poll, name="poll")
        run = getattr(self.source, "run", None)
        if callable(run):
            self.engine = self.run_worker(
                run(), name="engine", group="engine", exclusive=True, exit_on_error=False
            )

    def poll(self) -> bool:
        """Take the latest snapshot; push it into the panels only if it changed."""
        self.polls += 1
        if self.snapshot_error is not None:
            return False
        try:
            snap = self.source.snapshot()
        except Exception as e:  # a bug in the engine's view: say so once, keep the keys working
            self.snapshot_error = e
            self.push_screen(
                ErrorScreen("the dashboard cannot read the conversation", describe_error(e))
            )
            return False
        if snap is None or snap is self.snapshot or snap == self.snapshot:
            return False
        self.snapshot = snap
        self.renders += 1
        return True

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        flags = [state_name(snap.state)]
        if snap.muted:
            flags.append("muted")
        if snap.recording:
            flags.append("● rec")
        if snap.tools:
            flags.append(f"tool {snap.tools[0].name} {snap.tools[0].seconds:.0f} s")
        self.sub_title = " · ".join(flags)

    # -- the engine worker ------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "engine":
            return
        if event.state == WorkerState.ERROR:
            error = self.engine_error = event.worker.error
            # Credentials, for one, are only found when the first session opens.
            setup = isinstance(error, SETUP_ERRORS)
            self.exit_code = 2 if setup else 1
            if not self.stopping:
                title = "sonic-fsm could not start" if setup else "the conversation stopped"
                self.push_screen(ErrorScreen(title, describe_error(error)))
        elif event.state == WorkerState.SUCCESS and not self.stopping:
            reason = getattr(event.worker.result, "reason", "")
            self.notify(f"The conversation ended{': ' + reason if reason else '.'}", title="engine")
        if event.worker.is_finished:
            self.poll()

    # -- operator keys ----------------------------------------------------------------

    def action_handoff(self) -> None:
        self.source.force_handoff()
        self.notify("Hand-off requested.", timeout=2)

    def action_mute(self) -> None:
        self.source.set_muted(not (self.snapshot and self.snapshot.muted))

    def action_recording(self) -> None:
        self.source.set_recording(not (self.snapshot and self.snapshot.recording))

    def action_diagram(self) -> None:
        # Imported here: rendering the diagram is only needed on this key.
        from sonic_fsm import diagram

        target = (self.export_dir or Path.cwd()) / DIAGRAM_FILE
        try:
            target.write_text(diagram.render())
        except OSError as e:
            self.notify(f"Could not write {target}: {e.strerror}", severity="error")
            return
        self.notify(f"Diagram written to {target}", title="diagram")

    def action_settings(self) -> None:
        if self.settings is None:
            self.notify("No settings to show.", severity="warning")
            return
        notes = {"backend.endpointing_sensitivity": endpointing_note(self.settings)}
        text = settings_toml(settings_mod.as_dict(self.settings), notes)
        self.push_screen(SettingsScreen(text))

    def action_help(self) -> None:
        keys = [
            (b.key_display or b.key, b.description) for b in self.BINDINGS if isinstance(b, Binding)
        ]
        self.push_screen(HelpScreen(keys))

    async def action_quit(self) -> None:
        """Ask the engine to stop, give it time to close its sessions, then leave."""
        if self.stopping:
            return
        self.stopping = True
        if self.engine is None:
            self.exit(0)
            return
        self.source.stop()
        self.run_worker(self._stop_engine(), name="shutdown", group="shutdown", exclusive=True)

    async def _stop_engine(self) -> None:
        engine = self.engine
        assert engine is not None
        if not engine.is_finished:
            self.notify("Closing the sessions…", timeout=self.stop_timeout_seconds)
            try:
                await asyncio.wait_for(engine.wait(), self.stop_timeout_seconds)
            except TimeoutError:
                engine.cancel()
            except (WorkerFailed, WorkerCancelled):
                pass
        code = self.exit_code
        self.exit(code, return_code=code)


def _titled(widget: Widget, title: str) -> Widget:
    widget.border_title = title
    return widget


SETUP_ERRORS = (SettingsError, AudioDeviceError, CredentialsError, TalkerError, WavFormatError)
"""Problems with the set-up (settings, devices, credentials, files): the run could not start."""

STARTUP_ERRORS = (*SETUP_ERRORS, SessionError, OSError)
"""What a user can cause and fix: the set-up, or a service or port that refused us."""


def describe_error(error: BaseException | None) -> str:
    """One plain line: the message of errors the user can fix, the type of anything else."""
    if error is None:
        return "unknown error"
    if isinstance(error, STARTUP_ERRORS):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


class StartupErrorApp(App[int]):
    """Shown instead of the dashboard when the conversation cannot even be built."""

    CSS_PATH = "app.tcss"
    TITLE = "sonic-fsm"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("escape", "quit", "Quit", show=False),
    ]

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.message = describe_error(error)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Footer()

    def on_mount(self) -> None:
        self.push_screen(ErrorScreen("sonic-fsm could not start", self.message, can_dismiss=False))

    async def action_quit(self) -> None:
        self.exit(2, return_code=2)


Build = Callable[..., Source]
"""How a conversation is built: ``sonic_fsm.wiring.build_conversation``, or a stand-in."""


def make_app(
    settings: Settings,
    mic: str | None = None,
    speaker: str | None = None,
    *,
    build: Build = build_conversation,
) -> Dashboard | StartupErrorApp:
    """The dashboard on a conversation built from ``settings``, or the start-up error screen.

    ``mic`` and ``speaker`` are the command line's choices (``None``: the devices when there
    are some, else the simulated talker and silence).
    """
    try:
        conversation = build(settings, mic=mic, speaker=speaker)
    except Exception as e:
        return StartupErrorApp(e)
    return Dashboard(conversation, settings=settings)


def main(settings: Settings, mic: str | None = None, speaker: str | None = None) -> int:
    """Run the dashboard (``sonic-fsm tui``, ``make run``); returns the exit code.

    0 after a clean quit, 1 when the conversation stopped with an error, 2 when it could not
    start (bad settings, no credentials, no audio device: one line on the screen).
    """
    app = make_app(settings, mic, speaker)
    app.run()
    if isinstance(app, StartupErrorApp) and not isinstance(app.error, STARTUP_ERRORS):
        # Not a user's mistake: keep the details for a bug report.
        traceback.print_exception(app.error, file=sys.stderr)
    return app.return_code or 0
