"""``gonogo trigger`` and ``gonogo watch`` against a real Airflow, as the logged-in user.

A run started from the terminal is stamped with its user by the API server as
one started in the UI, so four-eyes applies at its gate; ``watch`` shows who is
awaited and ends with the outcome. The decision log then lists the withdrawn
requests right after the NOGO that withdrew them, in the CLI and the run note.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from tests.integration.conftest import Airflow, cli

from gonogo.core import naming

# Long: CI runs it with `make test-long`; the CLI rides on the same REST calls test_gates covers.
pytestmark = [pytest.mark.integration, pytest.mark.long]

DAG = "it-gate"
GATE = "gate__go_nogo"
ROLES = {
    "release_manager": ["relman"],
    "service_owner": ["svcowner", "svcowner2"],
    "hospital": ["wardrep"],
}


def trigger(airflow: Airflow, user: str) -> str:
    airflow.wait_dags(DAG)
    started = cli(airflow, user, "trigger", str(airflow.stack.runbooks_dir / "gate.yaml"))
    assert started.returncode == 0, started.stderr
    run = started.stdout.splitlines()[0]
    assert f"{airflow.stack.base_url}/dags/{DAG}/runs/{quote(run, safe='')}/plugin/gonogo-run" in (
        started.stdout
    )
    assert f"started run of {DAG} as {user}: " in started.stdout
    return run


def nogo(airflow: Airflow, run: str) -> None:
    """End the run: the hospital says NOGO, which withdraws the other open requests."""
    airflow.admin.wait_pending(DAG, run, f"{GATE}.hospital")
    airflow.client("wardrep").answer_or_raise(
        DAG, run, f"{GATE}.hospital", "NOGO", "AMK reports a major incident"
    )
    assert airflow.admin.wait_run(DAG, run, timeout=180)["state"] == "failed"


def test_a_run_triggered_from_the_cli_is_the_user_s_and_waits_at_its_gate(airflow: Airflow) -> None:
    run = trigger(airflow, "operator")
    found = airflow.admin.run(DAG, run)
    assert found["triggering_user_name"] == "operator"
    assert found["conf"][naming.CONF_TRIGGER]["id"] == "operator"
    for role, users in ROLES.items():
        detail = airflow.admin.wait_pending(DAG, run, f"{GATE}.{role}")
        assert sorted(u["id"] for u in detail["assigned_users"]) == users
    assert airflow.operator.answer(DAG, run, f"{GATE}.release_manager", "GO").status_code == 403

    shown = cli(airflow, "operator", "watch", DAG, run, "--once")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"run {run}, " in lines[1] and lines[1].endswith("by operator")
    assert any(line.startswith("now: go_nogo: GO/NOGO 2") for line in lines)
    for role, users in ROLES.items():
        assert any(
            line.startswith(f"  go_nogo/{role}: {', '.join(users)}, waiting ") for line in lines
        ), shown.stdout
    assert any(line.startswith("forecast finish ") for line in lines)

    nogo(airflow, run)
    ended = cli(airflow, "operator", "watch", DAG, run, "--every", "1")
    assert ended.returncode == 1, ended.stderr
    assert "outcome: rolled_back at " in ended.stdout
    assert "why: gate go_nogo: NOGO or no answer from role hospital" in ended.stdout

    # The decision log: the NOGO, then what it withdrew, in the CLI and the run note.
    listed = cli(airflow, "relman", "decisions", DAG, run, "--format", "json")
    rows = json.loads(listed.stdout)["decisions"]
    assert [r["answer"] for r in rows] == ["NOGO", "withdrawn", "withdrawn"]
    assert rows[1]["at"] == rows[2]["at"] == rows[0]["at"]
    note = airflow.admin.wait_for(
        "the run note", lambda: airflow.admin.run(DAG, run).get("note"), timeout=30
    )
    decided = [line for line in note.splitlines() if line.startswith("- go_nogo/")]
    assert decided[0].startswith("- go_nogo/hospital: NOGO by wardrep")
    assert decided[1:] == [
        "- go_nogo/release_manager: withdrawn",
        "- go_nogo/service_owner: withdrawn",
    ]


def test_four_eyes_keeps_the_user_who_triggered_from_the_cli_off_their_own_gate(
    airflow: Airflow,
) -> None:
    run = trigger(airflow, "svcowner")
    task = f"{GATE}.service_owner"
    detail = airflow.admin.wait_pending(DAG, run, task)
    assert [u["id"] for u in detail["assigned_users"]] == ["svcowner2"]
    mine = airflow.client("svcowner").answer(DAG, run, task, "GO", "mine")
    assert mine.status_code == 403 and "four-eyes" in mine.json()["detail"]
    shown = cli(airflow, "svcowner", "watch", DAG, run, "--once")
    assert "  go_nogo/service_owner: svcowner2, waiting " in shown.stdout
    nogo(airflow, run)


def test_an_unknown_param_starts_nothing_and_names_the_runbook_s_params(airflow: Airflow) -> None:
    before = airflow.admin.call("GET", f"/dags/{DAG}/dagRuns")["total_entries"]
    refused = cli(
        airflow,
        "operator",
        "trigger",
        str(airflow.stack.runbooks_dir / "gate.yaml"),
        "--param",
        "x=1",
    )
    assert refused.returncode == 2
    assert "gonogo trigger: unknown param 'x' (its params: none)" in refused.stderr
    assert airflow.admin.call("GET", f"/dags/{DAG}/dagRuns")["total_entries"] == before
