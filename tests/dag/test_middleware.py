"""The API-server middleware in-process: route matching, failing closed, what it forwards.

The app behind it is a small FastAPI app with Airflow's own route paths and endpoint
names; the database reads are replaced by plain functions, since the middleware's
own logic is what is under test. The real thing runs in tests/integration/test_trust.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.testclient import TestClient

from gonogo.core import naming
from gonogo.server import middleware, records
from gonogo.server.middleware import GonogoMiddleware

HITL = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
TRIGGER = "/api/v2/dags/{dag_id}/dagRuns"


def make_app(seen: list[dict[str, Any]]) -> TestClient:
    app = FastAPI()

    async def update_hitl_detail(request: Request) -> dict[str, str]:
        seen.append({"path": request.url.path, "body": json.loads(await request.body())})
        return {"ok": "stored"}

    async def trigger_dag_run(request: Request) -> dict[str, str]:
        seen.append({"path": request.url.path, "body": json.loads(await request.body())})
        return {"dag_run_id": "r1"}

    app.add_api_route(HITL, update_hitl_detail, methods=["PATCH"])
    app.add_api_route(TRIGGER, trigger_dag_run, methods=["POST"])
    app.add_middleware(GonogoMiddleware)
    return TestClient(app)


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(seen: list[dict[str, Any]]) -> TestClient:
    return make_app(seen)


@pytest.fixture
def gonogo_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    monkeypatch.setattr(records, "is_gonogo_dag", lambda dag_id: dag_id == "ours")
    opened = datetime.now(UTC) - timedelta(minutes=5)
    form = {"comment": {"value": "", "schema": {"type": ["string", "null"]}}}
    monkeypatch.setattr(
        records,
        "hitl_request",
        lambda *a: records.RequestRecord(a[2], opened, form, False, "operator", None),
    )
    monkeypatch.setattr(records, "gate_answers", lambda *a: [])


def answer(client: TestClient, dag: str, index: str, body: dict[str, Any], **headers: str) -> Any:
    path = f"/api/v2/dags/{dag}/dagRuns/r/taskInstances/gate__g.rm/{index}/hitlDetails"
    return client.patch(path, json=body, headers=headers)


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize("index", ["-1", "-1.0", "-01", "%20-1"])
def test_a_blank_nogo_is_refused_whatever_the_spelling_of_the_route(
    client: TestClient, seen: list[dict[str, Any]], index: str
) -> None:
    response = answer(client, "ours", index, {"chosen_options": ["NOGO"], "params_input": {}})
    assert response.status_code == 422
    assert "needs a comment" in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
def test_a_browser_gets_a_status_whose_body_the_ui_shows(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    body = {"chosen_options": ["NOGO"], "params_input": {}}
    response = answer(client, "ours", "-1", body, **{"Sec-Fetch-Mode": "cors"})
    assert response.status_code == middleware.BROWSER_STATUS
    assert "needs a comment" in response.json()["detail"]


@pytest.mark.usefixtures("gonogo_dag")
def test_a_good_answer_is_forwarded_untouched(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    body = {"chosen_options": ["NOGO"], "params_input": {"comment": "AMK incident"}}
    response = answer(client, "ours", "-1", body)
    assert response.status_code == 200
    assert seen[0]["body"] == body


@pytest.mark.usefixtures("gonogo_dag")
def test_another_teams_dag_is_not_checked(client: TestClient, seen: list[dict[str, Any]]) -> None:
    response = answer(client, "theirs", "-1", {"chosen_options": ["NOGO"]})
    assert response.status_code == 200
    assert len(seen) == 1


def test_when_a_check_cannot_be_made_nothing_is_changed(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(dag_id: str) -> bool:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(records, "is_gonogo_dag", unreachable)
    body = {"chosen_options": ["GO"], "params_input": {"comment": "fine"}}
    response = answer(client, "ours", "-1", body)
    assert response.status_code == 503
    assert "nothing was changed" in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
def test_a_trigger_records_who_started_the_run_over_any_forged_value(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "lock_pool_problem", lambda: None)

    async def kari(scope: Any) -> middleware.Caller:
        return middleware.Caller("7", "kari")

    monkeypatch.setattr(middleware, "caller", kari)
    forged = {"conf": {"version": "1", naming.CONF_TRIGGER: {"id": "x", "name": "x"}}}
    response = client.post("/api/v2/dags/ours/dagRuns", json=forged)
    assert response.status_code == 200
    assert seen[0]["body"]["conf"] == {
        "version": "1",
        naming.CONF_TRIGGER: {"id": "7", "name": "kari"},
    }


@pytest.mark.usefixtures("gonogo_dag")
def test_a_trigger_is_refused_while_the_lock_pool_is_wrong(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "lock_pool_problem", lambda: "the pool has 3 slots")
    response = client.post("/api/v2/dags/ours/dagRuns", json={"conf": {}})
    assert response.status_code == 409
    assert "the pool has 3 slots" in response.json()["detail"]
    assert seen == []
