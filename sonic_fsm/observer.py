"""Hooks for whoever wants to see every event a session sends and receives (recordings)."""

from __future__ import annotations

from typing import Any, Protocol


class Observer(Protocol):
    def session_opened(self, session_id: str, now: float, history: list[dict[str, str]]) -> None:
        """A session was opened; ``history`` is what it will be started with (may grow)."""

    def event_sent(self, session_id: str, now: float, event: dict[str, Any]) -> None: ...

    def event_received(self, session_id: str, now: float, event: dict[str, Any]) -> None: ...

    def transition(
        self, now: float, trigger: str, source: str, dest: str, sessions: list[str]
    ) -> None:
        """The machine moved; ``sessions`` are the ids it concerned (current and next)."""

    def session_closed(self, session_id: str, now: float, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullObserver:
    def session_opened(self, session_id: str, now: float, history: list[dict[str, str]]) -> None:
        pass

    def event_sent(self, session_id: str, now: float, event: dict[str, Any]) -> None:
        pass

    def event_received(self, session_id: str, now: float, event: dict[str, Any]) -> None:
        pass

    def transition(
        self, now: float, trigger: str, source: str, dest: str, sessions: list[str]
    ) -> None:
        pass

    def session_closed(self, session_id: str, now: float, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
