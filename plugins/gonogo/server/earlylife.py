"""Early-life runs read from Airflow's database, for the status page and the board.

A run's reports are its HITL requests, read by :func:`gonogo.server.rundata.read_runs`
like a rollout's; when support started is what its ``start`` task recorded (the
go-live event, checked). Nothing is kept anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from gonogo.core.documents.earlylife import support_data
from gonogo.core.earlylife import names
from gonogo.core.earlylife.agenda import agenda, next_meeting
from gonogo.core.earlylife.status import (
    Decision,
    Report,
    decisions_from_request,
    report_from_request,
    support,
)
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs.records import Request, RunRecord
from gonogo.server import rundata


def _starts(session: Any, dag_ids: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the start task of each run of these early-life DAGs recorded, by (dag, run)."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    found = {}
    for dag_id, run_id, value in session.execute(
        select(XComModel.dag_id, XComModel.run_id, XComModel.value).where(
            XComModel.dag_id.in_(sorted(set(dag_ids))),
            XComModel.task_id == names.START_TASK,
            XComModel.key == "return_value",
        )
    ):
        record = rundata._xcom_value(value)
        if isinstance(record, dict) and record.get("start"):
            found[(dag_id, run_id)] = record
    return found


def latest_run(session: Any, dag_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
    )


def _read(session: Any, run: Any) -> tuple[dict[str, Any], RunRecord] | None:
    """What the start task recorded and the run's records; None before the start."""
    started = _starts(session, [run.dag_id]).get((run.dag_id, run.run_id))
    if started is None:
        return None
    (record,) = rundata.read_runs(session, [run])
    return started, record


def _reports(requests: Sequence[Request]) -> list[Report]:
    return [r for q in requests if (r := report_from_request(q)) is not None]


def _decisions(requests: Sequence[Request], forums: Sequence[str]) -> list[Decision]:
    """The decision log: the forums' answers to reds and the meetings' logged decisions."""
    return [d for q in requests for d in decisions_from_request(q, forums)]


def read_support(session: Any, runbook: Runbook, run: Any, now: datetime) -> dict[str, Any] | None:
    """The status of one early-life run; None before its start task recorded the go-live."""
    assert runbook.early_life is not None
    found = _read(session, run)
    if found is None:
        return None
    started, record = found
    requests, state = record.requests, record.state
    section = runbook.early_life
    start = datetime.fromisoformat(started["start"])
    seen = support(section, start, _reports(requests), now)
    decisions = _decisions(requests, section.escalate_to)
    data = support_data(runbook, seen, now, run.run_id, state, decisions)
    data["rollout_run_id"] = started.get("rollout_run_id")
    data["incident_reports"] = [dict(r) for r in record.incident_reports]
    return data


def read_agenda(
    session: Any, runbook: Runbook, run: Any, now: datetime, at: datetime | None
) -> dict[str, Any] | None:
    """The agenda of the meeting at ``at`` (default: the next one) of one early-life run."""
    assert runbook.early_life is not None
    found = _read(session, run)
    if found is None:
        return None
    started, record = found
    requests = record.requests
    start = datetime.fromisoformat(started["start"])
    meeting = at or next_meeting(runbook.early_life, start, now)
    if meeting is None:
        return None
    decisions = _decisions(requests, runbook.early_life.escalate_to)
    data = agenda(runbook.early_life, start, _reports(requests), meeting, decisions)
    data.update(runbook=runbook.runbook, title=runbook.title, run_id=run.run_id)
    return data


def for_rollouts(
    session: Any, runbooks: Iterable[Runbook], now: datetime
) -> dict[tuple[str, str], dict[str, Any]]:
    """The early-life status of each rollout run whose support is running, by (runbook, run)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    by_dag = {names.early_life_dag(r.runbook): r for r in runbooks if r.early_life is not None}
    if not by_dag:
        return {}
    runs = session.scalars(
        select(DagRun).where(
            DagRun.dag_id.in_(sorted(by_dag)),
            DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED]),
        )
    )
    found = {}
    for run in runs:
        runbook = by_dag[run.dag_id]
        data = read_support(session, runbook, run, now)
        if data is not None and data.get("rollout_run_id"):
            found[(runbook.runbook, str(data["rollout_run_id"]))] = data
    return found
