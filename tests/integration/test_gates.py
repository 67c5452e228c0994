"""Gates against a real Airflow: every role signs off, NOGO needs a reason, timeouts and reask rounds."""

from __future__ import annotations

import pytest
from tests.integration.conftest import Airflow, cli

pytestmark = pytest.mark.integration

DAG = "it-gate"
ROLES = {"release_manager": "relman", "service_owner": "svcowner2", "hospital": "wardrep"}


def states(airflow: Airflow, dag_id: str, run: str) -> dict[str, str]:
    return {t: ti["state"] for t, ti in airflow.admin.task_instances(dag_id, run).items()}


def open_gate(airflow: Airflow, dag_id: str = DAG, by: str = "operator") -> str:
    airflow.wait_dags(dag_id)
    client = airflow.client(by)
    run = client.trigger(dag_id)
    return run


def test_every_role_says_go_and_the_run_continues(airflow: Airflow) -> None:
    run = open_gate(airflow)
    for role, user in ROLES.items():
        task = f"gate__go_nogo.{role}"
        airflow.admin.wait_pending(DAG, run, task)
        airflow.client(user).answer_or_raise(DAG, run, task, "GO", "ready")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    found = states(airflow, DAG, run)
    assert found["after.after_gate"] == "success"
    assert found["rollback.start"] == "skipped"
    note = airflow.admin.wait_for(
        "the run note", lambda: airflow.admin.run(DAG, run).get("note"), timeout=30
    )
    assert "Outcome: succeeded" in note and "go_nogo/hospital: GO by wardrep: ready" in note

    shown = cli(airflow, "relman", "decisions", DAG, run)
    assert shown.returncode == 0, shown.stderr
    for role, user in ROLES.items():
        assert any(
            role in line and "GO" in line and user in line for line in shown.stdout.splitlines()
        )


def test_a_nogo_with_a_reason_stops_the_forward_path(airflow: Airflow) -> None:
    run = open_gate(airflow)
    airflow.admin.wait_pending(DAG, run, "gate__go_nogo.release_manager")
    airflow.client("relman").answer_or_raise(DAG, run, "gate__go_nogo.release_manager", "GO", "ok")
    airflow.admin.wait_pending(DAG, run, "gate__go_nogo.hospital")
    airflow.client("wardrep").answer_or_raise(
        DAG, run, "gate__go_nogo.hospital", "NOGO", "AMK reports a major incident"
    )
    assert airflow.admin.wait_run(DAG, run, timeout=120)["state"] == "failed"
    found = states(airflow, DAG, run)
    assert found["after.after_gate"] in ("upstream_failed", "skipped")
    assert found["gate__go_nogo.service_owner"] == "skipped"  # withdrawn: the gate was decided
    assert found["rollback.undo_1"] == "success"
    assert airflow.admin.xcom(DAG, run, "rollback.undo_1", key="step") == "change_something"
    assert found["rollback.undo_2"] == "skipped"  # after_gate never ran: nothing to undo
    log = airflow.admin.task_log(DAG, run, "gate__go_nogo.hospital")
    assert "NOGO at gate go_nogo from wardrep for hospital: AMK reports a major incident" in log
    outcome = airflow.admin.xcom(DAG, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    assert "gate go_nogo: NOGO or no answer from role hospital" in outcome["reasons"]
    shown = cli(airflow, "relman", "decisions", DAG, run, "--format", "json")
    rows = {r["role"]: r for r in __import__("json").loads(shown.stdout)["decisions"]}
    assert (
        rows["hospital"]["answer"] == "NOGO"
        and rows["hospital"]["comment"] == "AMK reports a major incident"
    )
    assert rows["service_owner"]["answer"] == "withdrawn"


def test_nogo_without_a_reason_is_refused_and_can_be_answered_again(airflow: Airflow) -> None:
    run = open_gate(airflow)
    task = "gate__go_nogo.hospital"
    airflow.admin.wait_pending(DAG, run, task)
    wardrep = airflow.client("wardrep")
    for comment in (None, "", "   "):
        refused = wardrep.answer(DAG, run, task, "NOGO", comment)
        assert refused.status_code == 422
        assert "NOGO needs a comment" in refused.json()["detail"]
    assert airflow.admin.wait_pending(DAG, run, task)["response_received"] is False
    listed = cli(airflow, "wardrep", "gates")
    assert listed.returncode == 0 and f"{DAG}  {run}  {task}" in listed.stdout
    assert cli(airflow, "dba", "gates").stdout.strip() == "Nothing is waiting for dba."
    answered = cli(airflow, "wardrep", "answer", DAG, run, "go_nogo", "--role", "hospital", "--go")
    assert answered.returncode == 0, answered.stderr
    for role in ("release_manager", "service_owner"):
        airflow.admin.wait_pending(DAG, run, f"gate__go_nogo.{role}")
        airflow.client(ROLES[role]).answer_or_raise(DAG, run, f"gate__go_nogo.{role}", "GO")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"


def test_four_eyes_non_members_and_second_answers_are_refused_by_airflow(airflow: Airflow) -> None:
    run = open_gate(airflow, by="svcowner")  # a service owner starts the rollout
    task = "gate__go_nogo.service_owner"
    detail = airflow.admin.wait_pending(DAG, run, task)
    assert [u["id"] for u in detail["assigned_users"]] == ["svcowner2"]
    mine = airflow.client("svcowner").answer(DAG, run, task, "GO", "mine")
    assert mine.status_code == 403
    assert "four-eyes" in mine.json()["detail"]
    assert airflow.client("dba").answer(DAG, run, task, "GO", "not my role").status_code == 403
    assert airflow.admin.answer(DAG, run, task, "GO", "admin").status_code == 403
    assert airflow.client("svcowner2").answer(DAG, run, task, "GO", "checked").status_code == 200
    assert airflow.client("svcowner2").answer(DAG, run, task, "GO", "again").status_code == 409
    for role in ("release_manager", "hospital"):
        airflow.admin.wait_pending(DAG, run, f"gate__go_nogo.{role}")
        airflow.client(ROLES[role]).answer_or_raise(DAG, run, f"gate__go_nogo.{role}", "GO")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"


def test_timeout_is_nogo_naming_the_silent_roles_after_a_warning(airflow: Airflow) -> None:
    dag = "it-gate-timeout"
    run = open_gate(airflow, dag)
    airflow.admin.wait_pending(dag, run, "gate__go_nogo.release_manager")
    airflow.client("relman").answer_or_raise(dag, run, "gate__go_nogo.release_manager", "GO", "ok")
    assert airflow.admin.wait_run(dag, run, timeout=120)["state"] == "failed"
    found = states(airflow, dag, run)
    assert found["gate__go_nogo.hospital"] == "failed"
    assert found["after.after_gate"] in ("upstream_failed", "skipped")
    events = airflow.admin.xcom(dag, run, "gate__go_nogo.watch", key="events")
    assert events[0]["event"] == "gate_expiring" and events[0]["silent_roles"] == ["hospital"]
    assert "gate_expiring" in airflow.admin.task_log(dag, run, "gate__go_nogo.watch")
    assert (
        "NOGO (timeout) at gate go_nogo: role hospital did not answer in time"
        in airflow.admin.task_log(dag, run, "gate__go_nogo.hospital")
    )
    assert airflow.admin.xcom(dag, run, "outcome", key="outcome")["outcome"] == "nogo_before_start"
    shown = cli(airflow, "relman", "decisions", dag, run)
    assert any(
        "hospital" in line and "NOGO (timeout)" in line for line in shown.stdout.splitlines()
    )
    assert "event gate_expiring: gate go_nogo" in shown.stdout


def test_reask_asks_only_the_role_that_said_nogo(airflow: Airflow) -> None:
    dag = "it-gate-reask"
    run = open_gate(airflow, dag)
    first = "gate__handover.hospital__round_1"
    airflow.admin.wait_pending(dag, run, "gate__handover.release_manager__round_1")
    airflow.client("relman").answer_or_raise(
        dag, run, "gate__handover.release_manager__round_1", "GO", "ok"
    )
    airflow.admin.wait_pending(dag, run, first)
    airflow.client("wardrep").answer_or_raise(dag, run, first, "NOGO", "ward 3 has no test patient")
    again = airflow.admin.wait_pending(dag, run, "gate__handover.hospital__round_2")
    assert "ward 3 has no test patient" in again["body"]
    pending = {
        d["task_instance"]["task_id"] for d in airflow.admin.hitl_details(dag, run, pending=True)
    }
    assert pending == {"gate__handover.hospital__round_2"}  # the release manager's GO stands
    airflow.client("wardrep").answer_or_raise(
        dag, run, "gate__handover.hospital__round_2", "GO", "fixed"
    )
    assert airflow.admin.wait_run(dag, run)["state"] == "success"
    found = states(airflow, dag, run)
    assert found["gate__handover.release_manager__round_2"] == "skipped"
    shown = cli(airflow, "relman", "decisions", dag, run)
    assert shown.stdout.count("hospital") == 2


def test_a_failing_required_check_is_nogo_without_asking_anyone(airflow: Airflow) -> None:
    dag = "it-gate-check"
    run = open_gate(airflow, dag)
    assert airflow.admin.wait_run(dag, run, timeout=120)["state"] == "failed"
    found = states(airflow, dag, run)
    assert found["gate__go_nogo.checks"] == "failed"
    assert airflow.admin.hitl_details(dag, run) == []
    log = airflow.admin.task_log(dag, run, "gate__go_nogo.checks")
    assert "required check(s) failed: backup_exists" in log and "smoke ok" in log
    assert airflow.admin.xcom(dag, run, "outcome", key="outcome")["outcome"] == "nogo_before_start"
