"""The change calendar in a real Airflow: a run in a freeze is refused; an emergency is granted.

The harness's calendar (tests/integration/runbooks/calendar.yaml) freezes the
services of these two runbooks for good, and names the release manager as the
one who may grant an emergency change an exception.
"""

from __future__ import annotations

from tests.integration.conftest import Airflow

FROZEN = "it-frozen"
EMERGENCY = "it-frozen-emergency"
GRANT = "gate__freeze_exception.grant"


def ran(airflow: Airflow, log: str) -> list[str]:
    path = airflow.state_dir / f"{log}.log"
    return path.read_text().split() if path.exists() else []


def test_a_run_in_a_freeze_is_refused_before_any_step_with_the_freezes_reason(
    airflow: Airflow,
) -> None:
    admin = airflow.admin
    airflow.wait_dags(FROZEN)
    run_id = airflow.operator.trigger(FROZEN)
    assert admin.wait_run(FROZEN, run_id)["state"] == "failed"
    tis = admin.task_instances(FROZEN, run_id)
    assert tis["before_start"]["state"] == "failed"
    assert tis["work.apply"]["state"] != "success"
    assert ran(airflow, "frozen") == []
    outcome = admin.xcom(FROZEN, run_id, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    (reason,) = outcome["reasons"]
    assert reason.startswith("refused before start: the calendar: ")
    assert "falls in the freeze 'Test freeze'" in reason
    assert "Frozen for the calendar tests" in reason
    assert "Frozen for the calendar tests" in admin.run(FROZEN, run_id)["note"]


def test_an_emergency_in_a_freeze_runs_once_the_release_manager_grants_the_exception(
    airflow: Airflow,
) -> None:
    admin = airflow.admin
    airflow.wait_dags(EMERGENCY)
    run_id = airflow.operator.trigger(EMERGENCY)
    request = admin.wait_pending(EMERGENCY, run_id, GRANT)
    assert request["subject"] == "Freeze exception: Emergency fix in a freeze (release_manager)"
    assert "in the freeze Test freeze" in request["body"]
    assert [u["id"] for u in request["assigned_users"]] == ["relman"]
    assert ran(airflow, "frozen-emergency") == []  # nothing before the exception

    refused = airflow.client("svcowner").answer(EMERGENCY, run_id, GRANT, "GO")
    assert refused.status_code == 403, refused.text
    airflow.client("relman").answer_or_raise(EMERGENCY, run_id, GRANT, "GO")
    admin.wait_pending(EMERGENCY, run_id, "gate__go.ops")
    airflow.client("svcowner").answer_or_raise(EMERGENCY, run_id, "gate__go.ops", "GO")
    assert admin.wait_run(EMERGENCY, run_id)["state"] == "success"
    assert ran(airflow, "frozen-emergency") == ["apply"]
    grant = admin.xcom(EMERGENCY, run_id, GRANT)
    assert (grant["answer"], grant["by"]) == ("GO", "relman")


def test_a_nogo_to_the_exception_stops_the_emergency_before_any_step(airflow: Airflow) -> None:
    admin = airflow.admin
    airflow.wait_dags(EMERGENCY)
    before = ran(airflow, "frozen-emergency")
    run_id = airflow.operator.trigger(EMERGENCY)
    admin.wait_pending(EMERGENCY, run_id, GRANT)
    airflow.client("relman").answer_or_raise(
        EMERGENCY, run_id, GRANT, "NOGO", comment="wait for the ward rounds to end"
    )
    assert admin.wait_run(EMERGENCY, run_id)["state"] == "failed"
    assert ran(airflow, "frozen-emergency") == before
    outcome = admin.xcom(EMERGENCY, run_id, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    assert outcome["reasons"] == ["gate freeze_exception: NOGO or no answer from role grant"]
    grant = admin.xcom(EMERGENCY, run_id, GRANT)
    assert (grant["answer"], grant["comment"]) == ("NOGO", "wait for the ward rounds to end")
    assert "wait for the ward rounds to end" in admin.run(EMERGENCY, run_id)["note"]
