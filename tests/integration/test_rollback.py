"""Rollback against a real Airflow: undo exactly the completed steps, newest first, then the global steps."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.conftest import MATRIX_CASES, Airflow

pytestmark = pytest.mark.integration

STEPS = ["s1", "s2", "s3", "s4", "s5", "s6"]
TASK = {
    "s1": "first.s1",
    "s2": "first.s2",
    "s3": "second.s3",
    "s4": "second.s4",
    "s5": "second.s5",
    "s6": "third.s6",
}
HAS_ROLLBACK = {"s1", "s3", "s4", "s5", "s6"}


@pytest.fixture(scope="module")
def matrix(airflow: Airflow) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every case triggered at once; each case's run and task instances once all have ended."""
    dags = [f"it-matrix-{case}" for case in MATRIX_CASES]
    airflow.wait_dags(*dags)
    operator = airflow.operator
    conf = {case: {"fail_step": case if case in STEPS else ""} for case in MATRIX_CASES}
    conf["undo"] = {"fail_step": "s6", "fail_undo": "undo_s4"}
    runs = {case: operator.trigger(f"it-matrix-{case}", conf[case]) for case in MATRIX_CASES}
    done = {}
    for case, run in runs.items():
        dag = f"it-matrix-{case}"
        done[case] = (
            run,
            operator.wait_run(dag, run, timeout=600),
            operator.task_instances(dag, run),
        )
    return done


def completed_newest_first(tis: dict[str, Any]) -> list[str]:
    finished = [(tis[TASK[s]]["end_date"], s) for s in STEPS if tis[TASK[s]]["state"] == "success"]
    return [s for _, s in sorted(finished, reverse=True)]


def undone_in_order(airflow: Airflow, case: str, run: str, tis: dict[str, Any]) -> list[str]:
    """The steps undone, ordered by when their undo started; each undo slot says which step it took."""
    ran = [
        (ti["start_date"], t)
        for t, ti in tis.items()
        if t.startswith("rollback.undo_") and ti["state"] == "success"
    ]
    steps = [airflow.operator.xcom(f"it-matrix-{case}", run, t, key="step") for _, t in sorted(ran)]
    return [s for s in steps if s is not None]  # undo_1 succeeds with nothing to undo


@pytest.mark.parametrize("case", [c for c in MATRIX_CASES if c in STEPS])
def test_a_failing_step_undoes_exactly_the_completed_steps_newest_first(
    airflow: Airflow, matrix: dict[str, Any], case: str
) -> None:
    run, dag_run, tis = matrix[case]
    assert dag_run["state"] == "failed"
    assert tis[TASK[case]]["state"] == "failed"
    expected = [s for s in completed_newest_first(tis) if s in HAS_ROLLBACK]
    assert undone_in_order(airflow, case, run, tis) == expected
    for n in range(max(2, len(expected) + 1), len(HAS_ROLLBACK) + 1):
        assert tis[f"rollback.undo_{n}"]["state"] == "skipped"
    tell = tis["rollback.tell_users"]
    assert tell["state"] == "success"
    last_undo = max(
        (tis[f"rollback.undo_{n}"]["end_date"] for n in range(1, len(expected) + 1)), default=""
    )
    assert tell["start_date"] >= last_undo
    outcome = airflow.operator.xcom(f"it-matrix-{case}", run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    assert outcome["undone"] == expected
    if tis["first.s2"]["state"] == "success":
        assert "s2: no rollback defined" in outcome["not_undone"]
    log = airflow.operator.task_log(f"it-matrix-{case}", run, "rollback.start")
    assert f"step {TASK[case]} failed" in log
    if expected:
        first = airflow.operator.task_log(f"it-matrix-{case}", run, "rollback.undo_1")
        assert (
            f"undoing step {expected[0]} ({TASK[expected[0]]}) because: step {TASK[case]} failed"
            in first
        )


def test_parallel_steps_are_undone_in_reverse_order_of_completion(
    airflow: Airflow, matrix: dict[str, Any]
) -> None:
    # s4 takes 1 s and s3 5 s, so s3 completes last and is undone first, whatever the
    # document order says.
    run, _, tis = matrix["s5"]
    assert undone_in_order(airflow, "s5", run, tis) == ["s3", "s4", "s1"]


def test_a_good_run_succeeds_with_every_rollback_task_skipped(
    airflow: Airflow, matrix: dict[str, Any]
) -> None:
    run, dag_run, tis = matrix["none"]
    assert dag_run["state"] == "success"
    assert {t: ti["state"] for t, ti in tis.items() if t.startswith("rollback.")} == {
        t: "skipped" for t in tis if t.startswith("rollback.")
    }
    assert (
        airflow.operator.xcom("it-matrix-none", run, "outcome", key="outcome")["outcome"]
        == "succeeded"
    )
    note = airflow.operator.run("it-matrix-none", run).get("note") or ""
    assert "Outcome: succeeded" in note


def test_a_failing_compensation_stops_rollback_and_lists_what_was_not_undone(
    airflow: Airflow, matrix: dict[str, Any]
) -> None:
    run, dag_run, tis = matrix["undo"]
    assert dag_run["state"] == "failed"
    # s6 failed, so the plan is s5, s3, s4, s1; undoing s4 fails and s1 is never tried.
    assert undone_in_order(airflow, "undo", run, tis) == ["s5", "s3"]
    assert tis["rollback.undo_3"]["state"] == "failed"
    assert airflow.operator.xcom("it-matrix-undo", run, "rollback.undo_3", key="step") == "s4"
    assert tis["rollback.undo_4"]["state"] == "upstream_failed"
    assert tis["rollback.tell_users"]["state"] in ("upstream_failed", "skipped")
    outcome = airflow.operator.xcom("it-matrix-undo", run, "outcome", key="outcome")
    assert outcome["outcome"] == "rollback_failed"
    assert outcome["undone"] == ["s5", "s3"]
    assert outcome["undo_failed"] == ["s4"] and outcome["not_run"] == ["s1"]
    assert "s1: not run, rollback stopped" in outcome["not_undone"]
    note = airflow.operator.run("it-matrix-undo", run).get("note") or ""
    assert "Outcome: rollback_failed" in note and "s1: not run, rollback stopped" in note
    log = airflow.operator.task_log("it-matrix-undo", run, "rollback.undo_3")
    assert "failing on purpose: undo_s4" in log and "undoing s4 failed" in log
