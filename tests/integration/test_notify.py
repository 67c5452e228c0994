"""Issue 14 against a real Airflow: messages once each with working links, failures recorded,
the change record checked before any step, and one incident when rollback fails."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlparse

import pytest
import requests
from tests.integration.conftest import Airflow

from gonogo.dev.receivers import Mailbox, WebhookReceiver
from gonogo.dev.servicenow import FakeServiceNow

pytestmark = [pytest.mark.integration, pytest.mark.long]

FMT = "%Y-%m-%d %H:%M:%S"


class Ends:
    def __init__(self) -> None:
        self.hook = WebhookReceiver(failing={"/broken"})
        self.mail = Mailbox()
        self.snow = FakeServiceNow()


@pytest.fixture(scope="module")
def ends(airflow: Airflow) -> Iterator[Ends]:
    found = Ends()
    found.hook.start()
    found.mail.start()
    found.snow.start()
    now = datetime.now(UTC)
    found.snow.add_change(
        "CHG0077001",
        state="-3",
        approval="requested",
        start=(now - timedelta(hours=1)).strftime(FMT),
        end=(now + timedelta(hours=3)).strftime(FMT),
    )
    found.snow.add_change("CHG0077002", type="standard")
    admin = airflow.admin
    connections = [
        {
            "connection_id": "it_hook",
            "conn_type": "apprise",
            "extra": json.dumps({"config": {"path": found.hook.apprise_url("it")}}),
        },
        {
            "connection_id": "it_hook_broken",
            "conn_type": "apprise",
            "extra": json.dumps({"config": {"path": found.hook.apprise_url("broken")}}),
        },
        {
            "connection_id": "it_mail",
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": found.mail.port,
            "extra": json.dumps(
                {
                    "from_email": "gonogo@hospital.example",
                    "disable_ssl": True,
                    "disable_tls": True,
                    "retry_limit": 0,
                    "timeout": 10,
                }
            ),
        },
        {
            "connection_id": "it_snow",
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": found.snow.port,
            "schema": "http",
            "login": found.snow.user,
            "password": found.snow.password,
        },
    ]
    for conn in connections:
        admin.request("DELETE", f"/connections/{conn['connection_id']}")
        admin.call("POST", "/connections", json=conn)
    yield found
    found.hook.stop()
    found.mail.stop()
    found.snow.stop()


def _wait_pending(airflow: Airflow, dag: str, run: str, task: str) -> None:
    """Wait for the request; on a timeout, show what the run did instead."""
    operator = airflow.operator
    try:
        operator.wait_pending(dag, run, task, timeout=180)
    except TimeoutError as exc:
        states = {t: ti["state"] for t, ti in operator.task_instances(dag, run).items()}
        logs = {
            t: operator.task_log(dag, run, t)[-3000:] for t, s in states.items() if s == "failed"
        }
        raise AssertionError(f"{exc}\nstates: {states}\nlogs: {logs}") from None


def _titles(ends: Ends, path: str = "it") -> list[str]:
    return [a.title for a in ends.hook.at(path)]


def test_two_gates_send_each_message_once_with_links_that_open_the_request(
    airflow: Airflow, ends: Ends
) -> None:
    dag = "it-notify"
    airflow.wait_dags(dag)
    operator = airflow.operator
    run = operator.trigger(dag)
    for task, user in (
        ("gate__go_nogo_2.release_manager", "relman"),
        ("gate__go_nogo_3.hospital", "wardrep"),
    ):
        _wait_pending(airflow, dag, run, task)
        approver = airflow.client(user)
        message = operator.wait_for(
            f"the call to {user}",
            lambda t=task: next(
                (a for a in ends.hook.at("it") if "waits for" in a.title and t in a.body), None
            ),
            timeout=60,
        )
        link = next(w for w in message.body.split() if "/required_actions" in w)
        parsed = urlparse(link)
        assert f"{parsed.scheme}://{parsed.netloc}" == airflow.stack.base_url
        # The link opens in the approver's session and names the open request.
        page = requests.get(
            link, headers={"Authorization": f"Bearer {approver.token()}"}, timeout=30
        )
        assert page.status_code == 200
        _, _, link_dag, _, link_run, _, link_task, _ = parsed.path.split("/")
        detail = approver.call(
            "GET",
            f"/dags/{link_dag}/dagRuns/{link_run}/taskInstances/{unquote(link_task)}/-1/hitlDetails",
        )
        assert detail["response_received"] is False and unquote(link_run) == run
        approver.answer_or_raise(dag, run, task, "GO", "ready")
    assert operator.wait_run(dag, run, timeout=300)["state"] == "success"

    def arrived() -> list[str] | None:
        titles = [t for t in _titles(ends) if "Two gates" in t]
        return titles if any(t.startswith("Done") for t in titles) else None

    operator.wait_for("run_finished", arrived, timeout=60)
    titles = [t for t in _titles(ends) if "Two gates" in t]
    assert sorted(titles) == sorted(
        [
            "Started: Two gates, and everyone told",
            "GO/NOGO 2 waits for Release Manager: Two gates, and everyone told",
            "GO/NOGO 2: GO: Two gates, and everyone told",
            "GO/NOGO 3 waits for Hospital representative: Two gates, and everyone told",
            "GO/NOGO 3: GO: Two gates, and everyone told",
            "Done: Two gates, and everyone told",
        ]
    )
    for arrival in ends.hook.at("it"):
        if "Two gates" in arrival.title:
            assert (
                "CHG-IT-NOTIFY" in arrival.body
                and f"{airflow.stack.base_url}/dags/it-notify/runs/" in arrival.body
            )
    mails = [m for m in ends.mail.messages if "Two gates" in m.title]
    assert [(m.path, m.title) for m in mails] == [
        ("relman@hospital.example", "Done: Two gates, and everyone told")
    ]
    # The broken webhook did not fail the run, and the note says so, without the URL.
    note = operator.wait_for("the run note", lambda: operator.run(dag, run).get("note"), timeout=60)
    assert "notification to it_hook_broken failed:" in note
    assert "/broken" not in note and str(ends.hook.port) not in note


def test_the_cab_is_called_to_the_plan_approval_and_told_its_decision(
    airflow: Airflow, ends: Ends
) -> None:
    dag = "it-notify-approval.approval"
    airflow.wait_dags(dag)
    operator = airflow.operator
    run = operator.trigger(dag)
    task = "gate__cab.cab"
    _wait_pending(airflow, dag, run, task)
    title = "A plan the CAB is told about"
    message = operator.wait_for(
        "the call to the CAB",
        lambda: next((a for a in ends.hook.at("it") if a.title.endswith(title)), None),
        timeout=60,
    )
    assert message.title == f"Plan approval (CAB) waits for Change Advisory Board: {title}"
    assert "For: Change Advisory Board" in message.body
    assert f"plan approval run {run}" in message.body
    link = next(w for w in message.body.split() if "/required_actions" in w)
    assert unquote(urlparse(link).path).endswith(
        f"/dags/{dag}/runs/{run}/tasks/{task}/required_actions"
    )
    airflow.client("svcowner").answer_or_raise(dag, run, task, "GO", "approved at CAB")
    assert operator.wait_run(dag, run, timeout=300)["state"] == "success"
    decided = operator.wait_for(
        "the decision",
        lambda: next(
            (a for a in ends.hook.at("it") if a.title.startswith("Plan approval (CAB): GO")), None
        ),
        timeout=60,
    )
    assert decided.title == f"Plan approval (CAB): GO: {title}"
    assert "The plan is approved" in decided.body
    assert [a.title for a in ends.hook.at("it") if a.title.endswith(title)] == [
        message.title,
        decided.title,
    ]
    # Its Kjøreplan tab is the plan it approves.
    shown = requests.get(
        f"{airflow.stack.base_url}/gonogo/kjoreplan/{dag}",
        params={"format": "json"},
        headers={"Authorization": f"Bearer {airflow.client('svcowner').token()}"},
        timeout=30,
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["runbook"] == "it-notify-approval"


def test_an_unapproved_change_stops_the_run_before_any_step(airflow: Airflow, ends: Ends) -> None:
    dag = "it-itsm-refused"
    airflow.wait_dags(dag)
    operator = airflow.operator
    run = operator.trigger(dag)
    assert operator.wait_run(dag, run, timeout=300)["state"] == "failed"
    tis = operator.task_instances(dag, run)
    assert tis["begin"]["state"] == "failed"
    assert tis["install.touch_state"]["state"] in ("upstream_failed", "skipped")
    assert not (airflow.state_dir / "itsm-refused-ran").exists()
    log = operator.task_log(dag, run, "begin")
    assert (
        "ServiceNow change CHG0077001 is not approved: approval is 'requested', state is 'Authorize'"
        in log
    )
    outcome = operator.xcom(dag, run, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    assert ends.snow.change("CHG0077001").get("close_code", "") == ""


def test_a_failed_rollback_raises_one_incident_even_when_the_outcome_runs_again(
    airflow: Airflow, ends: Ends
) -> None:
    dag = "it-itsm-rollback-failed"
    airflow.wait_dags(dag)
    operator = airflow.operator
    run = operator.trigger(dag)
    assert operator.wait_run(dag, run, timeout=300)["state"] == "failed"
    assert operator.xcom(dag, run, "outcome", key="outcome")["outcome"] == "rollback_failed"
    incidents = [i for i in ends.snow.incidents() if i.get("caused_by")]
    assert len(incidents) == 1 and incidents[0]["priority"] == "1"
    change = ends.snow.change("CHG0077002")
    assert incidents[0]["caused_by"] == change["sys_id"]
    assert change["close_code"] == "unsuccessful"

    # The outcome runs again, as after a retry. (A person cannot clear it through the API:
    # the server refuses that; the scheduler's own path is the CLI's.)
    rerun = (
        "from sqlalchemy import select\n"
        "from airflow.models.taskinstance import TaskInstance, clear_task_instances\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as session:\n"
        "    tis = session.scalars(select(TaskInstance).where(\n"
        f"        TaskInstance.dag_id == {dag!r}, TaskInstance.run_id == {run!r},\n"
        "        TaskInstance.task_id == 'outcome')).all()\n"
        "    clear_task_instances(tis, session)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", rerun], env=airflow.stack.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    operator.wait_task(dag, run, "outcome", ["failed"], timeout=180)
    operator.wait_run(dag, run, timeout=120)
    assert operator.task_instances(dag, run)["outcome"]["try_number"] >= 2
    assert len(ends.snow.incidents()) == 1
    alarms = [a for a in ends.hook.at("it") if a.title.startswith("ROLLBACK FAILED (P1)")]
    assert len(alarms) == 1
    assert "For: Incident manager (incident desk)" in alarms[0].body
    assert incidents[0]["number"] in alarms[0].body
    notes = ends.snow.notes("CHG0077002")
    assert sum("outcome rollback_failed" in n for n in notes) == 1
