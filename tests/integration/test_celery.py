"""The team topology (CeleryExecutor, Postgres, Redis, two workers) started natively.

It runs the example EHR runbook end to end: its plan approved by the CAB, GO/NOGO 2
answered by different approvers, a forced failure after the installation, and rollback; and it shows
that tasks ran on both workers. Skipped, with the reason, where Postgres or
Redis is not configured (a laptop); CI configures both.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
from tests.conftest import ROOT, RUNBOOKS
from tests.integration.conftest import USERS

from gonogo.client.api import AirflowClient
from gonogo.dev.stack import AirflowStack, celery_env, running
from gonogo.dev.windows import windows_from

pytestmark = [pytest.mark.integration, pytest.mark.long]

DATABASE = os.environ.get("GONOGO_TEST_DATABASE_URL", "")
REDIS = os.environ.get("GONOGO_TEST_REDIS_URL", "")
DAG = "ehr-upgrade-4-2"
APPROVAL = f"{DAG}.approval"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


needs_services = pytest.mark.skipif(
    not (
        DATABASE.startswith("postgresql")
        and REDIS
        and _reachable(DATABASE, 5432)
        and _reachable(REDIS, 6379)
    ),
    reason="the Celery topology needs Postgres and Redis: set GONOGO_TEST_DATABASE_URL and "
    "GONOGO_TEST_REDIS_URL (CI sets both)",
)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowStack, str]]:
    root = tmp_path_factory.mktemp("team")
    queue = f"gonogo_{secrets.token_hex(4)}"
    state = root / "state"
    state.mkdir()
    # The EHR upgrade runs now, not in its Tuesday evening window.
    runbooks = root / "runbooks"
    windows_from(RUNBOOKS, runbooks, datetime.now(UTC))
    stack = AirflowStack(
        home=root / "home",
        dags_folder=ROOT / "dags",
        runbooks_dir=runbooks,
        users=USERS,
        database_url=DATABASE,
        executor="CeleryExecutor",
        extra_env={**celery_env(REDIS, queue), "GONOGO_STATE_DIR": str(state)},
    )
    with running(stack):
        stack.start_celery_worker("worker-a", queue)
        stack.start_celery_worker("worker-b", queue)
        yield stack, str(state)


def client(stack: AirflowStack, name: str) -> AirflowClient:
    user = next(u for u in USERS if u.name == name)
    return AirflowClient(stack.base_url, user.name, user.password)


@needs_services
def test_ehr_runbook_on_two_celery_workers_gates_failure_and_rollback(
    team: tuple[AirflowStack, str],
) -> None:
    stack, state = team
    operator = client(stack, "operator")
    for dag_id in (DAG, APPROVAL):
        operator.wait_for(
            f"the DAG {dag_id}",
            lambda dag_id=dag_id: operator.request("GET", f"/dags/{dag_id}").status_code == 200,
            timeout=180,
            interval=1,
        )
    # A normal change: the CAB approves its plan first, on the same workers.
    approval = operator.trigger(APPROVAL)
    for role, user in (("release_manager", "relman"), ("service_owner", "svcowner")):
        task = f"gate__cab.{role}"
        operator.wait_pending(APPROVAL, approval, task, timeout=300)
        client(stack, user).answer_or_raise(APPROVAL, approval, task, "GO")
    assert operator.wait_run(APPROVAL, approval, timeout=300)["state"] == "success"
    run = operator.trigger(DAG, {"version": "4.2.0", "fail_step": "smoke_after"})
    for role, user in (
        ("release_manager", "relman"),
        ("service_owner", "svcowner2"),
        ("hospital", "wardrep"),
    ):
        task = f"gate__go_nogo_2.{role}"
        operator.wait_pending(DAG, run, task, timeout=300)
        client(stack, user).answer_or_raise(DAG, run, task, "GO", f"{user} is ready")
    assert operator.wait_run(DAG, run, timeout=600)["state"] == "failed"

    tis = operator.task_instances(DAG, run)
    assert tis["production_test.smoke_after"]["state"] == "failed"
    outcome = operator.xcom(DAG, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    assert outcome["undone"] == [
        "start_app",
        "install_app",
        "backup_db",
        "stop_app",
        "announce_start",
    ]
    assert tis["rollback.announce_rollback"]["state"] == "success"
    with open(os.path.join(state, "ehr", "db.schema")) as schema:
        assert schema.read().strip() == "schema 4.1"  # the restore really ran
    hosts = {
        ti["hostname"] for ti in tis.values() if ti["state"] == "success" and ti.get("hostname")
    }
    assert {"worker-a", "worker-b"} <= hosts, f"tasks ran on {hosts}"
    decided_by = {
        d["responded_by_user"]["name"]
        for d in operator.hitl_details(DAG, run)
        if d["response_received"]
    }
    assert {"relman", "svcowner2", "wardrep"} <= decided_by
