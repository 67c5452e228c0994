"""A burst on the embedded default: 20 rollouts triggered at once, on 20 services.

An Airflow of its own, as the demo runs it: SQLite (unless
GONOGO_TEST_DATABASE_URL is set) and LocalExecutor. Each runbook has one step
and no gate, so nothing waits for a person. All 20 are triggered at the same
moment from 20 threads as the operator. Every run must succeed with the outcome
``succeeded``, every command must have run once, and every Airflow process of the
stack must still be alive at the end: on SQLite a scheduler once died of
``database is locked`` in its own commit after 13, and nothing ran after that.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from tests.integration.conftest import USERS, Airflow, dags_folder

from gonogo.dev.stack import AirflowStack, running

pytestmark = [pytest.mark.integration, pytest.mark.long]

BURST = 20

RUNBOOK = """\
runbook: burst-{n:02d}
title: Burst rollout {n}
service: burst-{n:02d}
environment: test
change: {{id: CHG-BURST-{n:02d}, type: standard}}
phases:
  - id: work
    steps:
      - id: touch
        bash: echo "$GONOGO_RUN_ID" >> "$GONOGO_STATE_DIR/burst-{n:02d}.ran"
"""


def dag_ids() -> list[str]:
    return [f"burst-{n:02d}" for n in range(BURST)]


@pytest.fixture(scope="module")
def bursty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("burst")
    state = root / "state"
    state.mkdir()
    dags = dags_folder(root)
    runbooks = root / "runbooks"
    runbooks.mkdir()
    for n in range(BURST):
        (runbooks / f"burst_{n:02d}.yaml").write_text(RUNBOOK.format(n=n))
    stack = AirflowStack(
        home=root / "home",
        dags_folder=dags,
        runbooks_dir=runbooks,
        users=USERS,
        database_url=os.environ.get("GONOGO_TEST_DATABASE_URL") or None,
        extra_env={"GONOGO_STATE_DIR": str(state)},
    )
    with running(stack):
        yield Airflow(stack, state, "")


def trigger_all(airflow: Airflow, dags: list[str]) -> dict[str, str | BaseException]:
    """Each DAG triggered from a thread of its own, all released at the same moment."""
    results: dict[str, str | BaseException] = {}
    start = threading.Barrier(len(dags))

    def one(dag_id: str) -> None:
        client = airflow.operator
        client.token()  # log in before the barrier: the burst is the triggers
        start.wait()
        try:
            results[dag_id] = client.trigger(dag_id)
        except BaseException as exc:
            results[dag_id] = exc

    threads = [threading.Thread(target=one, args=(dag_id,)) for dag_id in dags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_twenty_rollouts_triggered_at_once_all_succeed_and_no_process_dies(
    bursty: Airflow,
) -> None:
    dags = dag_ids()
    bursty.wait_dags(*dags, timeout=300)
    started = time.monotonic()
    triggered = trigger_all(bursty, dags)
    refused = {d: r for d, r in triggered.items() if isinstance(r, BaseException)}
    assert not refused, f"triggers failed: {refused}"
    assert len(triggered) == BURST

    admin = bursty.admin
    finished = {d: admin.wait_run(d, str(r), timeout=900) for d, r in triggered.items()}
    took = time.monotonic() - started
    print(f"\n{BURST} rollouts triggered at once finished in {took:.0f} s")

    assert {d: run["state"] for d, run in finished.items()} == dict.fromkeys(dags, "success")
    outcomes = {d: admin.xcom(d, str(r), "outcome", key="outcome") for d, r in triggered.items()}
    assert {d: o["outcome"] for d, o in outcomes.items()} == dict.fromkeys(dags, "succeeded")
    ran = {d: (bursty.state_dir / f"{d}.ran").read_text().split() for d in dags}
    assert ran == {d: [triggered[d]] for d in dags}, "each command runs once, in its own run"
    notes = {d: admin.run(d, str(r)).get("note") or "" for d, r in triggered.items()}
    assert all("succeeded" in note for note in notes.values()), notes

    dead = {
        name: process.returncode
        for name, process in bursty.stack.processes.items()
        if process.poll() is not None
    }
    assert not dead, f"Airflow processes died: {dead}\n" + "\n".join(
        f"--- {name} ---\n{bursty.stack.log_tail(name)}" for name in dead
    )
    log = bursty.stack.home / "logs" / "scheduler.out"
    assert "database is locked" not in log.read_text(errors="replace")
