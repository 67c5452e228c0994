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
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import USERS, Airflow, cli, dags_folder
from tests.integration.crashes import (
    FAST_RECOVERY,
    FAULTS,
    answered_while_the_api_server_dies,
    asked_a_person_about_the_step,
    asked_a_person_about_the_undo,
    decisions,
    ended,
    fault_runbooks,
    finished,
    lock_is_free,
    note_of,
    open_gate,
    outcome,
    report,
    running_command,
    started,
    trigger,
)

from gonogo.core.runs.decisions import Decision, note
from gonogo.dev.stack import AirflowStack, ancestors, kill_tree, running

pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("faults")
    state = root / "state"
    state.mkdir()
    dags = dags_folder(root)
    runbooks = fault_runbooks(root / "runbooks")
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


# -- the scheduler ------------------------------------------------------------------------------


def test_the_scheduler_dies_while_a_gate_waits(faulty: Airflow) -> None:
    dag = "fault-gate"
    run_id = trigger(faulty, dag)
    faulty.admin.wait_pending(dag, run_id, "gate__go.release_manager", timeout=180)

    faulty.stack.kill("scheduler")
    faulty.stack.restart("scheduler")
    answered = time.monotonic()
    faulty.client("relman").answer_or_raise(dag, run_id, "gate__go.release_manager", "GO")

    assert finished(faulty, dag, run_id)["state"] == "success"
    report(
        "the scheduler restarted at a gate; answered and finished after",
        time.monotonic() - answered,
    )
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
    run_id = trigger(faulty, "fault-step")
    running_command(faulty, run_id, "slow")

    died = time.monotonic()
    faulty.stack.kill("scheduler")  # its LocalExecutor workers, and the step, die with it
    faulty.stack.restart("scheduler")

    asked_a_person_about_the_step(faulty, run_id, "the scheduler died running a step", died)


def test_only_the_scheduler_process_dies_and_its_workers_live_on(faulty: Airflow) -> None:
    """Its workers outlive it, orphaned: the step's command still runs once, or a person is asked."""
    dag = "fault-step"
    run_id = trigger(faulty, dag)
    command = running_command(faulty, run_id, "slow")
    scheduler = faulty.stack.processes["scheduler"]
    died = time.monotonic()
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
    report(f"only the scheduler process died; the run {how} after", time.monotonic() - died)
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


def kill_worker_of(airflow: Airflow, command_pid: int) -> list[int]:
    """SIGKILL the worker running a command: the process below the scheduler, and all it started."""
    scheduler = airflow.stack.processes["scheduler"].pid
    chain = [command_pid, *ancestors(command_pid)]
    worker = chain[chain.index(scheduler) - 1]
    return kill_tree(worker)


def test_the_worker_running_a_step_dies_and_a_person_decides_to_roll_back(
    faulty: Airflow,
) -> None:
    dag = "fault-step"
    run_id = trigger(faulty, dag)
    killed = kill_worker_of(faulty, running_command(faulty, run_id, "slow"))
    died = time.monotonic()
    assert len(killed) >= 3  # the worker, the task and the command

    request = faulty.admin.wait_pending(dag, run_id, "work.slow", timeout=240)
    report("a worker died running a step; a person was asked after", time.monotonic() - died)
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
    run_id = trigger(faulty, "fault-undo")
    kill_worker_of(faulty, running_command(faulty, run_id, "undo_first"))
    died = time.monotonic()

    asked_a_person_about_the_undo(faulty, run_id, "a worker died running an undo", died)


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
    template = (FAULTS / "window.yaml.in").read_text()
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
    template = (FAULTS / "reader.yaml.in").read_text()
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
    killed = time.monotonic()
    faulty.stack.kill("api-server")  # at once: the answer's 200 is all there is
    time.sleep(2)
    faulty.stack.restart("api-server")

    assert finished(faulty, dag, run_id)["state"] == "success"
    report("the API server died after an answer; the run finished after", time.monotonic() - killed)
    for name in ("before", "after"):
        assert (started(faulty, run_id, name), ended(faulty, run_id, name)) == (1, 1), name
    assert lock_is_free(faulty, "fault-gate")
    assert "go/release_manager: GO by relman" in note_of(faulty, dag, run_id)


def test_an_answer_sent_while_the_api_server_dies_is_recorded_once(faulty: Airflow) -> None:
    dag = "fault-gate"
    run_id = open_gate(faulty)
    given = answered_while_the_api_server_dies(faulty, run_id)

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
        killed = time.monotonic()
        faulty.stack.kill("dag-processor")
        faulty.stack.restart("dag-processor")

        def has_new_step() -> bool:
            return "deploy.added" in {t["task_id"] for t in faulty.admin.tasks(dag)}

        faulty.admin.wait_for("the edited runbook's DAG", has_new_step, timeout=180)
        report(
            "the DAG processor died during an edit; the edit showed after",
            time.monotonic() - killed,
        )
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
