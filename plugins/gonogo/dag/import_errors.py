"""Show a broken runbook in Airflow as an import error against its own file.

This is gonogo's one reach into Airflow internals, kept to one function. The
DAG file builds many runbooks; if one is broken, raising would drop every DAG of
the file, and a log line is seen by nobody. Airflow has no public hook for a
per-file error from a generated DAG file, so :func:`add_import_error` finds the
``DagBag`` that is importing the DAG file (DAG processor, ``airflow dags
reserialize``, tests) on the call stack and adds the error to its
``import_errors``, keyed by the runbook's own path. Airflow then stores and
shows it like any other import error (UI and ``GET /api/v2/importErrors``).
A test imports a DAG file through a real ``DagBag`` and fails if a future
Airflow moves this.

Steady. Airflow's DAG processor deletes, at every refresh of the DAGs folder,
each import error whose file is not a DAG file it found there
(``DagFileProcessorManager.clear_orphaned_import_errors``): a runbook's ``.yaml``
never is, so its error came and went between the refresh and the next parse of
the loader. So a loader file that parsed every runbook it owns also
:func:`remember` s what it found broken, and the second DAG file,
``gonogo_import_errors.py``, which holds no DAG, reports all of it against its
own name (:func:`report_remembered`) at each of its parses: an import error of a
file Airflow found is cleared only when that file parses without it.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gonogo.core.settings import state_home


def importing_dagbag() -> Any:
    """The DagBag whose import of a DAG file is on the call stack, or None."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if type(candidate).__name__.endswith("DagBag") and isinstance(
                getattr(candidate, "import_errors", None), dict
            ):
                return candidate
            frame = frame.f_back
    finally:
        del frame
    return None


def add_import_error(path: Path, message: str) -> bool:
    """Record ``message`` as an import error of ``path``; False when no DagBag is importing."""
    bag = importing_dagbag()
    if bag is None:
        return False
    base = getattr(bag, "bundle_path", None) or getattr(bag, "dag_folder", None)
    if base and os.path.isfile(base):  # a DagBag of one file: paths are relative to its folder
        base = os.path.dirname(base)
    try:
        key = os.path.relpath(path, base) if base else str(path)
    except ValueError:
        key = str(path)
    previous = bag.import_errors.get(key)
    bag.import_errors[key] = f"{previous}\n{message}" if previous else message
    return True


def broken_dir() -> Path:
    """Where loader files leave what they found broken: in the DAG processor's Airflow home."""
    return state_home() / "broken"


def remember(loader: str | os.PathLike[str], broken: Mapping[str, str]) -> None:
    """Keep what ``loader`` found broken at its last full parse, replacing what it found before."""
    folder = broken_dir()
    folder.mkdir(parents=True, exist_ok=True)
    record = {"loader": str(Path(loader).resolve()), "broken": dict(broken)}
    target = folder / f"{Path(loader).stem}.json"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(record, file, indent=1, sort_keys=True)
    os.replace(temporary, target)  # atomic: a reader sees the old record or the new one


def report_remembered(reporter: str | os.PathLike[str]) -> int:
    """Report every broken runbook the loader files remembered, against ``reporter``'s own name.

    A loader file that is gone no longer counts. Returns how many were reported.
    """
    count = 0
    for path in sorted(broken_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not Path(str(record.get("loader"))).is_file():
            continue
        for file, message in sorted(dict(record.get("broken") or {}).items()):
            add_import_error(Path(reporter), f"{file}:\n{message}")
            count += 1
    return count
