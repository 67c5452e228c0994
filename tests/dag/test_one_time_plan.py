"""Every view of a plan in time gives the same times (issue 22): one TimePlan behind them all.

For generated runbooks (a window or none, gates that open before or after T,
planned gate meetings, parallel steps), four views are read back as minutes
from T for every step and gate, and must agree to the minute:

- the outline (``gonogo plan`` and the DAG's doc), as printed;
- the kjøreplan's JSON (the Kjøreplan tab, the approval request, ``--format json``);
- the rehearsal's timeline, as printed;
- the DAG itself: a run triggered long before the window, each task starting
  when its upstream tasks have taken their planned time and each clock wait
  has passed, with T worked out the way the DAG's own waits work it out.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import RUNBOOKS
from tests.timed_runbooks import timed_runbook

from gonogo.core import naming
from gonogo.core.documents.kjoreplan import plan_data
from gonogo.core.documents.outline import render_outline
from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.core.runs.rehearse import rehearsal_text, rehearse
from gonogo.core.timing.clock import parse_clock

Times = dict[str, tuple[float, float | None]]  # activity id -> (start, end or None), minutes from T


def _minutes(value: timedelta) -> float:
    return value.total_seconds() / 60


def _from_t(runbook: Runbook, text: str) -> float:
    """A planned time as a document writes it (ISO from the window start, else T-relative)."""
    if runbook.window is None:
        return _minutes(parse_clock(text).offset)
    return _minutes(datetime.fromisoformat(text) - runbook.window.start)


def _outline_times(runbook: Runbook) -> Times:
    """The outline's times: ``HH:MM`` from the window start, else ``T-30m``; starts only."""
    text = render_outline(runbook)
    found: Times = {}
    for at, item in re.findall(r"^### \d+\. GO/NOGO gate `([^`]+)`: .* \(([^()]+)\)$", text, re.M):
        found[at] = (_outline_clock(runbook, item), None)
    for at, item in re.findall(r"^\| \d+\.\d+ \| ([^|]+) \| .*?\(`([^`]+)`\) \|", text, re.M):
        found[item] = (_outline_clock(runbook, at.strip()), None)
    return found


def _outline_clock(runbook: Runbook, text: str) -> float:
    if runbook.window is None:
        return _minutes(parse_clock(text).offset)
    start = runbook.window.start
    hours, minutes = (int(part) for part in text.split(":"))
    shown = (hours * 60 + minutes) - (start.hour * 60 + start.minute)
    return (shown + 6 * 60) % (24 * 60) - 6 * 60  # plans here span -1h..+10h around T


def _kjoreplan_times(runbook: Runbook) -> Times:
    found: Times = {}
    for item in plan_data(runbook)["items"]:
        entries = [item] if item["kind"] == "gate" else item["steps"]
        for entry in entries:
            found[entry["id"]] = (
                _from_t(runbook, entry["planned_start"]),
                _from_t(runbook, entry["planned_end"]),
            )
    return found


def _rehearsal_times(runbook: Runbook) -> Times:
    """The printed timeline: ``T-30m  T-20m  [clock]  step p.s`` or ``gate g``, as T-relative."""
    found: Times = {}
    text = rehearsal_text(rehearse(runbook))
    timeline = text.split("Timeline (planned):\n", 1)[1].split("Planned finish:", 1)[0]
    for line in timeline.splitlines():
        words = line.split()
        kind = words.index("step") if "step" in words else words.index("gate")
        item = words[kind + 1].rpartition(".")[2]
        found[item] = (
            _minutes(parse_clock(words[0]).offset),
            _minutes(parse_clock(words[1]).offset),
        )
    return found


def _dag_times(runbook: Runbook) -> Times:
    """When each step and gate would start and end in a run of the DAG that keeps to plan."""
    from gonogo.dag.builder import build_dags
    from gonogo.dag.clock import ClockWaitSensor, run_start

    dag = next(d for d in build_dags(runbook, RUNBOOKS) if d.dag_id == runbook.runbook)
    started = datetime.fromisoformat("2020-01-01T00:00:00+00:00")  # long before any window
    context: dict[str, Any] = {"params": {}, "dag_run": SimpleNamespace(start_date=started)}
    steps = {naming.step_task(p.id, s.id): s for p, s in runbook.steps()}
    gates = {g.gate: g for g in runbook.phases if isinstance(g, Gate)}
    t = started
    begins: dict[str, datetime] = {}
    ends: dict[str, datetime] = {}
    for task in dag.topological_sort():
        begin = max((ends[u] for u in task.upstream_task_ids), default=started)
        if isinstance(task, ClockWaitSensor):
            t = run_start(context, task.window, task.begin)
            begin = max(begin, t + task.offset)
        took = timedelta(0)
        if task.task_id in steps:
            took = steps[task.task_id].planned or timedelta(0)
        gate = naming.parse_gate_task(task.task_id)
        if gate is not None and gate.role:
            took = gates[gate.gate].planned or timedelta(0)
        begins[task.task_id], ends[task.task_id] = begin, begin + took
    found: Times = {}
    for task_id, step in steps.items():
        found[step.id] = (_minutes(begins[task_id] - t), _minutes(ends[task_id] - t))
    for gate_id, gate in gates.items():
        asked = [naming.gate_task(gate_id, role) for role in gate.sign_off]
        found[gate_id] = (
            _minutes(min(begins[a] for a in asked) - t),
            _minutes(max(ends[a] for a in asked) - t),
        )
    return found


def _agree(views: dict[str, Times]) -> None:
    first_name, first = next(iter(views.items()))
    for name, times in views.items():
        assert times.keys() == first.keys(), f"{name} and {first_name} plan other activities"
        for item, (start, end) in times.items():
            assert round(start) == round(first[item][0]), (item, name, start, first_name, first)
            if end is not None and first[item][1] is not None:
                assert round(end) == round(first[item][1]), (item, name, end, first_name, first)


def _all_views(runbook: Runbook) -> dict[str, Times]:
    return {
        "kjøreplan": _kjoreplan_times(runbook),
        "outline": _outline_times(runbook),
        "rehearsal": _rehearsal_times(runbook),
        "dag": _dag_times(runbook),
    }


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_outline_kjoreplan_rehearsal_and_dag_plan_the_same_times(rng: random.Random) -> None:
    runbook = load_text(timed_runbook(rng), "timed.yaml")[0]
    _agree(_all_views(runbook))


ISSUE_EXAMPLE = """\
runbook: issue-22
title: A step, a gate on the clock with a planned meeting, the install
service: svc
environment: prod
change: {id: CHG1, type: normal}
window: {start: "2027-01-12T22:00:00+01:00", end: "2027-01-13T02:00:00+01:00"}
roles:
  release_manager: {users: [relman]}
phases:
  - id: prep
    steps:
      - {id: prepare, planned: 10m, bash: "echo prepared"}
  - gate: go
    sign_off: [release_manager]
    opens: T-30m
    planned: 20m
  - id: install
    steps:
      - {id: install_app, planned: 30m, bash: "echo installed", rollback: {bash: "echo undone"}}
"""


def test_the_issue_s_example_is_planned_alike_everywhere() -> None:
    """The step at 21:30, the gate 21:40-22:00, the install at T (22:00), in every view."""
    views = _all_views(load_text(ISSUE_EXAMPLE, "issue.yaml")[0])
    _agree(views)
    assert views["kjøreplan"] == {
        "prepare": (-30, -20),
        "go": (-20, 0),
        "install_app": (0, 30),
    }
