"""What the DAG processor serializes of each task stays cheap, and the hooks moved out of it still run.

A task's hooks run where Airflow's task runner runs pre_execute and post_execute; a
request's comment field is checked by Airflow against a cheaper meta-schema, as before.
"""

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


def test_a_requests_comment_field_names_its_dialect_and_airflow_checks_it_as_before() -> None:
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError
    from jsonschema import Draft7Validator, validators

    from gonogo.core.runs.decisions import comment_schema

    schema = comment_schema(["Failed"])
    assert validators.validator_for(schema) is Draft7Validator  # the cheaper meta-schema
    field = Param("", **schema)
    assert field.resolve("checked the logs") == "checked the logs"
    assert field.resolve(None) is None  # null: a comment left out
    with pytest.raises(ParamValidationError):
        field.resolve(3)
