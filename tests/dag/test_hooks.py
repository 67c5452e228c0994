"""A task's hooks run where Airflow's task runner runs pre_execute and post_execute."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.task_runner import _execute_task

from gonogo.dag.gates import GateChecksOperator
from gonogo.dag.hooks import hooked


def run(task: Any) -> Any:
    """The task as Airflow's task runner runs it once the try has started."""
    ti = SimpleNamespace(task=task, _ti_context_from_server=None)
    return _execute_task(context={}, ti=ti, log=structlog.get_logger())


def test_the_runner_runs_the_hook_before_the_work_and_the_other_after_it() -> None:
    seen: list[str] = []
    task = hooked(
        GateChecksOperator(task_id="checks", python_callable=lambda: seen.append("work")),
        before=lambda context: seen.append("before"),
        after=lambda context: seen.append("after"),
    )
    run(task)
    assert seen == ["before", "work", "after"]


def test_a_hook_that_refuses_stops_the_work() -> None:
    seen: list[str] = []

    def refuse(context: Any) -> None:
        raise AirflowFailException("not started: the gate was not GO")

    task = hooked(
        GateChecksOperator(task_id="checks", python_callable=lambda: seen.append("work")),
        before=refuse,
        after=lambda context: seen.append("after"),
    )
    with pytest.raises(AirflowFailException, match="not started"):
        run(task)
    assert seen == []
