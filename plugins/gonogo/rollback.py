"""The rollback TaskGroup and the run's outcome.

``rollback.start`` fires as soon as a forward task fails (trigger rule
one_failed). Forward tasks check before they start, so nothing new starts once
something failed; ``rollback.start`` then waits, rescheduled and holding no
worker slot, until steps already running in parallel have finished. In a good
run it is skipped. Compensations follow newest-first; each one skips itself unless its
forward step completed. Global rollback steps come last. ``outcome`` then names
the run's single result and fails the run unless it is ``succeeded``, so
Airflow's own run state stays truthful.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, TaskGroup
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.checks import is_read_only
from gonogo.model import Phase

if TYPE_CHECKING:
    from airflow.sdk.bases.operator import BaseOperator

    from gonogo.compile import Compiler

log = logging.getLogger("gonogo")

FAILED_STATES = frozenset({"failed", "upstream_failed"})
IN_FLIGHT = frozenset(
    {"queued", "running", "scheduled", "up_for_retry", "up_for_reschedule", "deferred", "restarting"}
)
SUCCEEDED, NOGO_BEFORE_START, ROLLED_BACK, ROLLBACK_FAILED = (
    "succeeded",
    "nogo_before_start",
    "rolled_back",
    "rollback_failed",
)


def _states(context: Mapping[str, Any]) -> dict[str, str]:
    ti = context["ti"]
    found = ti.get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
    return {
        task: str(getattr(state, "value", state))
        for task, state in found.get(context["run_id"], {}).items()
    }


def stop_if_failed() -> Callable[[Any], None]:
    """A pre_execute hook for forward tasks: start nothing new once something has failed."""

    def guard(context: Any) -> None:
        failed = [t for t, state in _states(context).items() if state == "failed"
                  and not t.startswith(("rollback.", "outcome", "release_lock"))
                  and not t.endswith(".watch")]
        if failed:
            raise AirflowSkipException(
                f"not started: {', '.join(failed)} failed and rollback takes over"
            )

    return guard


def why_rollback(states: Mapping[str, str], forward: list[str]) -> list[str]:
    """The forward tasks that failed: the reason rollback started."""
    return [t for t in forward if states.get(t) == "failed"]


def reasons_for(failed: list[str]) -> list[str]:
    """Readable reasons from failed task ids: the failed step, or the gate and its role."""
    reasons = []
    for task_id in failed:
        if task_id.startswith("gate__"):
            gate, _, part = task_id.partition(".")
            what = "a required check failed" if part == "checks" else (
                f"NOGO or no answer from role {part.split('__round_')[0]}")
            reasons.append(f"gate {gate.removeprefix('gate__')}: {what}")
        else:
            reasons.append(f"step {task_id} failed")
    return reasons


class RollbackStartSensor(BaseSensorOperator):
    """Starts rollback once forward steps already running have finished."""

    def __init__(self, *, forward: list[str], technical: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 24 * 3600)
        # A re-queued reschedule can be failed by Airflow 3.3 when the worker's exit event
        # arrives late (see gonogo.answers); retrying the sensor is harmless.
        kwargs["retries"] = 3
        kwargs["retry_delay"] = timedelta(seconds=1)
        super().__init__(**kwargs)
        self.forward = forward
        self.technical = technical

    def poke(self, context: Any) -> Any:
        states = _states(context)
        running = [t for t in self.technical if states.get(t) in IN_FLIGHT]
        if running:
            log.info("rollback waits for steps still running: %s", ", ".join(running))
            return False
        failed = why_rollback(states, self.forward)
        reasons = reasons_for(failed)
        log.info("rollback starts because: %s", "; ".join(reasons) or "a forward task failed")
        context["ti"].xcom_push(key="return_value", value={"failed": failed, "reasons": reasons})
        return True


def compensation_guard(forward_task_id: str, step_id: str) -> Callable[[Any], None]:
    """A pre_execute hook: undo ``step_id`` only if its forward task completed."""

    def guard(context: Any) -> None:
        state = _states(context).get(forward_task_id)
        if state != "success":
            raise AirflowSkipException(f"step {step_id} did not complete ({state}); nothing to undo")
        started = context["ti"].xcom_pull(task_ids="rollback.start") or {}
        log.info(
            "undoing step %s (%s) because: %s",
            step_id,
            forward_task_id,
            "; ".join(started.get("reasons", [])) or "rollback started",
        )

    return guard


def build_rollback_group(
    compiler: Compiler, forward: list[BaseOperator], steps: Mapping[str, BaseOperator]
) -> BaseOperator:
    runbook = compiler.runbook
    with TaskGroup(group_id="rollback", tooltip="Runs only when something failed"):
        start = RollbackStartSensor(
            task_id="start",
            forward=[t.task_id for t in forward],
            technical=[t.task_id for t in steps.values()],
            trigger_rule="one_failed",
        )
        forward >> start
        last: BaseOperator = start
        ordered = [s for _, s in runbook.steps()]
        for step in reversed(ordered):
            if step.rollback is None:
                continue
            undo = compiler.action_task(
                f"undo__{step.id}",
                step.rollback,
                step_id=step.id,
                owner=step.owner,
                timeout=step.rollback.timeout,
                retries=step.rollback.retries,
                pre_execute=compensation_guard(steps[step.id].task_id, step.id),
                trigger_rule="none_failed_min_one_success",
            )
            [start, last] >> undo
            last = undo
        for global_step in runbook.rollback.steps:
            task = compiler.action_task(
                global_step.id,
                global_step,
                step_id=global_step.id,
                owner=global_step.owner,
                timeout=global_step.timeout,
                retries=global_step.retries,
                trigger_rule="none_failed_min_one_success",
            )
            [start, last] >> task
            last = task
    return last


def decide_outcome(
    states: Mapping[str, str], forward: list[str], changing: list[str], rollback: list[str]
) -> str:
    """The run's one outcome, from task states. Pure, so it is tested without Airflow."""
    if not any(states.get(t) in FAILED_STATES for t in forward):
        return SUCCEEDED
    if any(states.get(t) in FAILED_STATES for t in rollback):
        return ROLLBACK_FAILED
    failed = why_rollback(states, forward)
    changed = any(states.get(t) == "success" for t in changing)
    if not changed and failed and all(t.startswith("gate__") for t in failed):
        return NOGO_BEFORE_START
    return ROLLED_BACK


def record_outcome(forward: list[str], changing: list[str], rollback: list[str], **context: Any) -> dict[str, Any]:
    states = _states(context)
    outcome = decide_outcome(states, forward, changing, rollback)
    started = context["ti"].xcom_pull(task_ids="rollback.start") or {}
    record = {
        "outcome": outcome,
        "failed": why_rollback(states, forward),
        "reasons": started.get("reasons", []),
        "undone": [t for t in rollback if states.get(t) == "success"],
        "not_undone": [t for t in rollback if states.get(t) in FAILED_STATES],
    }
    context["ti"].xcom_push(key="outcome", value=record)
    log.info("outcome: %s", outcome)
    if outcome != SUCCEEDED:
        raise AirflowFailException(f"outcome: {outcome}")
    return record


def outcome_task(compiler: Compiler, forward: list[BaseOperator], steps: Mapping[str, BaseOperator]) -> BaseOperator:
    runbook = compiler.runbook
    changing = [steps[s.id].task_id for p in runbook.phases if isinstance(p, Phase) for s in p.steps if not is_read_only(s)]
    rollback_ids = [
        *(f"rollback.undo__{s.id}" for _, s in runbook.steps() if s.rollback is not None),
        *(f"rollback.{g.id}" for g in runbook.rollback.steps),
    ]
    return PythonOperator(
        task_id="outcome",
        python_callable=record_outcome,
        op_kwargs={"forward": [t.task_id for t in forward], "changing": changing, "rollback": rollback_ids},
        trigger_rule="all_done",
    )
