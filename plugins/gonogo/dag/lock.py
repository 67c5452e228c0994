"""One rollout per service and environment at a time: a lock claimed inside a one-slot pool."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Variable

from gonogo.core.settings import LOCK_POOL

log = logging.getLogger(__name__)


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
        # arrives late (see gonogo.server.middleware); retrying the claim is harmless.
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
