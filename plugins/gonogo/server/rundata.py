"""The server's one reader of runs: Airflow's metadata database into :class:`~gonogo.core.runs.records.RunRecord`.

The pages, the run note (:mod:`gonogo.server.listener`) and the middleware's
checks of an answer (:mod:`gonogo.server.records`) all read a run's records
here, so they see the same requests, answers and events; the CLI reads the
same records from the REST API (:mod:`gonogo.client.runs`). The pages and the
note run where the database is (the API server, the scheduler); reading it
directly costs four queries for a whole page of runs (runs, task instances,
HITL details, XComs), where the REST API would cost several calls per run.
Nothing is stored besides what Airflow stores.

The runbook of a DAG is read from the runbooks folder (``GONOGO_RUNBOOKS_DIR``),
which the API server sees like every other Airflow component, and cached per
file modification time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gonogo.core.naming import (
    XCOM_FORECAST,
    XCOM_INCIDENT_REPORT,
    XCOM_OUTCOME,
    approved_runbook,
)
from gonogo.core.runbook.loader import load_file, runbook_files
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs.records import (
    EVENT_KEYS,
    Request,
    RunRecord,
    TaskRecord,
    approved_reports,
    events_in_order,
    given_start,
    latest_forecast,
)
from gonogo.core.settings import runbooks_dir
from gonogo.dag.folder import head_id
from gonogo.errors import RunbookError

#: Finished runs stay on the board this long.
RECENT = timedelta(hours=24)
#: Rollouts per board page.
PAGE = 50
_INDEX_TTL = 10.0


class Runbooks:
    """Which runbook file defines which DAG, and the parsed runbooks, cached."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._index: dict[str, Path] = {}
        self._indexed_at = 0.0
        self._parsed: dict[Path, tuple[float, Runbook | None]] = {}

    def _refresh(self) -> None:
        index: dict[str, Path] = {}
        files = runbook_files([self.folder]) if self.folder.is_dir() else []
        for file in files:
            runbook_id = head_id(file)
            if runbook_id:
                index.setdefault(runbook_id, file)
        self._index = index
        self._indexed_at = time.monotonic()

    def ids(self) -> set[str]:
        with self._lock:
            if time.monotonic() - self._indexed_at > _INDEX_TTL:
                self._refresh()
            return set(self._index)

    def get(self, dag_id: str) -> Runbook | None:
        """The runbook of ``dag_id``, or None if no valid runbook defines it."""
        if dag_id not in self.ids():
            return None
        path = self._index[dag_id]
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        with self._lock:
            cached = self._parsed.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
        try:
            runbook: Runbook | None = load_file(path)[0]
        except RunbookError:
            runbook = None
        if runbook is not None and runbook.runbook != dag_id:
            runbook = None
        with self._lock:
            self._parsed[path] = (mtime, runbook)
        return runbook

    def plan_of(self, dag_id: str) -> Runbook | None:
        """The runbook whose plan ``dag_id`` runs or approves: a rollout's, or ``<id>.approval``'s.

        The approval DAG of a runbook that needs no plan approval does not exist: None.
        """
        approved = approved_runbook(dag_id)
        if approved is None:
            return self.get(dag_id)
        runbook = self.get(approved)
        if runbook is None:
            return None
        from gonogo.dag.approval import needs_approval_dag

        return runbook if needs_approval_dag(runbook) else None


_RUNBOOKS: Runbooks | None = None


def runbooks() -> Runbooks:
    """The process's runbook cache, on the folder the DAG file reads."""
    global _RUNBOOKS
    if _RUNBOOKS is None:
        from airflow.configuration import conf

        # The DAG file's own default: runbooks/ beside the DAGs folder.
        dags = Path(conf.get("core", "dags_folder", fallback=".") or ".")
        _RUNBOOKS = Runbooks(runbooks_dir(dags.resolve().parent / "runbooks"))
    return _RUNBOOKS


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _xcom_value(raw: Any) -> Any:
    from airflow.models.xcom import XComModel

    return XComModel.deserialize_value(type("Row", (), {"value": raw})())


def request_of(detail: Any, task_id: str, state: Any, tries: Any, ended: Any) -> Request:
    """One request from its HITLDetail row and its task's, read as the REST API reads it."""
    return Request.from_detail(
        {
            "task_instance": {
                "task_id": task_id,
                "state": _state(state),
                "try_number": tries,
                "end_date": ended,
            },
            "subject": detail.subject,
            "params": detail.params,
            "chosen_options": detail.chosen_options,
            "responded_by_user": detail.responded_by,
            "responded_at": detail.responded_at,
            "params_input": detail.params_input,
            "response_received": detail.response_received,
            "created_at": detail.created_at,
            "assigned_users": detail.assignees,
        }
    )


def read_runs(session: Any, runs: Sequence[Any]) -> list[RunRecord]:
    """Airflow's records of ``runs`` (DagRun rows): three queries, whatever their number."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    if not runs:
        return []
    dag_ids = {r.dag_id for r in runs}
    run_ids = {r.run_id for r in runs}
    task_rows = session.execute(
        select(
            TI.dag_id, TI.run_id, TI.task_id, TI.state, TI.start_date, TI.end_date, TI.try_number
        ).where(TI.dag_id.in_(dag_ids), TI.run_id.in_(run_ids), TI.map_index == -1)
    )
    request_rows = session.execute(
        select(HITLDetail, TI.dag_id, TI.run_id, TI.task_id, TI.state, TI.try_number, TI.end_date)
        .join(TI, HITLDetail.ti_id == TI.id)
        .where(TI.dag_id.in_(dag_ids), TI.run_id.in_(run_ids))
    )
    xcom_rows = session.execute(
        select(
            XComModel.dag_id,
            XComModel.run_id,
            XComModel.task_id,
            XComModel.key,
            XComModel.timestamp,
            XComModel.value,
        ).where(
            XComModel.dag_id.in_(dag_ids),
            XComModel.run_id.in_(run_ids),
            XComModel.key.in_([XCOM_OUTCOME, XCOM_FORECAST, XCOM_INCIDENT_REPORT, *EVENT_KEYS]),
        )
    )
    return records_of(
        runs,
        list(task_rows),
        list(request_rows),
        [(*row[:5], _xcom_value(row[5])) for row in xcom_rows],
    )


def records_of(
    runs: Sequence[Any],
    task_rows: Iterable[Sequence[Any]],
    request_rows: Iterable[Sequence[Any]],
    xcom_rows: Iterable[Sequence[Any]],
) -> list[RunRecord]:
    """The records of ``runs`` from the rows :func:`read_runs` queries, XCom values deserialized.

    The queries filter on dag ids and run ids separately; exact pairs are kept here.
    """
    keys = [(r.dag_id, r.run_id) for r in runs]
    tasks: dict[tuple[str, str], dict[str, TaskRecord]] = {k: {} for k in keys}
    for dag_id, run_id, task_id, state, start, end, tries in task_rows:
        if (dag_id, run_id) in tasks:
            tasks[(dag_id, run_id)][task_id] = TaskRecord(
                task_id, _state(state), start, end, tries or 1
            )
    requests: dict[tuple[str, str], list[Request]] = {k: [] for k in keys}
    for detail, dag_id, run_id, task_id, state, tries, ended in request_rows:
        if (dag_id, run_id) in requests:
            requests[(dag_id, run_id)].append(request_of(detail, task_id, state, tries, ended))
    outcomes: dict[tuple[str, str], Any] = {}
    forecasts: dict[tuple[str, str], Any] = {}
    pushed: dict[tuple[str, str], list[tuple[str, Any, Any]]] = {k: [] for k in keys}
    reports: dict[tuple[str, str], list[tuple[str, Any]]] = {k: [] for k in keys}
    for dag_id, run_id, task_id, key, at, value in xcom_rows:
        if (dag_id, run_id) not in pushed:
            continue
        if key == XCOM_OUTCOME and isinstance(value, dict):
            outcomes[(dag_id, run_id)] = value
        elif key == XCOM_FORECAST:
            forecasts[(dag_id, run_id)] = latest_forecast(value)
        elif key in EVENT_KEYS:
            pushed[(dag_id, run_id)].append((task_id, at, value))
        elif key == XCOM_INCIDENT_REPORT:
            reports[(dag_id, run_id)].append((task_id, value))
    return [
        RunRecord(
            dag_id=r.dag_id,
            run_id=r.run_id,
            state=_state(r.state) or "",
            start=r.start_date,
            end=r.end_date,
            triggered_by=getattr(r, "triggering_user_name", None) or "",
            tasks=tasks[(r.dag_id, r.run_id)],
            requests=requests[(r.dag_id, r.run_id)],
            outcome=outcomes.get((r.dag_id, r.run_id)),
            events=events_in_order(pushed[(r.dag_id, r.run_id)]),
            forecast=forecasts.get((r.dag_id, r.run_id)),
            planned_start=given_start(r.conf),
            incident_reports=approved_reports(reports[(r.dag_id, r.run_id)]),
        )
        for r in runs
    ]


def board_runs(
    session: Any, dag_ids: Iterable[str], now: datetime, offset: int = 0, limit: int = PAGE
) -> list[Any]:
    """Active runs and those that ended within :data:`RECENT`, newest first, one page."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import or_, select

    ids = sorted(set(dag_ids))
    if not ids:
        return []
    return list(
        session.scalars(
            select(DagRun)
            .where(
                DagRun.dag_id.in_(ids),
                or_(
                    DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED]),
                    DagRun.end_date >= now - RECENT,
                ),
            )
            .order_by(DagRun.start_date.desc().nulls_first(), DagRun.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )


def one_run(session: Any, dag_id: str, run_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def latest_states(session: Any, dag_ids: Iterable[str]) -> dict[str, str]:
    """The state of each DAG's newest run (``success``, ``failed``, ``running``, …), where it has one."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, select

    ids = sorted(set(dag_ids))
    if not ids:
        return {}
    newest = select(func.max(DagRun.id)).where(DagRun.dag_id.in_(ids)).group_by(DagRun.dag_id)
    rows = session.execute(select(DagRun.dag_id, DagRun.state).where(DagRun.id.in_(newest)))
    return {dag_id: state for dag_id, state in ((r[0], _state(r[1])) for r in rows) if state}
