"""Fault injection: each Airflow component SIGKILLed at its worst moment, then started again.

An Airflow of its own (its components die here, so it cannot be the shared
one), on Postgres when GONOGO_TEST_DATABASE_URL is set and on SQLite otherwise.
Its timeouts are shortened so a lost try is noticed in seconds, not minutes:
that changes when Airflow notices, not what happens.

Every command of the runbooks here (``faults/scripts/mark.sh``) leaves a marker
file per execution, ``NAME.<pid>.started`` and ``NAME.<pid>.ended``. After each
crash the tests check the run's outcome, that no command ran twice unless a
person said Retry, that rollback ran each compensation once, that the lock is
released, and that the run note and the decision log tell what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import USERS, Airflow, cli, dags_folder

from gonogo.core.runs.decisions import Decision, note
from gonogo.dev.stack import AirflowStack, ancestors, kill_tree, running

pytestmark = pytest.mark.long

HERE = Path(__file__).resolve().parent / "faults"

#: How fast this Airflow notices a lost try, a dead scheduler or a dead triggerer.
FAST_RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("faults")
    state = root / "state"
    state.mkdir()
    dags = dags_folder(root)
    runbooks = root / "runbooks"
    shutil.copytree(HERE, runbooks, ignore=shutil.ignore_patterns("*.in", "__pycache__"))
    stack = AirflowStack(
        home=root / "home",
        dags_folder=dags,
        runbooks_dir=runbooks,
        users=USERS,
        database_url=os.environ.get("GONOGO_TEST_DATABASE_URL") or None,
        extra_env={"GONOGO_STATE_DIR": str(state), **FAST_RECOVERY},
    )
    with running(stack):
        yield Airflow(stack, state, http_server)


# -- what the markers say -----------------------------------------------------------------------


def markers(airflow: Airflow, run_id: str, name: str, end: str) -> list[Path]:
    folder = airflow.state_dir / "markers" / run_id
    return sorted(folder.glob(f"{name}.*.{end}")) if folder.exists() else []


def started(airflow: Airflow, run_id: str, name: str) -> int:
    return len(markers(airflow, run_id, name, "started"))


def ended(airflow: Airflow, run_id: str, name: str) -> int:
    return len(markers(airflow, run_id, name, "ended"))


def running_command(airflow: Airflow, run_id: str, name: str) -> int:
    """The pid of the command ``name`` once it has started and while it runs."""

    def probe() -> int | None:
        found = markers(airflow, run_id, name, "started")
        return int(found[-1].read_text()) if found else None

    return int(airflow.admin.wait_for(f"{name} to start", probe, timeout=180))


def kill_worker_of(airflow: Airflow, command_pid: int) -> list[int]:
    """SIGKILL the worker running a command: the process below the scheduler, and all it started."""
    scheduler = airflow.stack.processes["scheduler"].pid
    chain = [command_pid, *ancestors(command_pid)]
    worker = chain[chain.index(scheduler) - 1]
    return kill_tree(worker)


# -- what the run says --------------------------------------------------------------------------


def finished(airflow: Airflow, dag_id: str, run_id: str) -> dict:
    """The finished run; fails if it does not finish."""
    return airflow.admin.wait_run(dag_id, run_id, timeout=420)


def outcome(airflow: Airflow, dag_id: str, run_id: str) -> dict:
    return airflow.admin.xcom(dag_id, run_id, "outcome", key="outcome")


def lock_is_free(airflow: Airflow, service: str) -> bool:
    response = airflow.admin.request("GET", f"/variables/gonogo_lock__{service}__test")
    return response.status_code == 404


def note_of(airflow: Airflow, dag_id: str, run_id: str) -> str:
    return airflow.admin.wait_for(
        "the run note", lambda: airflow.admin.run(dag_id, run_id).get("note"), timeout=60
    )


def decisions(airflow: Airflow, dag_id: str, run_id: str) -> str:
    done = cli(airflow, "operator", "decisions", dag_id, run_id)
    assert done.returncode == 0, done.stderr
    return done.stdout


def trigger(airflow: Airflow, dag_id: str) -> str:
    airflow.wait_dags(dag_id)
    return airflow.operator.trigger(dag_id)


# -- the scheduler ------------------------------------------------------------------------------


def test_the_scheduler_dies_while_a_gate_waits(faulty: Airflow) -> None:
    dag = "fault-gate"
    run_id = trigger(faulty, dag)
    faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)

    faulty.stack.kill("scheduler")
    faulty.stack.restart("scheduler")
    faulty.client("relman").answer_or_raise(dag, run_id, "gate__go.release_manager", "GO")

    assert finished(faulty, dag, run_id)["state"] == "success"
    assert outcome(faulty, dag, run_id)["outcome"] == "succeeded"
    for name in ("before", "after"):
        assert (started(faulty, run_id, name), ended(faulty, run_id, name)) == (1, 1), name
    assert started(faulty, run_id, "undo_before") == 0
    assert lock_is_free(faulty, "fault-gate")
    assert "go/release_manager: GO by relman" in note_of(faulty, dag, run_id)
    assert "GO" in decisions(faulty, dag, run_id)


def test_the_scheduler_dies_while_a_step_runs_and_a_person_decides_to_retry(
    faulty: Airflow,
) -> None:
    dag = "fault-step"
    run_id = trigger(faulty, dag)
    running_command(faulty, run_id, "slow")

    faulty.stack.kill("scheduler")  # its LocalExecutor workers, and the step, die with it
    faulty.stack.restart("scheduler")

    request = faulty.admin.wait_pending(dag, run_id, "work.slow", timeout=240)
    assert "**step slow** was cut off" in request["body"]
    assert "may have run partly, fully, or not at all" in request["body"]
    assert started(faulty, run_id, "slow") == 1, "the cut-off command ran again by itself"
    faulty.client("relman").answer_or_raise(
        dag, run_id, "work.slow", "Retry", "checked: the service is untouched"
    )

    assert finished(faulty, dag, run_id)["state"] == "success"
    assert (started(faulty, run_id, "slow"), ended(faulty, run_id, "slow")) == (2, 1)
    for name in ("first", "last"):
        assert (started(faulty, run_id, name), ended(faulty, run_id, name)) == (1, 1), name
    assert lock_is_free(faulty, "fault-step")
    note = note_of(faulty, dag, run_id)
    assert "step slow was cut off by a crash" in note
    assert "Retry by relman" in note
    assert "Retry" in decisions(faulty, dag, run_id)


def test_only_the_scheduler_process_dies_and_its_workers_live_on(faulty: Airflow) -> None:
    """Its workers outlive it, orphaned: the step's command still runs once, or a person is asked."""
    dag = "fault-step"
    run_id = trigger(faulty, dag)
    command = running_command(faulty, run_id, "slow")
    scheduler = faulty.stack.processes["scheduler"]
    os.kill(scheduler.pid, signal.SIGKILL)
    scheduler.wait(timeout=30)
    assert Path(f"/proc/{command}").exists()  # the step's command outlived the scheduler
    faulty.stack.restart("scheduler")

    def settled() -> str | None:
        if faulty.admin.run(dag, run_id)["state"] in ("success", "failed"):
            return "finished"
        open_requests = faulty.admin.hitl_details(dag, run_id, pending=True)
        asked = any(d["task_instance"]["task_id"] == "work.slow" for d in open_requests)
        return "asked" if asked else None

    how = faulty.admin.wait_for("the run to finish or ask", settled, timeout=300, interval=1)
    if how == "asked":  # Airflow reset the orphaned try: the next one asks instead of running
        assert started(faulty, run_id, "slow") == 1, "the cut-off command ran again by itself"
        faulty.client("relman").answer_or_raise(
            dag, run_id, "work.slow", "Continue", "checked: the command finished on the old worker"
        )
        assert "step slow was cut off by a crash" in note_of(faulty, dag, run_id)
    assert finished(faulty, dag, run_id)["state"] == "success"
    assert started(faulty, run_id, "slow") == 1  # never twice: nobody said Retry
    for name in ("first", "last"):
        assert (started(faulty, run_id, name), ended(faulty, run_id, name)) == (1, 1), name
    assert lock_is_free(faulty, "fault-step")


# -- a worker -----------------------------------------------------------------------------------


def test_the_worker_running_a_step_dies_and_a_person_decides_to_roll_back(
    faulty: Airflow,
) -> None:
    dag = "fault-step"
    run_id = trigger(faulty, dag)
    killed = kill_worker_of(faulty, running_command(faulty, run_id, "slow"))
    assert len(killed) >= 3  # the worker, the task and the command

    request = faulty.admin.wait_pending(dag, run_id, "work.slow", timeout=240)
    assert "**step slow** was cut off" in request["body"]
    faulty.client("relman").answer_or_raise(
        dag, run_id, "work.slow", "Roll back", "half-installed; undoing by hand"
    )

    assert finished(faulty, dag, run_id)["state"] == "failed"
    result = outcome(faulty, dag, run_id)
    assert result["outcome"] == "rolled_back"
    assert result["undone"] == ["first"]
    assert (started(faulty, run_id, "slow"), ended(faulty, run_id, "slow")) == (1, 0)
    assert (started(faulty, run_id, "undo_first"), ended(faulty, run_id, "undo_first")) == (1, 1)
    assert started(faulty, run_id, "undo_slow") == started(faulty, run_id, "last") == 0
    assert lock_is_free(faulty, "fault-step")
    note = note_of(faulty, dag, run_id)
    assert "**Outcome: rolled_back**" in note
    assert "step slow was cut off by a crash" in note
    assert "Roll back by relman: half-installed; undoing by hand" in note


def test_the_worker_running_an_undo_dies_and_a_person_confirms_it_completed(
    faulty: Airflow,
) -> None:
    dag = "fault-undo"
    run_id = trigger(faulty, dag)
    kill_worker_of(faulty, running_command(faulty, run_id, "undo_first"))

    request = faulty.admin.wait_pending(dag, run_id, "rollback.undo_1", timeout=240)
    assert "**the undo of first** was cut off" in request["body"]
    assert (
        started(faulty, run_id, "undo_first") >= 1
    )  # it ran, and failed every try, "the cut-off undo ran again by itself"
    faulty.client("relman").answer_or_raise(
        dag, run_id, "rollback.undo_1", "Done", "the old version is back"
    )

    assert finished(faulty, dag, run_id)["state"] == "failed"
    result = outcome(faulty, dag, run_id)
    assert result["outcome"] == "rolled_back"
    assert result["undone"] == ["first"]
    assert (started(faulty, run_id, "undo_first"), ended(faulty, run_id, "undo_first")) == (1, 0)
    assert started(faulty, run_id, "breaks") == 1
    assert lock_is_free(faulty, "fault-undo")
    note = note_of(faulty, dag, run_id)
    assert "the undo of first was cut off by a crash" in note
    assert "Done by relman: the old version is back" in note


# -- the triggerer ------------------------------------------------------------------------------


def test_a_gate_times_out_while_the_triggerer_is_dead(faulty: Airflow) -> None:
    dag = "fault-timeout"
    run_id = trigger(faulty, dag)
    faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)

    faulty.stack.kill("triggerer")
    # No answer: the gate's 40 s run out while the triggerer is down (a HITL timeout is
    # the scheduler's to enforce), then it comes back.
    faulty.admin.wait_task(dag, run_id, "gate__go.release_manager", ["failed"], timeout=180)
    faulty.stack.restart("triggerer")

    assert finished(faulty, dag, run_id)["state"] == "failed"
    assert outcome(faulty, dag, run_id)["outcome"] == "nogo_before_start"
    assert started(faulty, run_id, "after") == 0
    assert lock_is_free(faulty, "fault-timeout")
    assert "NOGO (timeout)" in note_of(faulty, dag, run_id)


def test_the_triggerer_dies_while_the_run_waits_for_its_window(faulty: Airflow) -> None:
    dag = "fault-window"
    now = datetime.now(UTC).replace(microsecond=0)
    template = (HERE / "window.yaml.in").read_text()
    opens = now + timedelta(seconds=90)
    (faulty.stack.runbooks_dir / "window.yaml").write_text(
        template.replace("{start}", opens.isoformat()).replace(
            "{end}", (now + timedelta(hours=2)).isoformat()
        )
    )
    run_id = trigger(faulty, dag)
    faulty.admin.wait_task(dag, run_id, "wait_for_window", ["deferred"], timeout=120)

    faulty.stack.kill("triggerer")
    faulty.stack.restart("triggerer")

    assert finished(faulty, dag, run_id)["state"] == "success"
    assert datetime.now(UTC) >= opens
    assert (started(faulty, run_id, "inside"), ended(faulty, run_id, "inside")) == (1, 1)
    assert lock_is_free(faulty, "fault-window")


def test_one_run_with_a_crash_an_overrun_and_a_failed_undo_reads_the_same_everywhere(
    faulty: Airflow,
) -> None:
    """The CLI's decisions, the run note, the Rollout page and the report list the same events."""
    dag = "fault-reader"
    now = datetime.now(UTC).replace(microsecond=0)
    template = (HERE / "reader.yaml.in").read_text()
    # The plan fits the window, but from now its last step would end after it: forecast_overrun.
    (faulty.stack.runbooks_dir / "reader.yaml").write_text(
        template.replace("{start}", (now - timedelta(minutes=20)).isoformat()).replace(
            "{end}", (now + timedelta(minutes=30)).isoformat()
        )
    )
    faulty.wait_dags(dag)
    run_id = faulty.operator.trigger(dag, {"planned_start": now.isoformat()})
    kill_worker_of(faulty, running_command(faulty, run_id, "slow"))
    faulty.admin.wait_pending(dag, run_id, "work.slow", timeout=240)
    faulty.client("relman").answer_or_raise(dag, run_id, "work.slow", "Roll back", "half-run")
    finished(faulty, dag, run_id)
    assert outcome(faulty, dag, run_id)["outcome"] == "rollback_failed"
    assert started(faulty, run_id, "undo_first") >= 1  # it ran, and failed every try

    done = cli(faulty, "operator", "decisions", dag, run_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    told = json.loads(done.stdout)
    page = faulty.operator.gonogo(f"/runs/{dag}/{run_id}")
    done = cli(faulty, "operator", "report", dag, run_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    names = [e["event"] for e in told["events"]]
    for name in ("forecast_overrun", "step_interrupted", "rollback_failed"):
        assert name in names, names
    assert told["events"] == page["events"] == report["events"]

    def answers(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["gate"], r["role"], r["answer"], r["by"], r["comment"]) for r in rows]

    assert answers(told["decisions"]) == answers(page["decisions"]) == answers(report["decisions"])
    assert [r[2:] for r in answers(told["decisions"]) if r[0] == "step:slow"] == [
        ("Roll back", "relman", "half-run")
    ]
    text = note_of(faulty, dag, run_id)
    rows = [Decision(**d) for d in told["decisions"]]
    assert text == note(rows, outcome(faulty, dag, run_id), told["events"])
    for name in names:
        assert f"- {name}: " in text


# -- the API server -----------------------------------------------------------------------------


def test_an_answer_the_api_server_acknowledged_survives_its_death(faulty: Airflow) -> None:
    dag = "fault-gate"
    run_id = trigger(faulty, dag)
    faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)

    faulty.client("relman").answer_or_raise(dag, run_id, "gate__go.release_manager", "GO")
    faulty.stack.kill("api-server")  # at once: the answer's 200 is all there is
    time.sleep(2)
    faulty.stack.restart("api-server")

    assert finished(faulty, dag, run_id)["state"] == "success"
    for name in ("before", "after"):
        assert (started(faulty, run_id, name), ended(faulty, run_id, name)) == (1, 1), name
    assert lock_is_free(faulty, "fault-gate")
    assert "go/release_manager: GO by relman" in note_of(faulty, dag, run_id)


def test_an_answer_sent_while_the_api_server_dies_is_recorded_once(faulty: Airflow) -> None:
    dag = "fault-gate"
    run_id = trigger(faulty, dag)
    faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)
    time.sleep(11)  # past gonogo's settling time, so the answer goes straight through
    relman = faulty.client("relman")
    relman.token()  # logged in before the crash, as a person with the page open is
    given: dict[str, Any] = {}

    def answer() -> None:
        given.update(relman.answer_or_raise(dag, run_id, "gate__go.release_manager", "GO"))

    sender = threading.Thread(target=answer)
    sender.start()
    faulty.stack.kill("api-server")  # before, during or after the answer is stored
    faulty.stack.restart("api-server")
    sender.join(timeout=180)

    assert given.get("chosen_options") == ["GO"], given
    assert finished(faulty, dag, run_id)["state"] == "success"
    note = note_of(faulty, dag, run_id)
    assert note.count("GO by relman") == 1, note
    assert (started(faulty, run_id, "after"), ended(faulty, run_id, "after")) == (1, 1)


# -- the DAG processor --------------------------------------------------------------------------


def test_the_dag_processor_dies_while_a_runbook_is_edited(faulty: Airflow) -> None:
    dag = "fault-gate"
    faulty.wait_dags(dag, "fault-step", "fault-undo", "fault-timeout")
    path = faulty.stack.runbooks_dir / "gate.yaml"
    original = path.read_text()
    edited = original.replace(
        "        bash: scripts/mark.sh after 0\n",
        "        bash: scripts/mark.sh after 0\n      - id: added\n"
        "        bash: scripts/mark.sh added 0\n",
    )
    try:
        path.write_text(edited)
        faulty.stack.kill("dag-processor")
        faulty.stack.restart("dag-processor")

        def has_new_step() -> bool:
            return "deploy.added" in {t["task_id"] for t in faulty.admin.tasks(dag)}

        faulty.admin.wait_for("the edited runbook's DAG", has_new_step, timeout=180)
        assert faulty.admin.import_errors() == []
        response = faulty.admin.request("GET", "/dags", params={"limit": 1000})
        loaded = {d["dag_id"] for d in response.json()["dags"] if not d.get("is_stale")}
        assert {"fault-step", "fault-undo", "fault-timeout"} <= loaded

        run_id = faulty.operator.trigger(dag)
        faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)
        faulty.client("relman").answer_or_raise(dag, run_id, "gate__go.release_manager", "GO")
        assert finished(faulty, dag, run_id)["state"] == "success"
        assert started(faulty, run_id, "added") == 1
    finally:
        path.write_text(original)
