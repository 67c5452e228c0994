"""Order inside a phase: which step waits for which, cycles, and where a phase ends.

Pure functions over the model, shared by the validation rules, the schedule and
the DAG builder, so the order a runbook is checked in is the order it runs in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gonogo.core.runbook.model import Phase


def phase_upstreams(phase: Phase) -> dict[str, list[str]]:
    """Each step's upstream steps inside its phase.

    A step without ``depends_on`` follows the step above it, like a checklist.
    ``depends_on`` replaces that; names of steps in earlier phases are already
    satisfied by phase order and are left out. ``depends_on: []`` starts the step
    with the phase.
    """
    ids = [s.id for s in phase.steps]
    upstreams: dict[str, list[str]] = {}
    for index, step in enumerate(phase.steps):
        if step.depends_on is None:
            upstreams[step.id] = [ids[index - 1]] if index else []
        else:
            upstreams[step.id] = [d for d in step.depends_on if d in ids and d != step.id]
    return upstreams


def find_cycle(upstreams: Mapping[str, Sequence[str]]) -> list[str]:
    """One dependency cycle, each id waiting for the next (the last for the first), or []."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in done:
            return []
        if node in visiting:
            return visiting[visiting.index(node) :]
        visiting.append(node)
        for up in upstreams.get(node, ()):
            cycle = visit(up)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return []

    for node in upstreams:
        cycle = visit(node)
        if cycle:
            return cycle
    return []


def phase_leaves(phase: Phase) -> list[str]:
    """Steps nothing else in the phase waits for: the phase is done when these are."""
    upstreams = phase_upstreams(phase)
    used = {u for ups in upstreams.values() for u in ups}
    return [s.id for s in phase.steps if s.id not in used]
