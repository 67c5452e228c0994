"""The approval DAG tells the CAB by the runbook's rules, and shows the kjøreplan it approves.

The DAG is gonogo's real ``<runbook>.approval``, built in-process; its gate tasks
send through the real Apprise transport to a webhook receiver on 127.0.0.1, over
connections given as environment variables. Only the Variables that make each
delivery happen once are a dict. The real runs are in tests/integration/test_notify.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import airflow.sdk
import pytest
from airflow.sdk.exceptions import AirflowFailException
from starlette.testclient import TestClient
from tests.dag.fakes import TaskInstance, Variables

from gonogo.core import naming
from gonogo.core.documents.kjoreplan import plan_data
from gonogo.core.runbook.loader import load_text
from gonogo.dag.approval import needs_approval_dag
from gonogo.dag.builder import build_dags
from gonogo.dag.gates import GateRoleOperator, gate_result
from gonogo.dag.notify import RequestNotifier, runbook_of
from gonogo.dev.receivers import WebhookReceiver
from gonogo.server import pages, rundata

RUNBOOK = """\
runbook: plan-told
title: A plan the CAB is told about
service: svc
environment: prod
change: {id: CHG-TOLD, type: normal}
roles:
  cab: {users: [svcowner], title: Change Advisory Board}
  board: {users: [svcowner2], title: Second board}
  rm: {users: [relman], title: Release Manager}
approval: {sign_off: [cab, board], timeout: 1h}
notify:
  - on: [gate_waiting, gate_expiring]
    connection: it_approvers
    roles: [cab, board]
  - on: [gate_waiting]
    connection: it_rm_only
    roles: [rm]
  - on: [gate_decided]
    connection: it_desk
phases:
  - gate: go
    title: GO/NOGO before the change
    sign_off: [rm]
  - id: work
    steps:
      - {id: change, bash: echo change}
"""
STANDARD = """\
runbook: std-change
title: A standard change
service: std
environment: prod
change: {id: CHG-STD, type: standard}
roles:
  ops: {users: [operator]}
phases:
  - id: work
    steps:
      - {id: change, bash: echo change}
"""
DAG_ID = naming.approval_dag("plan-told")


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    for name in ("it_approvers", "it_rm_only", "it_desk"):
        path = receiver.apprise_url(name.removeprefix("it_"))
        connection = {"conn_type": "apprise", "extra": {"config": {"path": path}}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(connection))
    monkeypatch.setattr(Variables, "values", {}, raising=False)
    monkeypatch.setattr(airflow.sdk, "Variable", Variables)
    monkeypatch.delenv("GONOGO_POLICY", raising=False)
    yield receiver
    receiver.stop()


@pytest.fixture
def dag(tmp_path: Path) -> Any:
    runbook, _ = load_text(RUNBOOK, "plan-told.yaml")
    (approval,) = [d for d in build_dags(runbook, tmp_path) if d.dag_id == DAG_ID]
    return approval


def context(dag: Any, task_id: str, pulled: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "dag": dag,
        "task": dag.get_task(task_id),
        "ti": TaskInstance(pulled, task_id),
        "run_id": "manual__approve-1",
        "params": {},
        "dag_run": SimpleNamespace(conf={}, triggering_user_name="operator", start_date=None),
    }


def requests_of(dag: Any) -> list[GateRoleOperator]:
    return [t for t in dag.tasks if isinstance(t, GateRoleOperator)]


def test_each_cab_request_tells_gate_waiting_and_finds_the_runbooks_rules(dag: Any) -> None:
    asked = requests_of(dag)
    assert sorted(t.task_id for t in asked) == ["gate__cab.board", "gate__cab.cab"]
    for task in asked:
        assert [n.event for n in task.notifiers if isinstance(n, RequestNotifier)] == [
            "gate_waiting"
        ]
    found = runbook_of({"dag": dag})
    assert found is not None and [r.connection for r in found.notify] == [
        "it_approvers",
        "it_rm_only",
        "it_desk",
    ]


def test_a_cab_role_is_called_to_its_request_by_the_rules_that_name_it(
    dag: Any, hook: WebhookReceiver
) -> None:
    for task in requests_of(dag):
        task.notifiers[0].notify(context(dag, task.task_id))
    titles = sorted(a.title for a in hook.at("approvers"))
    assert titles == [
        "Plan approval (CAB) waits for Change Advisory Board: A plan the CAB is told about",
        "Plan approval (CAB) waits for Second board: A plan the CAB is told about",
    ]
    assert hook.at("rm_only") == []  # that rule names only the release manager
    assert hook.at("desk") == []  # and that one does not carry gate_waiting
    body = hook.at("approvers")[0].body
    assert "For: " in body and "plan approval run manual__approve-1" in body


def test_the_cab_decision_is_told_as_a_plan_approval(dag: Any, hook: WebhookReceiver) -> None:
    answers = {
        naming.gate_task(naming.APPROVAL_GATE, role): {"answer": naming.GO, "by": by, "role": role}
        for role, by in (("cab", "svcowner"), ("board", "svcowner2"))
    }
    result = dag.get_task(naming.gate_task(naming.APPROVAL_GATE, naming.RESULT))
    gate_result(**result.op_kwargs, **context(dag, result.task_id, answers))
    (decided,) = hook.at("desk")
    assert decided.title == "Plan approval (CAB): GO: A plan the CAB is told about"
    assert "The plan is approved: once the approval is recorded, the rollout may start" in (
        decided.body
    )
    assert "The change goes on" not in decided.body


def test_no_answer_in_time_is_told_as_a_plan_left_unapproved(
    dag: Any, hook: WebhookReceiver
) -> None:
    task = dag.get_task("gate__cab.cab")
    with pytest.raises(AirflowFailException, match="did not answer in time"):
        task._timed_out(context(dag, task.task_id))
    (decided,) = hook.at("desk")
    assert decided.title == "Plan approval (CAB): NOGO: A plan the CAB is told about"
    assert "the rollout cannot start until the CAB approves a plan" in decided.body
    assert "rolled back" not in decided.body


# -- the Kjøreplan tab ---------------------------------------------------------------------------


@pytest.fixture
def tab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The pages app over a runbooks folder; who may read what is not under test here."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "plan-told.yaml").write_text(RUNBOOK)
    (folder / "std-change.yaml").write_text(STANDARD)
    monkeypatch.delenv("GONOGO_POLICY", raising=False)
    monkeypatch.setattr(rundata, "_RUNBOOKS", rundata.Runbooks(folder))
    monkeypatch.setattr(pages, "may_read", lambda user, dag_id: True)
    app = pages.create_app()
    app.dependency_overrides[pages.caller] = lambda: SimpleNamespace(id="viewer")
    return TestClient(app)


def test_the_approval_dags_tab_shows_the_kjoreplan_of_the_plan_it_approves(
    tab: TestClient,
) -> None:
    shown = tab.get(f"/kjoreplan/{DAG_ID}", params={"format": "json"})
    assert shown.status_code == 200, shown.text
    runbook, _ = load_text(RUNBOOK, "plan-told.yaml")
    assert shown.json() == json.loads(json.dumps(plan_data(runbook)))
    assert tab.get("/kjoreplan/plan-told", params={"format": "json"}).json() == shown.json()


@pytest.mark.parametrize(
    "dag_id",
    [
        "std-change.approval",  # a standard change needs no plan approval: no such DAG
        "nowhere.approval",  # no runbook
        ".approval",
    ],
)
def test_an_approval_dag_that_does_not_exist_has_no_kjoreplan(tab: TestClient, dag_id: str) -> None:
    assert tab.get(f"/kjoreplan/{dag_id}").status_code == 404


def test_the_runbook_of_each_dag_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GONOGO_POLICY", raising=False)
    (tmp_path / "plan-told.yaml").write_text(RUNBOOK)
    (tmp_path / "std-change.yaml").write_text(STANDARD)
    found = rundata.Runbooks(tmp_path)
    told = found.plan_of(DAG_ID)
    assert told is not None and told.runbook == "plan-told" and needs_approval_dag(told)
    assert found.plan_of("plan-told") == told
    std = found.plan_of("std-change")
    assert std is not None and not needs_approval_dag(std)
    assert found.plan_of("std-change.approval") is None
    assert found.get(DAG_ID) is None  # the board and run pages still know only rollouts
