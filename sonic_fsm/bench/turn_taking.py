"""The turn-taking scenario of ``sonic-fsm bench``: conversations as people hold them.

In virtual time on the in-process emulator, at each endpointing level the service offers
(HIGH, MEDIUM, LOW: a turn ends after 1.5, 1.75 or 2 s of pause), with pauses inside
utterances (0 to 1.2 s between two keys), quick follow-ups (a next utterance 0.2 to 3 s after
the answer began), next sessions slow to open (so the user speaks during hand-offs), and at
every hand-off a reaction at a random moment: a barge-in over the answer, or a question once
it has ended. Prints, per level, what a listener would complain about: utterances lost,
answered twice, answers cut without a barge-in, talk-over, answers to fragments, and the
reply delay (p50 / p99 / max) with the delay a hand-off adds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from nova_emulator.faults import Faults
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle, script
from sonic_fsm.bench.run import scored_run
from sonic_fsm.core.metrics import percentile
from sonic_fsm.core.protocol import ENDPOINTING_PAUSE_SECONDS
from sonic_fsm.settings import Settings, replace

LEVELS = tuple(ENDPOINTING_PAUSE_SECONDS)  # HIGH, MEDIUM, LOW
SESSIONS = {  # a hand-off about every 40 s, so a conversation holds many
    "session_limit_seconds": 80.0,
    "transition_threshold_seconds": 35.0,
    "hard_deadline_margin_seconds": 10.0,
    "emulator.end_of_speech_ms": 0,  # turns end as the service ends them
}
SPACING_S = 15.0
PAUSE_INSIDE_S = (0.0, 1.2)
FOLLOW_UPS = 0.3
FOLLOW_UP_AFTER_S = (0.2, 3.0)
REACT_AFTER_S = (0.1, 3.0)  # a reaction this long after BUFFERING began
NEXT_OPENS_IN_S = (0.5, 3.0)
GAP_OVER_S = 0.3  # two utterances are at least this much over the endpointing apart
MAX_HANDOFFS = 100  # reactions are planned for this many hand-offs per conversation


def one_conversation(settings: Settings, minutes: float, seed: int) -> dict[str, Any]:
    """One scored conversation at ``settings``' endpointing; its oracle counts and more."""
    rng = random.Random(seed)
    count = max(1, int(minutes * 60 / SPACING_S))
    lines = script.conversation(
        count,
        SPACING_S,
        pause_inside=PAUSE_INSIDE_S,
        follow_ups=FOLLOW_UPS,
        follow_up_after=FOLLOW_UP_AFTER_S,
        seed=rng.randrange(1 << 30),
    )
    barges = tuple(n for n in range(1, MAX_HANDOFFS) if rng.random() < 0.5)
    delays = {n: rng.uniform(*REACT_AFTER_S) for n in range(1, MAX_HANDOFFS)}
    opens = {n: rng.uniform(*NEXT_OPENS_IN_S) for n in range(2, MAX_HANDOFFS + 2)}

    def faults(n: int) -> Faults:
        return Faults(start_delay_seconds=opens.get(n, 1.0)) if n > 1 else Faults()

    run = scored_run(
        settings,
        lines,
        LocalBackend(settings, faults),
        True,
        barge_in_at=barges,
        late_at={n: d for n, d in delays.items() if n not in barges},
        barge_in_delay={n: d for n, d in delays.items() if n in barges},
        pause_inside=PAUSE_INSIDE_S,
        seed=seed,
        extra_start=10 * (count + 1),
        min_gap=ENDPOINTING_PAUSE_SECONDS[settings.backend.endpointing_sensitivity] + GAP_OVER_S,
    )
    return {"score": run.score, "handoffs": run.result.metrics["handoffs"]}


def figures(scores: list[oracle.Score], handoffs: int) -> dict[str, Any]:
    """The counts of several conversations together; delays pooled over them."""
    delays = sorted(d for s in scores for d in s.delays())
    added = sorted(d for s in scores for d in s.added_delays())
    return {
        "utterances_spoken": sum(s.spoken for s in scores),
        "handoffs": handoffs,
        "utterances_during_handoff": sum(len(s.during_handoff) for s in scores),
        "utterances_lost": sum(len(s.lost) for s in scores),
        "answered_twice": sum(len(s.answered_twice) for s in scores),
        "answers_truncated": sum(len(s.truncated) for s in scores),
        "cut_without_barge_in": sum(len(s.cut_without_barge_in) for s in scores),
        "answers_restarted": sum(len(s.restarted) for s in scores),
        "talk_over": sum(len(s.talk_over_ms) for s in scores),
        "talk_over_ms": round(sum(sum(s.talk_over_ms.values()) for s in scores)),
        "unmarked_answers": sum(len(s.unmarked_at) for s in scores),
        "reply_delay_ms_p50": percentile(delays, 50),
        "reply_delay_ms_p99": percentile(delays, 99),
        "reply_delay_ms_max": percentile(delays, 100),
        "handoff_added_delay_ms_p50": percentile(added, 50),
        "handoff_added_delay_ms_p99": percentile(added, 99),
        "handoff_added_delay_ms_max": percentile(added, 100),
    }


COLUMNS = (
    ("utterances_spoken", "spoken"),
    ("handoffs", "hand-offs"),
    ("utterances_lost", "lost"),
    ("answered_twice", "twice"),
    ("answers_truncated", "truncated"),
    ("cut_without_barge_in", "cut, no barge-in"),
    ("talk_over", "talk-over"),
    ("talk_over_ms", "talk-over ms"),
    ("unmarked_answers", "unmarked"),
    ("reply_delay_ms_p50", "delay p50"),
    ("reply_delay_ms_p99", "p99"),
    ("reply_delay_ms_max", "max"),
    ("handoff_added_delay_ms_p99", "added p99"),
    ("handoff_added_delay_ms_max", "added max"),
)


def table(by_level: dict[str, dict[str, Any]]) -> str:
    """One line per endpointing level (delays in ms)."""
    rows = [["level", *(title for _, title in COLUMNS)]]
    for level, f in by_level.items():
        rows.append([level, *("-" if f[key] is None else f"{f[key]:g}" for key, _ in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def run(
    settings: Settings, minutes: float = 10.0, seeds: int = 2, out: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Each level: ``seeds`` conversations of ``minutes`` in virtual time; prints the table
    and returns the figures by level."""
    by_level: dict[str, dict[str, Any]] = {}
    for level in LEVELS:
        at_level = replace(settings, **SESSIONS, **{"backend.endpointing_sensitivity": level})
        out(f"bench: turn-taking at {level}: {seeds} x {minutes:g} minutes in virtual time ...")
        runs = [one_conversation(at_level, minutes, seed) for seed in range(1, seeds + 1)]
        by_level[level] = figures([r["score"] for r in runs], sum(r["handoffs"] for r in runs))
    out(table(by_level))
    return by_level


def broken(by_level: dict[str, dict[str, Any]]) -> bool:
    """An utterance lost or answered twice, or the user talked over, at any level."""
    return any(
        f["utterances_lost"] or f["answered_twice"] or f["talk_over"] for f in by_level.values()
    )
