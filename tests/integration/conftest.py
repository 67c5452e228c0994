"""The real-Airflow harness: one Airflow for the whole test session, driven through REST.

SQLite by default; Postgres when GONOGO_TEST_DATABASE_URL is set (CI sets it).
Every process is killed by its process group at the end of the session.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest
from tests.conftest import ROOT, RUNBOOKS

from gonogo.client.api import AirflowClient
from gonogo.dev.receivers import WebhookReceiver
from gonogo.dev.stack import AirflowStack, User, running

HERE = Path(__file__).resolve().parent

USERS = [
    User("admin", "admin", "admin-pw"),
    User("operator", "user", "operator-pw"),
    User("relman", "user", "relman-pw"),
    User("svcowner", "user", "svcowner-pw"),
    User("svcowner2", "user", "svcowner2-pw"),
    User("wardrep", "user", "wardrep-pw"),
    User("dba", "user", "dba-pw"),
    User("viewer", "viewer", "viewer-pw"),
    # No role: SimpleAuthManager lets this user log in but read no DAG (403 on gonogo's pages).
    User("outsider", "", "outsider-pw"),
]


@dataclass
class Airflow:
    stack: AirflowStack
    state_dir: Path
    http: str  # base URL of the test HTTP server

    def client(self, name: str) -> AirflowClient:
        user = next(u for u in USERS if u.name == name)
        return AirflowClient(self.stack.base_url, user.name, user.password)

    @property
    def admin(self) -> AirflowClient:
        return self.client("admin")

    @property
    def operator(self) -> AirflowClient:
        return self.client("operator")

    def wait_dags(self, *dag_ids: str, timeout: float = 180) -> None:
        admin = self.admin

        def loaded() -> bool:
            return set(dag_ids) <= {d["dag_id"] for d in admin.listed("/dags", "dags")}

        admin.wait_for(f"DAGs {dag_ids} to load", loaded, timeout=timeout, interval=1)


class _Handler(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        count = self.calls[self.path] = self.calls.get(self.path, 0) + 1
        if self.path == "/private":
            expected = "Basic " + base64.b64encode(b"deployer:http-s3cret-pw").decode()
            ok = self.headers.get("Authorization") == expected
            self._send(200 if ok else 401, b'{"user": "deployer"}' if ok else b"{}")
        elif self.path == "/health":
            self._send(200, b'{"status": "ok"}')
        elif self.path == "/slow-health":
            self._send(
                200 if count >= 3 else 503,
                b'{"status": "starting"}' if count < 3 else b'{"status": "ok"}',
            )
        elif self.path == "/broken":
            self._send(500, b'{"error": "boom"}')
        else:
            self._send(404, b"{}")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


MATRIX_CASES = ["none", "s1", "s2", "s3", "s4", "s5", "s6", "undo"]


def build_runbooks_dir(target: Path) -> Path:
    """The examples and the test runbooks, side by side, as one runbooks folder.

    The failure-injection runbook is copied once per case, each with its own
    service, so the cases run at the same time without waiting for each other's lock.
    """
    shutil.copytree(RUNBOOKS, target)
    now = datetime.now(UTC).replace(microsecond=0)
    windows = {
        # Opens tomorrow: a run waits for it without holding a worker slot.
        "later": (now + timedelta(days=1), now + timedelta(days=1, hours=2)),
        # Open now, closes 4 minutes after the harness starts: long work fails at its end.
        "closing": (now - timedelta(hours=1), now + timedelta(minutes=4)),
    }
    window_template = (HERE / "templates" / "window.yaml.in").read_text()
    for name, (start, end) in windows.items():
        (target / f"window_{name}.yaml").write_text(
            window_template.replace("{k}", name)
            .replace("{start}", start.isoformat())
            .replace("{end}", end.isoformat())
        )
    template = (HERE / "templates" / "matrix.yaml.in").read_text()
    for case in MATRIX_CASES:
        (target / f"matrix_{case}.yaml").write_text(template.replace("{k}", case))
    for path in (HERE / "runbooks").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            destination = target / path.relative_to(HERE / "runbooks")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.name != "__init__.py" or not destination.exists():
                shutil.copy(path, destination)
    return target


#: gonogo's DAG files: every Airflow that runs gonogo has both in its DAGs folder.
DAG_FILES = ("gonogo_dags.py", "gonogo_import_errors.py")


def dags_folder(root: Path) -> Path:
    """``root``/dags holding gonogo's DAG files, as a deployment has them."""
    dags = root / "dags"
    dags.mkdir()
    for name in DAG_FILES:
        shutil.copy(ROOT / "dags" / name, dags)
    return dags


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("airflow")
    state = root / "state"
    state.mkdir()
    dags = dags_folder(root)
    for extra in (HERE / "dags").glob("*.py"):  # other teams' DAGs beside gonogo's
        shutil.copy(extra, dags)
    stack = AirflowStack(
        home=root / "home",
        dags_folder=dags,
        runbooks_dir=build_runbooks_dir(root / "runbooks"),
        users=USERS,
        database_url=os.environ.get("GONOGO_TEST_DATABASE_URL") or None,
        # it_web: the test HTTP server, the host of the http steps' paths.
        extra_env={
            "GONOGO_STATE_DIR": str(state),
            "AIRFLOW_CONN_IT_WEB": http_server,
            # Pages of 10, not 100: a run's task instances and requests span several pages
            # here, as a rollout of 30 gates does under Airflow's default, and every
            # list the clients read must page through them (gonogo.client.api.listed).
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "10",
        },
    )
    with running(stack):
        yield Airflow(stack, state, http_server)


def cli(airflow: Airflow, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    password = next(u.password for u in USERS if u.name == user)
    env = {
        **os.environ,
        "GONOGO_AIRFLOW_URL": airflow.stack.base_url,
        "GONOGO_USERNAME": user,
        "GONOGO_PASSWORD": password,
        "GONOGO_CONFIG": "/nonexistent",
    }
    return subprocess.run(
        [sys.executable, "-m", "gonogo.client.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answer_when_open(
    airflow: Airflow, user: str, dag_id: str, run: str, task: str, body: dict[str, Any]
) -> Any:
    """Answer a request as ``user``: the raw response (gonogo holds back a just-opened request)."""
    client = airflow.client(user)
    path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run)}/taskInstances/{quote(task)}/-1/hitlDetails"

    def settled() -> Any:
        response = client.request("PATCH", path, json=body)
        return None if response.status_code == 425 else [response]  # a 4xx Response is falsy

    return client.wait_for(f"{task} to take an answer", settled, timeout=60, interval=2)[0]


@contextlib.contextmanager
def apprise_hook(airflow: Airflow, connection: str, name: str) -> Iterator[WebhookReceiver]:
    """A webhook receiver behind the Apprise connection ``connection``, for a runbook's notify."""
    receiver = WebhookReceiver()
    receiver.start()
    admin = airflow.admin
    admin.request("DELETE", f"/connections/{connection}")
    admin.call(
        "POST",
        "/connections",
        json={
            "connection_id": connection,
            "conn_type": "apprise",
            "extra": json.dumps({"config": {"path": receiver.apprise_url(name)}}),
        },
    )
    try:
        yield receiver
    finally:
        receiver.stop()


def go_live(airflow: Airflow, dag_id: str, text: str) -> tuple[str, str]:
    """Write a runbook with ``early_life:``, roll it out to success, and find the early-life run.

    Returns the rollout's run id and the run of ``<dag_id>.early_life`` it started.
    """
    life_dag = f"{dag_id}.early_life"
    (airflow.stack.runbooks_dir / f"{dag_id}.yaml").write_text(text)
    airflow.wait_dags(dag_id, life_dag)
    admin, operator = airflow.admin, airflow.operator
    rollout = operator.trigger(dag_id)
    assert operator.wait_run(dag_id, rollout, timeout=180)["state"] == "success"

    def started() -> str | None:
        runs = admin.call("GET", f"/dags/{quote(life_dag)}/dagRuns").get("dag_runs", [])
        return runs[0]["dag_run_id"] if runs else None

    return rollout, admin.wait_for("the early-life run", started, timeout=120, interval=2)
