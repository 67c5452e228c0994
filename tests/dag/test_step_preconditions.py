"""Each forward step checks from records that the steps right before it really ran.

The task's own pre_execute hooks run against a task instance whose records
(task states, XComs) are plain data: a step marked success or skipped past the
API has no finish record, and the step after it refuses to start.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from gonogo.core import naming
from gonogo.core.runbook.loader import load_text
from gonogo.dag.builder import build_dag

RUNBOOK = """\
runbook: pre
title: Preconditions
service: svc
environment: test
change: {id: CHG1, type: standard}
roles:
  ops: {users: [a]}
phases:
  - id: p
    steps:
      - {id: a, bash: "true", read_only: true}
      - {id: b, bash: "true", read_only: true}
  - id: q
    steps:
      - {id: c, bash: "true", read_only: true}
      - {id: d, bash: "true", read_only: true, depends_on: []}
"""


class Records:
    """A task instance's view of the run: every task succeeded; finish records as given."""

    def __init__(self, finished: set[str]) -> None:
        self.finished = finished

    def get_task_states(self, dag_id: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {run_ids[0]: {}}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        if key == naming.XCOM_FINISHED_AT:
            return "2026-12-03T00:00:00+00:00" if task_ids in self.finished else None
        return None


def start(task_id: str, finished: set[str]) -> None:
    dag = build_dag(load_text(RUNBOOK)[0], Path(tempfile.gettempdir()))
    task = dag.get_task(task_id)
    context = {"ti": Records(finished), "dag": dag, "run_id": "r", "task": task}
    context["dag_run"] = SimpleNamespace(conf={}, run_type="manual")
    task.pre_execute(context)  # what the task runner calls before execute


@pytest.mark.parametrize(
    ("task_id", "finished"),
    [("p.b", {"p.a"}), ("q.c", {"p.b"}), ("q.d", {"p.b"}), ("p.a", set())],
)
def test_a_step_starts_when_the_steps_before_it_have_finish_records(
    task_id: str, finished: set[str]
) -> None:
    start(task_id, finished)


@pytest.mark.parametrize(("task_id", "missing"), [("p.b", "p.a"), ("q.c", "p.b"), ("q.d", "p.b")])
def test_a_step_refuses_when_a_step_before_it_was_skipped_or_marked(
    task_id: str, missing: str
) -> None:
    with pytest.raises(AirflowFailException, match=rf"not started: {missing} has no record"):
        start(task_id, set())
