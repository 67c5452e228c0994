"""Everything the DAG file in ``dags/`` does: every runbook in the folder becomes a DAG.

A broken runbook never hides the others. Its error, with ``file:line:col``, is
reported as an import error against the runbook's own file
(:mod:`gonogo.dag.import_errors`) while every valid runbook still loads.

While a task runs, Airflow sets the parsing context (dag_id, task_id); then only
that runbook is validated and compiled, so a task's start-up does not grow with
the number of runbooks.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from gonogo.core import naming
from gonogo.core.loader import load_files, read_bytes, runbook_files
from gonogo.dag.import_errors import add_import_error
from gonogo.errors import Problem, RunbookError

log = logging.getLogger(__name__)

_RUNBOOK_ID = re.compile(r"^runbook:\s*['\"]?([A-Za-z0-9_.-]+)", re.M)


def report(path: Path, problems: list[Problem]) -> None:
    """Make a broken runbook visible: the DAG processor log, and the import errors in the UI."""
    message = "\n".join(str(p) for p in problems)
    log.error("gonogo: runbook %s is invalid and was not loaded:\n%s", path, message)
    add_import_error(path, message)


HEAD_BYTES = 4096


def _wanted(files: list[Path], dag_id: str) -> list[Path]:
    """The files that can hold runbook ``dag_id``: a cheap text scan, no YAML parsing.

    Only the head of each file is read: ``runbook:`` is the first key by convention.
    A file whose head does not name its runbook is kept, and the full load decides.
    """
    found = []
    for file in files:
        try:
            head = read_bytes(file, HEAD_BYTES).decode("utf-8", errors="replace")
        except RunbookError:
            continue  # not a readable regular file: no runbook of any id
        match = _RUNBOOK_ID.search(head)
        if match is None or match.group(1) == dag_id:
            found.append(file)
    return found


def namespace_key(dag_id: str) -> str:
    """The DAG file's global that holds a DAG: not an identifier, so no name in the file is it.

    Airflow finds DAGs by value among a module's globals; the key only has to
    keep a runbook id such as ``build_all`` or ``__file__`` from replacing one
    of the file's own names.
    """
    return f"gonogo:{dag_id}"


def build_all(folder: Path, namespace: dict[str, Any]) -> dict[str, Any]:
    """Put a DAG for every valid runbook under ``folder`` into ``namespace``; report the rest.

    Two files with the same runbook id are both reported and neither is
    loaded: which one would win must not depend on how the files sort.
    """
    from airflow.sdk import get_parsing_context

    from gonogo.dag.builder import build_dags

    files = runbook_files([folder]) if folder.is_dir() else []
    if not files:
        log.warning("gonogo: no runbooks found in %s", folder)
    wanted = get_parsing_context().dag_id
    if wanted:
        files = _wanted(files, wanted.removesuffix(naming.APPROVAL_SUFFIX))
    dags = {}
    for item in load_files(files):
        file, runbook = item.file, item.runbook
        if runbook is None:
            report(file, item.problems)
            continue
        if wanted and wanted not in (runbook.runbook, naming.approval_dag(runbook.runbook)):
            continue
        try:
            built = build_dags(runbook, folder, only=wanted)
        except RunbookError as exc:
            report(file, exc.problems)
            continue
        except Exception as exc:  # a compiler bug must not hide the other runbooks
            log.exception("gonogo: could not build a DAG from %s", file)
            report(file, [Problem(str(file), 1, 1, "", f"could not build the DAG: {exc}")])
            continue
        for dag in built:
            dags[dag.dag_id] = dag
            namespace[namespace_key(dag.dag_id)] = dag
    return dags
