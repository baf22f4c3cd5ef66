"""The state diagram, generated from :data:`sonic_fsm.core.machine.TRANSITIONS` by transitions."""

from __future__ import annotations

from transitions.extensions import GraphMachine

from sonic_fsm.core import machine

HEADER = (
    "# sonic-fsm state machine\n\n"
    "Generated from `sonic_fsm/core/machine.py` by `sonic-fsm diagram`; do not edit by hand.\n\n"
)


class _Model:
    """A stand-in model: guards are only named in the diagram, never evaluated."""


def render() -> str:
    """The Markdown document: a header and the mermaid ``stateDiagram-v2`` source."""
    graph = GraphMachine(
        model=_Model(), graph_engine="mermaid", show_conditions=True, **machine.machine_kwargs()
    )
    source = str(graph.get_combined_graph().draw(None))
    return f"{HEADER}```mermaid\n{source.strip()}\n```\n"
