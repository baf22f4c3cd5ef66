"""One session's worker: carries out its sends in order and reads its output stream,
turning both into events for the conversation's queue (:class:`sonic_fsm.api.Conversation`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core.backend import Session
from sonic_fsm.errors import SessionError

if TYPE_CHECKING:
    from sonic_fsm.api import Conversation

_CLOSE = object()


class SessionWorker:
    """Carries out one session's effects in order and reads its output stream."""

    def __init__(self, conv: Conversation, session_id: str) -> None:
        self.conv = conv
        self.id = session_id
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.session: Session | None = None
        self.task = asyncio.create_task(self._run(), name=f"session-{session_id}")
        self.task.add_done_callback(self._forget)
        self.reader: asyncio.Task[None] | None = None

    def _forget(self, task: asyncio.Task[None]) -> None:
        """A finished worker lets go of its session, so hours of sessions are not kept."""
        if self.conv.workers.get(self.id) is self:
            del self.conv.workers[self.id]

    async def _run(self) -> None:
        conv, sid = self.conv, self.id
        timeout = conv.settings.backend.open_timeout_seconds
        try:
            self.session = await asyncio.wait_for(conv.backend.open(sid), timeout)
        except TimeoutError:
            conv.post(ev.SessionFailed(session_id=sid, code="Timeout", message="open timed out"))
            return
        except SessionError as e:
            self._failed(e)
            return
        self.reader = asyncio.create_task(self._read(), name=f"reader-{sid}")
        try:
            while True:
                item = await self.outbox.get()
                if item is _CLOSE:
                    break
                await self._send(item)
        except SessionError as e:
            self._failed(e)
        await self._close()

    def _failed(self, e: SessionError) -> None:
        self.conv.post(
            ev.SessionFailed(
                session_id=self.id, code=e.code, message=e.message, retryable=e.retryable
            )
        )

    async def _send(self, item: fx.Send) -> None:
        assert self.session is not None
        for event in item.events:
            await self.session.send(event)
            self.conv.observer.event_sent(self.id, self.conv.now(), event)
        if item.opening:
            await self.session.accepted()
            expires = getattr(self.session, "credentials_expire_at", None)
            if expires is not None:  # wall-clock epoch seconds: into loop time
                expires = self.conv.now() + (expires - time.time())
            self.conv.post(ev.SessionReady(session_id=self.id, expires_at=expires))
        if item.ack_seq is not None:
            self.conv.post(ev.SessionSent(session_id=self.id, seq=item.ack_seq))

    async def _read(self) -> None:
        assert self.session is not None
        conv, sid = self.conv, self.id
        try:
            while (out := await self.session.receive()) is not None:
                conv.observer.event_received(sid, conv.now(), out)
                conv.post(ev.SessionOutput(session_id=sid, event=out))
        except SessionError as e:
            self._failed(e)
            return
        conv.post(ev.SessionClosed(session_id=sid))

    async def _close(self) -> None:
        if self.session is None:
            return
        timeout = self.conv.settings.backend.close_timeout_seconds
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.session.close(), timeout)
        if self.reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.reader), timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.reader.cancel()
        self.conv.observer.session_closed(
            self.id, self.conv.now(), self.conv.session_summary(self.id)
        )

    def abandon(self) -> None:
        """Stop at once (failed session): no more sends, release in the background."""
        self.outbox.put_nowait(_CLOSE)
