"""What the fault suites share: their runbooks, their fast recovery settings, and what they read.

Every command of the fault runbooks (``faults/scripts/mark.sh``) leaves a marker
file per execution, ``NAME.<pid>.started`` and ``NAME.<pid>.ended``, in a folder
per run. After a crash a test counts them (a command that ran twice shows), and
reads the run's outcome, its lock, its note and its decision log through Airflow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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


def report(what: str, seconds: float) -> None:
    """A recovery time, printed for the README's crash tables (run pytest with -s to see it)."""
    print(f"\n[recovery] {what}: {seconds:.0f} s")


def fault_runbooks(target: Path) -> Path:
    """The fault runbooks and their script, copied to ``target`` as a runbooks folder."""
    shutil.copytree(FAULTS, target, ignore=shutil.ignore_patterns("*.in", "__pycache__"))
    return target
