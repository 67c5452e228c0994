"""Writes the DAG run's note when a gonogo run ends: the outcome and every decision.

DAG-run listeners run in the scheduler, which has the metadata database; tasks
do not, which is why the note is written here and not by the outcome task. The
listener works inside the scheduler's own session and never commits: the
scheduler commits the note with the run's new state (committing here would break
its locks).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from gonogo.core.naming import DAG_MARKER_TAG
from gonogo.core.runs.decisions import decisions, note
from gonogo.core.runs.run import owners_by_task

log = logging.getLogger(__name__)


def _is_gonogo_dag(session: Any, dag_id: str) -> bool:
    from airflow.models.dag import DagTag
    from sqlalchemy import select

    return (
        session.scalar(
            select(DagTag.dag_id).where(DagTag.dag_id == dag_id, DagTag.name == DAG_MARKER_TAG)
        )
        is not None
    )


def write_note(dag_run: Any) -> None:
    """The note from the run's records, read by the pages' reader: the same decisions and events."""
    from sqlalchemy.orm import object_session

    from gonogo.server import rundata

    session = object_session(dag_run)
    if session is None:
        return
    with session.no_autoflush:
        if not _is_gonogo_dag(session, dag_run.dag_id):
            return  # another team's DAG: not ours to annotate
        (record,) = rundata.read_runs(session, [dag_run])
    runbook = rundata.runbooks().get(dag_run.dag_id)
    owners = owners_by_task(runbook) if runbook is not None else {}
    rows = decisions(record.requests, owners)
    dag_run.note = note(rows, record.outcome, [e.data for e in record.events])


def _safely(dag_run: Any) -> None:
    try:
        run_id = dag_run.run_id
    except Exception:
        return
    try:
        write_note(dag_run)
    except Exception:  # a note must never break the scheduler
        log.exception("gonogo: could not write the run note of %s", run_id)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _safely(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _safely(dag_run)
