"""Issue 13 against a real Airflow: the kjøreplan, the board, a rollout and its report as pages.

Every page checks its caller (a plugin's app is not behind Airflow's login):
no token or a bad one is 401, a user the auth manager does not let read the DAG
is 403. The pages and ``gonogo report`` read the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from tests.integration.conftest import Airflow, cli

from gonogo.core.documents.kjoreplan import plan_data
from gonogo.core.runbook.loader import load_file

pytestmark = [pytest.mark.integration, pytest.mark.long]

DAG = "it-gate"
ROLES = {"release_manager": "relman", "service_owner": "svcowner2", "hospital": "wardrep"}
HERE = Path(__file__).resolve().parent


def page(airflow: Airflow, path: str, user: str | None = None, **kwargs: Any) -> requests.Response:
    """GET one of gonogo's pages as ``user`` (with the UI's cookie), or anonymously."""
    cookies = {"_token": airflow.client(user).token()} if user else {}
    return requests.get(
        f"{airflow.stack.base_url}/gonogo{path}", cookies=cookies, timeout=30, **kwargs
    )


def run_path(run_id: str) -> str:
    return f"{DAG}/{quote(run_id, safe='')}"


@pytest.fixture(scope="module")
def finished_run(airflow: Airflow) -> str:
    """A run of it-gate that every role said GO to."""
    airflow.wait_dags(DAG)
    run = airflow.operator.trigger(DAG)
    for role, user in ROLES.items():
        task = f"gate__go_nogo.{role}"
        airflow.admin.wait_pending(DAG, run, task)
        airflow.client(user).answer_or_raise(DAG, run, task, "GO", f"{role} ready")
    assert airflow.admin.wait_run(DAG, run)["state"] == "success"
    return run


def test_every_page_refuses_a_caller_without_a_valid_login(
    airflow: Airflow, finished_run: str
) -> None:
    paths = [
        "/board",
        f"/kjoreplan/{DAG}",
        f"/runs/{run_path(finished_run)}",
        f"/report/{run_path(finished_run)}",
    ]
    for path in paths:
        assert page(airflow, path).status_code == 401, path
        assert page(airflow, path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
        forged = requests.get(
            f"{airflow.stack.base_url}/gonogo{path}", cookies={"_token": "e30.e30.e30"}, timeout=30
        )
        assert forged.status_code == 401, path
        assert page(airflow, path, "viewer").status_code == 200, path


def test_a_user_who_may_not_read_the_dag_is_refused_and_sees_an_empty_board(
    airflow: Airflow, finished_run: str
) -> None:
    for path in (
        f"/kjoreplan/{DAG}",
        f"/runs/{run_path(finished_run)}",
        f"/report/{run_path(finished_run)}",
    ):
        refused = page(airflow, path, "outsider")
        assert refused.status_code == 403, path
        assert "may not read" in refused.text
    board = page(airflow, "/board", "outsider", params={"format": "json"})
    assert board.status_code == 200 and board.json()["rollouts"] == []
    assert any(
        r["run_id"] == finished_run
        for r in page(airflow, "/board", "viewer", params={"format": "json"}).json()["rollouts"]
    )


def test_the_plugin_registers_its_views_in_the_ui(airflow: Airflow) -> None:
    plugins = airflow.admin.call("GET", "/plugins")["plugins"]
    gonogo = next(p for p in plugins if p["name"] == "gonogo")
    views = {v["url_route"]: v for v in gonogo["external_views"]}
    assert views["gonogo-board"]["destination"] == "nav"
    assert views["gonogo-kjoreplan"]["href"] == "/gonogo/kjoreplan/{DAG_ID}"
    assert views["gonogo-run"]["destination"] == views["gonogo-report"]["destination"] == "dag_run"


def test_the_kjoreplan_page_is_the_plan_of_the_runbook(airflow: Airflow) -> None:
    shown = page(airflow, f"/kjoreplan/{DAG}", "viewer", params={"format": "json"})
    assert shown.status_code == 200
    assert shown.json() == plan_data(load_file(HERE / "runbooks" / "gate.yaml")[0])
    html = page(airflow, f"/kjoreplan/{DAG}", "viewer")
    assert html.headers["content-type"].startswith("text/html")
    assert "GO/NOGO: GO/NOGO 2" in html.text and "<svg" in html.text
    assert page(airflow, "/kjoreplan/not-a-runbook", "viewer").status_code == 404


def test_the_board_follows_a_gate_from_waiting_to_done(airflow: Airflow) -> None:
    airflow.wait_dags(DAG)
    run = airflow.operator.trigger(DAG)
    airflow.admin.wait_pending(DAG, run, "gate__go_nogo.hospital")

    def row() -> dict[str, Any] | None:
        found = page(airflow, "/board", "relman", params={"format": "json"}).json()["rollouts"]
        return next((r for r in found if r["run_id"] == run), None)

    waiting = airflow.admin.wait_for(
        "all three roles awaited on the board",
        lambda: (r := row()) and len(r["awaited"]) == 3 and r,
        timeout=60,
    )
    assert waiting["phase"] == "go_nogo" and waiting["status"]["colour"] in ("green", "yellow")
    assert {w["role"]: w["users"] for w in waiting["awaited"]}["service_owner"] == [
        "svcowner",
        "svcowner2",
    ]
    view = page(airflow, f"/runs/{run_path(run)}", "relman")
    link = f"/dags/{DAG}/runs/{quote(run, safe='')}/tasks/gate__go_nogo.release_manager/required_actions"
    assert f'href="{link}"' in view.text
    for role, user in ROLES.items():
        task = f"gate__go_nogo.{role}"
        airflow.admin.wait_pending(DAG, run, task)
        airflow.client(user).answer_or_raise(DAG, run, task, "GO", "ready")
    airflow.admin.wait_run(DAG, run)
    done = airflow.admin.wait_for(
        "the board to show the run as done",
        lambda: (r := row()) and r["end"] and r["result"] == "succeeded" and r,
        timeout=60,
    )
    assert done["awaited"] == [] and done["status"]["colour"] == "green"


def test_report_page_and_cli_agree_on_a_run(airflow: Airflow, finished_run: str) -> None:
    report = page(
        airflow, f"/report/{run_path(finished_run)}", "viewer", params={"format": "json"}
    ).json()
    assert report["result"] == "succeeded"
    assert sorted((d["role"], d["answer"], d["by"]) for d in report["decisions"]) == sorted(
        (role, "GO", user) for role, user in ROLES.items()
    )
    times = [d["at"] for d in report["decisions"]]
    assert times == sorted(times)  # in the order the answers were given
    shown = cli(airflow, "viewer", "report", DAG, finished_run, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == report
    markdown = cli(airflow, "viewer", "report", DAG, finished_run)
    assert "- **Outcome:** succeeded" in markdown.stdout
    assert f"{airflow.stack.base_url}/dags/{DAG}/runs/" in markdown.stdout  # log links


def test_report_of_a_nogo_says_what_was_rolled_back(airflow: Airflow) -> None:
    airflow.wait_dags(DAG)
    run = airflow.operator.trigger(DAG)
    airflow.admin.wait_pending(DAG, run, "gate__go_nogo.hospital")
    airflow.client("wardrep").answer_or_raise(
        DAG, run, "gate__go_nogo.hospital", "NOGO", "AMK reports a major incident"
    )
    airflow.admin.wait_run(DAG, run)
    report = page(airflow, f"/report/{run_path(run)}", "viewer", params={"format": "json"}).json()
    assert report["result"] == "rolled_back"
    assert report["status"]["colour"] == "red"
    assert report["outcome"]["undone"] == ["change_something"]
    gate = next(a for a in report["activities"] if a["kind"] == "gate")
    assert gate["result"] == "NOGO"
    html = page(airflow, f"/report/{run_path(run)}", "viewer").text
    assert "AMK reports a major incident" in html and "rolled_back" in html


def test_a_manual_step_is_answered_from_the_cli_and_logged_with_its_role(airflow: Airflow) -> None:
    airflow.wait_dags("it-kinds")
    run = airflow.operator.trigger("it-kinds")
    airflow.admin.wait_pending("it-kinds", run, "run.confirm", timeout=180)
    refused = cli(airflow, "svcowner", "confirm", "it-kinds", run, "confirm", "--failed")
    assert refused.returncode == 1 and "Failed needs a comment" in refused.stderr
    done = cli(
        airflow,
        "svcowner",
        "confirm",
        "it-kinds",
        run,
        "confirm",
        "--done",
        "--comment",
        "file is there",
    )
    assert done.returncode == 0, done.stderr
    assert airflow.admin.wait_run("it-kinds", run)["state"] == "success"
    shown = cli(airflow, "viewer", "decisions", "it-kinds", run, "--format", "json")
    (row,) = json.loads(shown.stdout)["decisions"]
    assert (row["gate"], row["role"], row["answer"], row["by"]) == (
        "step:confirm",
        "operations",
        "Done",
        "svcowner",
    )
