"""Modal screens: help, the settings in effect, and a failure message (never a traceback)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANELS = (
    (
        "state",
        "the machine's states, drawn from its TRANSITIONS table: the active one is lit, "
        "states passed in the last two seconds are underlined, with the path taken "
        "(triggers included) and the ways out of the active state",
    ),
    (
        "age",
        "the current session's age against the service limit; ┃ marks the threshold "
        "(a hand-off is prepared) and the hard deadline (one is forced)",
    ),
    ("buffer", "user audio kept for the next session during a hand-off, against its cap"),
    ("sessions", "each session: current, next (opening) or closing (finishing playback)"),
    ("transcript", "what was said; dim text is speculative until the final text replaces it"),
    ("log", "the transition log: the same lines a headless run prints"),
    (
        "metrics",
        "hand-offs, productive time, last hand-off duration, utterances lost / answered "
        "twice, microphone level, recording",
    ),
)


class _Dismissable(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_screen", "Close"),
        Binding("q", "dismiss_screen", "Close", show=False),
    ]

    def action_dismiss_screen(self) -> None:
        self.dismiss(None)


class HelpScreen(_Dismissable):
    """The keys (taken from the app's bindings, so they cannot drift) and what each panel is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *_Dismissable.BINDINGS,
        Binding("question_mark", "dismiss_screen", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, description in self.keys:
            keys.add_row(key, description)
        panels = Table.grid(padding=(0, 2))
        panels.add_column(style="bold", no_wrap=True)
        panels.add_column()
        for name, description in PANELS:
            panels.add_row(name, description)
        with VerticalScroll(classes="dialog") as dialog:
            dialog.border_title = "sonic-fsm help"
            yield Static(Text("Keys", style="bold underline"))
            yield Static(keys, classes="section")
            yield Static(Text("Panels", style="bold underline"))
            yield Static(panels, classes="section")
            yield Static(Text("escape closes this screen", style="dim"))


class SettingsScreen(_Dismissable):
    """The settings in effect, as TOML (what a settings file would need to reproduce this run)."""

    def __init__(self, toml_text: str) -> None:
        super().__init__()
        self.toml_text = toml_text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog") as dialog:
            dialog.border_title = "settings in effect"
            yield Static(Text(self.toml_text), id="settings-text")


class ErrorScreen(ModalScreen[None]):
    """The conversation could not start or stopped with an error: say what, and how to leave."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "dismiss_screen", "Back to the dashboard", show=False),
    ]

    def __init__(self, title: str, message: str, *, can_dismiss: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.can_dismiss = can_dismiss

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"{self.message}\n\n")
        hint = "q quits" + (" · escape shows the dashboard" if self.can_dismiss else "")
        text.append(hint, style="dim")
        with VerticalScroll(classes="dialog error") as dialog:
            dialog.border_title = self.title_text
            yield Static(text, id="error-message")

    def action_dismiss_screen(self) -> None:
        if self.can_dismiss:
            self.dismiss(None)
