"""Runbook model to Airflow DAG.

The shape of every DAG::

    [wait_for_window] -> acquire_lock -> phase groups and gate groups, in runbook order
        -> rollback.start -> rollback.undo__<step> (newest first) -> rollback.<global steps>
        -> release_lock -> outcome

Forward work uses Airflow's own operators: BashOperator for bash, PythonOperator
for http and python, HITL operators for manual steps and gates. The rollback
group runs only when something failed; in a good run every task in it is skipped.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, TaskGroup
from airflow.sdk.bases.operator import BaseOperator

from gonogo import rollback as rb
from gonogo.checks import python_prefixes
from gonogo.gates import build_gate
from gonogo.model import Activity, Gate, Http, Phase, Runbook, Step
from gonogo.operators import LOCK_POOL, AcquireLockSensor, ManualStepOperator, release_lock
from gonogo.plan import phase_leaves, phase_upstreams, render_outline
from gonogo.runtime import bound_to_window, run_http, run_python

log = logging.getLogger("gonogo")

#: How long a decide-mode request or a rollback approval waits when the runbook sets no timeout.
DEFAULT_DECIDE_TIMEOUT = timedelta(minutes=30)

_TEMPLATE = re.compile(r"{{(.*?)}}", re.S)


def shquote(value: Any) -> str:
    """A Jinja filter: any value as one literal shell word."""
    return shlex.quote("" if value is None else str(value))


def quote_templates(command: str) -> str:
    """Make every ``{{ … }}`` in a shell command render shell-quoted.

    ``install.sh {{ params.version }}`` renders ``install.sh '1.0; rm -rf /'``
    for a hostile value: one harmless argument, never a second command.
    """

    def quote(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression.endswith("| shquote"):
            return match.group(0)
        return "{{ (" + expression + ") | shquote }}"

    command = _TEMPLATE.sub(quote, command)
    # BashOperator reads a command that ends in .sh as a template file: a trailing space stops it.
    return command + " " if command.rstrip().endswith((".sh", ".bash")) else command


def env_name(name: str) -> str:
    return re.sub(r"\W", "_", name).upper()


def _params(runbook: Runbook) -> dict[str, Param]:
    params = {}
    for name, spec in runbook.params.items():
        schema = spec.model_dump(exclude_none=True, exclude={"default"})
        params[name] = Param(spec.default, **schema)
    return params


def http_spec(http: Http) -> dict[str, Any]:
    spec = http.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec["request_timeout"] = http.request_timeout.total_seconds()
    if http.until is not None:
        spec["until"] = {
            "interval": http.until.interval.total_seconds(),
            "timeout": http.until.timeout.total_seconds(),
        }
    return spec


class StepBashOperator(BashOperator):
    """BashOperator that first logs the rendered command and where it runs, as one plain line."""

    def execute(self, context: Any) -> Any:
        log.info("bash step: %s", str(self.bash_command).strip())
        log.info("working directory: %s", self.cwd)
        return super().execute(context)


class Compiler:
    """Builds one DAG from one runbook. Holds what every task factory needs."""

    def __init__(self, runbook: Runbook, runbooks_dir: Path) -> None:
        self.runbook = runbook
        self.runbooks_dir = str(runbooks_dir.resolve())
        window = runbook.window
        self.window_end = window.end.isoformat() if window else None
        # Forward work starts only while nothing has failed: once rollback is due, nothing new starts.
        self.forward_guard = rb.stop_if_failed()

    # -- actions -------------------------------------------------------------------------------

    def _env(self, task_id: str, extra: dict[str, str]) -> dict[str, str]:
        rb_ = self.runbook
        env = {
            "GONOGO_RUNBOOK": rb_.runbook,
            "GONOGO_SERVICE": rb_.service,
            "GONOGO_ENVIRONMENT": rb_.environment,
            "GONOGO_CHANGE_ID": rb_.change.id,
            "GONOGO_STEP": task_id,
            "GONOGO_RUN_ID": "{{ run_id }}",
            "GONOGO_TRIGGERED_BY": "{{ dag_run.triggering_user_name or '' }}",
        }
        for name in rb_.params:
            env[f"GONOGO_PARAM_{env_name(name)}"] = (
                f"{{{{ params[{name!r}] if params[{name!r}] is not none else '' }}}}"
            )
        env.update(extra)
        return env

    def action_task(
        self,
        task_id: str,
        action: Activity,
        *,
        step_id: str,
        owner: str | None,
        timeout: Any = None,
        retries: int = 0,
        pre_execute: Callable[[Any], None] | None = None,
        in_window: bool = True,
        **kwargs: Any,
    ) -> BaseOperator:
        """The Airflow task for one bash/http/python/manual action.

        ``in_window``: the task may only run inside the change window. Rollback
        tasks are not bound to it: undoing a change is never too late.
        """
        common: dict[str, Any] = {
            "task_id": task_id,
            "retries": retries,
            "execution_timeout": timeout,
            "doc_md": _doc(step_id, owner),
            **kwargs,
        }
        hook = self._pre_execute(pre_execute, in_window)
        if hook is not None:
            common["pre_execute"] = hook
        if action.bash is not None:
            return StepBashOperator(
                bash_command=quote_templates(action.bash),
                env=self._env(step_id, dict(action.env)),
                append_env=True,
                cwd=self.runbooks_dir,
                skip_on_exit_code=None,
                **common,
            )
        if action.http is not None:
            return PythonOperator(
                python_callable=run_http, op_kwargs={"spec": http_spec(action.http)}, **common
            )
        if action.python is not None:
            return PythonOperator(
                python_callable=run_python,
                op_kwargs={
                    "target": action.python.callable,
                    "kwargs": dict(action.python.kwargs),
                    "prefixes": list(python_prefixes()),
                    "runbooks_dir": self.runbooks_dir,
                },
                **common,
            )
        assert action.manual is not None and owner is not None  # the checks guarantee both
        common.pop("execution_timeout")
        return ManualStepOperator(
            instruction=action.manual,
            role=owner,
            users=self.runbook.roles[owner].users,
            subject=f"{self.runbook.title}: {step_id}",
            response_timeout=timeout,
            **common,
        )

    def _pre_execute(
        self, hook: Callable[[Any], None] | None, in_window: bool
    ) -> Callable[[Any], None] | None:
        """``hook``, then (for work bound to the change window) the window check."""
        hooks = [h for h in (hook,) if h is not None]
        if in_window and self.window_end:
            hooks.append(bound_to_window(self.window_end))
        if not hooks:
            return None
        return hooks[0] if len(hooks) == 1 else _chain_hooks(*hooks)

    def action_spec(self, step_id: str, action: Activity, owner: str | None) -> dict[str, Any]:
        """An action as plain data, for a task that decides at run time what it runs (undo slots)."""
        spec: dict[str, Any] = {"kind": action.kind, "retries": getattr(action, "retries", 0)}
        if action.bash is not None:
            spec.update(
                bash=quote_templates(action.bash),
                env=self._env(step_id, dict(action.env)),
                cwd=self.runbooks_dir,
            )
        elif action.http is not None:
            spec["http"] = http_spec(action.http)
        elif action.python is not None:
            spec.update(
                callable=action.python.callable,
                kwargs=dict(action.python.kwargs),
                prefixes=list(python_prefixes()),
                runbooks_dir=self.runbooks_dir,
            )
        else:
            assert owner is not None  # the checks guarantee a manual undo has an owner
            spec.update(manual=action.manual, users=self.runbook.roles[owner].users)
        return spec

    # -- forward -------------------------------------------------------------------------------

    def phase(
        self, phase: Phase
    ) -> tuple[list[BaseOperator], list[BaseOperator], dict[str, BaseOperator]]:
        """The phase's TaskGroup: its entry tasks, exit tasks, and every step's task by id."""
        tasks: dict[str, BaseOperator] = {}
        with TaskGroup(group_id=phase.id, tooltip=phase.title or phase.id):
            for step in phase.steps:
                tasks[step.id] = self.step(step)
        upstreams = phase_upstreams(phase)
        for step_id, ups in upstreams.items():
            for up in ups:
                tasks[up] >> tasks[step_id]
        entries = [tasks[s] for s, ups in upstreams.items() if not ups]
        exits = [tasks[s] for s in phase_leaves(phase)]
        return entries, exits, tasks

    def deciders(self) -> list[str]:
        """Who decides after a failure in decide mode: decide_by, else the first sign-off role."""
        roles = list(self.runbook.rollback.decide_by)
        if not roles and self.runbook.gates:
            roles = [self.runbook.gates[0].sign_off[0]]
        return sorted({u for r in roles for u in self.runbook.roles[r].users})

    def step(self, step: Step) -> BaseOperator:
        if self.runbook.rollback.mode == "decide" and step.manual is None:
            from gonogo.guided import GuidedStepOperator

            return GuidedStepOperator(
                task_id=step.id,
                step_id=step.id,
                action={**self.action_spec(step.id, step, step.owner), "retries": step.retries},
                deciders=self.deciders(),
                decide_timeout=self.runbook.rollback.timeout or DEFAULT_DECIDE_TIMEOUT,
                execution_timeout=step.timeout,
                pre_execute=self._pre_execute(self.forward_guard, in_window=True),
                post_execute=rb.record_finish,
                doc_md=_doc(step.id, step.owner),
            )
        return self.action_task(
            step.id,
            step,
            step_id=step.id,
            owner=step.owner,
            timeout=step.timeout,
            retries=step.retries,
            retry_delay=step.retry_delay,
            pre_execute=self.forward_guard,
            post_execute=rb.record_finish,
        )

    # -- the whole DAG -------------------------------------------------------------------------

    def build(self) -> DAG:
        runbook = self.runbook
        dag = DAG(
            dag_id=runbook.runbook,
            description=runbook.title,
            schedule=None,
            start_date=datetime(2024, 1, 1),
            catchup=False,
            max_active_runs=1,
            tags=["gonogo", runbook.service, runbook.environment, runbook.change.type],
            params=_params(runbook),
            doc_md=render_outline(runbook),
            user_defined_filters={"shquote": shquote},
            default_args={"retries": 0},
        )
        with dag:
            previous: list[BaseOperator] = []
            if runbook.window is not None:
                from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

                previous = [
                    DateTimeSensorAsync(
                        task_id="wait_for_window",
                        target_time=runbook.window.start.isoformat(),
                        doc_md="Waits, without a worker slot, until the change window opens.",
                    )
                ]
            lock = AcquireLockSensor(
                task_id="acquire_lock",
                service=runbook.service,
                environment=runbook.environment,
                doc_md=f"One rollout of {runbook.service}/{runbook.environment} at a time.",
            )
            for task in previous:
                task >> lock
            previous = [lock]
            forward: list[BaseOperator] = [lock]
            steps: dict[str, BaseOperator] = {}
            for item in runbook.phases:
                if isinstance(item, Gate):
                    entries, exits, gate_tasks = build_gate(self, item, self.forward_guard)
                    forward += gate_tasks
                else:
                    entries, exits, tasks = self.phase(item)
                    steps.update(tasks)
                    forward += tasks.values()
                for before in previous:
                    before >> entries
                previous = exits
            rollback_tasks = rb.build_rollback_group(self, forward, steps)
            # In a good run rollback.start is skipped once every forward task is done, and the
            # skips run down the chain, so release_lock and outcome come after all forward work.
            release = PythonOperator(
                task_id="release_lock",
                python_callable=release_lock,
                op_kwargs={"service": runbook.service, "environment": runbook.environment},
                trigger_rule="all_done",
                pool=LOCK_POOL,
                priority_weight=100,
            )
            rollback_tasks >> release
            outcome = rb.outcome_task(self, forward, steps)
            release >> outcome
        return dag


def _doc(step_id: str, owner: str | None) -> str:
    return f"`{step_id}`" + (f", owner: {owner}" if owner else "")


def _chain_hooks(*hooks: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(context: Any) -> None:
        for hook in hooks:
            hook(context)

    return run


def build_dag(runbook: Runbook, runbooks_dir: str | os.PathLike[str]) -> DAG:
    """The Airflow DAG for a validated runbook."""
    return Compiler(runbook, Path(runbooks_dir)).build()
