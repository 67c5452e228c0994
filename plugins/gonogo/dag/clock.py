"""Waiting for the clock: the run's planned begin, a gate's ``opens`` time and T itself.

Every wait is relative to the planned start T, which is known only when the run
starts (the window start, or the trigger's ``planned_start`` inside the
window; see :func:`gonogo.core.timing.timeplan.planned_start`). So each wait reads T
from the run when it executes, then defers on Airflow's DateTimeTrigger and
holds no worker slot while it waits, like the window wait always did. A time
already past does not defer at all: a deferral that resumes at once is exactly
what Airflow 3.3's resume race (see AIRFLOW.md) can fail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

from gonogo.core.naming import OPENS, PLANNED_START_PARAM, START_TASK
from gonogo.core.runbook.model import Gate, Phase, Runbook, Window
from gonogo.core.timing.clock import format_clock, format_duration
from gonogo.core.timing.timeplan import planned_start, time_plan

log = logging.getLogger(__name__)
#: The placeholder T of a runbook without a window, fixed so the serialized DAG is stable.
_NO_WINDOW = datetime(2000, 1, 1, tzinfo=UTC)


def run_start(context: Mapping[str, Any], window: Window | None, begin: timedelta) -> datetime:
    """T for this run (:func:`~gonogo.core.timing.timeplan.planned_start`), ``begin`` being the plan's.

    Every task computes the same T: the param and the run's start date are fixed
    for the run.
    """
    params = context.get("params") or {}
    value = params.get(PLANNED_START_PARAM) if hasattr(params, "get") else None
    dag_run = context.get("dag_run")
    started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return planned_start(window, value, started, begin)


class ClockWaitSensor(DateTimeSensorAsync):
    """Waits, deferred, until T + ``offset``; succeeds at once when that time has passed.

    ``begin`` is the plan's begin, which T is counted back from without a window.
    """

    def __init__(
        self, *, window: Window | None, begin: timedelta, offset: timedelta, **kwargs: Any
    ) -> None:
        # Only a placeholder: execute() reads T from the run. It must not change between
        # parses, or every parse would store a new DAG version.
        placeholder = (window.start if window is not None else _NO_WINDOW) + offset
        super().__init__(target_time=placeholder.isoformat(), **kwargs)
        self.window = window
        self.begin = begin
        self.offset = offset

    def execute(self, context: Any) -> Any:
        target = run_start(context, self.window, self.begin) + self.offset
        remaining = target - datetime.now(UTC)
        if remaining <= timedelta(0):
            log.info("%s (%s) has passed; going on", format_clock(self.offset), target.isoformat())
            return None
        log.info(
            "waiting until %s (%s), %s from now, without a worker slot",
            format_clock(self.offset),
            target.isoformat(),
            format_duration(remaining),
        )
        self.target_time = target.isoformat()
        return super().execute(context)


# -- where the waits go in a DAG -----------------------------------------------------------------


def planned_start_param(window: Window | None) -> Any:
    """The trigger-form field that sets T; empty means the window start (or the run's start)."""
    from airflow.sdk import Param

    where = (
        f"between {window.start.isoformat()} and {window.end.isoformat()}"
        if window is not None
        else "any time; empty means when the run starts"
    )
    return Param(
        "",
        type=["string", "null"],
        title="Planned start (T)",
        description=f"When the technical work is planned to start, {where}. Empty: the window start.",
    )


def hold_until_open(
    gate: Gate, runbook: Runbook, entries: list[Any], tasks: list[Any]
) -> list[Any]:
    """Put ``gate__<g>.opens`` in front of a gate with an ``opens`` time; returns the new entries.

    Call inside the gate's TaskGroup. The wait is forward work (in ``tasks``): if
    it cannot work out its time (a ``planned_start`` outside the window), the
    run stops there.
    """
    if gate.opens is None:
        return entries
    opener = ClockWaitSensor(
        task_id=OPENS,
        window=runbook.window,
        begin=time_plan(runbook).begin,
        offset=gate.opens.offset,
        doc_md=f"The gate opens at {gate.opens}: its requests are not sent before then.",
    )
    for entry in entries:
        opener >> entry
    tasks.append(opener)
    return [opener]


def first_held_phase(runbook: Runbook) -> str | None:
    """The first phase after a gate with an ``opens`` time: technical work from there waits for T."""
    clocked = False
    for item in runbook.phases:
        if isinstance(item, Gate):
            clocked = clocked or item.opens is not None
        elif clocked:
            return item.id
    return None


def hold_for_start(
    runbook: Runbook, phase: Phase, previous: list[Any], forward: list[Any]
) -> list[Any]:
    """Before the first phase after a clocked gate, ``wait_for_start`` holds the work until T."""
    if phase.id != first_held_phase(runbook):
        return previous
    wait = ClockWaitSensor(
        task_id=START_TASK,
        window=runbook.window,
        begin=time_plan(runbook).begin,
        offset=timedelta(0),
        doc_md="Technical work after the clocked gate does not start before the planned start T.",
    )
    for before in previous:
        before >> wait
    forward.append(wait)
    return [wait]
