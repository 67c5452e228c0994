"""What was approved is what runs, in a real Airflow: plan approval, promotion, rehearsal.

The harness's policy is the default one for prod (a normal change needs its plan
approved; an emergency change is flagged until it is), so these runbooks are in
prod. Each step appends a line to a log file in the state folder, so the tests
see exactly which commands ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.conftest import Airflow, cli

pytestmark = pytest.mark.long

PLAN = "it-plan-prod"
EMERGENCY = "it-emergency"


def ran(airflow: Airflow, log: str) -> list[str]:
    path = airflow.state_dir / f"{log}.log"
    return path.read_text().split() if path.exists() else []


def refused(airflow: Airflow, dag_id: str, run_id: str) -> str:
    """The run ended before any step; the preflight's log says why."""
    admin = airflow.admin
    assert admin.wait_run(dag_id, run_id)["state"] == "failed"
    tis = admin.task_instances(dag_id, run_id)
    assert tis["before_start"]["state"] == "failed"
    started = [
        t
        for t, ti in tis.items()
        if "." in t and not t.startswith("rollback.") and ti["state"] == "success"
    ]
    assert started == [], f"work ran although the run was refused: {started}"
    return admin.task_log(dag_id, run_id, "before_start")


def approve(airflow: Airflow, runbook: str, by: str = "svcowner") -> str:
    """Run the runbook's approval DAG, triggered by the operator and approved by ``by``."""
    dag_id = f"{runbook}.approval"
    run_id = airflow.operator.trigger(dag_id)
    request = airflow.admin.wait_pending(dag_id, run_id, "gate__cab.cab")
    assert "Plan fingerprint:" in request["body"] and "Kjøreplan" in request["body"]
    airflow.client(by).answer_or_raise(dag_id, run_id, "gate__cab.cab", "GO")
    assert airflow.admin.wait_run(dag_id, run_id)["state"] == "success"
    return run_id


def roll_out(airflow: Airflow, runbook: str, gate: str) -> tuple[str, str]:
    """Trigger a rollout and answer its one gate GO; it must succeed. The run and the request body."""
    admin = airflow.admin
    run_id = airflow.operator.trigger(runbook)
    role = {PLAN: "release_manager", EMERGENCY: "incident_manager"}[runbook]
    request = admin.wait_pending(runbook, run_id, f"gate__{gate}.{role}")
    airflow.client("relman").answer_or_raise(runbook, run_id, f"gate__{gate}.{role}", "GO")
    assert admin.wait_run(runbook, run_id)["state"] == "success"
    return run_id, request["body"]


def test_a_normal_change_runs_only_the_plan_its_cab_approved(airflow: Airflow) -> None:
    admin, operator = airflow.admin, airflow.operator
    airflow.wait_dags(PLAN, f"{PLAN}.approval")

    log = refused(airflow, PLAN, operator.trigger(PLAN))
    assert "not approved" in log and "no version of this runbook is approved" in log
    assert f"trigger {PLAN}.approval" in log

    approval_run = approve(airflow, PLAN)
    record = admin.xcom(f"{PLAN}.approval", approval_run, "record")
    assert record["approved_by"] == ["svcowner (cab)"]

    run_id, body = roll_out(airflow, PLAN, "go")
    assert ran(airflow, "plan") == ["change", "verify"]
    assert f"Plan fingerprint: `{record['digest'][:12]}`" in body
    assert "Plan approved by svcowner (cab)" in body
    outcome = admin.xcom(PLAN, run_id, "outcome", key="outcome")
    assert outcome["fingerprint"] == record["digest"][:12]
    assert f"Plan fingerprint: {record['digest'][:12]}" in admin.run(PLAN, run_id)["note"]
    log_text = cli(airflow, "operator", "decisions", PLAN, run_id).stdout
    assert log_text.splitlines()[0] == (
        f"plan fingerprint {record['digest'][:12]}, approved by svcowner (cab)"
    )

    script = Path(airflow.stack.runbooks_dir) / "scripts" / "plan_step.sh"
    original = script.read_text()
    script.write_text(original + "# edited after the CAB met\n")
    try:
        log = refused(airflow, PLAN, operator.trigger(PLAN))
    finally:
        script.write_text(original)
    assert "file scripts/plan_step.sh changed" in log
    assert ran(airflow, "plan") == ["change", "verify"]

    revoke = operator.trigger(
        f"{PLAN}.approval", conf={"revoke": True, "reason": "the migration has a known bug"}
    )
    assert admin.wait_run(f"{PLAN}.approval", revoke)["state"] == "success"
    log = refused(airflow, PLAN, operator.trigger(PLAN))
    assert "was revoked by operator" in log and "the migration has a known bug" in log
    assert ran(airflow, "plan") == ["change", "verify"]


def test_ledgers_cannot_be_written_over_rest(airflow: Airflow) -> None:
    response = airflow.admin.request(
        "POST", "/variables", json={"key": f"gonogo_approvals__{PLAN}", "value": "{}"}
    )
    assert response.status_code == 403, response.text
    assert "written only by its tasks" in response.json()["detail"]


def test_an_emergency_change_is_flagged_until_the_cab_approves_it_afterwards(
    airflow: Airflow,
) -> None:
    admin = airflow.admin
    airflow.wait_dags(EMERGENCY, f"{EMERGENCY}.approval")
    run_id, body = roll_out(airflow, EMERGENCY, "go")
    assert "retrospective approval required" in body
    assert ran(airflow, "emergency") == ["apply"]
    outcome = admin.xcom(EMERGENCY, run_id, "outcome", key="outcome")
    assert outcome["retrospective_approval"] == "required"
    assert "retrospective approval by the CAB required" in admin.run(EMERGENCY, run_id)["note"]
    report = admin.gonogo(f"/report/{EMERGENCY}/{run_id}")
    assert ["Approval", "retrospective approval required: the CAB has not approved it"] in report[
        "plan"
    ]

    approve(airflow, EMERGENCY)
    facts = dict(admin.gonogo(f"/report/{EMERGENCY}/{run_id}")["plan"])
    assert facts["Approval"].startswith("emergency change, approved afterwards: by svcowner")


def test_prod_waits_for_the_same_work_to_succeed_in_test_and_rehearsals_do_not_count(
    airflow: Airflow,
) -> None:
    admin, operator = airflow.admin, airflow.operator
    airflow.wait_dags("it-promote-test", "it-promote-prod")

    log = refused(airflow, "it-promote-prod", operator.trigger("it-promote-prod"))
    assert "promotion guard" in log and "succeeded in test" in log

    rehearsal = operator.trigger("it-promote-test", conf={"rehearsal": True})
    assert admin.wait_run("it-promote-test", rehearsal)["state"] == "success"
    assert ran(airflow, "promote") == ["rehearsed"]  # deploy's rehearse action; verify has none
    outcome = admin.xcom("it-promote-test", rehearsal, "outcome", key="outcome")
    assert outcome["rehearsal"] is True
    refused(airflow, "it-promote-prod", operator.trigger("it-promote-prod"))

    tested = operator.trigger("it-promote-test")
    assert admin.wait_run("it-promote-test", tested)["state"] == "success"
    promoted = operator.trigger("it-promote-prod")
    assert admin.wait_run("it-promote-prod", promoted)["state"] == "success"
    assert ran(airflow, "promote") == ["rehearsed", "deploy", "verify", "deploy", "verify"]
    evidence = admin.xcom("it-promote-prod", promoted, "before_start", key="promotion")
    assert evidence["run_id"] == tested and evidence["environment"] == "test"
    assert evidence["by"] == "operator"
