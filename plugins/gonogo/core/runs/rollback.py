"""Rollback planning and the run's outcome, as pure functions over plain data.

Which compensations run, in what order, given which steps completed and when;
what the run's one outcome is; and exactly what was and was not undone. The
rollback tasks call these with the run's task states, and the tests call them
directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gonogo.core import naming
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs import states
from gonogo.core.timing.timeplan import time_plan


@dataclass(frozen=True)
class StepRecord:
    """What happened to one forward step, as the rollback planner needs it."""

    step_id: str
    state: str  # an Airflow task state: success, failed, skipped, upstream_failed, None…
    end: datetime | None = None
    has_rollback: bool = True
    position: int = 0  # document order, to break ties between equal end times


@dataclass(frozen=True)
class RollbackPlan:
    """The compensations to run, in order, and the completed steps nothing undoes."""

    compensate: list[str] = field(default_factory=list)
    not_undone: list[str] = field(default_factory=list)


COMPLETED = frozenset({states.SUCCESS})


def plan_rollback(records: Sequence[StepRecord]) -> RollbackPlan:
    """Which completed steps to undo, newest first.

    Only steps that completed successfully are compensated; a step that failed
    or never ran changed nothing we know how to undo. Steps complete in the order
    of their end times (document order breaks ties), and are undone in reverse.
    """
    completed = [r for r in records if r.state in COMPLETED]
    # A success without an end time counts as the oldest. The flag comes first so that
    # datetime.min (naive) is never compared with Airflow's timezone-aware end dates.
    completed.sort(
        key=lambda r: (r.end is not None, r.end or datetime.min, r.position), reverse=True
    )
    return RollbackPlan(
        compensate=[r.step_id for r in completed if r.has_rollback],
        not_undone=[r.step_id for r in completed if not r.has_rollback],
    )


def rollback_if_last_fails(runbook: Runbook) -> RollbackPlan:
    """The rollback that would run if the last forward step failed, for the printed plan."""
    slots = time_plan(runbook).by_id()
    base = datetime(2000, 1, 1)
    steps = runbook.steps()
    records = [
        StepRecord(
            step.id,
            states.SUCCESS if index < len(steps) - 1 else states.FAILED,
            base + slots[step.id].end,
            step.rollback is not None,
            index,
        )
        for index, (_, step) in enumerate(steps)
    ]
    return plan_rollback(records)


# -- outcome -----------------------------------------------------------------------------------

SUCCEEDED = "succeeded"
NOGO_BEFORE_START = "nogo_before_start"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
#: Nothing failed, but a step or gate has no record of having really run (it was skipped or
#: marked past the API): not a success, nothing to promote, and nothing was undone.
INCOMPLETE = "incomplete"
OUTCOMES = (SUCCEEDED, NOGO_BEFORE_START, ROLLED_BACK, ROLLBACK_FAILED, INCOMPLETE)


@dataclass(frozen=True)
class ForwardStep:
    """A forward step as rollback sees it: its id, its task id, whether it has an undo."""

    step_id: str
    task_id: str
    has_rollback: bool


def why_rollback(task_states: Mapping[str, str], forward: Sequence[str]) -> list[str]:
    """The forward tasks that failed: the reason rollback started."""
    return [t for t in forward if task_states.get(t) == states.FAILED]


def reasons_for(failed: Sequence[str], refusals: Mapping[str, str] | None = None) -> list[str]:
    """Readable reasons from failed task ids: the failed step, or the gate and its role.

    ``refusals``: what before_start or begin said when it refused the run, by task id.
    """
    reasons = []
    said = refusals or {}
    for task_id in failed:
        gate = naming.parse_gate_task(task_id)
        if task_id == naming.PREFLIGHT_TASK:
            words = said.get(task_id)
            reasons.append(f"refused before start: {words}" if words else "refused before start")
        elif task_id == naming.BEGIN_TASK:
            words = said.get(task_id)
            reasons.append(
                f"the change record refused the run: {words}"
                if words
                else "the change record refused the run"
            )
        elif task_id == naming.FORECAST_TASK:
            reasons.append(f"{naming.FORECAST_OVERRUN}: rolled back to end inside the window")
        elif gate is None:
            reasons.append(f"step {task_id} failed")
        elif gate.part == naming.CHECKS:
            reasons.append(f"gate {gate.gate}: a required check failed")
        else:
            reasons.append(f"gate {gate.gate}: NOGO or no answer from role {gate.role}")
    return reasons


def in_flight(task_states: Mapping[str, str], steps: Sequence[ForwardStep]) -> list[str]:
    """Forward steps still queued, running, or waiting for a person's answer.

    Rollback waits for them: a manual step confirmed Done after rollback planned
    would be neither undone nor reported.
    """
    waiting = states.IN_FLIGHT | {states.AWAITING_INPUT}
    return [s.task_id for s in steps if task_states.get(s.task_id) in waiting]


def plan_from_states(
    task_states: Mapping[str, str],
    finished_at: Mapping[str, datetime | None],
    forward: Sequence[str],
    steps: Sequence[ForwardStep],
    refusals: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """The rollback plan as rollback.start records it: why, and what to undo, newest first."""
    records = [
        StepRecord(
            s.step_id,
            str(task_states.get(s.task_id)),
            finished_at.get(s.task_id),
            s.has_rollback,
            position,
        )
        for position, s in enumerate(steps)
    ]
    plan = plan_rollback(records)
    failed = why_rollback(task_states, forward)
    return {
        "failed": failed,
        "reasons": reasons_for(failed, refusals),
        "compensate": plan.compensate,
        "not_undone": plan.not_undone,
    }


def decide_outcome(
    task_states: Mapping[str, str],
    forward: Sequence[str],
    changing: Sequence[str],
    rollback: Sequence[str],
    unrecorded: Sequence[str] = (),
) -> str:
    """The run's one outcome, from task states and the steps and gates with no record.

    ``unrecorded``: steps without the finish record their own try writes, and gates
    without a GO record from every role. Success needs none: a step skipped or
    marked by hand, or a gate set past the API, is never a success.
    """
    if not any(task_states.get(t) in states.FAILED_STATES for t in forward):
        return INCOMPLETE if unrecorded else SUCCEEDED
    if any(task_states.get(t) in states.FAILED_STATES for t in rollback):
        return ROLLBACK_FAILED
    failed = why_rollback(task_states, forward)
    changed = any(task_states.get(t) == states.SUCCESS for t in changing)
    before_start = [
        t
        for t in failed
        if t not in (naming.PREFLIGHT_TASK, naming.BEGIN_TASK) and not naming.parse_gate_task(t)
    ]
    if not changed and failed and not before_start:
        return NOGO_BEFORE_START
    return ROLLED_BACK


def rollback_record(
    task_states: Mapping[str, str], plan: Mapping[str, Sequence[str]], global_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Exactly what was undone and what was not, from the plan and the task states.

    The n-th step of the plan is undone by slot ``rollback.undo_<n>``.
    """
    compensate = list(plan.get("compensate", []))
    slot = {step: task_states.get(naming.undo_slot_task(n)) for n, step in enumerate(compensate, 1)}

    def global_state(g: str) -> str | None:
        return task_states.get(naming.rollback_task(g))

    return {
        "undone": [s for s in compensate if slot[s] == states.SUCCESS],
        "undo_failed": [s for s in compensate if slot[s] == states.FAILED],
        "not_run": [s for s in compensate if slot[s] not in (states.SUCCESS, states.FAILED)],
        "no_rollback_defined": list(plan.get("not_undone", [])),
        "global_done": [g for g in global_ids if global_state(g) == states.SUCCESS],
        "global_not_done": [g for g in global_ids if global_state(g) != states.SUCCESS],
    }


def not_undone_lines(record: Mapping[str, Sequence[str]]) -> list[str]:
    """One line per completed step that is not undone, and why."""
    return [
        *(f"{s}: no rollback defined" for s in record.get("no_rollback_defined", [])),
        *(f"{s}: undo failed" for s in record.get("undo_failed", [])),
        *(f"{s}: not run, rollback stopped" for s in record.get("not_run", [])),
    ]
