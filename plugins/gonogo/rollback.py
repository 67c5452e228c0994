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
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, TaskGroup
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSkipException,
)

from gonogo.checks import is_read_only
from gonogo.inline import ActionRunner
from gonogo.model import Phase
from gonogo.operators import DONE, FAILED, run_states, with_comment
from gonogo.plan import StepRecord, plan_rollback

if TYPE_CHECKING:
    from airflow.sdk.bases.operator import BaseOperator

    from gonogo.compile import Compiler

log = logging.getLogger("gonogo")

FAILED_STATES = frozenset({"failed", "upstream_failed"})
IN_FLIGHT = frozenset(
    {
        "queued",
        "running",
        "scheduled",
        "up_for_retry",
        "up_for_reschedule",
        "deferred",
        "restarting",
    }
)
SUCCEEDED, NOGO_BEFORE_START, ROLLED_BACK, ROLLBACK_FAILED = (
    "succeeded",
    "nogo_before_start",
    "rolled_back",
    "rollback_failed",
)


def stop_if_failed() -> Callable[[Any], None]:
    """A pre_execute hook for forward tasks: start nothing new once something has failed."""

    def guard(context: Any) -> None:
        failed = [
            t
            for t, state in run_states(context).items()
            if state == "failed"
            and not t.startswith(("rollback.", "outcome", "release_lock"))
            and not t.endswith(".watch")
        ]
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
            what = (
                "a required check failed"
                if part == "checks"
                else (f"NOGO or no answer from role {part.split('__round_')[0]}")
            )
            reasons.append(f"gate {gate.removeprefix('gate__')}: {what}")
        else:
            reasons.append(f"step {task_id} failed")
    return reasons


def record_finish(context: Any, result: Any = None) -> None:
    """A post_execute hook on forward steps: when the step completed, for the rollback order."""
    context["ti"].xcom_push(key="finished_at", value=datetime.now(UTC).isoformat())


def in_flight(states: Mapping[str, str], steps: Sequence[tuple[str, str, bool]]) -> list[str]:
    """Forward steps still queued or running: rollback waits for them to finish."""
    return [task for _, task, _ in steps if states.get(task) in IN_FLIGHT]


def plan_now(
    context: Any, forward: list[str], steps: Sequence[tuple[str, str, bool]]
) -> dict[str, Any]:
    """The rollback plan from the run as it stands: why, and which steps to undo, newest first.

    Deterministic once forward work has stopped, so every task that needs it
    computes it and gets the same answer.
    """
    states = run_states(context)
    failed = why_rollback(states, forward)
    ti = context["ti"]
    records = []
    for position, (step_id, task_id, has_rollback) in enumerate(steps):
        state = states.get(task_id)
        finished = ti.xcom_pull(task_ids=task_id, key="finished_at") if state == "success" else None
        end = datetime.fromisoformat(finished) if finished else None
        records.append(StepRecord(step_id, str(state), end, has_rollback, position))
    plan = plan_rollback(records)
    return {
        "failed": failed,
        "reasons": reasons_for(failed),
        "compensate": plan.compensate,
        "not_undone": plan.not_undone,
    }


class RollbackStartSensor(BaseSensorOperator):
    """Starts rollback once forward steps already running have finished, and plans it.

    The plan (:func:`gonogo.plan.plan_rollback`) lists the completed steps to undo,
    newest first, from the time each step finished.
    """

    def __init__(
        self, *, forward: list[str], steps: list[tuple[str, str, bool]], **kwargs: Any
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 24 * 3600)
        # A re-queued reschedule can be failed by Airflow 3.3 when the worker's exit event
        # arrives late (see gonogo.answers); retrying the sensor is harmless.
        kwargs["retries"] = 3
        kwargs["retry_delay"] = timedelta(seconds=1)
        super().__init__(**kwargs)
        self.forward = forward
        self.steps = steps  # (step id, task id, has a rollback) in runbook order

    def poke(self, context: Any) -> Any:
        running = in_flight(run_states(context), self.steps)
        if running:
            log.info("rollback waits for steps still running: %s", ", ".join(running))
            return False
        plan = plan_now(context, self.forward, self.steps)
        log.info(
            "rollback starts because: %s", "; ".join(plan["reasons"]) or "a forward task failed"
        )
        log.info("undo, newest first: %s", ", ".join(plan["compensate"]) or "nothing")
        for step_id in plan["not_undone"]:
            log.info("not undone: %s: no rollback defined", step_id)
        context["ti"].xcom_push(key="return_value", value=plan)
        return True


class UndoSlot(ActionRunner, HITLOperator):
    """The n-th compensation of the rollback plan, whichever step that turns out to be.

    Which steps completed, and in which order, is known only when rollback starts,
    so the rollback group is a fixed chain of slots: ``undo_1`` undoes the newest
    completed step, ``undo_2`` the one before, and so on; slots beyond the plan
    are skipped. The chain runs one at a time with no waiting, and a failed slot
    stops everything after it. Each slot's log names the step it undoes and why
    rollback started. A manual undo becomes a request to the step's owner role.
    """

    template_fields: Sequence[str] = ()  # each action is rendered when its slot runs

    def __init__(
        self,
        *,
        position: int,
        actions: Mapping[str, Mapping[str, Any]],
        forward: list[str],
        steps: Sequence[tuple[str, str, bool]],
        **kwargs: Any,
    ) -> None:
        kwargs["retries"] = 0  # each action retries itself, as many times as its runbook says
        super().__init__(
            subject=f"Rollback: undo {position + 1}",
            options=[DONE, FAILED],
            params=with_comment(kwargs, "What you did; required when it failed"),
            **kwargs,
        )
        self.position = position
        self.actions = dict(actions)
        self.forward = forward
        self.steps = list(steps)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        if self.position == 0:
            # The first slot follows the failure directly (no extra scheduling hop), so it
            # is the one that waits, in place, for steps already running to finish.
            while running := in_flight(run_states(context), self.steps):
                log.info("rollback waits for steps still running: %s", ", ".join(running))
                time.sleep(1)
        plan = plan_now(context, self.forward, self.steps)
        order = plan["compensate"]
        if self.position >= len(order):
            if self.position == 0:
                log.info("rollback: nothing to undo; %s", "; ".join(plan["reasons"]))
                return None  # succeeds, so the global rollback steps still run
            raise AirflowSkipException(
                f"nothing more to undo: the plan has {len(order)} compensation(s)"
            )
        step_id = order[self.position]
        action = self.actions[step_id]
        ti.xcom_push(key="step", value=step_id)
        log.info(
            "undo %d of %d: undoing step %s (%s) because: %s",
            self.position + 1,
            len(order),
            step_id,
            action["task_id"],
            "; ".join(plan.get("reasons", [])) or "rollback started",
        )
        if action["kind"] == "manual":
            self.subject = f"Rollback: undo {step_id}"
            self.body = str(self.render_template(action["manual"], context))
            self.assigned_users = [{"id": u, "name": u} for u in action["users"]]
            return super().execute(context)
        try:
            return self.run_action(action, context)
        except Exception as exc:
            raise AirflowFailException(f"undoing {step_id} failed: {exc}") from exc

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("error_type") == "timeout":
            raise AirflowFailException("the manual undo was not confirmed in time")
        super().execute_complete(context, event)
        who = (event.get("responded_by_user") or {}).get("name", "?")
        comment = (event.get("params_input") or {}).get("comment") or ""
        if event["chosen_options"][0] == FAILED:
            raise AirflowFailException(f"{who} reported the manual undo failed: {comment}")
        log.info("%s confirmed the manual undo: %s", who, comment)
        return None


def build_rollback_group(
    compiler: Compiler, forward: list[BaseOperator], steps: Mapping[str, BaseOperator]
) -> list[BaseOperator]:
    """The rollback TaskGroup; returns all its tasks."""
    runbook = compiler.runbook
    with TaskGroup(group_id="rollback", tooltip="Runs only when something failed"):
        start = RollbackStartSensor(
            task_id="start",
            forward=[t.task_id for t in forward],
            steps=[(s.id, steps[s.id].task_id, s.rollback is not None) for _, s in runbook.steps()],
            trigger_rule="one_failed",
        )
        forward >> start
        tasks: list[BaseOperator] = [start]
        actions = {
            step.id: {
                **compiler.action_spec(step.id, step.rollback, step.owner),
                "task_id": steps[step.id].task_id,
            }
            for _, step in runbook.steps()
            if step.rollback is not None
        }
        step_specs = [
            (s.id, steps[s.id].task_id, s.rollback is not None) for _, s in runbook.steps()
        ]
        previous: BaseOperator | None = None
        approvals = approval_tasks(compiler)
        if approvals:
            start >> approvals
            tasks += approvals
            previous = approvals[-1] if len(approvals) == 1 else _join(approvals)
            if previous not in tasks:
                tasks.append(previous)
        for position in range(len(actions)):
            first = previous is None
            slot = UndoSlot(
                task_id=f"undo_{position + 1}",
                position=position,
                actions=actions,
                forward=[t.task_id for t in forward],
                steps=step_specs,
                # Without approvals the first undo follows the failure itself: one hop, not two.
                trigger_rule="one_failed" if first else "all_success",
                doc_md=f"Undoes the {_ordinal(position + 1)} newest completed step, when rollback runs.",
            )
            if previous is None:
                forward >> slot
            else:
                previous >> slot
            tasks.append(slot)
            previous = slot
        before = [start, previous] if previous is not None else [start]
        for global_step in runbook.rollback.steps:
            task = compiler.action_task(
                global_step.id,
                global_step,
                step_id=global_step.id,
                owner=global_step.owner,
                timeout=global_step.timeout,
                retries=global_step.retries,
                in_window=False,
                trigger_rule="none_failed_min_one_success",
            )
            before >> task
            tasks.append(task)
            before = [task]
    return tasks


class RollbackApprovalOperator(HITLOperator):
    """``rollback.approve``: one role's GO before rollback starts. No answer in time is GO."""

    def __init__(self, *, role: str, users: Sequence[str], **kwargs: Any) -> None:
        kwargs["retries"] = 0
        super().__init__(
            subject=f"Rollback is due: GO from {role}",
            body="A step failed or a gate said NOGO. Rollback undoes the completed steps once "
            "every approving role says GO. No answer in time rolls back anyway: leaving a "
            "half-changed system is worse.",
            options=["GO"],
            defaults=["GO"],
            params=with_comment(kwargs, "Anything the rollback team should know"),
            assigned_users=[{"id": u, "name": u} for u in users],
            **kwargs,
        )
        self.role = role

    def execute(self, context: Any) -> Any:
        plan = context["ti"].xcom_pull(task_ids="rollback.start") or {}
        self.body = f"Why: {'; '.join(plan.get('reasons', [])) or 'a forward task failed'}.\n\n" + (
            self.body or ""
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        who = (event.get("responded_by_user") or {}).get("name")
        log.info("rollback approved for %s by %s", self.role, who or "nobody in time (timeout)")
        return result


def approval_tasks(compiler: Compiler) -> list[BaseOperator]:
    from gonogo.compile import DEFAULT_DECIDE_TIMEOUT

    runbook = compiler.runbook
    return [
        RollbackApprovalOperator(
            task_id=f"approve__{role}",
            role=role,
            users=runbook.roles[role].users,
            response_timeout=runbook.rollback.timeout or DEFAULT_DECIDE_TIMEOUT,
        )
        for role in runbook.rollback.approve
    ]


def _join(tasks: list[BaseOperator]) -> BaseOperator:
    from airflow.providers.standard.operators.empty import EmptyOperator

    join = EmptyOperator(task_id="approved")
    tasks >> join
    return join


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


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


def rollback_record(
    states: Mapping[str, str], plan: Mapping[str, Any], global_ids: list[str]
) -> dict[str, list[str]]:
    """Exactly what was undone and what was not, from the plan and the task states. Pure.

    The n-th step of the plan is undone by slot ``rollback.undo_<n>``.
    """
    compensate = list(plan.get("compensate", []))
    slot = {step: states.get(f"rollback.undo_{n}") for n, step in enumerate(compensate, start=1)}
    record: dict[str, list[str]] = {
        "undone": [s for s in compensate if slot[s] == "success"],
        "undo_failed": [s for s in compensate if slot[s] == "failed"],
        "not_run": [s for s in compensate if slot[s] not in {"success", "failed"}],
        "no_rollback_defined": list(plan.get("not_undone", [])),
        "global_done": [g for g in global_ids if states.get(f"rollback.{g}") == "success"],
        "global_not_done": [g for g in global_ids if states.get(f"rollback.{g}") != "success"],
    }
    return record


def record_outcome(
    forward: list[str],
    changing: list[str],
    rollback: list[str],
    global_ids: list[str],
    **context: Any,
) -> dict[str, Any]:
    states = run_states(context)
    outcome = decide_outcome(states, forward, changing, rollback)
    started = context["ti"].xcom_pull(task_ids="rollback.start") or {}
    record: dict[str, Any] = {
        "outcome": outcome,
        "failed": why_rollback(states, forward),
        "reasons": started.get("reasons", []),
    }
    if started:
        detail = rollback_record(states, started, global_ids)
        record.update(detail)
        record["not_undone"] = [
            *(f"{s}: no rollback defined" for s in detail["no_rollback_defined"]),
            *(f"{s}: undo failed" for s in detail["undo_failed"]),
            *(f"{s}: not run, rollback stopped" for s in detail["not_run"]),
        ]
        for line in record["not_undone"]:
            log.info("not undone: %s", line)
    context["ti"].xcom_push(key="outcome", value=record)
    if outcome == ROLLBACK_FAILED:
        context["ti"].xcom_push(
            key="events", value=[{"event": "rollback_failed", "outcome": outcome}]
        )
        log.error("rollback_failed: the change is only partly undone; see the record")
    log.info("outcome: %s", outcome)
    if outcome != SUCCEEDED:
        raise AirflowFailException(f"outcome: {outcome}")
    return record


def outcome_task(
    compiler: Compiler, forward: list[BaseOperator], steps: Mapping[str, BaseOperator]
) -> BaseOperator:
    runbook = compiler.runbook
    changing = [
        steps[s.id].task_id
        for p in runbook.phases
        if isinstance(p, Phase)
        for s in p.steps
        if not is_read_only(s)
    ]
    slots = sum(1 for _, s in runbook.steps() if s.rollback is not None)
    rollback_ids = [
        *(f"rollback.undo_{n}" for n in range(1, slots + 1)),
        *(f"rollback.{g.id}" for g in runbook.rollback.steps),
    ]
    return PythonOperator(
        task_id="outcome",
        python_callable=record_outcome,
        op_kwargs={
            "forward": [t.task_id for t in forward],
            "changing": changing,
            "rollback": rollback_ids,
            "global_ids": [g.id for g in runbook.rollback.steps],
        },
        trigger_rule="all_done",
    )
