"""The benchmarks' hand-written anchor: the same DAG as plain Python, which Airflow loads.

``bench/parse.py`` writes each generated runbook's DAG as a hand-written DAG file
(``bench/appear.py`` and the parse benchmark time gonogo against it). A form field
whose schema has a key that is not a Python name (``$schema``) once made that file
a syntax error, and a benchmark then waited for a DAG that never came.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from gonogo.core.runbook.loader import load_text
from gonogo.dag.builder import build_dag

BENCH = Path(__file__).resolve().parents[2] / "bench"


# Airflow's own PythonSensor module, which the file imports, still uses a moved name.
@pytest.mark.filterwarnings("ignore::airflow.utils.deprecation_tools.DeprecatedImportWarning")
def test_the_hand_written_file_loads_the_same_tasks_and_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # parse.py imports its neighbours by name
    from gen import generate_runbook
    from parse import describe, python_source

    dag = build_dag(load_text(generate_runbook(3))[0], tmp_path)
    (tmp_path / "hand.py").write_text(python_source(describe(dag)))
    bag = DagBag(str(tmp_path / "hand.py"), safe_mode=False)
    assert not bag.import_errors
    hand = bag.dags[dag.dag_id]
    assert set(hand.task_ids) == set(dag.task_ids)
    gate = next(t for t in dag.tasks if "comment" in t.params)  # a request: its form
    assert hand.get_task(gate.task_id).params.dump() == gate.params.dump()
