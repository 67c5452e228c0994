"""gonogo's operators: thin subclasses of Airflow's own, for what the runbook needs.

- :class:`ManualStepOperator`: a person confirms a manual step (HITL, Done/Failed).
- :class:`AcquireLockSensor`: one rollout per service and environment at a time.

Approvals are written and checked by Airflow's HITL API: an answer from a user
who is not assigned is refused with 403 on the server, never in this code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseSensorOperator, Param, Variable
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("gonogo")

LOCK_POOL = "gonogo_lock"
DONE, FAILED = "Done", "Failed"


def with_comment(kwargs: dict[str, Any], description: str) -> dict[str, Any]:
    """The request's form: only a comment field, not the DAG params Airflow passes in."""
    kwargs.pop("params", None)
    return {"comment": Param("", type=["string", "null"], description=description)}


class ManualStepOperator(HITLOperator):
    """A manual activity: the owner role's members confirm Done, or report Failed with a comment."""

    def __init__(self, *, instruction: str, role: str, users: Sequence[str], **kwargs: Any) -> None:
        self.role = role
        self.users = list(users)
        kwargs.setdefault("retries", 0)
        super().__init__(
            subject=kwargs.pop("subject", instruction[:80]),
            body=instruction,
            options=[DONE, FAILED],
            params=with_comment(kwargs, "What you did or saw; required when it failed"),
            assigned_users=[{"id": u, "name": u} for u in self.users],
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        log.info("manual step for role %s (%s): %s", self.role, ", ".join(self.users), self.body)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        who = (event.get("responded_by_user") or {}).get("name", "?")
        comment = (event.get("params_input") or {}).get("comment") or ""
        chosen = event["chosen_options"][0]
        log.info("%s answered %s%s", who, chosen, f": {comment}" if comment else "")
        if chosen == FAILED:
            raise AirflowFailException(
                f"{who} reported the manual step failed: {comment or '(no comment)'}"
            )
        return result


class AcquireLockSensor(BaseSensorOperator):
    """Waits until no other rollout of the same service and environment is running, then claims it.

    The check-and-claim runs in the one-slot pool ``gonogo_lock``, so two claims
    never interleave. Between pokes the task is rescheduled and holds no worker
    slot. A claim whose run is no longer queued or running is stale and taken over.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, service: str, environment: str, **kwargs: Any) -> None:
        kwargs.setdefault("pool", LOCK_POOL)
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 7 * 24 * 3600)
        # A re-queued reschedule can be failed by Airflow 3.3 when the worker's exit event
        # arrives late (see gonogo.answers); retrying the claim is harmless.
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=2))
        super().__init__(**kwargs)
        self.service = service
        self.environment = environment

    @property
    def key(self) -> str:
        return lock_key(self.service, self.environment)

    def poke(self, context: Any) -> bool:
        me = {"dag_id": context["dag"].dag_id, "run_id": context["run_id"]}
        owner = Variable.get(self.key, default=None, deserialize_json=True)
        if owner and owner != me and _run_is_live(owner):
            log.info(
                "%s/%s is locked by %s %s; waiting",
                self.service,
                self.environment,
                owner["dag_id"],
                owner["run_id"],
            )
            return False
        Variable.set(self.key, me, serialize_json=True, description="gonogo rollout lock")
        log.info("lock %s taken by %s %s", self.key, me["dag_id"], me["run_id"])
        return True


def run_states(context: Mapping[str, Any]) -> dict[str, str]:
    """Every task's state in the running DAG run, as plain strings, through the Task SDK."""
    found = context["ti"].get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
    return {
        task: str(getattr(state, "value", state))
        for task, state in found.get(context["run_id"], {}).items()
    }


def lock_key(service: str, environment: str) -> str:
    return f"gonogo_lock__{service}__{environment}"


def _run_is_live(owner: Mapping[str, str]) -> bool:
    from airflow.sdk.exceptions import AirflowRuntimeError
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        state = RuntimeTaskInstance.get_dagrun_state(owner["dag_id"], owner["run_id"])
    except AirflowRuntimeError as exc:
        detail = getattr(exc.error, "detail", None) or {}
        if detail.get("status_code") == 404:
            return False
        raise
    return str(state) in ("queued", "running", "DagRunState.QUEUED", "DagRunState.RUNNING")


def release_lock(service: str, environment: str, **context: Any) -> None:
    """Free the lock if this run holds it (trigger rule all_done: also after a failure)."""
    key = lock_key(service, environment)
    me = {"dag_id": context["dag"].dag_id, "run_id": context["run_id"]}
    if Variable.get(key, default=None, deserialize_json=True) == me:
        Variable.delete(key)
        log.info("lock %s released", key)
    else:
        log.info("lock %s was not held by this run", key)
