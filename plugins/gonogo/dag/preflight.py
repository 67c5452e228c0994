"""Checks before anything changes: who started the run, the gates, and the change type's policy.

A known person started the run, every gate can be answered, and the policy
holds: an approved plan, a recent success where the runbook ``requires`` one.

The first task of every gonogo DAG. A run that fails here ends
``nogo_before_start``: nothing was changed, and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial, wraps
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.exceptions import AirflowFailException

from gonogo.core.naming import PREFLIGHT_TASK, XCOM_REFUSAL
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs.gates import eligible
from gonogo.dag.states import run_trigger, stamp_problem

log = logging.getLogger(__name__)


def preflight(
    gates: Mapping[str, Sequence[str]],
    role_users: Mapping[str, Sequence[str]],
    check: Callable[[Any], dict[str, Any]] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Refuse the run before any step unless its trigger is known and every gate can be answered.

    ``check`` then applies the plan's policy (:func:`gonogo.dag.approval.plan_check`).
    """
    problem = stamp_problem(context)
    trigger_id, trigger_name = run_trigger(context)
    if problem is not None or trigger_id is None:
        raise AirflowFailException(
            f"not started: {problem or 'nobody known triggered this run'}; a rollout is "
            "started by a named user from the Airflow UI (Trigger), `gonogo trigger`, or "
            "POST /api/v2/dags/<dag_id>/dagRuns, so that the API server records who started "
            "it and that person can be kept from approving it (runs started from the CLI, "
            "by another DAG or with a hand-written conf are refused)"
        )
    for gate, roles in gates.items():
        for role in roles:
            if not eligible(role_users[role], trigger_id, trigger_name):
                raise AirflowFailException(
                    f"not started: at gate {gate}, role {role} has nobody left to answer: "
                    f"its only member, {trigger_name}, started this run and may not approve it "
                    "(four-eyes rule); ask another person to start it, or add a member to the role"
                )
    log.info("preflight: started by %s (%s); every gate can be answered", trigger_name, trigger_id)
    found = {"triggered_by": {"id": trigger_id, "name": trigger_name}}
    return {**found, **check(context)} if check is not None else found


def recording_refusal(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a task, with the words of its refusal kept for the run's note and pages.

    The reason (say, which file changed since the approved plan) is otherwise only
    in the task's log; the rollback plan and the outcome carry it from here.
    """

    @wraps(function)
    def run(*args: Any, **context: Any) -> Any:
        try:
            return function(*args, **context)
        except AirflowFailException as exc:
            context["ti"].xcom_push(key=XCOM_REFUSAL, value=str(exc).removeprefix("not started: "))
            raise

    return run


def role_users(runbook: Runbook) -> dict[str, list[str]]:
    """Each role's user ids, as plain data for the tasks that check who may answer."""
    return {name: list(role.users) for name, role in runbook.roles.items()}


def preflight_task(runbook: Runbook, check: Callable[[Any], dict[str, Any]]) -> PythonOperator:
    return PythonOperator(
        task_id=PREFLIGHT_TASK,
        python_callable=recording_refusal(partial(preflight, check=check)),
        op_kwargs={
            "gates": {g.gate: list(g.sign_off) for g in runbook.gates},
            "role_users": role_users(runbook),
        },
        doc_md="Refuses the run before any step when its trigger is unknown, a gate "
        "could never be answered (four-eyes), its plan is not approved or the promotion "
        "guard finds no recent success in the earlier environment.",
    )
