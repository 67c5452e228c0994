"""A broken runbook's error stays shown for as long as the file is broken.

Airflow clears the import errors of files that are not DAG files at each refresh
of the DAGs folder, and a runbook is YAML. The second DAG file reports what the
loader files found broken under its own name, which Airflow keeps. Built with
Airflow's own DagBag over a real DAGs folder, as the DAG processor does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import ROOT

pytest.importorskip("airflow")

from airflow.dag_processing.dagbag import DagBag

GOOD = (
    "runbook: {id}\ntitle: Steady\nservice: {id}\nenvironment: test\n"
    "change: {{id: CHG-1, type: standard}}\n"
    "phases: [{{id: p, steps: [{{id: s, bash: 'true', read_only: true}}]}}]\n"
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("gonogo_dags.py", "gonogo_import_errors.py"):
        shutil.copy(ROOT / "dags" / name, dags / name)
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "good.yaml").write_text(GOOD.format(id="steady-good"))
    (runbooks / "broken.yaml").write_text(GOOD.format(id="steady-broken").replace("title", "titel"))
    monkeypatch.setenv("GONOGO_RUNBOOKS_DIR", str(runbooks))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    return dags


def errors_of(path: Path) -> dict[str, str]:
    return dict(DagBag(dag_folder=str(path), safe_mode=False).import_errors)


def test_the_error_shows_under_the_reporting_dag_file_until_the_runbook_is_fixed(
    folder: Path,
) -> None:
    loader = errors_of(folder / "gonogo_dags.py")
    assert any(k.endswith("broken.yaml") for k in loader)  # as before: on the runbook's own file
    for _ in range(3):  # every parse of the reporter, whatever Airflow cleared meanwhile
        shown = errors_of(folder / "gonogo_import_errors.py")
        (message,) = shown.values()
        assert next(iter(shown)).endswith("gonogo_import_errors.py")
        assert "broken.yaml" in message and "titel: unknown key" in message
    runbooks = folder.parent / "runbooks"
    (runbooks / "broken.yaml").write_text(GOOD.format(id="steady-broken"))
    assert errors_of(folder / "gonogo_dags.py") == {}
    assert errors_of(folder / "gonogo_import_errors.py") == {}


def test_a_loader_file_that_is_gone_no_longer_reports(folder: Path) -> None:
    errors_of(folder / "gonogo_dags.py")
    (folder / "gonogo_dags.py").unlink()
    assert errors_of(folder / "gonogo_import_errors.py") == {}
