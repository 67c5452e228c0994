"""Issue 24's incident calls against a real Airflow: a P1 red, called until acknowledged, reported.

The test writes its runbook when it runs, with one status round a few minutes
ahead: the rollout succeeds and starts early-life support; the area reports red
and marks it a P1 (a P1 with another colour is refused by the API server); the
on-call engineer on standby is called and does not acknowledge within the
minute the roster gives; the next contact, the system owner, is called and
acknowledges; the incident manager approves the drafted incident report, which
the status page then keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from tests.integration.conftest import Airflow, answer_when_open, apprise_hook, go_live

from gonogo.dev.receivers import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.long]

DAG = "it-incident"
LIFE = f"{DAG}.early_life"
HOOK = "it_incident_hook"


def runbook(round_at: datetime) -> str:
    return f"""\
runbook: {DAG}
title: Lab system go-live with a standby roster
service: {DAG}
environment: test
change: {{id: CHG-IT-INCIDENT, type: standard}}
roles:
  ops: {{users: [dba], title: Technology coordinator}}
  oncall: {{users: [svcowner2], title: On-call engineer}}
  owner: {{users: [svcowner], contact: "system owner on call", title: System owner}}
  incident_manager: {{users: [relman], title: Incident manager}}
notify:
  - on: [incident_call, incident_report, report_overdue]
    connection: {HOOK}
phases:
  - id: work
    steps:
      - {{id: switch_on, bash: echo live, read_only: true}}
early_life:
  lasts: 30m
  timezone: UTC
  coordinator: ops
  areas:
    - {{id: tech, title: Technology, role: ops}}
  reports:
    - {{days: "1-", at: ["{round_at:%H:%M}"]}}
  report_within: 20m
  standby:
    shifts:
      - role: oncall
        days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
        start: "00:00"
        end: "00:00"
        next: owner
    fallback: owner
    acknowledge_within: 1m
"""


@pytest.fixture(scope="module")
def hook(airflow: Airflow) -> Iterator[WebhookReceiver]:
    with apprise_hook(airflow, HOOK, "incident") as receiver:
        yield receiver


def answer(airflow: Airflow, user: str, run: str, task: str, body: dict[str, Any]) -> Any:
    return answer_when_open(airflow, user, LIFE, run, task, body)


def test_a_p1_red_is_called_to_standby_then_the_next_contact_and_its_report_approved(
    airflow: Airflow, hook: WebhookReceiver
) -> None:
    now = datetime.now(UTC)
    round_at = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
    _, life = go_live(airflow, DAG, runbook(round_at))
    admin, operator = airflow.admin, airflow.operator
    group = f"d{1 if round_at.date() == now.date() else 2}_{round_at:%H%M}"
    report = f"{group}.tech"
    admin.wait_pending(LIFE, life, report, timeout=300)
    # A priority goes only with Red: the API server refuses it with Yellow.
    yellow = {"comment": "slow", "needs_decision": False, "incident": "P1"}
    refused = answer(
        airflow, "dba", life, report, {"chosen_options": ["Yellow"], "params_input": yellow}
    )
    assert refused.status_code == 422 and "only with Red" in refused.text, refused.text
    red = {
        "comment": "Lab results do not reach the wards",
        "needs_decision": False,
        "incident": "P1",
    }
    taken = answer(airflow, "dba", life, report, {"chosen_options": ["Red"], "params_input": red})
    assert taken.status_code == 200, taken.text

    # Call 1: the on-call engineer on standby by the roster, told through the notify rule.
    first = f"{group}.call__tech__1"
    asked = admin.wait_pending(LIFE, life, first, timeout=120)
    assert [u["id"] for u in asked["assigned_users"]] == ["svcowner2"]
    assert asked["options"] == ["Acknowledge"]
    called = operator.wait_for(
        "the call to the standby contact",
        lambda: next((a for a in hook.at("incident") if "On-call engineer" in a.body), None),
        timeout=60,
    )
    assert called.title.startswith("INCIDENT P1: Technology reported red")
    # The next contact may not acknowledge the first call: Airflow refuses who is not assigned.
    early = answer(airflow, "svcowner", life, first, {"chosen_options": ["Acknowledge"]})
    assert early.status_code == 403, early.text
    # Nobody acknowledges within the minute: call 2 goes to the shift's next contact.
    second = f"{group}.call__tech__2"
    asked = admin.wait_pending(LIFE, life, second, timeout=150)
    assert [u["id"] for u in asked["assigned_users"]] == ["svcowner"]
    missed = admin.xcom(LIFE, life, first)
    assert missed["role"] == "oncall" and missed["acknowledged"] is False
    took = answer(
        airflow,
        "svcowner",
        life,
        second,
        {"chosen_options": ["Acknowledge"], "params_input": {"comment": "on it"}},
    )
    assert took.status_code == 200, took.text
    done = admin.wait_task(LIFE, life, second, ["success", "failed"], timeout=60)
    assert done["state"] == "success"
    assert admin.xcom(LIFE, life, second)["acknowledged"] is True

    # The incident manager gets the drafted report and approves it.
    draft = f"{group}.report__tech"
    asked = admin.wait_pending(LIFE, life, draft, timeout=120)
    assert [u["id"] for u in asked["assigned_users"]] == ["relman"]
    body = asked["body"]
    assert "# Incident report (P1)" in body
    assert (
        "dba reported Technology red as a P1 incident: Lab results do not reach the wards" in body
    )
    assert "oncall was called and did not acknowledge within 1 minute" in body
    assert "owner was called and acknowledged (svcowner" in body
    refused = answer(airflow, "relman", life, draft, {"chosen_options": ["Send back"]})
    assert refused.status_code == 422, refused.text  # sending it back needs a comment
    approved = answer(airflow, "relman", life, draft, {"chosen_options": ["Approve"]})
    assert approved.status_code == 200, approved.text
    done = admin.wait_task(LIFE, life, draft, ["success", "failed"], timeout=60)
    assert done["state"] == "success"
    kept = admin.xcom(LIFE, life, draft, key="incident_report")
    assert kept["approved"] is True and kept["by"] == "relman" and kept["report"] == body
    page = operator.gonogo(f"/early-life/{DAG}")
    (shown,) = page["incident_reports"]
    assert shown["report"] == body and shown["priority"] == "P1"


FAILING = "it-incident-rollback"


def failing_runbook() -> str:
    """A rollout whose only undo fails: rollback_failed, with the same roster."""
    return f"""\
runbook: {FAILING}
title: Lab system change whose undo fails
service: {FAILING}
environment: test
change: {{id: CHG-IT-INCIDENT-2, type: standard}}
roles:
  ops: {{users: [dba], title: Technology coordinator}}
  oncall: {{users: [svcowner2], title: On-call engineer}}
  owner: {{users: [svcowner], title: System owner}}
  incident_manager: {{users: [relman], title: Incident manager}}
notify:
  - on: [incident_call, incident_report, report_overdue, rollback_failed]
    connection: {HOOK}
phases:
  - id: work
    steps:
      - {{id: change_it, bash: echo changed, rollback: {{bash: exit 3}}}}
      - {{id: verify, bash: exit 1, read_only: true}}
early_life:
  lasts: 1h
  timezone: UTC
  coordinator: ops
  areas:
    - {{id: tech, title: Technology, role: ops}}
  reports:
    - {{days: "1-", at: ["12:00"]}}
  standby:
    shifts:
      - role: oncall
        days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
        start: "00:00"
        end: "00:00"
        next: owner
    fallback: owner
    acknowledge_within: 5m
"""


def test_a_failed_rollback_is_called_to_standby_and_its_report_kept_in_the_run_report(
    airflow: Airflow, hook: WebhookReceiver
) -> None:
    (airflow.stack.runbooks_dir / f"{FAILING}.yaml").write_text(failing_runbook())
    airflow.wait_dags(FAILING)
    admin, operator = airflow.admin, airflow.operator
    run = operator.trigger(FAILING)
    first = "incident.call__1"
    asked = admin.wait_pending(FAILING, run, first, timeout=240)
    assert [u["id"] for u in asked["assigned_users"]] == ["svcowner2"]
    assert admin.xcom(FAILING, run, "outcome", key="outcome")["outcome"] == "rollback_failed"
    path = f"/dags/{FAILING}/dagRuns/{quote(run)}/taskInstances/{{}}/-1/hitlDetails"

    def answer_as(user: str, task: str, body: dict[str, Any]) -> Any:
        client = airflow.client(user)

        def settled() -> Any:
            response = client.request("PATCH", path.format(quote(task)), json=body)
            return None if response.status_code == 425 else [response]

        return client.wait_for(f"{task} to take an answer", settled, timeout=60, interval=2)[0]

    took = answer_as("svcowner2", first, {"chosen_options": ["Acknowledge"]})
    assert took.status_code == 200, took.text
    draft = "incident.report"
    asked = admin.wait_pending(FAILING, run, draft, timeout=120)
    assert "# Incident report (P2): Rollback failed" in asked["body"]
    assert "**not undone**: change_it: undo failed" in asked["body"]
    assert "oncall was called and acknowledged (svcowner2" in asked["body"]
    approved = answer_as("relman", draft, {"chosen_options": ["Approve"]})
    assert approved.status_code == 200, approved.text
    # The run still ends failed, and its report keeps the approved incident report.
    assert operator.wait_run(FAILING, run, timeout=120)["state"] == "failed"
    states = admin.task_instances(FAILING, run)
    assert states["incident.call__2"]["state"] == "skipped"  # acknowledged: nobody else called
    report = operator.gonogo(f"/report/{FAILING}/{quote(run, safe='')}")
    (kept,) = report["incident_reports"]
    assert kept["by"] == "relman" and kept["report"] == asked["body"]
    assert any("INCIDENT P2: Rollback failed" in a.title for a in hook.at("incident"))
