"""The rollback TaskGroup and the run's outcome.

``rollback.start`` fires as soon as a forward task fails (trigger rule
one_failed). Forward tasks check before they start, so nothing new starts once
something failed; ``rollback.start`` waits, rescheduled and holding no worker
slot, until steps already running in parallel have finished, then computes the
plan once (:func:`gonogo.core.runs.rollback.plan_from_states`) and pushes it as the
``plan`` XCom. In a good run it is skipped, and so is everything after it.

The compensations are a fixed chain of slots, ``undo_1`` (the newest completed
step) to ``undo_<n>``: which step each slot undoes is known only when rollback
starts, so each slot reads the plan and runs its entry; slots beyond the plan
skip themselves, and a failed slot stops the chain. To react in one scheduling
hop, ``undo_1`` follows the failure itself rather than ``rollback.start``; when
the plan is not there yet it waits for it, rescheduled, for as long as
``rollback.start`` may. With ``rollback.approve`` the chain waits for every
approving role instead. Global rollback steps come last.

``outcome`` names the run's single result and fails the run unless it is
``succeeded``, so Airflow's own run state stays truthful.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
)

from gonogo.core import naming
from gonogo.core.runbook.model import Runbook
from gonogo.core.runbook.rules import is_read_only
from gonogo.core.runs import rollback as plan
from gonogo.core.runs import states
from gonogo.core.runs.records import Answer
from gonogo.core.settings import DEFAULT_DECIDE_TIMEOUT, ROLLBACK_WAIT
from gonogo.dag.actions import ActionRunner, Actions, rehearse_instead
from gonogo.dag.approval import LedgerEdited, Plan, approval_of, record_success
from gonogo.dag.gates import verify_gates
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.hooks import Hook
from gonogo.dag.journal import (
    ENDED,
    REASK_DELAY,
    RESERVED_TRIES,
    Interruptible,
    clear_mark,
    done_before,
    earlier_mark,
    record_done,
    run_marked,
)
from gonogo.dag.notify import tell
from gonogo.dag.preflight import role_users
from gonogo.dag.states import is_rehearsal, run_states
from gonogo.errors import RollbackError

log = logging.getLogger(__name__)

#: How long the first undo slot looks for the plan in place before it reschedules itself.
PLAN_GRACE_SECONDS = 10.0
PLAN_POLL_SECONDS = 0.25
RESCHEDULE_SECONDS = 5


def stop_if_failed() -> Hook:
    """A pre_execute hook for forward tasks: start nothing new once something has failed."""

    def guard(context: Any) -> None:
        if resuming(context):
            return  # a person answered a request this task opened: the answer must count
        failed = [
            task
            for task, state in run_states(context).items()
            if state == states.FAILED
            and not naming.is_rollback_task(task)
            and task not in (naming.OUTCOME_TASK, naming.RELEASE_TASK)
            and not task.endswith(f".{naming.WATCH}")
        ]
        if failed:
            raise AirflowSkipException(
                f"not started: {', '.join(failed)} failed and rollback takes over"
            )

    return guard


def resuming(context: Any) -> bool:
    """Whether the task is resuming after a person answered its request (not starting anew).

    Airflow runs pre_execute hooks on resume too. A manual step confirmed Done after
    something else failed has changed the system: skipping it there would lose that,
    so rollback waits for it and undoes it instead.
    """
    server = getattr(context.get("ti"), "_ti_context_from_server", None)
    return bool(getattr(server, "next_method", None))


def earlier_steps_finished(task_ids: Sequence[str]) -> Hook:
    """A pre_execute hook for forward steps: the steps just before finished in a try of their own.

    A step marked success or skipped past the API leaves no finish record, so the
    step after it fails here and rollback starts, instead of building on work
    nobody saw done. Each step checks the steps right before it; the outcome
    checks them all.
    """
    wanted = list(task_ids)

    def hook(context: Any) -> None:
        if not wanted or resuming(context):
            return
        ti = context["ti"]
        missing = [t for t in wanted if not ti.xcom_pull(task_ids=t, key=naming.XCOM_FINISHED_AT)]
        if missing:
            raise AirflowFailException(
                f"not started: {', '.join(missing)} has no record of a try that finished "
                "(skipped or marked by hand); rollback takes over"
            )

    return hook


def record_finish(context: Any) -> None:
    """A hook run after on forward steps: when the step completed, for the rollback order."""
    context["ti"].xcom_push(key=naming.XCOM_FINISHED_AT, value=datetime.now(UTC).isoformat())


def forward_steps(runbook: Runbook) -> list[plan.ForwardStep]:
    return [
        plan.ForwardStep(s.id, naming.step_task(p.id, s.id), s.rollback is not None)
        for p, s in runbook.steps()
    ]


class RollbackStartSensor(BaseSensorOperator):
    """Waits for forward steps still running, then plans the rollback once and records why."""

    def __init__(
        self, *, forward: list[str], steps: Sequence[plan.ForwardStep], **kwargs: Any
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", RESCHEDULE_SECONDS)
        kwargs.setdefault("timeout", ROLLBACK_WAIT.total_seconds())
        # A re-queued reschedule can be failed by Airflow 3.3 when the worker's exit event
        # arrives late (see gonogo.server.middleware); retrying the sensor is harmless.
        kwargs["retries"] = 3
        kwargs["retry_delay"] = timedelta(seconds=1)
        super().__init__(**kwargs)
        self.forward = forward
        self.steps = list(steps)

    def poke(self, context: Any) -> Any:
        task_states = run_states(context)
        running = plan.in_flight(task_states, self.steps)
        if running:
            log.info(
                "rollback waits for steps still running or waiting for a person's answer: %s",
                ", ".join(f"{t} ({task_states.get(t)})" for t in running),
            )
            return False
        ti = context["ti"]
        finished = {}
        for step in self.steps:
            if task_states.get(step.task_id) == states.SUCCESS:
                at = ti.xcom_pull(task_ids=step.task_id, key=naming.XCOM_FINISHED_AT)
                finished[step.task_id] = datetime.fromisoformat(at) if at else None
        refusals = {
            t: str(said)
            for t in (naming.PREFLIGHT_TASK, naming.BEGIN_TASK)
            if task_states.get(t) == states.FAILED
            and (said := ti.xcom_pull(task_ids=t, key=naming.XCOM_REFUSAL))
        }
        the_plan = plan.plan_from_states(task_states, finished, self.forward, self.steps, refusals)
        log.info(
            "rollback starts because: %s",
            "; ".join(the_plan["reasons"]) or "a forward task failed",
        )
        log.info("undo, newest first: %s", ", ".join(the_plan["compensate"]) or "nothing")
        for step_id in the_plan["not_undone"]:
            log.info("not undone: %s: no rollback defined", step_id)
        ti.xcom_push(key=naming.XCOM_PLAN, value=the_plan)
        tell(context, "rollback_started", "", **the_plan)
        return True


def read_plan(context: Any) -> dict[str, Any] | None:
    """The plan rollback.start recorded, or None while it has not yet."""
    found = context["ti"].xcom_pull(task_ids=naming.ROLLBACK_START, key=naming.XCOM_PLAN)
    return found if isinstance(found, dict) else None


class UndoFailed(AirflowFailException, RollbackError):
    """A compensation failed. Final: an undo slot's one Airflow retry is kept for a crash."""


class UndoSlot(Interruptible, ActionRunner, Request):
    """The n-th compensation of the rollback plan, whichever step that turns out to be.

    A manual undo becomes a request to the step's owner role. A technical undo
    cut off by a crash is not run again blindly: the next try asks the deciding
    roles whether it completed (:mod:`gonogo.dag.journal`).
    """

    template_fields: Sequence[str] = ()  # each action is rendered when its slot runs
    interrupted_options = (naming.RETRY, naming.DONE, naming.FAILED)
    interrupted_reason_for = (naming.DONE, naming.FAILED)
    interrupted_choices = (
        "- **Retry** runs the undo again.\n"
        "- **Done**: the undo completed; say what you checked.\n"
        "- **Failed**: it did not; rollback stops here and the run ends rollback_failed."
    )

    def __init__(
        self,
        *,
        position: int,
        actions: Mapping[str, Mapping[str, Any]],
        deciders: Sequence[str] = (),
        decide_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        # One retry, kept for a try a crash cuts off; every failure below is final.
        kwargs["retries"] = RESERVED_TRIES
        kwargs.setdefault("retry_delay", REASK_DELAY)
        super().__init__(
            subject=f"Rollback: undo {position + 1}",
            options=[naming.DONE, naming.FAILED],
            **self._request(kwargs, "What you did; required when it failed", [naming.FAILED]),
        )
        self.position = position
        self.actions = dict(actions)
        self.deciders = list(deciders)
        self.decide_timeout = decide_timeout

    def _plan(self, context: Any) -> dict[str, Any]:
        """The plan; the first slot, which runs beside rollback.start, waits for it."""
        deadline = time.monotonic() + (PLAN_GRACE_SECONDS if self.position == 0 else 0)
        while True:
            found = read_plan(context)
            if found is not None:
                return found
            start = run_states(context).get(naming.ROLLBACK_START)
            if start in states.FAILED_STATES:
                raise AirflowFailException("rollback.start failed: there is no plan to follow")
            if start == states.SKIPPED:
                raise AirflowSkipException("rollback did not start")
            if time.monotonic() >= deadline:
                break
            time.sleep(PLAN_POLL_SECONDS)
        log.info("rollback.start has not planned yet; looking again in %ss", RESCHEDULE_SECONDS)
        again = datetime.now(UTC) + timedelta(seconds=RESCHEDULE_SECONDS)
        raise AirflowRescheduleException(again)  # type: ignore[no-untyped-call]

    def execute(self, context: Any) -> Any:
        the_plan = self._plan(context)
        order = the_plan.get("compensate", [])
        reasons = "; ".join(the_plan.get("reasons", [])) or "rollback started"
        if self.position >= len(order):
            if self.position == 0:
                log.info("rollback: nothing to undo; %s", reasons)
                return None  # succeeds, so the global rollback steps still run
            raise AirflowSkipException(
                f"nothing more to undo: the plan has {len(order)} compensation(s)"
            )
        step_id = order[self.position]
        action = self.actions[step_id]
        self.what = f"the undo of {step_id}"
        context["ti"].xcom_push(key=naming.XCOM_UNDONE_STEP, value=step_id)
        log.info(
            "undo %d of %d: undoing step %s (%s) because: %s",
            self.position + 1,
            len(order),
            step_id,
            action["task_id"],
            reasons,
        )
        if is_rehearsal(context):
            log.info("rehearsal: undo %s (%s) is not run", step_id, action["kind"])
            return None
        if action["kind"] == "manual":
            self.subject = f"Rollback: undo {step_id}"
            self.body = str(self.render_template(action["manual"], context))
            self.assigned_users = assignees(action["users"])
            return super().execute(context)
        mark = earlier_mark(context)
        if mark is not None:
            self.ask_after_interruption(context, mark)
        return self._undo(context, step_id, action)

    def _undo(self, context: Any, step_id: str, action: Mapping[str, Any]) -> Any:
        earlier = done_before(context)
        if earlier is not None:  # the task was cleared after its undo ended: never twice
            log.warning(
                "%s already ran in this run (try %s, %s, %s): it is not run again",
                self.what,
                earlier.get("try"),
                earlier.get("at"),
                earlier.get("result"),
            )
            if earlier.get("result") != "ok":
                raise UndoFailed(f"undoing {step_id} failed earlier in this run: not run again")
            return None
        try:
            result = run_marked(context, self.what, lambda: self.run_action(action, context))
        except ENDED as exc:
            record_done(context, step=step_id, result="failed")
            raise UndoFailed(f"undoing {step_id} failed: {exc}") from exc
        record_done(context, step=step_id, result="ok")
        return result

    def resume_after_interruption(self, context: Any, event: dict[str, Any]) -> Any:
        self.what = f"the undo of {self._step(context)}"
        return super().resume_after_interruption(context, event)

    def _step(self, context: Any) -> str:
        return str(self._plan(context)["compensate"][self.position])

    def run_again(self, context: Any) -> Any:
        step_id = self._step(context)
        return self._undo(context, step_id, self.actions[step_id])

    def decided_after_interruption(self, context: Any, given: Answer) -> Any:
        if given.option == naming.RETRY:
            log.info("%s runs again, as %s decided", self.what, given.by)
            return self.run_again(context)
        clear_mark(context)
        if given.timed_out:
            raise UndoFailed(f"nobody said in time whether {self.what} completed")
        if given.option == naming.FAILED:
            raise UndoFailed(f"{given.by} reported {self.what} failed: {given.comment}")
        if not given.comment:
            raise UndoFailed("Done needs a comment: what was checked")
        log.info("%s confirmed %s completed: %s", given.by, self.what, given.comment)
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise UndoFailed("the manual undo was not confirmed in time")
        if given.option == naming.FAILED:
            raise UndoFailed(f"{given.by} reported the manual undo failed: {given.comment}")
        log.info("%s confirmed the manual undo: %s", given.by, given.comment)
        return None


class RollbackApprovalOperator(Request):
    """``rollback.approve``: one role's GO before rollback starts. No answer in time is GO."""

    event = "decision_needed"

    def __init__(self, *, role: str, users: Sequence[str], **kwargs: Any) -> None:
        super().__init__(
            subject=f"Rollback is due: GO from {role}",
            body="A step failed or a gate said NOGO. Rollback undoes the completed steps once "
            "every approving role says GO. No answer in time rolls back anyway: leaving a "
            "half-changed system is worse.",
            options=[naming.GO],
            defaults=[naming.GO],
            assigned_users=assignees(users),
            **self._request(kwargs, "Anything the rollback team should know"),
        )
        self.role = role

    def execute(self, context: Any) -> Any:
        found = read_plan(context) or {}
        why = "; ".join(found.get("reasons", [])) or "a forward task failed"
        self.body = f"Why: {why}.\n\n" + (self.body or "")
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        log.info(
            "rollback approved for %s by %s", self.role, given.by or "nobody in time (timeout)"
        )
        return {"chosen_options": [naming.GO], "by": given.by, "comment": given.comment}


def build_rollback_group(
    actions: Actions, forward: list[BaseOperator], steps: Mapping[str, BaseOperator]
) -> list[BaseOperator]:
    """The rollback TaskGroup; returns all its tasks."""
    runbook = actions.runbook
    forward_ids = [t.task_id for t in forward]
    with TaskGroup(group_id=naming.ROLLBACK_GROUP, tooltip="Runs only when something failed"):
        start = RollbackStartSensor(
            task_id="start",
            forward=forward_ids,
            steps=forward_steps(runbook),
            trigger_rule="one_failed",
        )
        forward >> start
        tasks: list[BaseOperator] = [start]
        undo_actions = {
            step.id: {
                **actions.spec(step.id, step.rollback, step.owner),
                "task_id": steps[step.id].task_id,
            }
            for _, step in runbook.steps()
            if step.rollback is not None
        }
        previous: BaseOperator | None = None
        approvals = [
            RollbackApprovalOperator(
                task_id=naming.approval_task(role),
                role=role,
                users=actions.users(role),
                response_timeout=runbook.rollback.timeout or DEFAULT_DECIDE_TIMEOUT,
            )
            for role in runbook.rollback.approve
        ]
        if approvals:
            start >> approvals
            tasks += approvals
            previous = approvals[0] if len(approvals) == 1 else _join(approvals)
            if previous not in tasks:
                tasks.append(previous)
        for position in range(len(undo_actions)):
            slot = UndoSlot(
                task_id=naming.undo_slot(position + 1),
                position=position,
                actions=undo_actions,
                # Without approvals the first undo follows the failure itself: one hop, not two.
                trigger_rule="one_failed" if previous is None else "all_success",
                deciders=actions.deciders,
                decide_timeout=actions.decide_timeout,
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
            task = actions.operator(
                global_step.id,
                global_step,
                step_id=global_step.id,
                owner=global_step.owner,
                timeout=global_step.timeout,
                retries=global_step.retries,
                in_window=False,
                before=rehearse_instead(None, global_step.id),
                trigger_rule="none_failed_min_one_success",
            )
            before >> task
            tasks.append(task)
            before = [task]
    return tasks


def _join(tasks: Sequence[BaseOperator]) -> BaseOperator:
    from airflow.providers.standard.operators.empty import EmptyOperator

    join = EmptyOperator(task_id=naming.APPROVED_JOIN)
    list(tasks) >> join
    return join


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


# -- outcome -----------------------------------------------------------------------------------


def plan_record(context: Any, runbook: Runbook, the_plan: Plan, outcome: str) -> dict[str, Any]:
    """The outcome's plan facts: fingerprint, rehearsal, approval; a success is remembered."""
    found = context["ti"].xcom_pull(task_ids=naming.PREFLIGHT_TASK) or {}
    if not found.get("fingerprint"):
        return {}  # refused before start: the preflight said why
    record: dict[str, Any] = {"fingerprint": found["fingerprint"]}
    if found.get("rehearsal"):
        record["rehearsal"] = True
        return record
    if found.get("retrospective"):
        try:
            approved = approval_of(context, runbook.runbook, the_plan.fingerprint())
        except LedgerEdited as exc:  # the outcome still stands; the CAB must look
            log.error("the approvals ledger does not verify: %s", exc)
            approved = None
        record["retrospective_approval"] = "given" if approved else "required"
        if not approved:
            log.warning("emergency change: retrospective approval by the CAB is required")
    if outcome == plan.SUCCEEDED:
        record_success(context, runbook, the_plan.fingerprint())
    return record


def record_outcome(
    forward: list[str],
    changing: list[str],
    rollback: list[str],
    global_ids: list[str],
    runbook: Runbook | None = None,
    the_plan: Plan | None = None,
    step_ids: Sequence[str] = (),
    gates_go: Hook | None = None,
    **context: Any,
) -> dict[str, Any]:
    earlier = done_before(context)
    if earlier is not None:  # cleared after the outcome was decided: nothing is done twice
        decided = dict(earlier.get("record") or {})
        log.warning(
            "the outcome of this run was decided at %s (try %s): %s; nothing is recorded, "
            "promoted, closed or sent again",
            earlier.get("at"),
            earlier.get("try"),
            decided.get("outcome"),
        )
        context["ti"].xcom_push(key=naming.XCOM_OUTCOME, value=decided)
        if decided.get("outcome") != plan.SUCCEEDED:
            raise AirflowFailException(f"outcome: {decided.get('outcome')}")
        return decided
    task_states = run_states(context)
    outcome = plan.decide_outcome(task_states, forward, changing, rollback)
    unrecorded: list[str] = []
    if outcome == plan.SUCCEEDED:
        unrecorded = _unrecorded(context, step_ids, gates_go)
        outcome = plan.decide_outcome(task_states, forward, changing, rollback, unrecorded)
        for line in unrecorded:
            log.error("no record of a real run: %s", line)
    started = context["ti"].xcom_pull(task_ids=naming.ROLLBACK_START, key=naming.XCOM_PLAN) or {}
    record: dict[str, Any] = {
        "outcome": outcome,
        "failed": plan.why_rollback(task_states, forward),
        "reasons": started.get("reasons", []) or unrecorded,
    }
    if started:
        detail = plan.rollback_record(task_states, started, global_ids)
        record.update(detail)
        record["not_undone"] = plan.not_undone_lines(detail)
        for line in record["not_undone"]:
            log.info("not undone: %s", line)
    if runbook is not None and the_plan is not None:
        record.update(plan_record(context, runbook, the_plan, outcome))
    context["ti"].xcom_push(key=naming.XCOM_OUTCOME, value=record)
    record_done(context, record=record)
    if outcome == plan.ROLLBACK_FAILED:
        context["ti"].xcom_push(
            key=naming.XCOM_EVENTS, value=[{"event": "rollback_failed", "outcome": outcome}]
        )
        log.error("rollback_failed: the change is only partly undone; see the record")
        tell(context, "rollback_failed", "", **record)
    tell(context, "run_finished", "", **record)
    log.info("outcome: %s", outcome)
    if outcome != plan.SUCCEEDED:
        raise AirflowFailException(f"outcome: {outcome}")
    return record


def _unrecorded(context: Any, step_ids: Sequence[str], gates_go: Hook | None) -> list[str]:
    """Steps with no finish record from their own try, and gates with no GO record."""
    ti = context["ti"]
    missing = [
        f"step {t}: no record of a try that finished (skipped or marked by hand)"
        for t in step_ids
        if not ti.xcom_pull(task_ids=t, key=naming.XCOM_FINISHED_AT)
    ]
    if gates_go is not None:
        try:
            gates_go(context)
        except AirflowFailException as exc:
            missing.append(str(exc).removeprefix("not started: "))
    return missing


def outcome_task(
    runbook: Runbook,
    forward: list[BaseOperator],
    steps: Mapping[str, BaseOperator],
    the_plan: Plan | None = None,
) -> BaseOperator:
    changing = [steps[s.id].task_id for _, s in runbook.steps() if not is_read_only(s)]
    slots = sum(1 for _, s in runbook.steps() if s.rollback is not None)
    rollback_ids = [
        *(naming.undo_slot_task(n) for n in range(1, slots + 1)),
        *(naming.rollback_task(g.id) for g in runbook.rollback.steps),
    ]
    return PythonOperator(
        task_id=naming.OUTCOME_TASK,
        python_callable=partial(
            record_outcome,
            runbook=runbook,
            the_plan=the_plan,
            step_ids=[steps[s.id].task_id for _, s in runbook.steps()],
            gates_go=verify_gates(runbook.gates, role_users(runbook)) if runbook.gates else None,
        ),
        op_kwargs={
            "forward": [t.task_id for t in forward],
            "changing": changing,
            "rollback": rollback_ids,
            "global_ids": [g.id for g in runbook.rollback.steps],
        },
        trigger_rule="all_done",
    )
