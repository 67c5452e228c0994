"""The API-server middleware in-process: route matching, bodies, failing closed, what it forwards.

The app behind it has every write route of the installed Airflow (its paths, its
endpoint names and its own request models), with endpoints that only echo what
reached them; the database reads are replaced by plain functions, since the
middleware's own logic is what is under test. The real thing runs in
tests/integration/test_trust.py.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.testclient import TestClient

from gonogo.core import naming
from gonogo.core.runs import stamp
from gonogo.core.runs.records import Request as Asked
from gonogo.server import middleware, records
from gonogo.server.middleware import GonogoMiddleware

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@cache
def airflow_write_routes() -> list[Any]:
    """Every route of Airflow's own API app that writes (the mounted apps aside)."""
    from airflow.api_fastapi.app import create_app

    app = create_app("all")
    return [
        route
        for route in app.router.routes
        if hasattr(route, "endpoint") and set(getattr(route, "methods", ()) or ()) & WRITES
    ]


def _echo(seen: list[dict[str, Any]], model: Any) -> Any:
    if model is None:

        async def plain(request: Request) -> dict[str, str]:
            seen.append({"path": request.url.path, "body": None})
            return {"dag_run_id": "r1"}

        return plain

    async def typed(request: Request, body: Any) -> dict[str, str]:
        seen.append({"path": request.url.path, "body": json.loads(await request.body())})
        return {"dag_run_id": "r1"}

    typed.__annotations__ = {"request": Request, "body": model, "return": dict}
    return typed


def make_app(seen: list[dict[str, Any]]) -> TestClient:
    app = FastAPI()
    for route in airflow_write_routes():
        field = getattr(route, "body_field", None)
        model = field.field_info.annotation if field is not None else None
        app.add_api_route(
            route.path, _echo(seen, model), methods=list(route.methods), name=route.name
        )
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
        lambda *a: records.RequestRecord(
            Asked(a[2], "awaiting_input", created_at=opened, form=form), "operator", None
        ),
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
@pytest.mark.parametrize("state", ["skipped", "success", "failed", "upstream_failed", None])
def test_an_answer_to_a_request_that_no_longer_waits_is_refused(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, state: Any
) -> None:
    from datetime import UTC, datetime

    closed = records.RequestRecord(
        Asked("gate__g.rm", state, created_at=datetime.now(UTC)), "op", None
    )
    monkeypatch.setattr(records, "hitl_request", lambda *a: closed)
    body = {"chosen_options": ["GO"], "params_input": {"comment": "late"}}
    response = answer(client, "ours", "-1", body)
    assert response.status_code == 409
    assert "this request is closed" in response.json()["detail"]
    assert seen == []


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


@pytest.fixture
def kari(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller is kari (id 7), the lock pool is right, and the stamp secret is set."""
    monkeypatch.setattr(records, "lock_pool_problem", lambda: None)
    monkeypatch.setattr(middleware, "stamp_secret", lambda: "s3cret")

    async def as_kari(scope: Any) -> middleware.Caller:
        return middleware.Caller("7", "kari")

    monkeypatch.setattr(middleware, "caller", as_kari)


@pytest.mark.usefixtures("gonogo_dag", "kari")
def test_a_trigger_records_who_started_the_run_signed_for_that_run(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    body = {"conf": {"version": "1"}, "logical_date": None, "dag_run_id": "r-42"}
    response = client.post("/api/v2/dags/ours/dagRuns", json=body)
    assert response.status_code == 200
    sent = seen[0]["body"]
    assert sent["dag_run_id"] == "r-42"
    recorded = sent["conf"][naming.CONF_TRIGGER]
    assert stamp.verified("s3cret", "ours", "r-42", recorded) == {"id": "7", "name": "kari"}
    assert stamp.verified("s3cret", "ours", "r-43", recorded) is None
    assert stamp.verified("other", "ours", "r-42", recorded) is None


@pytest.mark.usefixtures("gonogo_dag", "kari")
def test_a_trigger_without_a_run_id_gets_one_so_the_stamp_can_sign_it(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    response = client.post("/api/v2/dags/ours/dagRuns", json={"logical_date": None})
    assert response.status_code == 200
    sent = seen[0]["body"]
    assert sent["dag_run_id"].startswith("manual__")
    assert stamp.verified("s3cret", "ours", sent["dag_run_id"], sent["conf"][naming.CONF_TRIGGER])


@pytest.mark.usefixtures("gonogo_dag", "kari")
@pytest.mark.parametrize("key", [naming.CONF_TRIGGER, "gonogo_anything"])
def test_a_trigger_that_sets_a_reserved_conf_key_is_refused_not_overwritten(
    client: TestClient, seen: list[dict[str, Any]], key: str
) -> None:
    forged = {"conf": {"version": "1", key: {"id": "x", "name": "x"}}, "logical_date": None}
    response = client.post("/api/v2/dags/ours/dagRuns", json=forged)
    assert response.status_code == 422
    assert key in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
def test_a_trigger_is_refused_while_the_lock_pool_is_wrong(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "lock_pool_problem", lambda: "the pool has 3 slots")
    response = client.post("/api/v2/dags/ours/dagRuns", json={"conf": {}, "logical_date": None})
    assert response.status_code == 409
    assert "the pool has 3 slots" in response.json()["detail"]
    assert seen == []


# -- default deny: only what a rollout needs -----------------------------------------------------

RUN = "/api/v2/dags/{dag}/dagRuns/r"
TASK = RUN + "/taskInstances/install.start_app"


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize("value", [False, "false", "0", "no", "off", 0])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/dags/{dag}/clearTaskInstances",
        RUN + "/clear",
        "/api/v2/dags/{dag}/clearDagRuns",
    ],
)
def test_a_clear_that_airflow_reads_as_real_is_refused_however_false_is_spelled(
    client: TestClient, seen: list[dict[str, Any]], path: str, value: Any
) -> None:
    body: dict[str, Any] = {"dry_run": value}
    if path.endswith("clearDagRuns"):
        body["dag_runs"] = [{"dag_run_id": "r"}]
    response = client.post(path.format(dag="ours"), json=body)
    assert response.status_code == 403, response.text
    assert "start a new run" in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize("value", [True, "true", "1", "yes"])
def test_a_dry_run_clear_only_counts_and_passes(
    client: TestClient, seen: list[dict[str, Any]], value: Any
) -> None:
    response = client.post("/api/v2/dags/ours/dagRuns/r/clear", json={"dry_run": value})
    assert response.status_code == 200
    assert len(seen) == 1


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"dry_run": False, "dag_runs": [{"dag_run_id": "r", "dag_id": "ours"}]}, 403),
        ({"dry_run": False, "dag_runs": [{"dag_run_id": "r"}]}, 403),  # of which DAG?
        ({"dry_run": False, "partition_key": "p"}, 403),  # every DAG with that partition
        ({"dry_run": False, "dag_runs": [{"dag_run_id": "r", "dag_id": "theirs"}]}, 200),
    ],
)
def test_clearing_runs_of_any_dag_reaches_gonogo_unless_each_names_another_dag(
    client: TestClient, seen: list[dict[str, Any]], body: dict[str, Any], status: int
) -> None:
    response = client.post("/api/v2/dags/~/clearDagRuns", json=body)
    assert response.status_code == status, response.text
    assert len(seen) == (status == 200)


WRITES_NOBODY_NEEDS = [
    ("DELETE", "/api/v2/dags/{dag}", None),
    ("DELETE", RUN, None),
    ("PATCH", RUN, {"note": "all fine"}),
    ("PATCH", RUN, {"state": "success"}),
    ("PATCH", TASK, {"note": "done"}),
    ("PATCH", TASK, {"new_state": "skipped"}),
    ("PATCH", TASK + "/-1", {"new_state": "success"}),
    ("DELETE", TASK, None),
    ("PUT", TASK + "/state-store/gonogo_started", {"value": "x"}),
    ("PATCH", TASK + "/state-store/gonogo_started", {"value": "x"}),
    ("DELETE", TASK + "/state-store/gonogo_started", None),
    ("DELETE", TASK + "/state-store", None),
    ("POST", TASK + "/xcomEntries", {"key": "k", "value": 1}),
    ("PATCH", RUN + "/taskGroupInstances/gate__g", {"new_state": "success"}),
    ("PATCH", RUN + "/taskInstances", {"actions": [{"action": "delete", "entities": ["x"]}]}),
    (
        "PATCH",
        "/api/v2/dags/{dag}/dagRuns",
        {"actions": [{"action": "update", "entities": [{"dag_run_id": "r", "note": "n"}]}]},
    ),
    (
        "POST",
        "/api/v2/backfills",
        {"dag_id": "{dag}", "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-02T00:00:00Z"},
    ),
]


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize(("method", "path", "body"), WRITES_NOBODY_NEEDS)
def test_a_write_a_rollout_never_needs_is_refused_for_gonogo_and_passes_for_others(
    client: TestClient, seen: list[dict[str, Any]], method: str, path: str, body: Any
) -> None:
    def send(dag: str) -> Any:
        payload = json.loads(json.dumps(body).replace("{dag}", dag)) if body is not None else None
        return client.request(method, path.format(dag=dag), json=payload)

    refused = send("ours")
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"]
    assert seen == []
    assert send("theirs").status_code == 200
    assert len(seen) == 1


@pytest.mark.usefixtures("gonogo_dag")
def test_a_bulk_change_under_any_dag_with_bare_ids_is_refused(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    body = {"actions": [{"action": "delete", "entities": ["install.start_app"]}]}
    response = client.patch("/api/v2/dags/~/dagRuns/~/taskInstances", json=body)
    assert response.status_code == 403
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
def test_a_body_airflow_could_not_read_is_refused_not_forwarded(
    client: TestClient, seen: list[dict[str, Any]]
) -> None:
    response = client.post(
        "/api/v2/dags/ours/clearTaskInstances",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "cannot read" in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
def test_two_identity_headers_are_refused_before_anything_else(
    client: TestClient, seen: list[dict[str, Any]], header: str
) -> None:
    values = ["Bearer a", "Basic b"] if header == "Authorization" else ["_token=a", "_token=b"]
    response = client.post(
        "/api/v2/dags/ours/dagRuns/r/clear",
        json={"dry_run": True},
        headers=[(header, v) for v in values],
    )
    assert response.status_code == 400
    assert f"one {header} header" in response.json()["detail"]
    assert seen == []


@pytest.mark.usefixtures("gonogo_dag")
@pytest.mark.parametrize(("admin", "status"), [(True, 200), (False, 403)])
def test_only_an_admin_pauses_a_gonogo_dag(
    client: TestClient,
    seen: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    admin: bool,
    status: int,
) -> None:
    async def someone(scope: Any) -> middleware.Caller:
        return middleware.Caller("7", "kari")

    monkeypatch.setattr(middleware, "caller", someone)
    monkeypatch.setattr(middleware, "_is_admin", lambda who: admin)
    assert client.patch("/api/v2/dags/ours", json={"is_paused": True}).status_code == status
    assert client.patch("/api/v2/dags/theirs", json={"is_paused": True}).status_code == 200


@pytest.fixture
def meeting_log(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An open decision log of a meeting, its form as the DAG builds it."""
    from datetime import UTC, datetime, timedelta

    from tests.conftest import EHR, RUNBOOKS

    from gonogo import load_file
    from gonogo.core.earlylife import names
    from gonogo.dag.builder import build_dags

    runbook, _ = load_file(EHR)
    (life,) = build_dags(runbook, RUNBOOKS, only=names.early_life_dag(runbook.runbook))
    form = life.get_task("m1_1000.log").serialized_params
    opened = datetime.now(UTC) - timedelta(minutes=5)
    monkeypatch.setattr(records, "is_gonogo_dag", lambda dag_id: dag_id == life.dag_id)
    monkeypatch.setattr(
        records,
        "hitl_request",
        lambda *a: records.RequestRecord(
            Asked(a[2], "awaiting_input", created_at=opened, form=form), "operator", None
        ),
    )
    return {"dag": life.dag_id, "form": {n: spec["value"] for n, spec in form.items()}}


def test_a_meeting_log_without_an_owner_or_with_an_unknown_forum_is_refused(
    client: TestClient, seen: list[dict[str, Any]], meeting_log: dict[str, Any]
) -> None:
    path = f"/api/v2/dags/{meeting_log['dag']}/dagRuns/r/taskInstances/m1_1000.log/-1/hitlDetails"
    form = {**meeting_log["form"], "decision_1": "Open the extra ward"}
    response = client.patch(path, json={"chosen_options": ["Logged"], "params_input": form})
    assert response.status_code == 422
    assert "decision 1 (owner_1) needs who" in response.json()["detail"]
    unknown = {**form, "owner_1": "hospital", "escalated_to_1": "the board"}
    response = client.patch(path, json={"chosen_options": ["Logged"], "params_input": unknown})
    assert response.status_code == 422
    assert "escalated_to_1 must be one of 'none', 'deployment_lead'" in response.json()["detail"]
    assert seen == []
    good = {**form, "owner_1": "hospital", "escalated_to_1": "care_leadership"}
    response = client.patch(path, json={"chosen_options": ["Logged"], "params_input": good})
    assert response.status_code == 200, response.text
    assert seen[0]["body"]["params_input"] == good


@pytest.mark.usefixtures("gonogo_dag")
def test_who_started_the_rollout_cannot_approve_the_report_of_its_incident(
    client: TestClient, seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def as_operator(scope: Any) -> middleware.Caller:
        return middleware.Caller("operator", "operator")  # the fixture's run was started by them

    monkeypatch.setattr(middleware, "caller", as_operator)
    body = {"chosen_options": ["Approve"], "params_input": {"comment": ""}}
    for task in ("incident.report", "incident.report__2"):
        path = f"/api/v2/dags/ours/dagRuns/r/taskInstances/{task}/-1/hitlDetails"
        response = client.patch(path, json=body)
        assert response.status_code == 403, task
        assert "four-eyes" in response.json()["detail"]
    assert seen == []
    # A manual step of a phase that happens to be called report is not a report to approve.
    path = "/api/v2/dags/ours/dagRuns/r/taskInstances/install.report/-1/hitlDetails"
    assert client.patch(path, json={"chosen_options": ["Done"]}).status_code == 200
