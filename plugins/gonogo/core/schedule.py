"""Where each activity of a runbook falls in time, from planned durations and dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gonogo.core.graph import phase_upstreams
from gonogo.core.model import Gate, Phase, Runbook


@dataclass(frozen=True)
class Slot:
    """Where an item of the runbook falls in time, counted from the window start."""

    item_id: str
    offset: timedelta
    duration: timedelta


def schedule(runbook: Runbook) -> dict[str, Slot]:
    """Planned start offset of every step and gate, from planned durations and dependencies.

    Gates are planned at zero duration: the meeting is held when the previous
    phase ends. Steps without a planned duration take zero.
    """
    slots: dict[str, Slot] = {}
    cursor = timedelta(0)
    for item in runbook.phases:
        if isinstance(item, Gate):
            slots[item.gate] = Slot(item.gate, cursor, timedelta(0))
            continue
        ends = _phase_schedule(item, cursor, slots)
        cursor = max(ends.values(), default=cursor)
    return slots


def _phase_schedule(phase: Phase, start: timedelta, slots: dict[str, Slot]) -> dict[str, timedelta]:
    """Plan one phase from ``start``: fills ``slots`` and returns each step's planned end."""
    upstreams = phase_upstreams(phase)
    by_id = {s.id: s for s in phase.steps}
    ends: dict[str, timedelta] = {}

    def end_of(step_id: str, stack: tuple[str, ...] = ()) -> timedelta:
        if step_id in ends:
            return ends[step_id]
        if step_id in stack:  # a cycle; the checks report it
            return start
        begin = max((end_of(u, (*stack, step_id)) for u in upstreams[step_id]), default=start)
        duration = by_id[step_id].planned or timedelta(0)
        slots[step_id] = Slot(step_id, begin, duration)
        ends[step_id] = begin + duration
        return ends[step_id]

    for step in phase.steps:
        end_of(step.id)
    return ends
