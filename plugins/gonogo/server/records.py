"""The API server's reads and writes of Airflow's metadata database, for the middleware.

Every function here is synchronous (SQLAlchemy); the middleware runs them in a
worker thread. Nothing here decides anything: :mod:`gonogo.server.rules` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gonogo.core import naming
from gonogo.core.runs.decisions import recorded_trigger
from gonogo.core.runs.records import Request
from gonogo.core.settings import LOCK_POOL

log = logging.getLogger(__name__)

_MARKED: dict[str, tuple[float, bool]] = {}
_MARK_TTL = 30.0


def is_gonogo_dag(dag_id: str) -> bool:
    """Whether ``dag_id`` is one of gonogo's DAGs: it carries the marker tag gonogo gives it.

    Cached for a few seconds: answers and edits are rare, DAG tags change rarely.
    """
    now = time.monotonic()
    cached = _MARKED.get(dag_id)
    if cached and now - cached[0] < _MARK_TTL:
        return cached[1]
    from airflow.models.dag import DagTag
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(
            select(DagTag.dag_id).where(
                DagTag.dag_id == dag_id, DagTag.name == naming.DAG_MARKER_TAG
            )
        )
    _MARKED[dag_id] = (now, found is not None)
    return found is not None


@dataclass(frozen=True)
class RequestRecord:
    """One HITL request, read as the pages read it, and who started its run."""

    request: Request
    triggered_by: str | None  # the run's triggering_user_name
    trigger: dict[str, Any] | None  # the identity gonogo recorded when the run was triggered


def hitl_request(dag_id: str, run_id: str, task_id: str, map_index: int) -> RequestRecord | None:
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from gonogo.server.rundata import request_of

    with create_session() as session:
        row = session.execute(
            select(
                HITLDetail,
                TaskInstance.state,
                TaskInstance.try_number,
                TaskInstance.end_date,
                DagRun.triggering_user_name,
                DagRun.conf,
            )
            .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
            .join(
                DagRun,
                (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id),
            )
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).first()
        if row is None:
            return None
        detail, state, tries, ended, triggered_by, conf = row
        request = request_of(detail, task_id, state, tries, ended)
    return RequestRecord(request, triggered_by, recorded_trigger(conf))


def gate_answers(dag_id: str, run_id: str, gate_id: str) -> list[tuple[str, str | None]]:
    """(task id, responder id) of every answered request of one gate in one run."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    prefix = naming.gate_group(gate_id) + "."
    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, HITLDetail.responded_by)
            .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id.startswith(prefix),
                HITLDetail.responded_at.is_not(None),
            )
        ).all()
    return [(task, (by or {}).get("id")) for task, by in rows]


def task_types(dag_id: str, run_id: str | None, task_ids: Iterable[str]) -> dict[str, str | None]:
    """The operator class of each named task, from its task instances (any run when no run)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    wanted = list(task_ids)
    found: dict[str, str | None] = dict.fromkeys(wanted)
    if not wanted:
        return found
    query = select(TaskInstance.task_id, TaskInstance.operator).where(
        TaskInstance.dag_id == dag_id, TaskInstance.task_id.in_(wanted)
    )
    if run_id is not None:
        query = query.where(TaskInstance.run_id == run_id)
    with create_session() as session:
        for task_id, operator in session.execute(query).all():
            found[task_id] = operator
    return found


def withdraw_siblings(dag_id: str, run_id: str, task_id: str) -> list[str]:
    """End a decided gate's other open requests as skipped: their answers would change nothing."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    gate = naming.parse_gate_task(task_id)
    if gate is None:
        return []
    prefix = naming.gate_group(gate.gate) + "."
    withdrawn = []
    with create_session() as session:
        siblings = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id.startswith(prefix),
                TaskInstance.task_id != task_id,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            )
        ).all()
        for ti in siblings:
            ti.set_state(TaskInstanceState.SKIPPED, session=session)
            withdrawn.append(ti.task_id)
    return withdrawn


def lock_pool_problem() -> str | None:
    """What is wrong with the lock pool, or None when it exists with exactly one slot."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        slots = session.scalar(select(Pool.slots).where(Pool.pool == LOCK_POOL))
    if slots is None:
        return (
            f"the pool {LOCK_POOL!r} does not exist, so the rollout lock could never be taken; "
            f"create it with `gonogo setup` (or `airflow pools set {LOCK_POOL} 1 gonogo`)"
        )
    if slots != 1:
        return (
            f"the pool {LOCK_POOL!r} has {slots} slots; it needs exactly 1, or two rollouts "
            f"could take the same lock; fix it with `gonogo setup` (or `airflow pools set "
            f"{LOCK_POOL} 1 gonogo`)"
        )
    return None


def approved_afterwards(dag_id: str, short: str) -> str | None:
    """Who approved plan ``short`` of runbook ``dag_id``, and when, if the CAB has since.

    For an emergency change's report: its run was flagged "retrospective approval
    required" until then. Only an entry whose approval run succeeded counts.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from gonogo.core.change.approval import approved

    ledger = Variable.get(naming.approvals_key(dag_id), default_var=None, deserialize_json=True)
    if not isinstance(ledger, dict):
        return None
    for digest in ledger:
        entry = approved(ledger, digest) if digest.startswith(short) else None
        if entry is None:
            continue
        with create_session() as session:
            state = session.scalar(
                select(DagRun.state).where(
                    DagRun.dag_id == naming.approval_dag(dag_id),
                    DagRun.run_id == entry["run_id"],
                )
            )
        if str(getattr(state, "value", state)) == "success":
            return f"by {', '.join(entry.get('approved_by') or [])} at {entry.get('approved_at')}"
    return None
