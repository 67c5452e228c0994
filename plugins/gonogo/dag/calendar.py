"""The change calendar at trigger time: freezes and maintenance windows over the run's real times.

``before_start`` reads the calendar (``GONOGO_CALENDAR``, else ``calendar.yaml``
in the runbooks folder) when the run starts, and applies the rules of
:mod:`gonogo.core.calendar.rules` from the planned begin to the planned finish
around the run's T (the trigger's ``planned_start``, else the window start,
else now):

- a run in a freeze is refused, with the freeze's reason;
- a run outside a maintenance window that says ``outside: error`` is refused;
  outside a lenient one it is a warning in the log and the record;
- an emergency change in a freeze goes on only if the freeze names who may
  grant an exception. Its DAG has the gate ``gate__freeze_exception.grant``
  after the window wait: when the calendar asked for an exception, it asks the
  members of those roles (minus the person who started the run) GO or NOGO,
  like any gate; otherwise it passes without asking. Every forward task then
  checks the recorded answer, as it checks the runbook's own gates.

A calendar that cannot be read refuses the run: no freeze could be checked.
Neither can ITSM schedules the calendar names (``itsm:``) that do not answer.
A rehearsal changes nothing, so the calendar does not hold it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from gonogo.core import naming
from gonogo.core.calendar.model import Calendar, load_calendar
from gonogo.core.calendar.rules import Change, at_trigger
from gonogo.core.calendar.times import Interval, span_text
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.core.runs.gates import eligible, gate_verdict, literal
from gonogo.core.settings import calendar_file
from gonogo.core.timing.timeplan import time_plan
from gonogo.dag.clock import run_start
from gonogo.dag.gates import GateRoleOperator
from gonogo.dag.hooks import Hook, hooked
from gonogo.dag.states import is_rehearsal, run_trigger
from gonogo.errors import CalendarError, ItsmError, TimePlanError

log = logging.getLogger(__name__)


def installation_calendar(path: Path) -> tuple[Calendar, list[str]]:
    """The calendar file, with the ITSM's schedules when it names them; and what was left out.

    Raises:
        CalendarError: the file has problems.
        ItsmError: the ITSM did not answer, or refused.
    """
    import importlib

    from gonogo.core.calendar.schedules import ScheduleSource, with_schedules
    from gonogo.dag.itsm import KINDS

    calendar = load_calendar(path)
    if calendar.itsm is None:
        return calendar, []
    module = importlib.import_module(KINDS[calendar.itsm.kind])
    source: ScheduleSource = module.from_connection(calendar.itsm.connection)
    return with_schedules(calendar, source.schedules())


def needs_freeze_gate(runbook: Runbook) -> bool:
    """Only an emergency change may run in a freeze, so only its DAG has the exception gate."""
    return runbook.change.type == "emergency"


def run_interval(runbook: Runbook, start: datetime) -> Interval:
    """From the planned begin to the planned finish around T (an instant when nothing is planned)."""
    plan = time_plan(runbook)
    return Interval(start + plan.begin, start + max(plan.finish, plan.begin))


def calendar_check(runbook: Runbook, runbooks_dir: Path) -> Callable[[Any], dict[str, Any]]:
    """The preflight's part: the calendar's verdict on this run, recorded; a refusal raises."""

    def check(context: Any) -> dict[str, Any]:
        found = _verdict(runbook, runbooks_dir, context)
        context["ti"].xcom_push(key=naming.XCOM_CALENDAR, value=found)
        return {"calendar": found}

    return check


def _verdict(runbook: Runbook, runbooks_dir: Path, context: Any) -> dict[str, Any]:
    path = calendar_file(runbooks_dir)
    if path is None:
        return {"file": None, "exception": None}
    if is_rehearsal(context):
        log.info("a rehearsal changes nothing: the calendar %s does not hold it back", path)
        return {"file": str(path), "exception": None, "rehearsal": True}
    try:
        calendar, skipped = installation_calendar(path)
    except CalendarError as exc:
        first = "; ".join(str(p) for p in exc.problems[:3])
        raise AirflowFailException(
            f"not started: the calendar {path} cannot be read, so no freeze can be checked: "
            f"{first}; fix it (gonogo validate shows every problem)"
        ) from None
    except ItsmError as exc:
        raise AirflowFailException(
            f"not started: the calendar's ITSM schedules cannot be read, so no freeze can be "
            f"checked: {exc}"
        ) from None
    for note in skipped:
        log.warning("calendar: %s", note)
    try:
        start = run_start(context, runbook.window, time_plan(runbook).begin)
    except TimePlanError as exc:
        # The window wait refuses such a run with these words; nothing starts before it.
        log.warning("the calendar is checked once T is known: %s", exc)
        return {"file": str(path), "exception": None, "unchecked": str(exc)}
    when = run_interval(runbook, start)
    change = Change(
        runbook=runbook.runbook,
        title=runbook.title,
        service=runbook.service,
        environment=runbook.environment,
        type=runbook.change.type,
        change_id=runbook.change.id,
        window=when,
        roles=frozenset(runbook.roles),
    )
    verdict = at_trigger(calendar, change, when)
    for warning in verdict.warnings:
        log.warning("calendar: %s", warning)
    if verdict.refusal is not None:
        raise AirflowFailException(f"not started: {verdict.refusal}")
    record: dict[str, Any] = {
        "file": str(path),
        "from": when.start.isoformat(),
        "to": when.end.isoformat(),
        "warnings": list(verdict.warnings),
        "exception": None,
    }
    if verdict.grant:
        users = sorted({u for role in verdict.grant for u in runbook.roles[role].users})
        trigger_id, trigger_name = run_trigger(context)
        if not eligible(users, trigger_id, trigger_name):
            raise AirflowFailException(
                f"not started: the freeze {verdict.freeze} needs an exception granted by "
                f"{' or '.join(verdict.grant)}, and its only member, {trigger_name}, started this "
                "run and may not grant it (four-eyes rule); ask another person to start it"
            )
        record["exception"] = {
            "freeze": verdict.freeze,
            "roles": list(verdict.grant),
            "users": users,
            "timeout": verdict.timeout.total_seconds() if verdict.timeout else None,
            "during": span_text(when, calendar.timezone),
        }
        log.info(
            "calendar: an emergency change in the freeze %s; %s must grant the exception",
            verdict.freeze,
            " or ".join(verdict.grant),
        )
    else:
        log.info("calendar %s: %s is clear", path, span_text(when, calendar.timezone))
    return record


def _exception_needed(context: Any) -> dict[str, Any] | None:
    """What before_start recorded: the exception to ask for, or None. Raises when nothing was."""
    recorded = context["ti"].xcom_pull(task_ids=naming.PREFLIGHT_TASK, key=naming.XCOM_CALENDAR)
    if not isinstance(recorded, dict):
        raise AirflowFailException(
            "not started: before_start recorded no verdict of the change calendar"
        )
    needed = recorded.get("exception")
    return needed if isinstance(needed, dict) else None


class FreezeExceptionOperator(GateRoleOperator):
    """Asks for the exception an emergency change in a freeze needs; passes at once otherwise.

    The roles and their members come from before_start's record, made from the
    calendar when the run started; the answer is recorded like any gate's.
    """

    def __init__(self, *, runbook_title: str, change_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runbook_title = runbook_title
        self.change_id = change_id

    def execute(self, context: Any) -> Any:
        needed = _exception_needed(context)
        if needed is None:
            log.info("the run is in no freeze: no exception needed")
            return {"gate": self.gate_id, "needed": False}
        self.users = list(needed["users"])
        self.gate_timeout = timedelta(seconds=needed["timeout"]) if needed.get("timeout") else None
        roles = " or ".join(needed["roles"])
        # Set when it runs, after Airflow rendered the templates: plain text, nothing to render.
        started_by = getattr(context.get("dag_run"), "triggering_user_name", None) or "nobody known"
        self.subject = f"Freeze exception: {self.runbook_title} ({roles})"
        self.body = "\n".join(
            [
                f"**Freeze exception for {self.runbook_title}**",
                "",
                f"- The emergency change {self.change_id} is planned for {needed['during']}, "
                f"in the freeze {needed['freeze']}.",
                "- GO grants the exception: the change may run in the freeze. NOGO stops it "
                f"before any step. One member of {roles} answers.",
                f"- Run: `{context['run_id']}`, started by {started_by}, who may not answer.",
                "",
                "A NOGO needs a comment that says why.",
            ]
        )
        return super().execute(context)


def freeze_gate(runbook: Runbook, guard: Hook) -> tuple[BaseOperator, list[BaseOperator]]:
    """``gate__freeze_exception.grant``: the task, and the list of forward tasks it adds."""
    gate = Gate(gate=naming.FREEZE_GATE, title="Freeze exception", sign_off=[naming.FREEZE_ROLE])
    everyone = sorted({u for role in runbook.roles.values() for u in role.users})
    with TaskGroup(group_id=naming.gate_group(naming.FREEZE_GATE), tooltip="Freeze exception"):
        task = FreezeExceptionOperator(
            task_id=naming.FREEZE_ROLE,
            gate=gate,
            role=naming.FREEZE_ROLE,
            users=everyone,  # replaced when it runs by the freeze's roles, from before_start
            round_no=0,
            evidence_steps=[],
            subject=literal(f"Freeze exception: {runbook.title}"),
            body="",
            window=runbook.window,
            begin=time_plan(runbook).begin,
            runbook_title=runbook.title,
            change_id=runbook.change.id,
            doc_md="An emergency change in a freeze: one member of the freeze's exception "
            "roles grants the exception (GO) before any step. Passes at once outside a freeze.",
        )
    return hooked(task, guard), [task]


def freeze_granted() -> Hook:
    """A pre_execute hook for forward work: an exception the calendar asked for was granted."""

    def hook(context: Any) -> None:
        needed = _exception_needed(context)
        if needed is None:
            return
        ti = context["ti"]
        record = ti.xcom_pull(task_ids=naming.gate_task(naming.FREEZE_GATE, naming.FREEZE_ROLE))
        answered = record if isinstance(record, dict) and record.get("answer") else None
        trigger_id, trigger_name = run_trigger(context)
        reason = gate_verdict(
            naming.FREEZE_GATE,
            {naming.FREEZE_ROLE: [answered]},
            {naming.FREEZE_ROLE: needed["users"]},
            trigger_id,
            trigger_name,
        )
        if reason:
            raise AirflowFailException(
                f"not started: the freeze {needed['freeze']} needs an exception: {reason}"
            )

    return hook
