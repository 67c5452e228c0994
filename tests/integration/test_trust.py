"""Gates nobody can get around, against a real Airflow, by users with their own tokens.

Every way around a gate a user with the ordinary `user` role has in Airflow's REST
API is tried here: marking a request success, clearing it, setting the run's state,
writing gonogo's records, spelling the route differently, answering twice for two
roles, starting a run where nobody else can approve it. Another team's DAG beside
gonogo's is left alone.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.integration.conftest import Airflow, cli
from tests.integration.test_gates import open_gate, states

from gonogo.core.runs import stamp

pytestmark = pytest.mark.integration

DAG = "it-gate"
GATE = "gate__go_nogo"
ROLES = {"release_manager": "relman", "service_owner": "svcowner2", "hospital": "wardrep"}


def hitl_path(dag: str, run: str, task: str, index: str = "-1") -> str:
    return f"/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{index}/hitlDetails"


def finish_gate(airflow: Airflow, run: str, dag: str = DAG) -> None:
    for role, user in ROLES.items():
        task = f"{GATE}.{role}"
        airflow.admin.wait_pending(dag, run, task)
        airflow.client(user).answer_or_raise(dag, run, task, "GO", "checked")


def test_a_waiting_gate_cannot_be_marked_cleared_or_recorded_by_hand(airflow: Airflow) -> None:
    run = open_gate(airflow)
    task = f"{GATE}.hospital"
    airflow.admin.wait_pending(DAG, run, task)
    operator = airflow.operator
    base = f"/dags/{DAG}/dagRuns/{run}"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", f"{base}/taskInstances/{task}", {"new_state": "success"}),
        ("PATCH", f"{base}/taskInstances/{task}/-1.0", {"new_state": "success"}),
        ("PATCH", f"{base}/taskInstances/{GATE}.result", {"new_state": "success"}),
        ("PATCH", f"{base}/taskInstances/outcome", {"new_state": "success"}),
        (
            "PATCH",
            f"{base}/taskInstances/prepare.change_something",
            {"new_state": "success", "include_downstream": True},
        ),
        ("PATCH", f"{base}/taskGroupInstances/{GATE}", {"new_state": "success"}),
        (
            "POST",
            f"/dags/{DAG}/clearTaskInstances",
            {"dry_run": False, "dag_run_id": run, "task_ids": [task]},
        ),
        ("POST", f"/dags/{DAG}/clearTaskInstances", {"dry_run": False, "dag_run_id": run}),
        ("PATCH", base, {"state": "success"}),
        ("POST", f"{base}/clear", {"dry_run": False}),
        (
            "POST",
            f"{base}/taskInstances/{task}/xcomEntries",
            {"key": "return_value", "value": {"answer": "GO"}},
        ),
    ]
    for method, path, body in attempts:
        response = operator.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
        detail = response.json()["detail"]
        assert any(w in detail for w in ("by hand", "only by its tasks", "start a new run")), path
    assert states(airflow, DAG, run)[task] == "awaiting_input"
    # The run's note is the decision summary gonogo writes: not edited by hand either.
    assert operator.request("PATCH", base, json={"note": "watching"}).status_code == 403
    finish_gate(airflow, run)
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"


def test_the_answer_rules_hold_for_every_spelling_of_the_route(airflow: Airflow) -> None:
    run = open_gate(airflow)
    task = f"{GATE}.hospital"
    airflow.admin.wait_pending(DAG, run, task)
    wardrep = airflow.client("wardrep")
    bodies = [
        {"chosen_options": ["NOGO"], "params_input": {}},
        {"chosen_options": ["NOGO"], "params_input": {"comment": "\u200b \u2060"}},
        {"chosen_options": ["GO"], "params_input": {"comment": 5}},
        {"chosen_options": ["GO"], "params_input": {"comment": "ok", "extra": "x"}},
    ]
    for index in ("-1", "-1.0", "%20-1", "-01"):
        path = hitl_path(DAG, run, task, index)
        for body in bodies:
            response = wardrep.request("PATCH", path, json=body)
            assert response.status_code == 422, (index, body, response.text)
            assert "nothing was recorded" in response.json()["detail"]
    detail = airflow.admin.wait_pending(DAG, run, task)
    assert detail["response_received"] is False
    # The other requests were not withdrawn by a refused NOGO.
    assert states(airflow, DAG, run)[f"{GATE}.release_manager"] == "awaiting_input"
    # A browser gets a status the UI has no fixed text for, so it shows the body and the reason.
    response = wardrep.request(
        "PATCH", hitl_path(DAG, run, task), json=bodies[0], headers={"Sec-Fetch-Mode": "cors"}
    )
    assert response.status_code == 449
    assert "NOGO needs a comment" in response.json()["detail"]
    finish_gate(airflow, run)
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"


def test_one_person_answers_for_one_role_per_gate(airflow: Airflow) -> None:
    dag = "it-two-roles"
    run = open_gate(airflow, dag)
    relman = airflow.client("relman")
    airflow.admin.wait_pending(dag, run, f"{GATE}.release_manager")
    relman.answer_or_raise(dag, run, f"{GATE}.release_manager", "GO", "ready")
    airflow.admin.wait_pending(dag, run, f"{GATE}.hospital")
    second = relman.answer(dag, run, f"{GATE}.hospital", "GO", "also ready")
    assert second.status_code == 409
    assert "already answered for role release_manager" in second.json()["detail"]
    airflow.client("wardrep").answer_or_raise(dag, run, f"{GATE}.hospital", "GO", "ward ok")
    assert airflow.admin.wait_run(dag, run)["state"] == "success"
    record = airflow.admin.xcom(dag, run, f"{GATE}.hospital")
    assert record["by_id"] == "wardrep"


def test_a_run_whose_sole_approver_started_it_is_refused_before_any_step(
    airflow: Airflow,
) -> None:
    dag = "it-sole-approver"
    run = open_gate(airflow, dag, by="wardrep")
    assert airflow.admin.wait_run(dag, run)["state"] == "failed"
    found = states(airflow, dag, run)
    assert found["before_start"] == "failed"
    assert found["prepare.change_something"] in (None, "upstream_failed", "skipped")
    assert not (airflow.state_dir / "sole-approver-changed.txt").exists()
    log = airflow.admin.task_log(dag, run, "before_start")
    assert "role hospital has nobody left to answer" in log
    outcome = airflow.admin.xcom(dag, run, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    # The refusal's own words, where people look: the outcome, and so the note and pages.
    assert any("role hospital has nobody left to answer" in r for r in outcome["reasons"])
    note = airflow.admin.wait_for(
        "the run note", lambda: airflow.admin.run(dag, run).get("note"), timeout=30
    )
    assert "role hospital has nobody left to answer" in note


def test_a_run_started_without_a_known_user_is_refused_before_any_step(airflow: Airflow) -> None:
    dag = "it-sole-approver"
    airflow.wait_dags(dag)
    airflow.stack.airflow("dags", "trigger", dag)
    runs = airflow.admin.call("GET", f"/dags/{dag}/dagRuns", params={"order_by": "-start_date"})
    run = next(
        r["dag_run_id"]
        for r in runs["dag_runs"]
        if r["run_type"] == "manual" and not (r.get("conf") or {}).get("gonogo_triggered_by")
    )
    assert airflow.admin.wait_run(dag, run)["state"] == "failed"
    assert states(airflow, dag, run)["before_start"] == "failed"
    assert "nobody known triggered this run" in airflow.admin.task_log(dag, run, "before_start")


def test_rollback_waits_for_a_manual_step_still_being_confirmed_and_undoes_it(
    airflow: Airflow,
) -> None:
    dag = "it-manual-parallel"
    run = open_gate(airflow, dag)
    airflow.admin.wait_task(dag, run, "work.breaks", ["failed"], timeout=120)
    airflow.admin.wait_task(
        dag,
        run,
        "rollback.start",
        ["up_for_reschedule", "running", "queued", "scheduled"],
        timeout=60,
    )
    airflow.admin.wait_pending(dag, run, "work.confirm")
    airflow.client("svcowner").answer_or_raise(dag, run, "work.confirm", "Done", "switched")
    assert airflow.admin.wait_run(dag, run, timeout=180)["state"] == "failed"
    outcome = airflow.admin.xcom(dag, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    assert outcome["undone"] == ["confirm"]
    assert (airflow.state_dir / "manual-undone.txt").exists()


def test_another_teams_hitl_dag_is_left_alone(airflow: Airflow) -> None:
    dag = "plain-hitl"
    airflow.wait_dags(dag)
    run = airflow.operator.trigger(dag)
    airflow.admin.wait_pending(dag, run, "gate__review.lead")
    # A blank NOGO is theirs to allow, and nothing else of theirs is withdrawn.
    blank = airflow.client("relman").answer(dag, run, "gate__review.lead", "NOGO")
    assert blank.status_code == 200, blank.text
    airflow.admin.wait_pending(dag, run, "gate__review.second")
    assert states(airflow, dag, run)["gate__review.second"] == "awaiting_input"
    marked = airflow.operator.request(
        "PATCH",
        f"/dags/{dag}/dagRuns/{run}/taskInstances/gate__review.second",
        json={"new_state": "success"},
    )
    assert marked.status_code == 200, marked.text
    finished = airflow.admin.wait_run(dag, run)
    assert not finished.get("note")


def test_a_missing_lock_pool_refuses_the_trigger_until_gonogo_setup_creates_it(
    airflow: Airflow,
) -> None:
    dag = "it-lock-a"
    airflow.wait_dags(dag)
    admin = airflow.admin
    assert admin.request("DELETE", "/pools/gonogo_lock").status_code == 204
    try:
        refused = airflow.operator.request(
            "POST", f"/dags/{dag}/dagRuns", json={"logical_date": None}
        )
        assert refused.status_code == 409
        assert "gonogo setup" in refused.json()["detail"]
    finally:
        made = cli(airflow, "admin", "setup")
    assert made.returncode == 0, made.stderr
    assert "created the pool gonogo_lock with 1 slot" in made.stdout
    assert admin.call("GET", "/pools/gonogo_lock")["slots"] == 1
    admin.call(
        "PATCH",
        "/pools/gonogo_lock",
        json={"name": "gonogo_lock", "slots": 2, "include_deferred": False},
    )
    assert "has 1 now" in cli(airflow, "admin", "setup").stdout
    run = airflow.operator.trigger(dag)
    assert admin.wait_run(dag, run)["state"] == "success"


def test_a_gate_set_to_success_past_the_api_does_not_let_the_next_phase_run(
    airflow: Airflow,
) -> None:
    run = open_gate(airflow)
    for role in ROLES:
        airflow.admin.wait_pending(DAG, run, f"{GATE}.{role}")
    # Straight in the database, as someone with the database's password could: no answer.
    bypass = (
        "from sqlalchemy import select\n"
        "from airflow.models.taskinstance import TaskInstance\n"
        "from airflow.utils.session import create_session\n"
        "from airflow.utils.state import TaskInstanceState\n"
        "with create_session() as session:\n"
        "    for ti in session.scalars(select(TaskInstance).where(\n"
        f"            TaskInstance.dag_id == {DAG!r}, TaskInstance.run_id == {run!r},\n"
        f"            TaskInstance.task_id.startswith({GATE + '.'!r}))).all():\n"
        "        ti.set_state(TaskInstanceState.SUCCESS, session=session)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", bypass], env=airflow.stack.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert airflow.admin.wait_run(DAG, run, timeout=180)["state"] == "failed"
    found = states(airflow, DAG, run)
    assert found["after.after_gate"] == "failed"
    log = airflow.admin.task_log(DAG, run, "after.after_gate")
    assert "there is no recorded GO from role" in log
    assert airflow.admin.xcom(DAG, run, "outcome", key="outcome")["outcome"] == "rolled_back"


def test_a_step_skipped_past_the_api_is_never_a_success(airflow: Airflow) -> None:
    airflow.wait_dags(DAG)
    admin = airflow.admin
    # Paused, the run waits with its task instances made, so the skip lands before any try.
    assert admin.request("PATCH", f"/dags/{DAG}", json={"is_paused": True}).status_code == 200
    try:
        run = airflow.operator.trigger(DAG)
        skip = (
            "from sqlalchemy import select\n"
            "from airflow.models.taskinstance import TaskInstance\n"
            "from airflow.utils.session import create_session\n"
            "from airflow.utils.state import TaskInstanceState\n"
            "with create_session() as session:\n"
            "    (ti,) = session.scalars(select(TaskInstance).where(\n"
            f"        TaskInstance.dag_id == {DAG!r}, TaskInstance.run_id == {run!r},\n"
            "        TaskInstance.task_id == 'prepare.change_something')).all()\n"
            "    ti.set_state(TaskInstanceState.SKIPPED, session=session)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", skip], env=airflow.stack.env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    finally:
        admin.request("PATCH", f"/dags/{DAG}", json={"is_paused": False})
    assert admin.wait_run(DAG, run, timeout=180)["state"] == "failed"
    outcome = admin.xcom(DAG, run, "outcome", key="outcome")
    assert outcome["outcome"] == "incomplete"
    assert any("prepare.change_something" in r for r in outcome["reasons"]), outcome
    assert any("no recorded GO" in r for r in outcome["reasons"]), outcome
    assert "outcome: incomplete" in admin.task_log(DAG, run, "outcome")


@pytest.mark.long  # a whole rollback, then a clear: CI runs it with make test-long
def test_an_undo_and_the_outcome_run_once_even_when_cleared_past_the_api(
    airflow: Airflow,
) -> None:
    run = open_gate(airflow)
    airflow.admin.wait_pending(DAG, run, f"{GATE}.hospital")
    airflow.client("wardrep").answer_or_raise(DAG, run, f"{GATE}.hospital", "NOGO", "not today")
    assert airflow.admin.wait_run(DAG, run, timeout=180)["state"] == "failed"
    assert states(airflow, DAG, run)["rollback.undo_1"] == "success"
    # Cleared straight in the database, a way in the API server never sees.
    clear = (
        "from sqlalchemy import select\n"
        "from airflow.models.taskinstance import TaskInstance, clear_task_instances\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as session:\n"
        "    tis = session.scalars(select(TaskInstance).where(\n"
        f"        TaskInstance.dag_id == {DAG!r}, TaskInstance.run_id == {run!r},\n"
        "        TaskInstance.task_id.in_(['rollback.undo_1', 'outcome']))).all()\n"
        "    clear_task_instances(tis, session)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", clear], env=airflow.stack.env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    airflow.admin.wait_for(
        "the cleared tasks to run again",
        lambda: all(
            ti["try_number"] >= 2 and ti["state"] in ("success", "failed")
            for t, ti in airflow.admin.task_instances(DAG, run).items()
            if t in ("rollback.undo_1", "outcome")
        ),
        timeout=180,
    )
    tries = {t: ti["try_number"] for t, ti in airflow.admin.task_instances(DAG, run).items()}
    undo_log = airflow.admin.task_log(DAG, run, "rollback.undo_1", tries["rollback.undo_1"])
    assert "is not run again" in undo_log and "undoing change_something" not in undo_log
    outcome_log = airflow.admin.task_log(DAG, run, "outcome", tries["outcome"])
    assert "nothing is recorded, promoted, closed or sent again" in outcome_log
    assert airflow.admin.xcom(DAG, run, "outcome", key="outcome")["outcome"] == "rolled_back"


def raw(
    base_url: str, method: str, path: str, body: Any, headers: list[tuple[str, str]]
) -> tuple[int, dict[str, Any]]:
    """Send a request with exactly these headers, repeated ones included (requests folds them)."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    payload = json.dumps(body).encode()
    connection.putrequest(method, "/api/v2" + path)
    for name, value in [*headers, ("Content-Type", "application/json")]:
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(payload)))
    connection.endheaders(payload)
    response = connection.getresponse()
    text = response.read()
    connection.close()
    return response.status, (json.loads(text) if text else {})


def test_a_finished_rollout_is_never_run_again_cleared_edited_or_deleted(
    airflow: Airflow,
) -> None:
    run = open_gate(airflow)
    finish_gate(airflow, run)
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    admin = airflow.admin
    before = admin.task_instances(DAG, run)
    note = admin.run(DAG, run).get("note")
    base = f"/dags/{DAG}/dagRuns/{run}"
    task = f"{base}/taskInstances/after.after_gate"
    attempts: list[tuple[str, str, Any]] = [
        *[
            ("POST", f"/dags/{DAG}/clearTaskInstances", {"dry_run": v, "dag_run_id": run})
            for v in ("false", "0", "no")
        ],
        ("POST", f"{base}/clear", {"dry_run": "false"}),
        ("POST", "/dags/~/clearDagRuns", {"dry_run": False, "dag_runs": [{"dag_run_id": run}]}),
        (
            "POST",
            "/dags/~/clearDagRuns",
            {"dry_run": False, "dag_runs": [{"dag_run_id": run, "dag_id": DAG}]},
        ),
        ("PUT", f"{task}/state-store/gonogo_started", {"value": "x"}),
        ("DELETE", f"{task}/state-store", None),
        ("PATCH", base, {"note": "nothing happened"}),
        ("PATCH", f"{task}", {"note": "nothing happened"}),
        ("DELETE", base, None),
        ("DELETE", f"/dags/{DAG}", None),
    ]
    for method, path, body in attempts:
        response = admin.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
        assert response.json()["detail"], path
    # A dry run only counts, and passes.
    counted = admin.request("POST", f"{base}/clear", json={"dry_run": "true"})
    assert counted.status_code == 200, counted.text
    after = admin.task_instances(DAG, run)
    assert {t: (i["state"], i["try_number"]) for t, i in after.items()} == {
        t: (i["state"], i["try_number"]) for t, i in before.items()
    }
    assert admin.run(DAG, run)["state"] == "success"
    assert admin.run(DAG, run).get("note") == note


def test_the_caller_is_who_airflow_says_it_is_whatever_the_headers(airflow: Airflow) -> None:
    run = open_gate(airflow, by="svcowner")
    task = f"{GATE}.service_owner"
    airflow.admin.wait_pending(DAG, run, task)
    path = hitl_path(DAG, run, task)
    go = {"chosen_options": ["GO"], "params_input": {"comment": "mine"}}
    svcowner, svcowner2 = airflow.client("svcowner"), airflow.client("svcowner2")
    # Two Authorization headers: Airflow reads the first, so gonogo refuses to guess.
    status, body = raw(
        airflow.stack.base_url,
        "PATCH",
        path,
        go,
        [("Authorization", f"Bearer {svcowner.token()}"), ("Authorization", "Basic eDp4")],
    )
    assert status == 400, body
    # A cookie a strict parser cannot read: Airflow's lenient one finds the token, and so does
    # gonogo, so the four-eyes rule still holds for the person who started the run.
    cookie = f'pref={{"a":1}}; _token={svcowner.token()}'
    status, body = raw(airflow.stack.base_url, "PATCH", path, go, [("Cookie", cookie)])
    assert status == 403, body
    assert "started this run" in body["detail"] or "four-eyes" in body["detail"]
    # A token of one user beside the cookie of another.
    status, body = raw(
        airflow.stack.base_url,
        "PATCH",
        path,
        go,
        [("Authorization", f"Bearer {svcowner2.token()}"), ("Cookie", cookie)],
    )
    assert status == 400, body
    assert "different users" in body["detail"]
    assert airflow.admin.wait_pending(DAG, run, task)["response_received"] is False
    airflow.client("relman").answer_or_raise(DAG, run, f"{GATE}.release_manager", "GO", "ok")
    svcowner2.answer_or_raise(DAG, run, task, "GO", "checked")
    airflow.admin.wait_pending(DAG, run, f"{GATE}.hospital")
    airflow.client("wardrep").answer_or_raise(DAG, run, f"{GATE}.hospital", "GO", "ward ok")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    # The trigger through the API got the API server's stamp, signed for this run.
    recorded = airflow.admin.run(DAG, run)["conf"]["gonogo_triggered_by"]
    signed = stamp.verified(airflow.stack.jwt_secret, DAG, run, recorded)
    assert signed == {"id": "svcowner", "name": "svcowner"}


def test_a_trigger_that_sets_gonogo_s_own_conf_is_refused(airflow: Airflow) -> None:
    airflow.wait_dags(DAG)
    forged = {"id": "wardrep", "name": "wardrep"}
    response = airflow.operator.request(
        "POST",
        f"/dags/{DAG}/dagRuns",
        json={"logical_date": None, "conf": {"gonogo_triggered_by": forged}},
    )
    assert response.status_code == 422, response.text
    assert "gonogo_triggered_by" in response.json()["detail"]


def test_a_run_whose_trigger_record_was_written_by_hand_is_refused_before_any_step(
    airflow: Airflow,
) -> None:
    dag = "it-sole-approver"
    airflow.wait_dags(dag)
    forged = {"gonogo_triggered_by": {"id": "operator", "name": "operator", "sig": "0" * 64}}
    airflow.stack.airflow(
        "dags", "trigger", dag, "--run-id", "forged-stamp", "--conf", json.dumps(forged)
    )
    assert airflow.admin.wait_run(dag, "forged-stamp")["state"] == "failed"
    assert states(airflow, dag, "forged-stamp")["before_start"] == "failed"
    log = airflow.admin.task_log(dag, "forged-stamp", "before_start")
    assert "not the API server's" in log
    assert not (airflow.state_dir / "sole-approver-changed.txt").exists()
