"""A validated runbook to an Airflow DAG.

The shape of every DAG (task ids from :mod:`gonogo.core.naming`)::

    before_start -> [wait_for_window] -> [gate__freeze_exception] -> acquire_lock
        -> phase groups and gate groups, in runbook order
        -> rollback.start / rollback.undo_<n> (newest first) -> rollback.<global steps>
        -> release_lock -> outcome

Forward steps are built by the action registry (:mod:`gonogo.dag.actions`):
BashOperator for bash, PythonOperator for http and python, a HITL request for
manual steps; in ``rollback.mode: decide`` a technical step is a guided step
that asks what to do when it fails. Gates are built by :mod:`gonogo.dag.gates`
and the rollback group by :mod:`gonogo.dag.rollback`; in a good run every task
in that group is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, TaskGroup
from airflow.sdk.bases.operator import BaseOperator

from gonogo.core import naming
from gonogo.core.documents.outline import render_outline
from gonogo.core.earlylife.names import early_life_dag
from gonogo.core.runbook.graph import phase_leaves, phase_upstreams
from gonogo.core.runbook.model import Gate, Phase, Runbook, Step
from gonogo.core.runbook.shell import shquote
from gonogo.core.settings import LOCK_POOL
from gonogo.dag.actions import Actions, chain, rehearse_instead, step_doc
from gonogo.dag.approval import (
    Plan,
    build_approval_dag,
    needs_approval_dag,
    plan_check,
    unchanged,
)
from gonogo.dag.calendar import calendar_check, freeze_gate, freeze_granted, needs_freeze_gate
from gonogo.dag.clock import hold_for_start, planned_start_param
from gonogo.dag.earlylife import build_early_life_dag, go_live_task
from gonogo.dag.forecast import forecast_task
from gonogo.dag.gates import build_gate, verify_gates
from gonogo.dag.guided import GuidedStepOperator
from gonogo.dag.hooks import Hook, hooked
from gonogo.dag.incident import rollback_incident_group
from gonogo.dag.lock import AcquireLockSensor, release_lock
from gonogo.dag.notify import attach, begin_task, step_failed
from gonogo.dag.preflight import preflight_task, role_users
from gonogo.dag.rollback import (
    build_rollback_group,
    earlier_steps_finished,
    outcome_task,
    record_finish,
    stop_if_failed,
)
from gonogo.dag.window import wait_for_window


def dag_params(runbook: Runbook) -> dict[str, Param]:
    """The trigger form: one Airflow Param per runbook param."""
    params = {}
    for name, spec in runbook.params.items():
        schema = spec.model_dump(exclude_none=True, exclude={"default"})
        params[name] = Param(spec.default, **schema)
    params[naming.PLANNED_START_PARAM] = planned_start_param(runbook.window)
    params[naming.REHEARSAL_PARAM] = Param(
        False,
        type="boolean",
        title="Rehearsal",
        description="Run each step's rehearse action (e.g. a dry run) instead of the step; "
        "gates are real, undos are only logged, and the run never counts for promotion",
    )
    return params


class DagBuilder:
    """Builds one DAG from one runbook."""

    def __init__(self, runbook: Runbook, runbooks_dir: Path) -> None:
        self.runbook = runbook
        self.runbooks_dir = runbooks_dir
        self.actions = Actions(runbook, runbooks_dir)
        self.plan = Plan(runbook, runbooks_dir)
        # Forward work starts only while nothing has failed (once rollback is due, nothing new
        # starts) and while the runbook and its files are what the preflight fingerprinted;
        # an emergency change in a freeze, only once the exception was granted.
        self.start_guard = chain(stop_if_failed(), unchanged(self.plan))
        self.forward_guard = (
            chain(self.start_guard, freeze_granted())
            if needs_freeze_gate(runbook)
            else self.start_guard
        )
        self.gates_passed: list[Gate] = []
        self.last_steps: list[str] = []  # the task ids of the previous phase's last steps

    def preflight_check(self) -> Callable[[Any], dict[str, Any]]:
        """What before_start checks after the trigger: the plan's policy, then the calendar."""
        plan = plan_check(self.runbook, self.plan)
        calendar = calendar_check(self.runbook, self.runbooks_dir)

        def check(context: Any) -> dict[str, Any]:
            return {**plan(context), **calendar(context)}

        return check

    def step_guard(self) -> Hook:
        """What a forward step checks before it starts: nothing failed, and earlier gates are GO."""
        if not self.gates_passed:
            return self.forward_guard
        verify = verify_gates(list(self.gates_passed), role_users(self.runbook))
        return chain(self.forward_guard, verify)

    def step(self, step: Step, before: Sequence[str]) -> BaseOperator:
        """A forward step's task; ``before``: the task ids of the steps right before it."""
        rehearse = self.actions.spec(step.id, step.rehearse, step.owner) if step.rehearse else None
        guard = chain(
            self.step_guard(), earlier_steps_finished(before), rehearse_instead(rehearse, step.id)
        )
        if self.runbook.rollback.mode == "decide" and step.manual is None:
            guided = GuidedStepOperator(
                task_id=step.id,
                step_id=step.id,
                action={**self.actions.spec(step.id, step, step.owner), "retries": step.retries},
                deciders=self.actions.deciders,
                decide_timeout=self.actions.decide_timeout,
                execution_timeout=step.timeout,
                on_failure_callback=step_failed,
                doc_md=step_doc(step.id, step.owner),
            )
            return hooked(guided, self.actions.hooks(guard, in_window=True), record_finish)
        return self.actions.operator(
            step.id,
            step,
            step_id=step.id,
            owner=step.owner,
            title=step.title,
            timeout=step.timeout,
            retries=step.retries,
            retry_delay=step.retry_delay,
            before=guard,
            after=record_finish,
            on_failure_callback=step_failed,
        )

    def phase(
        self, phase: Phase
    ) -> tuple[list[BaseOperator], list[BaseOperator], dict[str, BaseOperator]]:
        """The phase's TaskGroup: its entry tasks, exit tasks, and every step's task by id."""
        tasks: dict[str, BaseOperator] = {}
        upstreams = phase_upstreams(phase)
        with TaskGroup(group_id=phase.id, tooltip=phase.title or phase.id):
            for step in phase.steps:
                ups = upstreams[step.id]
                before = [f"{phase.id}.{u}" for u in ups] if ups else self.last_steps
                tasks[step.id] = self.step(step, before)
        for step_id, ups in upstreams.items():
            for up in ups:
                tasks[up] >> tasks[step_id]
        entries = [tasks[s] for s, ups in upstreams.items() if not ups]
        exits = [tasks[s] for s in phase_leaves(phase)]
        self.last_steps = [t.task_id for t in exits]
        return entries, exits, tasks

    def build(self) -> DAG:
        runbook = self.runbook
        dag = DAG(
            dag_id=runbook.runbook,
            description=runbook.title,
            schedule=None,
            start_date=datetime(2024, 1, 1),
            catchup=False,
            max_active_runs=1,
            tags=[
                "gonogo",
                naming.DAG_MARKER_TAG,
                runbook.service,
                runbook.environment,
                runbook.change.type,
            ],
            # The trigger form is set once every task is built: Airflow deep-copies the DAG's
            # params into each operator it builds (per class level), which was half of the
            # parse. Tasks do not need them: at run time Airflow merges the DAG's params with
            # the task's own, and a HITL request keeps only its own form.
            params={},
            doc_md=render_outline(runbook),
            user_defined_filters={"shquote": shquote},
            default_args={"retries": 0},
        )
        attach(dag, runbook)
        with dag:
            first = preflight_task(runbook, self.preflight_check())
            previous: list[BaseOperator] = [first]
            if runbook.window is not None:
                window = wait_for_window(runbook.window, self.actions.plan.begin)
                first >> window
                previous = [window]
            freeze: list[BaseOperator] = []
            if needs_freeze_gate(runbook):  # asks only when the calendar said so at the start
                grant, freeze = freeze_gate(runbook, self.start_guard)
                for task in previous:
                    task >> grant
                previous = [grant]
            lock = AcquireLockSensor(
                task_id=naming.LOCK_TASK,
                service=runbook.service,
                environment=runbook.environment,
                doc_md=f"One rollout of {runbook.service}/{runbook.environment} at a time.",
            )
            for task in previous:
                task >> lock
            previous = [lock]
            forward: list[BaseOperator] = [first, *freeze, lock]
            watch = forecast_task(runbook)
            if watch is not None:  # beside the forward work: the forecast and forecast_overrun
                lock >> watch
                forward.append(watch)
            start = begin_task(runbook)
            if start is not None:  # the change record is checked and people told before any step
                lock >> start
                previous = [start]
                forward.append(start)
            steps: dict[str, BaseOperator] = {}
            for item in runbook.phases:
                if isinstance(item, Gate):
                    entries, exits, gate_tasks = build_gate(self.actions, item, self.forward_guard)
                    forward += gate_tasks
                    self.gates_passed.append(item)
                else:
                    previous = hold_for_start(runbook, item, previous, forward)
                    entries, exits, tasks = self.phase(item)
                    steps.update(tasks)
                    forward += tasks.values()
                for before in previous:
                    before >> entries
                previous = exits
            rollback_tasks = build_rollback_group(self.actions, forward, steps)
            # In a good run rollback.start is skipped once every forward task is done, and the
            # skips run down the chain, so release_lock and outcome come after all forward work.
            release = PythonOperator(
                task_id=naming.RELEASE_TASK,
                python_callable=release_lock,
                op_kwargs={"service": runbook.service, "environment": runbook.environment},
                trigger_rule="all_done",
                pool=LOCK_POOL,
                priority_weight=100,
            )
            rollback_tasks >> release
            outcome = outcome_task(runbook, forward, steps, self.plan)
            release >> outcome
            if runbook.early_life is not None:  # a succeeded outcome starts early-life support
                outcome >> go_live_task(runbook)
                # A failed rollback is called to the standby contact (the roster is in
                # early_life:); go_live stays a leaf, so the run still ends failed.
                rollback_incident_group(runbook, outcome)
        dag.params = dag_params(runbook)  # type: ignore[assignment]  # the DAG converts it
        return dag


def build_dag(runbook: Runbook, runbooks_dir: str | os.PathLike[str]) -> DAG:
    """The Airflow DAG for a validated runbook."""
    return DagBuilder(runbook, Path(runbooks_dir)).build()


def build_dags(
    runbook: Runbook, runbooks_dir: str | os.PathLike[str], only: str | None = None
) -> list[DAG]:
    """The runbook's DAG, its plan-approval DAG when its change type needs one, and its
    early-life DAG when it plans early-life support.

    ``only``: the one DAG id wanted (a task's parse), so the other is not built.
    """
    builder = DagBuilder(runbook, Path(runbooks_dir))
    companions = (naming.approval_dag(runbook.runbook), early_life_dag(runbook.runbook))
    dags = [] if only in companions else [builder.build()]
    if only in (None, companions[0]) and needs_approval_dag(runbook):
        dags.append(build_approval_dag(runbook, Path(runbooks_dir), builder.plan))
    if only in (None, companions[1]) and runbook.early_life is not None:
        dags.append(build_early_life_dag(runbook))
    return dags
