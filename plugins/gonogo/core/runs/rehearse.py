"""The offline rehearsal: a run simulated by plan, with every command as it would run.

``gonogo rehearse`` answers an author's questions before the CAB meeting: when
does each activity happen against the window, and if this gate says NOGO or
that step fails, what is undone, in which order, and does the rollback end in
time? It uses the real arithmetic and the real planner: :func:`time_plan`
places the activities, and :func:`plan_from_states` orders the compensations
from the completion times the plan gives, as ``rollback.start`` does with the
times a run records. Nothing runs: each command is rendered with the params
the way Airflow would render it, and shown.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from gonogo.core import naming
from gonogo.core.runbook import templating
from gonogo.core.runbook.model import Activity, Gate, Runbook
from gonogo.core.runbook.rules import param_value_problem
from gonogo.core.runbook.shell import param_variable, shquote
from gonogo.core.runbook.source import did_you_mean
from gonogo.core.runs import states
from gonogo.core.runs.rollback import ForwardStep, plan_from_states
from gonogo.core.timing.clock import At, format_clock, format_duration
from gonogo.core.timing.timeplan import ZERO, Planned, TimePlan, planned_start, time_plan
from gonogo.errors import RehearsalError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

#: T when neither the window nor the caller gives one: only differences are shown then.
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Command:
    """One action as it would run with the rehearsal's params.

    ``text`` is what runs: for bash the text the shell parses (every value
    reaches it as an environment variable, listed in ``env``), for http the
    request line, for python the call, for manual the instruction. ``runs`` is
    the bash command with those values in place, as the shell effectively runs it.
    """

    label: str  # "step install_app", "undo install_app", "check go_nogo_2.db", …
    kind: str
    text: str
    env: dict[str, str] = field(default_factory=dict)
    runs: str | None = None
    body: str | None = None


@dataclass(frozen=True)
class Undo:
    """One rollback task by plan: a step's compensation, or a global rollback step."""

    id: str
    start: timedelta
    duration: timedelta
    global_step: bool = False

    @property
    def end(self) -> timedelta:
        return self.start + self.duration


@dataclass(frozen=True)
class Scenario:
    """What a NOGO at a gate, or a failed step, sets off by plan. Times are relative to T."""

    trigger: Literal["nogo", "fail"]
    target: str
    at: timedelta  # when the gate says NOGO or the step fails: its planned end
    reasons: list[str]
    completed: list[Planned]  # steps done by then, or still running (rollback waits for them)
    rollback_start: timedelta
    undo: list[Undo]  # compensations newest-finished-first, then the global steps
    not_undone: list[str]  # completed steps without a rollback

    @property
    def rollback_end(self) -> timedelta:
        return self.undo[-1].end if self.undo else self.rollback_start


@dataclass(frozen=True)
class Rehearsal:
    """A run of a runbook by plan, and what a NOGO or a failure would set off."""

    runbook: Runbook
    plan: TimePlan
    start: datetime | None  # T, when the window or the caller gives it
    params: dict[str, Any]
    commands: list[Command]
    scenario: Scenario | None = None

    @property
    def window_end(self) -> timedelta | None:
        """When the window ends, relative to T."""
        window = self.runbook.window
        return window.end - self.start if window is not None and self.start is not None else None


def rehearse(
    runbook: Runbook,
    params: Mapping[str, str] | None = None,
    *,
    nogo: str | None = None,
    fail: str | None = None,
    start: str | datetime | None = None,
) -> Rehearsal:
    """Simulate a run of ``runbook`` by plan; with ``nogo`` or ``fail``, what rollback would do.

    ``params`` are values as typed on a command line, read as each param's type.
    ``start`` is T; without it T is the window start, and without a window
    times are only relative to T. Raises :class:`RehearsalError` for an unknown
    param, gate or step, and :class:`~gonogo.errors.TimePlanError` for a start
    that cannot be read or lies outside the window.
    """
    if nogo is not None and fail is not None:
        raise RehearsalError("rehearse a NOGO at a gate or a failed step, not both")
    values = param_values(runbook, params or {})
    plan = time_plan(runbook)
    t = planned_start(runbook.window, start, _ORIGIN, plan.begin)
    scenario = None
    gates = [g.gate for g in runbook.gates]
    steps = [s.id for _, s in runbook.steps()]
    if nogo is not None:
        _known(nogo, "gate", gates, steps)
        scenario = _simulate(runbook, plan, "nogo", nogo, t)
    if fail is not None:
        _known(fail, "step", steps, gates)
        scenario = _simulate(runbook, plan, "fail", fail, t)
    known_t = start is not None or runbook.window is not None
    return Rehearsal(
        runbook, plan, t if known_t else None, values, commands(runbook, values), scenario
    )


def param_values(runbook: Runbook, given: Mapping[str, str]) -> dict[str, Any]:
    """The params a run would get: each default, or the given text read as the param's type."""
    values = {name: param.default for name, param in runbook.params.items()}
    declared = ", ".join(runbook.params) or "none"
    for name, text in given.items():
        param = runbook.params.get(name)
        if param is None:
            hint = did_you_mean(name, runbook.params)
            raise RehearsalError(f"unknown param {name!r}{hint} (its params: {declared})")
        value: Any = text
        if param.type != "string":
            with suppress(ValueError):  # text that is no JSON is refused just below
                value = json.loads(text)
        reason = param_value_problem(param, value)
        if reason is not None:
            raise RehearsalError(f"param {name}={text!r}: Airflow would refuse it: {reason}")
        values[name] = value
    return values


def _known(wanted: str, kind: str, known: list[str], others: list[str]) -> None:
    if wanted in known:
        return
    hint = did_you_mean(wanted, known)
    if wanted in others:
        hint = f"; {wanted!r} is a {'step' if kind == 'gate' else 'gate'}"
    listed = ", ".join(known) or "none"
    raise RehearsalError(f"no {kind} {wanted!r} in the runbook{hint} (its {kind}s: {listed})")


# -- the simulation ------------------------------------------------------------------------------


def _ancestors(plan: TimePlan) -> dict[str, set[str]]:
    """Everything each activity waits for, directly or not (the plan lists upstreams first)."""
    above: dict[str, set[str]] = {}
    for activity in plan.activities:
        above[activity.id] = set(activity.upstream).union(
            *(above.get(u, set()) for u in activity.upstream)
        )
    return above


def _simulate(
    runbook: Runbook, plan: TimePlan, trigger: Literal["nogo", "fail"], target: str, t: datetime
) -> Scenario:
    """The run by plan up to ``target``'s planned end, then the rollback the planner orders.

    Nothing that waits for the target runs. Every other step completes when it
    ends by then, or started before then: rollback waits for a running step, and
    no new step starts once something failed. (What the target waits for ended
    before it started.)
    """
    by_id = plan.by_id()
    at = by_id[target].end
    above = _ancestors(plan)

    def ran(a: Planned) -> bool:
        if a.kind != "step" or a.id == target or target in above[a.id]:
            return False
        return a.start < at or a.end <= at

    completed = [a for a in plan.activities if ran(a)]
    steps = [
        ForwardStep(s.id, naming.step_task(p.id, s.id), s.rollback is not None)
        for p, s in runbook.steps()
    ]
    task = {s.step_id: s.task_id for s in steps}
    failed = task[target] if trigger == "fail" else _nogo_task(runbook, target)
    task_states = {failed: states.FAILED, **{task[a.id]: states.SUCCESS for a in completed}}
    finished_at: dict[str, datetime | None] = {task[a.id]: t + a.end for a in completed}
    decided = plan_from_states(task_states, finished_at, list(task_states), steps)
    begin = max([at, *(a.end for a in completed)])
    undo: list[Undo] = []
    cursor = begin
    for step_id in decided["compensate"]:
        undo.append(Undo(step_id, cursor, by_id[step_id].undo or ZERO))
        cursor = undo[-1].end
    for global_step in runbook.rollback.steps:
        undo.append(Undo(global_step.id, cursor, global_step.planned or ZERO, global_step=True))
        cursor = undo[-1].end
    return Scenario(
        trigger,
        target,
        at,
        decided["reasons"],
        completed,
        begin,
        undo,
        decided["not_undone"],
    )


def _nogo_task(runbook: Runbook, gate_id: str) -> str:
    """The task that fails on a NOGO: the first sign-off role's final round."""
    gate = next(g for g in runbook.gates if g.gate == gate_id)
    rounds = naming.round_ids(gate.sign_off[0], gate.on_nogo == "reask")
    return naming.gate_task(gate.gate, rounds[-1])


# -- the commands --------------------------------------------------------------------------------


def commands(runbook: Runbook, params: Mapping[str, Any]) -> list[Command]:
    """Every action of the runbook rendered with ``params``, in runbook order."""
    found: list[Command] = []
    for item in runbook.phases:
        if isinstance(item, Gate):
            found += [command(f"check {item.gate}.{c.id}", c, params) for c in item.checks]
            continue
        for step in item.steps:
            found.append(command(f"step {step.id}", step, params))
            if step.rehearse is not None:
                found.append(command(f"rehearse {step.id}", step.rehearse, params))
            if step.rollback is not None:
                found.append(command(f"undo {step.id}", step.rollback, params))
    found += [command(f"rollback {g.id}", g, params) for g in runbook.rollback.steps]
    return found


def command(label: str, action: Activity, params: Mapping[str, Any]) -> Command:
    """One action as Airflow would run it with ``params``."""
    if action.bash is not None:
        return _bash(label, action.bash, action.env, params)
    if action.exec is not None:
        argv = [_render(templating.with_filter(a, None), params) for a in action.exec]
        written, runs = shlex.join(action.exec), shlex.join(argv)
        return Command(label, "exec", written, runs=runs if runs != written else None)
    if action.http is not None:
        http = action.http
        url = _render(templating.url(http.url), params)
        body = None if http.body is None else _render(templating.json_body(http.body), params)
        return Command(label, "http", f"{http.method} {url}", body=body)
    if action.python is not None:
        kwargs = ", ".join(f"{k}={_rendered(v, params)!r}" for k, v in action.python.kwargs.items())
        return Command(label, "python", f"{action.python.callable}({kwargs})")
    return Command(label, "manual", action.manual or "")


def _bash(label: str, bash: str, extra: Mapping[str, str], params: Mapping[str, Any]) -> Command:
    """The shell text, the environment values it reads, and the command they make together."""
    shell = bash.strip()  # a valid runbook's shell text has no template: it runs as written
    env = {param_variable(n): "" if v is None else str(v) for n, v in params.items()}
    env.update({k: _render(v, params) for k, v in extra.items()})
    used = {
        k: v for k, v in env.items() if k in extra or re.search(rf"\$\{{?{re.escape(k)}\b", shell)
    }
    runs = shell
    for name, value in used.items():
        if not templating.templates(value):  # a value only a run knows stays a variable
            runs = runs.replace(f'"${name}"', shquote(value))
    return Command(label, "bash", shell, used, runs if runs != shell else None)


@cache
def _jinja() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(undefined=StrictUndefined)
    environment.filters["shquote"] = shquote
    return environment


def _render(text: str, params: Mapping[str, Any]) -> str:
    """``text`` rendered as Airflow would with these params; as written when it needs more.

    Only params are known offline: a template naming ``run_id``, a connection
    or anything else a run supplies stays as written, so no secret is looked up.
    """
    from jinja2 import TemplateError

    try:
        return _jinja().from_string(text).render(params=params)
    except TemplateError:
        return text


def _rendered(value: Any, params: Mapping[str, Any]) -> Any:
    """Every string inside ``value`` rendered, as Airflow renders a python step's kwargs."""
    if isinstance(value, str):
        return _render(value, params)
    if isinstance(value, dict):
        return {k: _rendered(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(v, params) for v in value]
    return value


# -- the text --------------------------------------------------------------------------------------


def rehearsal_text(rehearsal: Rehearsal) -> str:
    """The rehearsal as plain text: the timeline, the scenario, and every command."""
    r = rehearsal
    runbook = r.runbook
    lines = [f"Rehearsal of {runbook.runbook}: {runbook.title}"]
    if r.start is None:
        lines.append("T: not set; times are relative to T (give --start, or the runbook a window)")
    else:
        lines.append(f"T: {r.start.isoformat()}")
    if runbook.window is not None:
        window = runbook.window
        lines.append(f"Window: {window.start.isoformat()} to {window.end.isoformat()}")
    lines += ["", "Timeline (planned):", *_table([_row(r, a) for a in r.plan.activities])]
    lines.append(f"Planned finish: {_when(r, r.plan.finish)}; {_fits(r, r.plan.finish)}.")
    if r.scenario is not None:
        lines += ["", *_scenario_lines(r, r.scenario)]
    shown = ", ".join(f"{k}={shquote(v)}" for k, v in r.params.items()) or "none"
    lines += ["", f"Commands, rendered with params {shown}:"]
    for c in r.commands:
        lines += _command_lines(c)
    return "\n".join(lines) + "\n"


def _when(r: Rehearsal, offset: timedelta) -> str:
    at = format_clock(offset)
    return at if r.start is None else f"{at} ({r.start + offset:%a %H:%M})"


def _span(r: Rehearsal, start: timedelta, end: timedelta) -> tuple[str, ...]:
    """From and to relative to T, and the clock times when T is known."""
    if r.start is None:
        return format_clock(start), format_clock(end)
    first, last = r.start + start, r.start + end
    to = f"{last:%H:%M}" if last.date() == first.date() else f"{last:%a %H:%M}"
    return format_clock(start), format_clock(end), f"{first:%a %H:%M}-{to}"


def _fits(r: Rehearsal, end: timedelta) -> str:
    if r.window_end is None:
        return "the runbook has no window"
    spare = r.window_end - end
    if spare >= ZERO:
        return f"inside the window, {format_duration(spare)} to spare"
    return f"{format_duration(-spare)} AFTER the window ends"


def _row(r: Rehearsal, a: Planned) -> tuple[str, ...]:
    if a.kind == "step":
        undo = f"undo {format_duration(a.undo)}" if a.undo is not None else ""
        what = f"step {a.phase}.{a.id}"
        return (*_span(r, a.start, a.end), what, format_duration(a.duration), undo)
    gate = next(g for g in r.runbook.gates if g.gate == a.id)
    notes = [f"sign-off: {', '.join(gate.sign_off)}"]
    if a.not_before is not None:
        notes.append(f"opens {format_clock(a.not_before)}")
    wait = gate.decide_by or gate.timeout
    if wait is not None:
        by = wait.offset if isinstance(wait, At) else a.start + wait
        notes.append(f"no answer by {format_clock(by)} is NOGO")
    return (*_span(r, a.start, a.end), f"gate {a.id}", "", "; ".join(notes))


def _scenario_lines(r: Rehearsal, s: Scenario) -> list[str]:
    if s.trigger == "nogo":
        head = f"If gate {s.target} says NOGO (decided by plan at {_when(r, s.at)}):"
    else:
        head = f"If step {s.target} fails (at its planned end, {_when(r, s.at)}):"
    lines = [head, f"  Rollback starts because: {'; '.join(s.reasons)}"]
    lines.append("  Completed by then (by plan), with when each ended:")
    done = []
    for a in s.completed:
        notes = ["still running: rollback waits for it"] if a.end > s.at else []
        notes += ["not undone: no rollback defined"] if a.id in s.not_undone else []
        done.append((_when(r, a.end), a.id, "; ".join(notes)))
    lines += _table(done, indent=4) if done else ["    nothing"]
    policy = r.runbook.rollback
    lines.append(
        f"  Rollback ({policy.mode}), newest finished first, from {_when(r, s.rollback_start)}:"
    )
    if policy.mode == "decide" or policy.approve:
        lines.append("    (the time to decide on or approve the rollback is not counted)")
    rows = [
        (
            f"{n}.",
            *_span(r, u.start, u.end),
            f"{u.id} (global rollback step)" if u.global_step else f"undo {u.id}",
            format_duration(u.duration),
        )
        for n, u in enumerate(s.undo, start=1)
    ]
    lines += _table(rows, indent=4) if rows else ["    nothing to run"]
    if s.not_undone:
        lines.append(f"  Not undone (no rollback defined): {', '.join(s.not_undone)}")
    lines.append(f"  Rollback ends {_when(r, s.rollback_end)}; {_fits(r, s.rollback_end)}.")
    return lines


def _command_lines(c: Command) -> list[str]:
    lines = [f"  {c.label} ({c.kind})", *_indented(c.text, "      ")]
    lines += [f"      env  {k}={shquote(v)}" for k, v in c.env.items()]
    if c.runs is not None:
        lines += _indented(c.runs, "      runs ")
    if c.body is not None:
        lines += _indented(c.body, "      body ")
    return lines


def _indented(text: str, first: str) -> list[str]:
    rest = " " * len(first)
    return [(first if n == 0 else rest) + line for n, line in enumerate(text.splitlines() or [""])]


def _table(rows: Sequence[tuple[str, ...]], indent: int = 2) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    pad = " " * indent
    return [
        pad + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
