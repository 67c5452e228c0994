"""What the fault suites share: their runbooks, their fast recovery settings, and what they read.

Every command of the fault runbooks (``faults/scripts/mark.sh``) leaves a marker
file per execution, ``NAME.<pid>.started`` and ``NAME.<pid>.ended``, in a folder
per run. After a crash a test counts them (a command that ran twice shows), and
reads the run's outcome, its lock, its note and its decision log through Airflow.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import Airflow, cli

#: The fault runbooks (gate, step, undo, timeout) and the window runbook's template.
FAULTS = Path(__file__).resolve().parent / "faults"

#: How fast this Airflow notices a lost try, a dead scheduler or a dead triggerer.
FAST_RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
}


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


def asked_a_person_about_the_step(airflow: Airflow, run_id: str, crash: str, at: float) -> None:
    """After a crash cut off fault-step's slow step (at ``at``): the next try asks, a person retries.

    The step must not run again by itself; after Retry it runs once more, the
    run succeeds, every other command ran once, and the note and the decision
    log tell of the crash and of the Retry.
    """
    dag = "fault-step"
    request = airflow.admin.wait_pending(dag, run_id, "work.slow", timeout=240)
    report(f"{crash}; a person was asked after", time.monotonic() - at)
    assert "**step slow** was cut off" in request["body"]
    assert "may have run partly, fully, or not at all" in request["body"]
    assert started(airflow, run_id, "slow") == 1, "the cut-off command ran again by itself"
    airflow.client("relman").answer_or_raise(
        dag, run_id, "work.slow", "Retry", "checked: the service is untouched"
    )

    assert finished(airflow, dag, run_id)["state"] == "success"
    assert (started(airflow, run_id, "slow"), ended(airflow, run_id, "slow")) == (2, 1)
    for name in ("first", "last"):
        assert (started(airflow, run_id, name), ended(airflow, run_id, name)) == (1, 1), name
    assert lock_is_free(airflow, dag)
    note = note_of(airflow, dag, run_id)
    assert "step slow was cut off by a crash" in note
    assert "Retry by relman" in note
    assert "Retry" in decisions(airflow, dag, run_id)


def asked_a_person_about_the_undo(airflow: Airflow, run_id: str, crash: str, at: float) -> None:
    """After a crash cut off fault-undo's undo (at ``at``): the next try asks, a person says Done.

    The undo must not run again by itself; the run ends rolled back, the lock
    free, and the note tells of the crash and of who confirmed the undo.
    """
    dag = "fault-undo"
    request = airflow.admin.wait_pending(dag, run_id, "rollback.undo_1", timeout=240)
    report(f"{crash}; a person was asked after", time.monotonic() - at)
    assert "**the undo of first** was cut off" in request["body"]
    assert started(airflow, run_id, "undo_first") == 1, "the cut-off undo ran again by itself"
    airflow.client("relman").answer_or_raise(
        dag, run_id, "rollback.undo_1", "Done", "the old version is back"
    )

    assert finished(airflow, dag, run_id)["state"] == "failed"
    result = outcome(airflow, dag, run_id)
    assert result["outcome"] == "rolled_back"
    assert result["undone"] == ["first"]
    assert (started(airflow, run_id, "undo_first"), ended(airflow, run_id, "undo_first")) == (1, 0)
    assert started(airflow, run_id, "breaks") == 1
    assert lock_is_free(airflow, dag)
    note = note_of(airflow, dag, run_id)
    assert "the undo of first was cut off by a crash" in note
    assert "Done by relman: the old version is back" in note


def open_gate(airflow: Airflow) -> str:
    """A fault-gate run waiting at its gate, past gonogo's settling time."""
    run_id = trigger(airflow, "fault-gate")
    airflow.admin.wait_pending("fault-gate", run_id, "gate__go.release_manager", timeout=180)
    time.sleep(11)  # past gonogo's settling time, so an answer goes straight through
    return run_id


def answered_while_the_api_server_dies(airflow: Airflow, run_id: str) -> dict[str, Any]:
    """relman's GO to an open gate, sent while the API server is killed and started again.

    The kill falls before, during or after the answer is stored; the client
    sends again where nothing can have been stored. What it got back is returned.
    """
    relman = airflow.client("relman")
    relman.token()  # logged in before the crash, as a person with the page open is
    given: dict[str, Any] = {}

    def answer() -> None:
        given.update(relman.answer_or_raise("fault-gate", run_id, "gate__go.release_manager", "GO"))

    sender = threading.Thread(target=answer)
    sender.start()
    killed = time.monotonic()
    airflow.stack.kill("api-server")
    airflow.stack.restart("api-server")
    sender.join(timeout=180)
    report("the API server died under an answer; it was stored after", time.monotonic() - killed)
    return given


def report(what: str, seconds: float) -> None:
    """A recovery time, printed for the README's crash tables (run pytest with -s to see it)."""
    print(f"\n[recovery] {what}: {seconds:.0f} s")


def fault_runbooks(target: Path) -> Path:
    """The fault runbooks and their script, copied to ``target`` as a runbooks folder."""
    shutil.copytree(FAULTS, target, ignore=shutil.ignore_patterns("*.in", "__pycache__"))
    return target
