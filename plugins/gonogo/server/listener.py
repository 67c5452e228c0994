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

from gonogo.core.decisions import decisions, note
from gonogo.core.naming import DAG_MARKER_TAG, XCOM_EVENTS, XCOM_NOTICES, XCOM_OUTCOME

log = logging.getLogger(__name__)


def _details(session: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    rows = session.execute(
        select(
            HITLDetail,
            TaskInstance.task_id,
            TaskInstance.state,
            TaskInstance.try_number,
            TaskInstance.end_date,
        )
        .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    return [
        {
            "task_instance": {
                "task_id": task_id,
                "state": str(getattr(state, "value", state)),
                "try_number": tries,
                "end_date": ended.isoformat() if ended else None,
            },
            "chosen_options": detail.chosen_options,
            "responded_by_user": detail.responded_by,
            "responded_at": detail.responded_at.isoformat() if detail.responded_at else None,
            "params_input": detail.params_input,
            "response_received": detail.response_received,
            "created_at": detail.created_at.isoformat(),
            "assigned_users": detail.assignees,
        }
        for detail, task_id, state, tries, ended in rows
    ]


def _xcoms(session: Any, dag_id: str, run_id: str, key: str) -> list[Any]:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    values = session.scalars(
        select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == key
        )
    ).all()
    return [XComModel.deserialize_value(type("R", (), {"value": v})()) for v in values]


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
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    dag_id, run_id = dag_run.dag_id, dag_run.run_id
    with session.no_autoflush:
        if not _is_gonogo_dag(session, dag_id):
            return  # another team's DAG: not ours to annotate
        outcomes = _xcoms(session, dag_id, run_id, XCOM_OUTCOME)
        details = _details(session, dag_id, run_id)
        events = [e for batch in _xcoms(session, dag_id, run_id, XCOM_EVENTS) for e in batch or []]
        events += [
            e for batch in _xcoms(session, dag_id, run_id, XCOM_NOTICES) for e in batch or []
        ]
    dag_run.note = note(decisions(details), outcomes[0] if outcomes else None, events)


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
