"""Order, timing and rollback planning, as pure functions over the model and plain data.

Nothing here imports Airflow: the compiler and the rollback tasks call these
functions, and the tests call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gonogo.model import Activity, Gate, Phase, Runbook, format_duration

# -- order -------------------------------------------------------------------------------------


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


# -- timing ------------------------------------------------------------------------------------


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


# -- rollback ----------------------------------------------------------------------------------


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


COMPLETED = frozenset({"success"})


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
    slots = schedule(runbook)
    base = datetime(2000, 1, 1)
    steps = runbook.steps()
    records = [
        StepRecord(
            step.id,
            "success" if index < len(steps) - 1 else "failed",
            base + slots[step.id].offset + slots[step.id].duration,
            step.rollback is not None,
            index,
        )
        for index, (_, step) in enumerate(steps)
    ]
    return plan_rollback(records)


# -- rendering ---------------------------------------------------------------------------------


def describe(activity: Activity) -> str:
    """What an activity does, in one line: the command, the request, the callable or the instruction."""
    if activity.bash is not None:
        return f"`{activity.bash}`"
    if activity.http is not None:
        return f"`{activity.http.method} {activity.http.url}`"
    if activity.python is not None:
        return f"`{activity.python.callable}`"
    return activity.manual or ""


def _clock(runbook: Runbook, offset: timedelta) -> str:
    if runbook.window is None:
        return f"T+{format_duration(offset) if offset else '0'}"
    return (runbook.window.start + offset).strftime("%H:%M")


def _owner(runbook: Runbook, role: str | None) -> str:
    if role is None:
        return "-"
    users = runbook.roles[role].users if role in runbook.roles else []
    return f"{role} ({', '.join(users)})" if users else role


def render_outline(runbook: Runbook) -> str:
    """The runbook as Markdown a Release Manager can read out at a CAB meeting.

    The same text is the DAG's ``doc_md`` in Airflow and the output of ``gonogo plan``.
    """
    slots = schedule(runbook)
    change = runbook.change
    lines = [
        f"# {runbook.title}",
        "",
        f"- **Runbook:** `{runbook.runbook}`",
        f"- **Change:** {change.id} ({change.type})",
        f"- **Service:** {runbook.service} in {runbook.environment}",
    ]
    if runbook.window is not None:
        lines.append(
            f"- **Window:** {runbook.window.start.isoformat()} to {runbook.window.end.isoformat()}"
        )
    if runbook.description:
        lines += ["", runbook.description.strip()]
    if runbook.roles:
        lines += ["", "## Roles", ""]
        for name, role in runbook.roles.items():
            contact = f", contact {role.contact}" if role.contact else ""
            lines.append(f"- **{name}**: {', '.join(role.users) or '(nobody)'}{contact}")
    lines += ["", "## Plan", ""]
    for number, item in enumerate(runbook.phases, start=1):
        slot = slots[item.gate] if isinstance(item, Gate) else slots[item.steps[0].id]
        at = _clock(runbook, slot.offset)
        if isinstance(item, Gate):
            lines.append(
                f"### {number}. GO/NOGO gate `{item.gate}`: {item.title or item.gate} ({at})"
            )
            lines.append("")
            lines.append(f"- Sign-off: {', '.join(_owner(runbook, r) for r in item.sign_off)}")
            timeout = format_duration(item.timeout) if item.timeout else "none (waits)"
            lines.append(f"- Timeout: {timeout}; no answer in time is NOGO")
            if item.on_nogo == "reask":
                lines.append("- On NOGO: the rejecting role is asked again")
            for check in item.checks:
                required = "required" if check.required else "for information"
                lines.append(f"- Check `{check.id}` ({required}): {describe(check)}")
            if item.checklist:
                lines.append("- Checklist:")
                lines += [f"  - [ ] {entry}" for entry in item.checklist]
            lines.append("")
            continue
        lines.append(f"### {number}. Phase `{item.id}`: {item.title or item.id} ({at})")
        lines.append("")
        lines.append("| # | at | step | owner | planned | does | undo |")
        lines.append("|---|---|---|---|---|---|---|")
        for index, step in enumerate(item.steps, start=1):
            slot = slots[step.id]
            planned = format_duration(step.planned) if step.planned else "-"
            undo = describe(step.rollback) if step.rollback is not None else "-"
            title = step.title or step.id
            lines.append(
                f"| {number}.{index} | {_clock(runbook, slot.offset)} | {title} (`{step.id}`) | "
                f"{_owner(runbook, step.owner)} | {planned} | {describe(step)} | {undo} |"
            )
        lines.append("")
    plan = rollback_if_last_fails(runbook)
    mode = runbook.rollback.mode
    lines += ["## Rollback", "", f"Mode: {mode}."]
    if runbook.rollback.approve:
        lines.append(f"Before it starts, GO from: {', '.join(runbook.rollback.approve)}.")
    lines += ["", "If the last step failed, rollback would run, in this order:", ""]
    order = [f"undo `{s}`" for s in plan.compensate]
    order += [f"`{g.id}`: {g.title or describe(g)}" for g in runbook.rollback.steps]
    lines += [f"{n}. {entry}" for n, entry in enumerate(order, start=1)] or ["(nothing to run)"]
    if plan.not_undone:
        lines += [
            "",
            f"Not undone (no rollback defined): {', '.join(f'`{s}`' for s in plan.not_undone)}",
        ]
    return "\n".join(lines) + "\n"
