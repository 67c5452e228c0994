"""One run of a runbook, as Airflow recorded it, and what it means: one shape for every page.

:class:`~gonogo.core.runs.records.RunRecord` is Airflow's own records of a run as
typed data: the run, its task instances, its requests and their answers, and
the XComs gonogo writes (outcome, events, forecast). The server fills it from
the metadata database, the client from the REST API, tests from fixtures.
Nothing else is stored.

:func:`progress` reads a record against its runbook into a :class:`Progress`:
every activity with planned against actual times, who is awaited at an open
request and since when, the decision log, and the status colour. The board, the
run view and the report are all renderings of it, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.core import naming
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.core.runs import states
from gonogo.core.runs.decisions import Decision, decisions
from gonogo.core.runs.records import RunRecord, TaskRecord, moment
from gonogo.core.runs.rollback import NOGO_BEFORE_START
from gonogo.core.runs.status import Status, rollout_status
from gonogo.core.timing.timeplan import planned_start, time_plan
from gonogo.errors import TimePlanError

# -- what it means ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """A step or a gate of the runbook, planned against actual."""

    kind: str  # "step" or "gate"
    phase: str  # the phase id, or the gate id for a gate
    id: str
    title: str
    owner: str  # the role (a gate: its sign-off roles)
    task_id: str  # the task whose log tells the story (a gate: its result)
    planned_start: datetime | None
    planned_end: datetime | None
    start: datetime | None
    end: datetime | None
    result: str  # an Airflow state, or for a gate GO / NOGO / waiting


@dataclass(frozen=True)
class Awaited:
    """An open request: who must answer, and since when."""

    gate: str  # the gate id, or "step:<id>"
    role: str
    users: tuple[str, ...]
    task_id: str
    since: datetime | None
    subject: str


@dataclass(frozen=True)
class Progress:
    """Everything the board, the run view and the report show about one run."""

    dag_id: str
    run_id: str
    title: str
    change: str
    service: str
    environment: str
    state: str
    triggered_by: str
    start: datetime | None
    end: datetime | None
    planned_start: datetime | None
    planned_end: datetime | None
    forecast_finish: datetime | None
    window_end: datetime | None
    late: timedelta | None
    phase: str  # the current (or last) phase or gate
    activity: str  # the current (or last) activity
    activities: tuple[Activity, ...]
    awaited: tuple[Awaited, ...]
    decisions: tuple[Decision, ...]
    rollback: tuple[TaskRecord, ...]
    outcome: Mapping[str, Any] | None
    events: tuple[Mapping[str, Any], ...]
    status: Status
    incident_reports: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601, durations in seconds."""
        found: dict[str, Any] = _plain(asdict(self))
        return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_OPEN = frozenset({states.AWAITING_INPUT})


def _awaited(record: RunRecord, owners: Mapping[str, str]) -> list[Awaited]:
    found = []
    for request in record.requests:
        task = record.tasks.get(request.task_id)
        state = task.state if task is not None else request.state
        if request.answer is not None or state not in _OPEN:
            continue
        gate = naming.parse_gate_task(request.task_id)
        found.append(
            Awaited(
                gate=gate.gate if gate else f"step:{request.task_id.rpartition('.')[2]}",
                role=(gate.role if gate and gate.role else owners.get(request.task_id, "")),
                users=tuple(name for _, name in request.assignees),
                task_id=request.task_id,
                since=request.created_at,
                subject=request.subject,
            )
        )
    return found


def _gate_result(record: RunRecord, gate: Gate) -> tuple[str, datetime | None, datetime | None]:
    prefix = naming.gate_group(gate.gate) + "."
    tasks = [t for t in record.tasks.values() if t.task_id.startswith(prefix)]
    if not tasks:
        return "", None, None
    starts = [t.start for t in tasks if t.start]
    result = record.tasks.get(naming.gate_task(gate.gate, naming.RESULT))
    roles = [t for t in tasks if (p := naming.parse_gate_task(t.task_id)) and p.role]
    if any(t.state == states.AWAITING_INPUT for t in roles):
        verdict = "waiting"
    elif result is not None and result.state == states.SUCCESS:
        verdict = naming.GO
    elif any(t.state == states.FAILED for t in tasks) or (
        result is not None and result.state in states.FAILED_STATES
    ):
        verdict = naming.NOGO
    elif all(t.state in (None, states.SKIPPED) for t in tasks):
        verdict = states.SKIPPED if any(t.state for t in tasks) else ""
    else:
        verdict = "open"
    end = result.end if result is not None and result.state in states.ENDED else None
    return verdict, min(starts, default=None), end


def owners_by_task(runbook: Runbook) -> dict[str, str]:
    """The owner role of every forward step, by task id: decisions on manual steps show it."""
    return {naming.step_task(p.id, s.id): s.owner for p, s in runbook.steps() if s.owner}


def progress(
    runbook: Runbook,
    record: RunRecord,
    now: datetime,
    *,
    forecast_finish: datetime | None = None,
) -> Progress:
    """What a run means against its runbook, at ``now``.

    Planned times count from the run's T (:func:`run_t`), as its tasks do. The
    forecast finish is, in this order: the one given, the forecast task's latest
    (``record.forecast``), or the planned end pushed back by how late the run is now.
    """
    slots = time_plan(runbook).by_id()
    # Every time in the window's time zone (else UTC), so planned and actual read alike.
    zone = runbook.window.start.tzinfo if runbook.window is not None else UTC

    def local(value: datetime | None) -> datetime | None:
        return value.astimezone(zone) if value is not None and value.tzinfo else value

    record = _localised(record, local)
    base = local(run_t(runbook, record))
    owners = owners_by_task(runbook)
    activities: list[Activity] = []
    for item in runbook.phases:
        if isinstance(item, Gate):
            slot = slots[item.gate]
            verdict, start, end = _gate_result(record, item)
            activities.append(
                Activity(
                    "gate",
                    item.gate,
                    item.gate,
                    item.title or item.gate,
                    ", ".join(item.sign_off),
                    naming.gate_task(item.gate, naming.RESULT),
                    base + slot.start if base else None,
                    base + slot.end if base else None,
                    start,
                    end,
                    verdict,
                )
            )
            continue
        for step in item.steps:
            slot = slots[step.id]
            task_id = naming.step_task(item.id, step.id)
            task = record.tasks.get(task_id)
            activities.append(
                Activity(
                    "step",
                    item.id,
                    step.id,
                    step.title or step.id,
                    step.owner or "",
                    task_id,
                    base + slot.start if base else None,
                    base + slot.end if base else None,
                    task.start if task else None,
                    task.end if task else None,
                    (task.state or "") if task else "",
                )
            )
    planned_end = max((a.planned_end for a in activities if a.planned_end), default=None)
    late = _lateness(activities, now)
    if forecast_finish is None and record.forecast:
        forecast_finish = local(moment(record.forecast.get("finish")))
    if forecast_finish is None and planned_end is not None and record.end is None:
        forecast_finish = planned_end + max(late or timedelta(0), timedelta(0))
    awaited = [replace(w, since=local(w.since)) for w in _awaited(record, owners)]
    current = _current(activities)
    rollback = tuple(
        t for t in record.tasks.values() if naming.is_rollback_task(t.task_id) and t.state
    )
    failed = any(a.kind == "step" and a.result == states.FAILED for a in activities)
    nogo = any(a.kind == "gate" and a.result == naming.NOGO for a in activities)
    rolling_back = any(
        t.task_id == naming.ROLLBACK_START and t.state not in (None, states.SKIPPED)
        for t in rollback
    )
    waiting_past = sorted(
        {
            w.gate
            for w in awaited
            if not w.gate.startswith("step:")
            and (a := next((x for x in activities if x.id == w.gate), None)) is not None
            and a.planned_start is not None
            and now - a.planned_start > timedelta(0)
            and w.since is not None
            and now - w.since > timedelta(minutes=5)
        }
    )
    finished = record.end is not None
    outcome = record.outcome or {}
    refused = outcome.get("outcome") == NOGO_BEFORE_START and "; ".join(outcome.get("reasons", []))
    status = rollout_status(
        failed=failed,
        rolling_back=rolling_back,
        nogo=nogo,
        refused=refused or None,
        late=None if finished else late,
        waiting_past_plan=() if finished else waiting_past,
        forecast_finish=None if finished else forecast_finish,
        window_end=runbook.window.end if runbook.window else None,
    )
    return Progress(
        dag_id=record.dag_id,
        run_id=record.run_id,
        title=runbook.title,
        change=f"{runbook.change.id} ({runbook.change.type})",
        service=runbook.service,
        environment=runbook.environment,
        state=record.state,
        triggered_by=record.triggered_by,
        start=record.start,
        end=record.end,
        planned_start=base,
        planned_end=planned_end,
        forecast_finish=forecast_finish if not finished else None,
        window_end=runbook.window.end if runbook.window else None,
        late=late,
        phase=current.phase if current else "",
        activity=current.title if current else "",
        activities=tuple(activities),
        awaited=tuple(awaited),
        decisions=tuple(
            replace(d, at=_iso(local(moment(d.at))) or d.at)
            for d in decisions(record.requests, owners)
        ),
        rollback=rollback,
        outcome=record.outcome,
        events=tuple(e.data for e in record.events),
        status=status,
        incident_reports=tuple(record.incident_reports),
    )


def run_t(runbook: Runbook, record: RunRecord) -> datetime | None:
    """The run's T, by the rule its tasks follow (:func:`~gonogo.core.timing.timeplan.planned_start`).

    None for a queued run of a runbook without a window: it has no T yet. A
    ``planned_start`` the run refused (outside the window) leaves the window
    start, the T the refusal was measured against.
    """
    if runbook.window is None and record.start is None and not record.planned_start:
        return None
    # The run's start counts only without a window and a planned_start, so it is known here.
    started = record.start or datetime.min.replace(tzinfo=UTC)
    begin = time_plan(runbook).begin
    try:
        return planned_start(runbook.window, record.planned_start, started, begin)
    except TimePlanError:
        return planned_start(runbook.window, None, started, begin)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _localised(record: RunRecord, local: Any) -> RunRecord:
    tasks = {k: replace(t, start=local(t.start), end=local(t.end)) for k, t in record.tasks.items()}
    return replace(record, start=local(record.start), end=local(record.end), tasks=tasks)


def _lateness(activities: Sequence[Activity], now: datetime) -> timedelta | None:
    """How far the latest started activity is behind its planned end (or start, if not ended)."""
    late: timedelta | None = None
    for a in activities:
        if a.start is None or a.planned_start is None or a.planned_end is None:
            continue
        if a.end is not None:
            late = a.end - a.planned_end
        else:
            late = max(now - a.planned_end, a.start - a.planned_start)
    return late


def _current(activities: Sequence[Activity]) -> Activity | None:
    """The activity in progress, else the last one that started."""
    for a in activities:
        if a.result in states.IN_FLIGHT or a.result in (states.AWAITING_INPUT, "waiting", "open"):
            return a
    started = [a for a in activities if a.start is not None]
    return started[-1] if started else None
