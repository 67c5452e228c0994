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
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any


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
    try:
        key = os.path.relpath(path, base) if base else str(path)
    except ValueError:
        key = str(path)
    previous = bag.import_errors.get(key)
    bag.import_errors[key] = f"{previous}\n{message}" if previous else message
    return True
