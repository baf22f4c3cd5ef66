"""The one small interface every backend implements.

A backend opens sessions. A session takes input events (dicts, see
:mod:`sonic_fsm.core.protocol`) and yields output events (dicts). Errors from the service are
raised as :class:`sonic_fsm.errors.SessionError`.
"""

from __future__ import annotations

from typing import Any, Protocol


class Session(Protocol):
    async def send(self, event: dict[str, Any]) -> None:
        """Send one input event."""

    async def receive(self) -> dict[str, Any] | None:
        """The next output event, or ``None`` once the output stream has ended."""

    async def close(self) -> None:
        """Close the input stream, drain the output, release the connection. Idempotent."""

    async def accepted(self) -> None:
        """Return once the service has really started the session (for a network backend,
        its response has arrived); raise SessionError if it will not. Ready is only
        declared after this."""


class Backend(Protocol):
    async def open(self, session_id: str) -> Session:
        """Open a new bidirectional stream (without sending anything on it yet)."""

    async def aclose(self) -> None:
        """Release whatever the backend holds."""
