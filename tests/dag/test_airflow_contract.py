"""What gonogo relies on in Airflow itself: state names, and the DagBag import-error hook."""

from __future__ import annotations

from pathlib import Path

from airflow.utils.state import TaskInstanceState

from gonogo.core.runs import states
from gonogo.dag.import_errors import add_import_error


def test_the_core_state_names_are_airflows() -> None:
    names = {v for k, v in vars(states).items() if k.isupper() and isinstance(v, str)}
    assert names <= {s.value for s in TaskInstanceState}


def test_an_import_error_lands_in_the_dagbag_importing_the_dag_file(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "loader.py").write_text(
        "# an airflow dag file\n"
        "from pathlib import Path\n"
        "from gonogo.dag.import_errors import add_import_error\n"
        "assert add_import_error(Path(__file__).with_name('rb.yaml'), 'rb.yaml:3:1: broken')\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {"rb.yaml": "rb.yaml:3:1: broken"}


def test_without_an_importing_dagbag_nothing_is_recorded(tmp_path: Path) -> None:
    assert add_import_error(tmp_path / "rb.yaml", "broken") is False


def test_a_task_gets_the_trigger_forms_params_from_its_dag_at_run_time() -> None:
    """gonogo sets a DAG's params after its tasks are built, so no task copies them.

    That holds because Airflow merges the DAG's params, the task's own and the run's
    conf when a task runs (``process_params``), and a HITL request keeps only its own form.
    """
    from airflow.sdk.definitions.param import process_params
    from tests.conftest import ROOT

    from gonogo.core.runbook.loader import load_file
    from gonogo.dag.builder import build_dag

    runbook, _ = load_file(ROOT / "runbooks" / "ehr-upgrade.yaml")
    dag = build_dag(runbook, ROOT / "runbooks")
    assert {"version", "fail_step", "planned_start", "rehearsal"} <= set(dag.params)
    step = dag.get_task("install.install_app")
    assert "version" not in step.params
    merged = process_params(dag, step, {"version": "4.2.9"}, suppress_exception=False)
    assert merged["version"] == "4.2.9" and merged["rehearsal"] is False
    gate = dag.get_task("gate__go_nogo_2.release_manager")
    assert set(gate.params) == {"comment"}
