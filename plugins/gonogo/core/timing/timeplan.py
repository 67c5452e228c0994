"""The plan in time: planned start T, gates on the clock, the forecast and the last safe moment.

A hospital go-live runs against the clock. GO/NOGO 2 is held before the planned
start T, the technical work starts at T, every activity has a planned
duration, and the status meetings ask two questions: will we finish inside the
window, and if not, is there still time to roll back? This module answers them
as pure functions over the model and plain data: the one plan in time behind
every view of it (the outline and the DAG's doc, the kjøreplan in every format,
the rehearsal, the DAG's clock waits, the forecast, the board and the report),
so a gate's ``opens`` time or ``planned`` meeting moves the same activities in
all of them. ``tests/dag/test_one_time_plan.py`` pins that they agree.

- :func:`time_plan` places every step and gate relative to T: phases in order,
  steps in parallel where ``depends_on`` allows (the critical path), a gate no
  earlier than its ``opens`` time, and technical work after a gate with an
  ``opens`` time no earlier than T.
- :func:`planned_start` is T for a run, by the one rule every task, page and
  document follows.
- :func:`forecast` projects the finish from the actual times so far and the
  planned durations still ahead, the time a rollback started now would take,
  and the last safe moment: the latest start of a rollback that still ends
  inside the window.
- :func:`overrun` says whether that is reason to raise ``forecast_overrun``.
- :func:`time_problems` checks that the times in a runbook are consistent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from gonogo.core.naming import PLANNED_START_PARAM, RELEASE_MANAGER_ROLE
from gonogo.core.runbook.graph import phase_upstreams
from gonogo.core.runbook.model import Gate, Phase, Runbook, Window
from gonogo.core.runbook.source import Source
from gonogo.core.timing.clock import At, format_clock, format_duration
from gonogo.errors import Problem, TimePlanError

ZERO = timedelta(0)

OnOverrun = Literal["decide", "rollback", "continue"]


@dataclass(frozen=True)
class Planned:
    """One activity in the plan: when it starts relative to T, how long it takes, what it waits for.

    ``not_before`` is a clock constraint relative to T (a gate's ``opens``, or T
    itself for technical work after a clocked gate). ``undo`` is the planned
    duration of the step's compensation, or None when nothing undoes it.
    """

    id: str
    kind: Literal["step", "gate"]
    start: timedelta
    duration: timedelta
    upstream: tuple[str, ...] = ()
    not_before: timedelta | None = None
    undo: timedelta | None = None
    phase: str | None = None

    @property
    def end(self) -> timedelta:
        return self.start + self.duration


@dataclass(frozen=True)
class TimePlan:
    """Every activity, each after everything it waits for, with offsets from T."""

    activities: tuple[Planned, ...]
    begin: timedelta  # the earliest planned start: before T when a gate opens before T
    finish: timedelta
    global_undo: timedelta  # the planned duration of the global rollback steps

    def by_id(self) -> dict[str, Planned]:
        return {a.id: a for a in self.activities}

    @property
    def rollback_budget(self) -> timedelta:
        """How long undoing everything takes by plan: every compensation and the global steps."""
        return sum((a.undo for a in self.activities if a.undo is not None), ZERO) + self.global_undo


def _gate_end(gate: Gate, start: timedelta) -> timedelta:
    """A gate's planned end: its own planned duration, else its clock deadline, else at once."""
    if gate.planned is not None:
        return start + gate.planned
    if isinstance(gate.decide_by, At):
        return max(start, gate.decide_by.offset)
    return start


def _phase_order(phase: Phase) -> list[str]:
    """The phase's steps, each after its upstreams (document order otherwise); cycles broken."""
    upstreams = phase_upstreams(phase)
    order: list[str] = []
    seen: set[str] = set()

    def visit(step_id: str, stack: frozenset[str]) -> None:
        if step_id in seen or step_id in stack:
            return
        for up in upstreams.get(step_id, ()):
            visit(up, stack | {step_id})
        seen.add(step_id)
        order.append(step_id)

    for step in phase.steps:
        visit(step.id, frozenset())
    return order


def time_plan(runbook: Runbook) -> TimePlan:
    """Where every step and gate falls in time, relative to the planned start T.

    The run begins at T, or at the earliest ``opens`` when a gate opens before
    T (GO/NOGO 2 half an hour before the start): phases before that gate are its
    preparation. Technical work after a gate with an ``opens`` time waits for T.
    Steps and gates without a planned duration take none.
    """
    begin = min([ZERO, *(g.opens.offset for g in runbook.gates if g.opens is not None)])
    activities: list[Planned] = []
    cursor = begin
    held = False
    exits: tuple[str, ...] = ()
    for item in runbook.phases:
        if isinstance(item, Gate):
            not_before = item.opens.offset if item.opens is not None else None
            start = cursor if not_before is None else max(cursor, not_before)
            end = _gate_end(item, start)
            activities.append(Planned(item.gate, "gate", start, end - start, exits, not_before))
            exits, cursor = (item.gate,), end
            held = held or item.opens is not None
            continue
        not_before = ZERO if held else None
        phase_start = cursor if not_before is None else max(cursor, not_before)
        upstreams = phase_upstreams(item)
        by_id = {s.id: s for s in item.steps}
        ends: dict[str, timedelta] = {}
        for step_id in _phase_order(item):
            step = by_id[step_id]
            ups = tuple(u for u in upstreams[step_id] if u in ends)
            start = max((ends[u] for u in ups), default=phase_start)
            duration = step.planned or ZERO
            undo = None
            if step.rollback is not None:
                undo = step.rollback.planned or step.planned or ZERO
            activities.append(
                Planned(
                    step_id,
                    "step",
                    start,
                    duration,
                    ups if upstreams[step_id] else exits,
                    None if upstreams[step_id] else not_before,
                    undo,
                    item.id,
                )
            )
            ends[step_id] = start + duration
        used = {u for ups in upstreams.values() for u in ups}
        exits = tuple(s.id for s in item.steps if s.id not in used)
        cursor = max(ends.values(), default=phase_start)
    global_undo = sum((g.planned or ZERO for g in runbook.rollback.steps), ZERO)
    finish = max((a.end for a in activities), default=begin)
    return TimePlan(tuple(activities), begin, finish, global_undo)


# -- T and the overrun rule ---------------------------------------------------------------------


def planned_start(
    window: Window | None,
    value: str | datetime | None,
    started: datetime,
    begin: timedelta,
) -> datetime:
    """T, by the one rule every task, page and document uses.

    T is the trigger's ``planned_start`` when given, else the window start.
    A run of a runbook without a window (a rehearsal, a standard change)
    begins when it is triggered, ``started``, at its plan's ``begin``
    (:attr:`TimePlan.begin`), so T is ``started - begin``: a gate that opens
    at T-30m opens at once and the work after it starts 30 minutes after the
    trigger, as the printed plan shows. A T outside the window is refused: a
    rollout cannot be planned to start before the change is approved to, or
    after its window has closed.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return window.start if window is not None else started - begin
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TimePlanError(
                f"{PLANNED_START_PARAM} {value!r} is not a time like 2026-12-05T22:30:00+01:00"
            ) from None
    if value.tzinfo is None:
        raise TimePlanError(f"{PLANNED_START_PARAM} {value.isoformat()} needs a time zone offset")
    if window is not None and not window.start <= value < window.end:
        raise TimePlanError(
            f"{PLANNED_START_PARAM} {value.isoformat()} is outside the window "
            f"{window.start.isoformat()} to {window.end.isoformat()}"
        )
    return value


def on_overrun(runbook: Runbook) -> OnOverrun:
    """What ``forecast_overrun`` does: the runbook's choice, else decide for CAB-approved changes."""
    if runbook.window is not None and runbook.window.on_overrun is not None:
        return runbook.window.on_overrun
    return "continue" if runbook.change.type == "standard" else "decide"


def overrun_role(runbook: Runbook) -> str | None:
    """Who decides on forecast_overrun: the release manager role, else the first sign-off role."""
    if RELEASE_MANAGER_ROLE in runbook.roles:
        return RELEASE_MANAGER_ROLE
    return runbook.gates[0].sign_off[0] if runbook.gates else None


# -- the forecast --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actual:
    """What happened to an activity so far. Present and without ``end``: it is running.

    ``start`` may be unknown for a running activity (a gate's meeting); it then
    counts as started when it was ready to.
    """

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Forecast:
    """The projected finish and the rollback numbers at one moment of a run."""

    at: datetime
    start: datetime  # T
    planned_finish: datetime
    finish: datetime  # the projected end of the forward work
    rollback_budget: timedelta  # what undoing the changes made so far takes by plan
    rollback_finish: datetime  # when a rollback decided now would end
    last_safe: datetime | None  # the latest rollback start that still ends inside the window
    window_end: datetime | None
    done: bool  # every activity has ended

    @property
    def late(self) -> timedelta:
        """How far the projected finish is behind the planned finish (negative: ahead)."""
        return self.finish - self.planned_finish

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for an XCom: times as ISO strings, durations in seconds."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, timedelta):
                out[key] = value.total_seconds()
            else:
                out[key] = value
        out["late"] = self.late.total_seconds()
        return out


def forecast(
    plan: TimePlan,
    start: datetime,
    actuals: Mapping[str, Actual],
    now: datetime,
    window_end: datetime | None = None,
) -> Forecast:
    """Project the run from ``now``: actual times so far, planned durations ahead.

    Every activity starts when everything it waits for has ended (and not
    before its clock time); one not started yet starts no earlier than now, and
    one running ends no earlier than now. So a forecast of an unfinished run
    never ends before now, and a run that keeps to plan is forecast to end as
    planned.

    A rollback decided now first waits for the steps still running (rollback
    never stops a step half-way), then runs the compensations of every step
    that has started, newest first, then the global steps.
    """
    origin = start + plan.begin
    ends: dict[str, datetime] = {}
    undo = ZERO
    wait_for = now
    done = True
    for activity in plan.activities:
        ready = max((ends[u] for u in activity.upstream), default=origin)
        if activity.not_before is not None:
            ready = max(ready, start + activity.not_before)
        got = actuals.get(activity.id)
        if got is None:
            done = False
            ends[activity.id] = max(ready, now) + activity.duration
            continue
        if activity.undo is not None:
            undo += activity.undo
        if got.end is not None:
            ends[activity.id] = got.end
            continue
        done = False
        began = got.start or min(ready, now)
        ends[activity.id] = max(began + activity.duration, now)
        if activity.kind == "step":
            wait_for = max(wait_for, ends[activity.id])
    finish = max(ends.values(), default=origin)
    budget = undo + plan.global_undo
    return Forecast(
        at=now,
        start=start,
        planned_finish=start + plan.finish,
        finish=finish,
        rollback_budget=budget,
        rollback_finish=wait_for + budget,
        last_safe=window_end - budget if window_end is not None else None,
        window_end=window_end,
        done=done,
    )


def _clock_time(value: datetime, like: datetime | None) -> str:
    return value.astimezone(like.tzinfo if like is not None else None).strftime("%H:%M:%S")


def overrun(fc: Forecast, margin: timedelta) -> list[str]:
    """Why this forecast raises ``forecast_overrun``, or [] when it does not.

    Two reasons: the forward work is forecast to end after the window, or the
    last safe moment to start a rollback is within ``margin`` while the forward
    work would still be running then. (A run forecast to finish before its last
    safe moment can always be rolled back afterwards, so that is no reason.)
    """
    if fc.done or fc.window_end is None:
        return []
    reasons = []
    end = fc.window_end
    if fc.finish > end:
        reasons.append(
            f"the work is forecast to end at {_clock_time(fc.finish, end)}, "
            f"{format_duration(fc.finish - end)} after the window ends at {_clock_time(end, end)}"
        )
    if fc.last_safe is not None and fc.finish > fc.last_safe and fc.at >= fc.last_safe - margin:
        left = fc.last_safe - fc.at
        when = f"in {format_duration(left)}" if left > ZERO else f"{format_duration(-left)} ago"
        reasons.append(
            f"the last safe moment to start a rollback is {_clock_time(fc.last_safe, end)} "
            f"({when}); undoing what is done takes {format_duration(fc.rollback_budget)} by plan"
        )
    return reasons


def forecast_lines(fc: Forecast) -> list[str]:
    """The numbers, as Markdown list lines for a request body or a log."""
    like = fc.window_end or fc.start
    late = fc.late
    behind = (
        f"{format_duration(late)} behind plan"
        if late > ZERO
        else ("on plan" if late == ZERO else f"{format_duration(-late)} ahead of plan")
    )
    lines = [
        f"- Planned start (T): {_clock_time(fc.start, like)}",
        f"- Planned finish: {_clock_time(fc.planned_finish, like)}",
        f"- Forecast finish: {_clock_time(fc.finish, like)} ({behind})",
    ]
    if fc.window_end is not None:
        lines.append(f"- Window ends: {_clock_time(fc.window_end, like)}")
    lines.append(
        f"- Rolling back what is done takes {format_duration(fc.rollback_budget)} by plan; "
        f"decided now it would end at {_clock_time(fc.rollback_finish, like)}"
    )
    if fc.last_safe is not None:
        lines.append(f"- Last safe moment to start a rollback: {_clock_time(fc.last_safe, like)}")
    return lines


def history(entries: Sequence[Mapping[str, Any] | None]) -> list[Mapping[str, Any]]:
    """Recorded forecasts (``Forecast.as_dict``) in the order they were made, gaps dropped."""
    return sorted((e for e in entries if e), key=lambda e: str(e.get("at", "")))


# -- validation ----------------------------------------------------------------------------------


def time_problems(runbook: Runbook, source: Source) -> list[Problem]:
    """Times that contradict each other, each pointing at the value to fix."""
    problems: list[Problem] = []
    if PLANNED_START_PARAM in runbook.params:
        problems.append(
            source.problem(
                ("params", PLANNED_START_PARAM),
                f"the param {PLANNED_START_PARAM!r} is reserved: gonogo adds it to set the "
                "planned start inside the window",
                key=True,
            )
        )
    gates = [(i, g) for i, g in enumerate(runbook.phases) if isinstance(g, Gate)]
    for i, gate in gates:
        if gate.timeout is not None and gate.decide_by is not None:
            problems.append(
                source.problem(
                    ("phases", i, "decide_by"),
                    "give timeout or decide_by, not both: decide_by with a duration is the timeout",
                )
            )
        if (
            gate.opens is not None
            and isinstance(gate.decide_by, At)
            and gate.decide_by.offset <= gate.opens.offset
        ):
            problems.append(
                source.problem(
                    ("phases", i, "decide_by"),
                    f"decide_by {gate.decide_by} is not after the gate opens ({gate.opens})",
                )
            )
    latest: tuple[int, Gate] | None = None
    for i, gate in gates:
        if gate.opens is None:
            continue
        if latest is not None and latest[1].opens is not None and latest[1].opens > gate.opens:
            problems.append(
                source.problem(
                    ("phases", latest[0], "opens"),
                    f"gate {latest[1].gate!r} opens at {latest[1].opens}, after the later gate "
                    f"{gate.gate!r} ({gate.opens}); gates open in runbook order",
                )
            )
        if latest is None or latest[1].opens is None or gate.opens > latest[1].opens:
            latest = (i, gate)
    if problems:
        return problems
    plan = time_plan(runbook)
    planned = plan.by_id()
    for i, gate in gates:
        if isinstance(gate.decide_by, At) and planned[gate.gate].start > gate.decide_by.offset:
            problems.append(
                source.problem(
                    ("phases", i, "decide_by"),
                    f"the gate is planned to open at {format_clock(planned[gate.gate].start)}, "
                    f"after the activities before it, but must be decided by {gate.decide_by}",
                )
            )
    window = runbook.window
    if window is not None and window.end > window.start:
        length = window.end - window.start
        if plan.finish > length:
            problems.append(
                source.problem(
                    ("window", "end"),
                    f"the plan does not fit in the window: it ends at {format_clock(plan.finish)} "
                    f"({_clock_time(window.start + plan.finish, window.end)}), after the window "
                    f"ends at {format_clock(length)} ({_clock_time(window.end, window.end)})",
                )
            )
        if on_overrun(runbook) == "decide" and overrun_role(runbook) is None:
            problems.append(
                source.problem(
                    ("window", "on_overrun") if window.on_overrun else ("window",),
                    "on_overrun: decide asks the release_manager role or the first sign-off "
                    "role, and there is neither; define a role or choose rollback or continue",
                )
            )
    return problems
