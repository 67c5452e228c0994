"""A command cut off by a crash: the mark in the task state store, and the tries kept for it.

The store here is a dict with the task state store's get/set/delete; everything
else is gonogo's real code and the tasks a real runbook compiles to.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from gonogo.core.naming import STEP_INTERRUPTED
from gonogo.core.runbook.loader import load_text
from gonogo.core.runs.decisions import event_line
from gonogo.core.runs.records import Answer
from gonogo.dag.builder import build_dag
from gonogo.dag.journal import MARK, RESERVED_TRIES, earlier_mark, final_failure, run_marked
from gonogo.dag.rollback import UndoFailed

RUNBOOK = """\
runbook: crash
title: Crash
service: svc
environment: test
change: {id: CHG1, type: standard}
roles:
  rm: {users: [alice, bob]}
  dba: {users: [dora]}
phases:
  - id: work
    steps:
      - id: plain
        bash: echo plain
        owner: dba
        retries: 2
        rollback: {bash: echo undo}
      - id: call
        http: {url: "http://localhost/health"}
  - gate: go
    sign_off: [rm]
rollback:
  steps:
    - id: tell
      bash: echo told
"""


def crash_dag() -> Any:
    runbook, _ = load_text(RUNBOOK, "crash.yaml")
    return build_dag(runbook, "/tmp")


class Store:
    """The task state store's interface over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(store: Store, try_number: int = 1) -> dict[str, Any]:
    return {"task_state_store": store, "ti": SimpleNamespace(try_number=try_number)}


def test_the_mark_is_there_only_while_the_command_runs() -> None:
    store = Store()
    seen = []
    assert run_marked(context(store), "step x", lambda: seen.append(store.get(MARK)) or 7) == 7
    assert seen[0]["what"] == "step x" and seen[0]["try"] == 1
    assert earlier_mark(context(store)) is None


@pytest.mark.parametrize("error", [RuntimeError("exit 3"), AirflowTaskTimeout("too slow")])
def test_a_command_that_fails_or_times_out_has_ended_and_leaves_no_mark(
    error: BaseException,
) -> None:
    store = Store()

    def fail() -> None:
        raise error

    with pytest.raises(type(error)):
        run_marked(context(store), "step x", fail)
    assert earlier_mark(context(store)) is None


def test_a_try_lost_mid_command_leaves_the_mark_for_the_next_try() -> None:
    store = Store()

    def lost() -> None:
        raise SystemExit(-9)  # what the next try sees is the same as after a SIGKILL

    with pytest.raises(SystemExit):
        run_marked(context(store, try_number=1), "step x", lost)
    mark = earlier_mark(context(store, try_number=2))
    assert mark is not None and mark["try"] == 1 and mark["host"]


def test_a_usual_failure_is_final_once_the_runbooks_retries_are_spent() -> None:
    error = RuntimeError("bash exited with 3")
    assert final_failure(context(Store(), try_number=2), 2, error) is error
    final = final_failure(context(Store(), try_number=3), 2, error)
    assert isinstance(final, AirflowFailException) and str(final) == "bash exited with 3"


def test_each_command_task_keeps_one_retry_for_a_crash_and_knows_who_decides() -> None:
    dag = crash_dag()
    plain, call = dag.get_task("work.plain"), dag.get_task("work.call")
    assert (plain.retries, plain.policy_retries) == (2 + RESERVED_TRIES, 2)
    assert (call.retries, call.policy_retries) == (RESERVED_TRIES, 0)
    # Who decides: the first sign-off role, as in guided failure.
    assert plain.deciders == ["alice", "bob"] and plain.what == "step plain"
    assert dag.get_task("rollback.undo_1").retries == RESERVED_TRIES
    assert dag.get_task("rollback.tell").what == "step tell"
    # Manual steps and gate requests wait for people, not commands: no retry to keep.
    assert dag.get_task("gate__go.rm").retries == 0


def test_after_a_crash_roll_back_fails_the_step_for_good_and_continue_needs_a_comment() -> None:
    dag = crash_dag()
    step = dag.get_task("work.plain")
    store = Store()
    store.set(MARK, {"try": 1})
    with pytest.raises(AirflowFailException, match="relman decided to roll back"):
        step.decided_after_interruption(context(store), Answer("Roll back", "relman", "r", ""))
    assert earlier_mark(context(store)) is None
    with pytest.raises(AirflowFailException, match="nobody answered in time"):
        step.decided_after_interruption(context(store), Answer(None, "", "", ""))
    with pytest.raises(AirflowFailException, match="needs a comment"):
        step.decided_after_interruption(context(store), Answer("Continue", "relman", "r", ""))
    done = step.decided_after_interruption(context(store), Answer("Continue", "relman", "r", "ok"))
    assert done == {"continued_by": "relman", "comment": "ok"}


def test_after_a_crash_an_undo_reported_failed_or_unconfirmed_ends_rollback() -> None:
    slot = crash_dag().get_task("rollback.undo_1")
    store = Store()
    with pytest.raises(UndoFailed, match="dora reported"):
        slot.decided_after_interruption(context(store), Answer("Failed", "dora", "d", "no"))
    with pytest.raises(UndoFailed, match="nobody said in time"):
        slot.decided_after_interruption(context(store), Answer(None, "", "", ""))
    with pytest.raises(UndoFailed, match="needs a comment"):
        slot.decided_after_interruption(context(store), Answer("Done", "dora", "d", ""))
    assert (
        slot.decided_after_interruption(context(store), Answer("Done", "dora", "d", "ok")) is None
    )


def test_the_note_says_what_was_cut_off_and_that_a_person_was_asked() -> None:
    line = event_line(
        {
            "event": STEP_INTERRUPTED,
            "what": "step slow",
            "try": 1,
            "at": "2026-11-23T10:00:00+00:00",
            "host": "worker-1",
        }
    )
    assert line.startswith("step slow was cut off by a crash in try 1")
    assert "worker-1" in line and "may have half-run" in line and "a person was asked" in line


def _times_out() -> None:
    raise AirflowTaskTimeout("execution_timeout reached")


def test_a_timed_out_command_fails_for_good_and_does_not_spend_the_crash_retry() -> None:
    from gonogo.dag.actions import StepPythonOperator

    task = StepPythonOperator(task_id="t", python_callable=_times_out, retries=RESERVED_TRIES)
    store = Store()
    with pytest.raises(AirflowFailException, match="execution_timeout reached"):
        task.run_command({**context(store), "params": {}, "templates_dict": None})
    assert earlier_mark(context(store)) is None
