"""Everything the one file in ``dags/`` does: every runbook in the folder becomes a DAG.

A broken runbook never hides the others. Its error, with ``file:line:col``, is
added to the import errors of the DagBag that is importing the loader, keyed by
the runbook's own path, so the Airflow UI and ``GET /api/v2/importErrors`` show
it against that file while every valid runbook still loads. Airflow has no
public hook for this; :func:`current_dagbag` finds the DagBag on the call stack,
and a test fails if a future Airflow moves it.

While a task runs, Airflow sets the parsing context (dag_id, task_id); then only
that runbook is validated and compiled, so a task's start-up does not grow with
the number of runbooks.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from pathlib import Path
from typing import Any

from gonogo.errors import Problem, RunbookError
from gonogo.loader import load_file, runbook_files

log = logging.getLogger("gonogo.dagfile")

_RUNBOOK_ID = re.compile(r"^runbook:\s*['\"]?([A-Za-z0-9_.-]+)", re.M)


def runbooks_dir(default: Path) -> Path:
    """``GONOGO_RUNBOOKS_DIR`` if set, else ``default`` (the repository's ``runbooks/``)."""
    return Path(os.environ.get("GONOGO_RUNBOOKS_DIR") or default)


def current_dagbag() -> Any:
    """The DagBag importing this module (DAG processor, ``dags reserialize``, tests), or None."""
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


def report(path: Path, problems: list[Problem]) -> None:
    """Make a broken runbook visible: the DAG processor log, and the import errors in the UI."""
    message = "\n".join(str(p) for p in problems)
    log.error("gonogo: runbook %s is invalid and was not loaded:\n%s", path, message)
    bag = current_dagbag()
    if bag is None:
        return
    base = getattr(bag, "bundle_path", None) or getattr(bag, "dag_folder", None)
    try:
        key = os.path.relpath(path, base) if base else str(path)
    except ValueError:
        key = str(path)
    previous = bag.import_errors.get(key)
    bag.import_errors[key] = f"{previous}\n{message}" if previous else message


HEAD_BYTES = 4096


def _wanted(files: list[Path], dag_id: str) -> list[Path]:
    """The files that can hold runbook ``dag_id``: a cheap text scan, no YAML parsing.

    Only the head of each file is read: ``runbook:`` is the first key by convention.
    A file whose head does not name its runbook is kept, and the full load decides.
    """
    found = []
    for file in files:
        try:
            with open(file, "rb") as handle:
                head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        match = _RUNBOOK_ID.search(head)
        if match is None or match.group(1) == dag_id:
            found.append(file)
    return found


def build_all(folder: Path, namespace: dict[str, Any]) -> dict[str, Any]:
    """Put a DAG for every valid runbook under ``folder`` into ``namespace``; report the rest."""
    from airflow.sdk import get_parsing_context

    from gonogo.compile import build_dag

    files = runbook_files([folder]) if folder.is_dir() else []
    if not files:
        log.warning("gonogo: no runbooks found in %s", folder)
    wanted = get_parsing_context().dag_id
    if wanted:
        files = _wanted(files, wanted)
    seen: dict[str, Path] = {}
    dags = {}
    for file in files:
        try:
            runbook, _warnings = load_file(file)
            if wanted and runbook.runbook != wanted:
                continue
            if runbook.runbook in seen:
                raise RunbookError(
                    [
                        Problem(
                            str(file),
                            1,
                            1,
                            "runbook",
                            f"runbook id {runbook.runbook!r} is already used by {seen[runbook.runbook]}",
                        )
                    ]
                )
            dag = build_dag(runbook, folder)
        except RunbookError as exc:
            report(file, exc.problems)
            continue
        except Exception as exc:  # a compiler bug must not hide the other runbooks
            log.exception("gonogo: could not build a DAG from %s", file)
            report(file, [Problem(str(file), 1, 1, "", f"could not build the DAG: {exc}")])
            continue
        seen[runbook.runbook] = file
        dags[runbook.runbook] = dag
        namespace[runbook.runbook] = dag
    return dags
