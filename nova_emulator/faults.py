"""The faults the emulator can inject, and the spec that names them per session.

:class:`Faults` is what goes wrong with one session; a plan (``n -> Faults``) says which for
the n-th session opened. :func:`parse_fault_plan` reads a spec such as
``"2:refuse_start,3:die_at_seconds=20"`` (the ``emulator.faults`` setting, checked when the
settings load). Pure data and parsing: no IO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sonic_fsm.core.config import SettingsError


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Faults to inject into one session (all off by default)."""

    start_delay_seconds: float = 0.0
    refuse_start: bool = False  # open fails with ThrottlingException
    never_ready: bool = False  # the opening events are never accepted
    die_at_seconds: float | None = None  # the stream fails at this session age
    die_mid_answer: int | None = None  # the stream fails halfway through this answer (1-based)
    malformed_at_answer: int | None = None  # a malformed output event at this answer
    audio_speed: float | None = None  # overrides the generation speed (slow audio)
    repeat_tool_use: bool = False  # every toolUse is sent twice, with the same toolUseId


FaultPlan = Callable[[int], Faults]
"""Faults for the n-th session opened (1-based)."""


def no_faults(n: int) -> Faults:
    return Faults()


class FaultSpecError(SettingsError):
    """A fault spec that cannot be read: one line naming the bad part."""


FAULT_SPEC_HELP = (
    "expected SESSION:FAULT[=VALUE] items separated by commas, SESSION being N, N+ (N and "
    "later) or * (every session), e.g. 2:refuse_start,3:die_at_seconds=20"
)


@dataclass(frozen=True, kw_only=True)
class SpecFaultPlan:
    """A parsed fault spec: for each rule (first session, last session or None, faults)."""

    rules: tuple[tuple[int, int | None, dict[str, Any]], ...] = ()
    text: str = ""

    def __call__(self, n: int) -> Faults:
        changes: dict[str, Any] = {}
        for first, last, faults in self.rules:
            if n >= first and (last is None or n <= last):
                changes.update(faults)
        return Faults(**changes)


def _fault_fields() -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(Faults)}


def _fault_value(item: str, name: str, kind: Any, raw: str | None) -> Any:
    kind = str(kind)
    if kind.startswith("bool"):
        if raw is None or raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise FaultSpecError(f"fault spec {item!r}: {name} takes true or false, not {raw!r}")
    if raw is None:
        raise FaultSpecError(f"fault spec {item!r}: {name} needs a value ({name}=...)")
    try:
        value: float = int(raw) if kind.startswith("int") else float(raw)
    except ValueError:
        want = "a whole number" if kind.startswith("int") else "a number"
        raise FaultSpecError(f"fault spec {item!r}: {name} takes {want}, not {raw!r}") from None
    if value < 0 or (name == "audio_speed" and value == 0):
        raise FaultSpecError(f"fault spec {item!r}: {name} must be positive")
    return value


def parse_fault_plan(text: str) -> SpecFaultPlan:
    """``"2:refuse_start,3:die_at_seconds=20"`` -> a plan; FaultSpecError names a bad item.

    Fault names are the fields of :class:`Faults`; several items may name one session, and
    later items win. An empty spec injects nothing.
    """
    fields = _fault_fields()
    rules: list[tuple[int, int | None, dict[str, Any]]] = []
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        if ":" not in item:
            raise FaultSpecError(f"fault spec {item!r}: {FAULT_SPEC_HELP}")
        who, what = (part.strip() for part in item.split(":", 1))
        first, last = _fault_sessions(item, who)
        name, _, value = what.partition("=")
        name = name.strip()
        if name not in fields:
            known = ", ".join(fields)
            raise FaultSpecError(f"fault spec {item!r}: unknown fault {name!r} (known: {known})")
        parsed = _fault_value(item, name, fields[name], value.strip() if _ else None)
        rules.append((first, last, {name: parsed}))
    return SpecFaultPlan(rules=tuple(rules), text=text)


def _fault_sessions(item: str, who: str) -> tuple[int, int | None]:
    if who == "*":
        return 1, None
    later = who.endswith("+")
    digits = who.removesuffix("+")
    if not digits.isdigit() or int(digits) < 1:
        raise FaultSpecError(
            f"fault spec {item!r}: session {who!r} must be N, N+ or * (N counts from 1)"
        )
    n = int(digits)
    return n, None if later else n
