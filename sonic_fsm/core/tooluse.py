"""Tool calls as the sessions see them: asked, run, answered, handed over (the
bookkeeping and its rule are :mod:`sonic_fsm.core.toolcalls`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import protocol as pr
from sonic_fsm.core import toolcalls as tc
from sonic_fsm.core import views
from sonic_fsm.core.machine import Role
from sonic_fsm.core.snapshot import TranscriptLine

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.sessions import Session


def on_tool_use(eng: Engine, sess: Session, use: pr.ToolUse) -> None:
    what, call = eng.calls.ask(
        sess.id,
        use.tool_use_id,
        use.tool_name,
        use.content,
        eng.now,
        eng.tool_gone,
        lambda sid: eng.sessions[sid].role is Role.FAILED,
    )
    if what == tc.DUPLICATE:
        eng.say(f"[TOOL] {sess.id}: {use.tool_name} {use.tool_use_id} asked again: ignored")
        return
    assert call is not None
    line = TranscriptLine(kind="tool", session_id=sess.id, text=use.tool_name, ref=use.tool_use_id)
    views.add_transcript(eng, line)
    if what == tc.RUN:
        eng.say(f"[TOOL] {sess.id}: running {use.tool_name} {use.tool_use_id} {use.content}")
        eng.emit(
            fx.RunTool(
                session_id=sess.id,
                tool_use_id=use.tool_use_id,
                tool_name=use.tool_name,
                content=use.content,
            )
        )
        return
    assert call.root is not None
    eng.say(
        f"[TOOL] {sess.id}: {use.tool_name} is the call {call.root.session_id} left behind: "
        + ("its result is sent" if what == tc.SEND else "waiting for its result")
    )
    if what == tc.SEND:
        _send_result(eng, call)


def on_tool_finished(eng: Engine, e: ev.ToolFinished) -> None:
    run = eng.calls.calls.get((e.session_id, e.tool_use_id))
    took = eng.now - run.asked_at if run is not None else 0.0
    if e.error is not None:
        eng.say(f"[TOOL] {e.tool_name} {e.tool_use_id} failed after {took:.2f}s: {e.error}")
    else:
        eng.say(f"[TOOL] {e.tool_name} {e.tool_use_id} answered in {took:.2f}s")
    for i, line in enumerate(eng.transcript):
        if line.kind == "tool" and line.ref == e.tool_use_id:
            eng.transcript[i] = dataclasses.replace(line, seconds=took, failed=e.error is not None)
    sent = eng.calls.finish(e.session_id, e.tool_use_id, e.result, e.error, eng.now, eng.tool_gone)
    for call in sent:
        _send_result(eng, call)
    if not sent:
        eng.say(f"[TOOL] {e.tool_use_id}: its session was handed over; result kept")


def _send_result(eng: Engine, call: tc.Call) -> None:
    sess = eng.sessions[call.session_id]
    name = f"{sess.prompt_name}-tool-{next(eng.tool_result_ids)}"
    events = pr.tool_result_block(sess.prompt_name, name, call.tool_use_id, call.run.result)
    eng.emit(fx.Send(session_id=sess.id, events=tuple(events)))
