"""Tool calls across sessions: every toolUse runs once, and its result goes to its own session.

The rule (the README's "How it works" says it for people):

1. A call is known by its session and its ``toolUseId``. The same id asked again (a
   SPECULATIVE and a FINAL copy, a replay) is a duplicate: it never runs twice.
2. A result goes only to the session that asked, under the id that session gave, and only
   while that session can still answer it (open, and not handed over). No result is sent to
   a closed stream; no id of one session ever reaches another.
3. A call is outstanding from the ``toolUse`` until its session begins the answer after the
   result. While the current session has one, a planned hand-off waits (the machine's
   ``has_no_outstanding_tool``).
4. When a switch is forced anyway (the hard deadline, a failed session), the call is left
   behind, still running. The new session hears the question again (the replayed audio or
   the trailing USER history) and asks the same tool with the same input under its own id:
   that ask joins the call left behind instead of running the tool again, and gets its
   result, at once if it has come, or when it comes. The question is answered once, by the
   new session, with the result. A session that dies while it speaks that answer is the same case:
   its replacement asks again, joins, and gives the answer with the same result.

Pure bookkeeping: the engine feeds it and turns its answers into effects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 120.0  # a finished call nobody waits on is forgotten this long after its result

RUN, JOIN, SEND, DUPLICATE = "run", "join", "send", "duplicate"


@dataclass(eq=False)
class Call:
    """One toolUse of one session."""

    session_id: str
    tool_use_id: str
    name: str
    key: str  # the tool and its input, canonical: what a new session's same ask matches
    asked_at: float
    root: Call | None = None  # the call left behind whose run this one waits on
    waiters: list[Call] = field(default_factory=list)  # a run's calls that want its result
    result: Any = None
    error: str | None = None
    finished_at: float | None = None
    sent: bool = False  # its result went to its session
    answered: bool = False  # its session began the answer after the result

    @property
    def run(self) -> Call:
        return self.root or self

    @property
    def finished(self) -> bool:
        return self.run.finished_at is not None


def _key(name: str, content: str) -> str:
    try:
        return name + json.dumps(json.loads(content or "{}"), sort_keys=True)
    except ValueError:
        return name + content


Gone = Callable[[str], bool]
"""Whether a session can no longer answer a result (closed, failed, or handed over)."""


class ToolCalls:
    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], Call] = {}
        self.seen: set[tuple[str, str]] = set()  # every (session, toolUseId) ever asked

    def ask(
        self,
        session_id: str,
        tool_use_id: str,
        name: str,
        content: str,
        now: float,
        gone: Gone,
        failed: Gone = lambda sid: False,
    ) -> tuple[str, Call | None]:
        """A toolUse arrived. ``RUN``: run the tool; ``JOIN``: it waits on a run left behind;
        ``SEND``: that run has its result already, send it now; ``DUPLICATE``: ignore it.
        ``failed``: the session died (an answer it began may have been cut: its replacement
        gives it again, with the same result)."""
        self._prune(now)
        ident = (session_id, tool_use_id)
        if ident in self.seen:
            return DUPLICATE, self.calls.get(ident)
        self.seen.add(ident)
        call = Call(session_id, tool_use_id, name, _key(name, content), now)
        self.calls[ident] = call
        run = self._left_behind(call.key, session_id, gone, failed)
        if run is None:
            call.waiters.append(call)
            return RUN, call
        call.root = run
        run.waiters.append(call)
        if run.finished:
            call.sent = True
            return SEND, call
        return JOIN, call

    def _left_behind(self, key: str, session_id: str, gone: Gone, failed: Gone) -> Call | None:
        """A run of this ask whose every waiter's session is gone, none having answered it
        (or only one that died, perhaps mid-answer)."""
        for c in self.calls.values():
            if c.root is not None or c.key != key or c.session_id == session_id:
                continue
            if all(
                gone(w.session_id) and (not w.answered or failed(w.session_id)) for w in c.waiters
            ):
                return c
        return None

    def finish(
        self,
        session_id: str,
        tool_use_id: str,
        result: Any,
        error: str | None,
        now: float,
        gone: Gone,
    ) -> list[Call]:
        """A run has its result: the calls to send it to now (each to its own session)."""
        run = self.calls.get((session_id, tool_use_id))
        if run is None or run.finished_at is not None:
            return []
        run.result, run.error, run.finished_at = result, error, now
        out = [w for w in run.waiters if not w.sent and not gone(w.session_id)]
        for w in out:
            w.sent = True
        return out

    def answer_began(self, session_id: str) -> None:
        """The session began an assistant turn: the results it had are being answered."""
        for c in self.calls.values():
            if c.session_id == session_id and c.sent:
                c.answered = True

    def session_ids(self) -> set[str]:
        """Every session a call still held here belongs to."""
        return {w.session_id for c in self.calls.values() for w in (c, *c.waiters)}

    def outstanding(self, session_id: str | None) -> bool:
        return any(c.session_id == session_id and not c.answered for c in self.calls.values())

    def pending(self, gone: Gone) -> list[tuple[Call, str]]:
        """Calls still waited on, with their phase: running, answering, left behind."""
        out: list[tuple[Call, str]] = []
        for c in self.calls.values():
            if c.answered or (c.root is None and c.finished and not c.sent and gone(c.session_id)):
                continue
            if gone(c.session_id):
                if c.root is None and not c.finished:
                    out.append((c, "left behind"))
                continue
            out.append((c, "answering" if c.sent else "running"))
        return out

    def _prune(self, now: float) -> None:
        """Forget calls whose run finished long ago (their ids stay in ``seen``)."""
        for ident, c in list(self.calls.items()):
            at = c.run.finished_at
            if at is not None and now - at > KEEP_SECONDS:
                del self.calls[ident]
