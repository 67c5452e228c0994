"""Four-eyes by identity under the FAB auth manager, against a real Airflow.

Under FAB a user's id is their numeric database id (as a string) and the run's
``triggering_user_name`` is their login, so the runbooks here list the ids
Airflow gave the users. The person who started a run is kept from approving it by
id, one person answers for one role per gate, and a run nobody else could approve
is refused before any step. One stack of its own, with the FAB auth manager.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tests.integration.conftest import dags_folder
from tests.integration.test_trust import raw

from gonogo.client.api import AirflowClient
from gonogo.core.runs import stamp
from gonogo.dev.stack import AirflowStack, User, running

pytestmark = [pytest.mark.integration, pytest.mark.long]

USERS = [
    User("admin", "admin", "admin-pw"),
    User("relman", "user", "relman-pw"),
    User("svcowner", "user", "svcowner-pw"),
    User("svcowner2", "user", "svcowner2-pw"),
    User("wardrep", "user", "wardrep-pw"),
]
GATE = "gate__go_nogo"

GATE_RUNBOOK = """\
runbook: fab-gate
title: A gate whose roles are FAB user ids
service: fab-gate
environment: test
change: {{id: CHG-FAB-GATE, type: normal}}
roles:
  release_manager: {{users: ["{relman}"]}}
  service_owner: {{users: ["{svcowner}", "{svcowner2}"]}}
  hospital: {{users: ["{wardrep}", "{relman}"]}}
phases:
  - id: prepare
    steps:
      - id: change_something
        bash: echo changed
        rollback: {{bash: echo "undoing change_something"}}
  - gate: go_nogo
    sign_off: [release_manager, service_owner, hospital]
  - id: after
    steps:
      - id: after_gate
        bash: echo "after the gate"
        read_only: true
"""

SOLE_RUNBOOK = """\
runbook: fab-sole
title: A gate whose only hospital approver might start the run
service: fab-sole
environment: test
change: {{id: CHG-FAB-SOLE, type: normal}}
roles:
  release_manager: {{users: ["{relman}"]}}
  hospital: {{users: ["{wardrep}"]}}
phases:
  - id: prepare
    steps:
      - id: change_something
        bash: echo changed > "$GONOGO_STATE_DIR/fab-sole-changed.txt"
        rollback: {{bash: "true"}}
  - gate: go_nogo
    sign_off: [release_manager, hospital]
"""


@dataclass
class Fab:
    stack: AirflowStack
    ids: dict[str, str]
    state_dir: Path

    def client(self, name: str) -> AirflowClient:
        user = next(u for u in USERS if u.name == name)
        return AirflowClient(self.stack.base_url, user.name, user.password)

    @property
    def admin(self) -> AirflowClient:
        return self.client("admin")

    def wait_dags(self, *dag_ids: str, timeout: float = 180) -> None:
        def loaded() -> bool:
            found = self.admin.listed("/dags", "dags")
            return set(dag_ids) <= {d["dag_id"] for d in found}

        self.admin.wait_for(f"DAGs {dag_ids} to load", loaded, timeout=timeout, interval=1)

    def states(self, dag_id: str, run: str) -> dict[str, str]:
        return {t: ti["state"] for t, ti in self.admin.task_instances(dag_id, run).items()}


@pytest.fixture(scope="module")
def fab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fab]:
    root = tmp_path_factory.mktemp("fab")
    state = root / "state"
    state.mkdir()
    dags = dags_folder(root)
    runbooks = root / "runbooks"
    runbooks.mkdir()
    stack = AirflowStack(
        home=root / "home",
        dags_folder=dags,
        runbooks_dir=runbooks,
        users=USERS,
        database_url=os.environ.get("GONOGO_TEST_DATABASE_URL") or None,
        auth_manager="fab",
        extra_env={"GONOGO_STATE_DIR": str(state)},
    )
    with running(stack):
        ids = stack.user_ids()
        (runbooks / "fab_gate.yaml").write_text(GATE_RUNBOOK.format(**ids))
        (runbooks / "fab_sole.yaml").write_text(SOLE_RUNBOOK.format(**ids))
        yield Fab(stack, ids, state)


def test_fab_user_ids_are_database_ids_and_tokens_work(fab: Fab) -> None:
    assert all(i.isdigit() for i in fab.ids.values()), fab.ids
    assert len(set(fab.ids.values())) == len(USERS)
    # POST /auth/token with a login and password gives a JWT for the REST API under FAB too.
    assert fab.client("relman").request("GET", "/dags").status_code == 200
    wrong = requests.post(
        f"{fab.stack.base_url}/auth/token",
        json={"username": "relman", "password": "wrong"},
        timeout=30,
    )
    assert wrong.status_code in (400, 401), wrong.text


def test_four_eyes_and_one_role_per_person_by_fab_id(fab: Fab) -> None:
    dag = "fab-gate"
    fab.wait_dags(dag)
    run = fab.client("svcowner").trigger(dag)
    conf = fab.admin.run(dag, run)["conf"]
    signed = stamp.verified(fab.stack.jwt_secret, dag, run, conf["gonogo_triggered_by"])
    assert signed == {"id": fab.ids["svcowner"], "name": "svcowner"}

    # The person who started the run is not asked, and their answer is refused.
    task = f"{GATE}.service_owner"
    detail = fab.admin.wait_pending(dag, run, task)
    assert [u["id"] for u in detail["assigned_users"]] == [fab.ids["svcowner2"]]
    mine = fab.client("svcowner").answer(dag, run, task, "GO", "mine")
    assert mine.status_code == 403, mine.text
    assert "four-eyes" in mine.json()["detail"]
    # The same through a session cookie a strict parser cannot read, which Airflow reads;
    # and beside another user's token, refused rather than guessed.
    path = f"/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails"
    go = {"chosen_options": ["GO"], "params_input": {"comment": "mine"}}
    cookie = ("Cookie", f'pref={{"a":1}}; _token={fab.client("svcowner").token()}')
    status, body = raw(fab.stack.base_url, "PATCH", path, go, [cookie])
    assert status == 403, body
    assert "four-eyes" in body["detail"]
    other = ("Authorization", f"Bearer {fab.client('svcowner2').token()}")
    status, body = raw(fab.stack.base_url, "PATCH", path, go, [other, cookie])
    assert status == 400, body
    assert "different users" in body["detail"]

    # One person in two roles answers for one of them only.
    relman = fab.client("relman")
    fab.admin.wait_pending(dag, run, f"{GATE}.release_manager")
    relman.answer_or_raise(dag, run, f"{GATE}.release_manager", "GO", "ready")
    fab.admin.wait_pending(dag, run, f"{GATE}.hospital")
    second = relman.answer(dag, run, f"{GATE}.hospital", "GO", "also ready")
    assert second.status_code == 409, second.text
    assert "already answered for role release_manager" in second.json()["detail"]

    # Another member's GO is accepted, and the run goes on.
    fab.client("svcowner2").answer_or_raise(dag, run, task, "GO", "checked")
    fab.client("wardrep").answer_or_raise(dag, run, f"{GATE}.hospital", "GO", "ward ok")
    assert fab.admin.wait_run(dag, run)["state"] == "success"
    assert fab.states(dag, run)["after.after_gate"] == "success"
    record = fab.admin.xcom(dag, run, task)
    assert (record["answer"], record["by_id"]) == ("GO", fab.ids["svcowner2"])
    assert fab.admin.xcom(dag, run, f"{GATE}.hospital")["by_id"] == fab.ids["wardrep"]
    assert "svcowner started the run and may not answer" in fab.admin.task_log(dag, run, task)


def test_a_run_whose_sole_approver_started_it_is_refused_before_any_step(fab: Fab) -> None:
    dag = "fab-sole"
    fab.wait_dags(dag)
    run = fab.client("wardrep").trigger(dag)
    assert fab.admin.wait_run(dag, run)["state"] == "failed"
    found = fab.states(dag, run)
    assert found["before_start"] == "failed"
    assert found["prepare.change_something"] in (None, "upstream_failed", "skipped")
    assert not (fab.state_dir / "fab-sole-changed.txt").exists()
    log = fab.admin.task_log(dag, run, "before_start")
    assert "role hospital has nobody left to answer" in log
