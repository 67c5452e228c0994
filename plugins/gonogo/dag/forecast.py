"""The forecast task: the projected finish after every activity, and ``forecast_overrun``.

One task, ``forecast``, runs beside the forward work from the moment the lock
is held. It wakes every few seconds, deferred in between (no worker slot),
reads the run's task states (one call), and computes the forecast with
:func:`gonogo.core.timing.timeplan.forecast`. Each time an activity has ended it
appends the forecast to its ``forecast`` XCom, the history the board and the
report read. A deferral keeps the task's XComs and carries what it has seen
in its resume arguments, so nothing is re-read.

When :func:`gonogo.core.timing.timeplan.overrun` gives a reason, the task emits the
``forecast_overrun`` event and acts on ``window.on_overrun``:

- ``continue``: it warns and ends.
- ``rollback``: it fails, so rollback starts the way it does after a failed step.
- ``decide``: it becomes a HITL request to the release manager role with the
  numbers in the body: **Continue** (the comment, the agreed extension, is
  required; the API server refuses a blank one) or **Roll back now** (the
  task fails, so rollback starts). No answer by the last safe moment rolls back.

It is one of the forward tasks, so its failure is the signal rollback starts
from; forward work still running is finished first, as after any failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.core import naming
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.core.runs import states
from gonogo.core.runs.gates import literal
from gonogo.core.timing.timeplan import (
    Actual,
    forecast,
    forecast_lines,
    on_overrun,
    overrun,
    overrun_role,
    time_plan,
)
from gonogo.dag.clock import run_start
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.states import run_states

log = logging.getLogger(__name__)

#: How often the forecast is recomputed: a 60th of the window, within these bounds.
FASTEST = timedelta(seconds=5)
SLOWEST = timedelta(seconds=15)
#: A decision on forecast_overrun waits at least this long, however close the last safe moment.
DECIDE_AT_LEAST = timedelta(minutes=2)
#: Task states in which an activity has ended, whatever the outcome.
_ENDED = states.ENDED | states.FAILED_STATES


def activity_tasks(runbook: Runbook) -> dict[str, tuple[str, ...]]:
    """The task ids of each activity: a step's task, a gate's requests (every round)."""
    tasks: dict[str, tuple[str, ...]] = {}
    for item in runbook.phases:
        if isinstance(item, Gate):
            reask = item.on_nogo == "reask"
            tasks[item.gate] = tuple(
                naming.gate_task(item.gate, part)
                for role in item.sign_off
                for part in naming.round_ids(role, reask)
            )
        else:
            for step in item.steps:
                tasks[step.id] = (naming.step_task(item.id, step.id),)
    return tasks


class ForecastOperator(Request):
    """Recomputes the forecast as the run goes; on forecast_overrun, acts per ``on_overrun``."""

    def __init__(self, *, runbook: Runbook, **kwargs: Any) -> None:
        assert runbook.window is not None, "the forecast needs a window to forecast against"
        role = overrun_role(runbook)
        users = list(runbook.roles[role].users) if role else []
        super().__init__(
            subject=literal(f"Running late: {runbook.title}"),  # shown as written, never rendered
            options=[naming.CONTINUE, naming.ROLL_BACK_NOW],
            assigned_users=assignees(users),
            retry_delay=timedelta(seconds=1),
            **self._request(
                # A retry (after Airflow's resume race) starts over and reads everything again.
                {"retries": 3, **kwargs},
                "Continue: the agreed extension and who agreed it. Roll back now: why",
                [naming.CONTINUE],
            ),
        )
        self.window = runbook.window
        self.plan = time_plan(runbook)
        self.mode = on_overrun(runbook)
        self.role = role
        self.margin = runbook.window.margin
        self.activities = activity_tasks(runbook)
        self.kinds = {a.id: a.kind for a in self.plan.activities}
        length = runbook.window.end - runbook.window.start
        self.interval = min(SLOWEST, max(FASTEST, length / 60))

    # -- watching --------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        return self._look(context, {}, [])

    def wake(
        self,
        context: Any,
        event: Any = None,
        ended: Mapping[str, str] | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
    ) -> Any:
        return self._look(context, dict(ended or {}), list(history or []))

    def _ended_at(self, context: Any, activity: str, task_ids: Sequence[str]) -> datetime:
        """When a step ended (its own record), or now for a gate (seen within one interval)."""
        if self.kinds.get(activity) == "step":
            found = context["ti"].xcom_pull(task_ids=task_ids[0], key=naming.XCOM_FINISHED_AT)
            if found:
                return datetime.fromisoformat(found)
        return datetime.now(UTC)

    def _actuals(
        self, context: Any, task_states: Mapping[str, str], ended: dict[str, str]
    ) -> dict[str, Actual]:
        actuals: dict[str, Actual] = {}
        for activity, task_ids in self.activities.items():
            found = [task_states.get(t) for t in task_ids]
            if activity in ended:
                actuals[activity] = Actual(end=datetime.fromisoformat(ended[activity]))
            elif any(s in states.IN_FLIGHT or s in states.OPEN for s in found):
                actuals[activity] = Actual()  # running; it began when it was ready to
            elif found and found[0] in _ENDED:
                at = self._ended_at(context, activity, task_ids)
                ended[activity] = at.isoformat()
                actuals[activity] = Actual(end=at)
        return actuals

    def _look(self, context: Any, ended: dict[str, str], history: list[Mapping[str, Any]]) -> Any:
        task_states = run_states(context)
        failed = [
            t
            for t, s in task_states.items()
            if s == states.FAILED
            and t != self.task_id
            and not naming.is_rollback_task(t)
            and not t.endswith(f".{naming.WATCH}")
        ]
        if failed:
            raise AirflowSkipException(f"{', '.join(failed)} failed; rollback takes over")
        seen = len(ended)
        actuals = self._actuals(context, task_states, ended)
        now = datetime.now(UTC)
        start = run_start(context, self.window, self.plan.begin)
        fc = forecast(self.plan, start, actuals, now, self.window.end)
        if len(ended) > seen or not history:
            history.append(fc.as_dict())
            context["ti"].xcom_push(key=naming.XCOM_FORECAST, value=history)
            log.info("forecast: %s", "; ".join(line[2:] for line in forecast_lines(fc)))
        if fc.done:
            log.info("every activity has ended; the forecast is done")
            return {"forecast": fc.as_dict()}
        reasons = overrun(fc, self.margin)
        if reasons:
            return self._overrun(context, fc, reasons)
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.defer(
            trigger=DateTimeTrigger(moment=now + self.interval),
            method_name="wake",
            kwargs={"ended": ended, "history": history},
        )

    # -- forecast_overrun ------------------------------------------------------------------

    def _overrun(self, context: Any, fc: Any, reasons: list[str]) -> Any:
        event = {
            "event": naming.FORECAST_OVERRUN,
            "reasons": reasons,
            "on_overrun": self.mode,
            "forecast": fc.as_dict(),
            "at": fc.at.isoformat(),
        }
        context["ti"].xcom_push(key=naming.XCOM_EVENTS, value=[event])
        log.warning(
            "%s: %s (on_overrun: %s)", naming.FORECAST_OVERRUN, "; ".join(reasons), self.mode
        )
        if self.mode == "continue":
            return {"forecast": fc.as_dict(), "overrun": reasons, "decision": "continue (warned)"}
        if self.mode == "rollback":
            raise AirflowFailException(
                f"{naming.FORECAST_OVERRUN}: {'; '.join(reasons)}; on_overrun is rollback"
            )
        self.body = "\n".join(
            [
                "**The change is running late.**",
                "",
                *(f"- {r[0].upper()}{r[1:]}." for r in reasons),
                "",
                *forecast_lines(fc),
                "",
                f"**{naming.CONTINUE}** (say in the comment what extension was agreed, and "
                f"with whom) or **{naming.ROLL_BACK_NOW}** (steps still running finish first, "
                "then everything done is undone, newest first).",
                "No answer by the last safe moment rolls back.",
            ]
        )
        left = (fc.last_safe - fc.at) if fc.last_safe is not None else DECIDE_AT_LEAST
        self.response_timeout = max(left, DECIDE_AT_LEAST)
        log.info("asking role %s to continue or roll back now", self.role)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowFailException(
                f"{naming.FORECAST_OVERRUN}: no decision by the last safe moment; rolling back"
            )
        if given.option == naming.ROLL_BACK_NOW:
            raise AirflowFailException(
                f"{naming.FORECAST_OVERRUN}: {given.by} decided to roll back now"
                + (f": {given.comment}" if given.comment else "")
            )
        log.info("%s decided to continue past the forecast: %s", given.by, given.comment)
        return {"decision": given.option, "by": given.by, "comment": given.comment}


def forecast_task(runbook: Runbook) -> ForecastOperator | None:
    """The forecast task, for a runbook with a window to forecast against; else None."""
    if runbook.window is None:
        return None
    return ForecastOperator(
        task_id=naming.FORECAST_TASK,
        runbook=runbook,
        doc_md="Recomputes the forecast after every activity; raises forecast_overrun.",
    )
