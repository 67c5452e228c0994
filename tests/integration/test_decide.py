"""Guided failure (`rollback.mode: decide`) and a GO before rollback (`rollback.approve`)."""

from __future__ import annotations

import pytest
from tests.integration.conftest import Airflow

pytestmark = pytest.mark.integration

DAG = "it-decide"
STEP = "work.deploy"


def start(airflow: Airflow, behavior: str) -> str:
    airflow.wait_dags(DAG)
    run = airflow.operator.trigger(DAG, {"behavior": behavior})
    airflow.admin.wait_pending(DAG, run, "gate__go.release_manager")
    airflow.client("relman").answer_or_raise(DAG, run, "gate__go.release_manager", "GO", "go")
    return run


def test_retry_runs_the_failed_step_again(airflow: Airflow) -> None:
    run = start(airflow, "flaky")
    request = airflow.admin.wait_pending(DAG, run, STEP, timeout=180)
    assert "first try fails" in request["body"]
    airflow.client("relman").answer_or_raise(DAG, run, STEP, "Retry", "transient, try again")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    log = airflow.admin.task_log(DAG, run, STEP)
    assert "relman decided Retry" in log and "deployed on the second try" in log
    assert airflow.admin.xcom(DAG, run, "outcome", key="outcome")["outcome"] == "succeeded"


def test_roll_back_waits_for_the_approving_role_then_undoes(airflow: Airflow) -> None:
    run = start(airflow, "fail")
    airflow.admin.wait_pending(DAG, run, STEP, timeout=180)
    airflow.client("relman").answer_or_raise(DAG, run, STEP, "Roll back")
    approval = airflow.admin.wait_pending(DAG, run, "rollback.approve__hospital", timeout=120)
    assert "relman decided to roll back" in approval["body"] or "work.deploy" in approval["body"]
    assert airflow.admin.task_instances(DAG, run)["rollback.undo_1"]["state"] in (
        None,
        "none",
        "scheduled",
    )
    airflow.client("wardrep").answer_or_raise(DAG, run, "rollback.approve__hospital", "GO")
    assert airflow.admin.wait_run(DAG, run)["state"] == "failed"
    outcome = airflow.admin.xcom(DAG, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back" and outcome["undone"] == ["prepare"]


def test_continue_needs_a_comment_and_marks_the_step_done(airflow: Airflow) -> None:
    run = start(airflow, "fail")
    airflow.admin.wait_pending(DAG, run, STEP, timeout=180)
    relman = airflow.client("relman")
    refused = relman.answer(DAG, run, STEP, "Continue", "")
    assert refused.status_code == 422 and "Continue needs a comment" in refused.json()["detail"]
    relman.answer_or_raise(
        DAG, run, STEP, "Continue", "installed the package by hand from the mirror"
    )
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    log = airflow.admin.task_log(DAG, run, STEP)
    assert "marked done by hand by relman: installed the package by hand from the mirror" in log


@pytest.mark.long  # a minute of waiting for a decision that never comes; CI runs it
def test_no_decision_in_time_rolls_back_and_so_does_no_approval(airflow: Airflow) -> None:
    run = start(airflow, "fail")
    assert airflow.admin.wait_run(DAG, run, timeout=240)["state"] == "failed"
    tis = airflow.admin.task_instances(DAG, run)
    assert tis[STEP]["state"] == "failed"
    assert tis["rollback.approve__hospital"]["state"] == "success"  # timed out: rolled back anyway
    outcome = airflow.admin.xcom(DAG, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back" and outcome["undone"] == ["prepare"]
    assert "no decision on the failed step deploy in time" in airflow.admin.task_log(DAG, run, STEP)
