"""In the DAG processor: a new or edited runbook is parsed next, as a new DAG file is.

Airflow puts a new DAG file at the front of its parsing queue. A runbook is not a
DAG file: it changes a loader file's DAGs, and a loader file that is not in the
queue waits for the whole round of parsing to end before it is queued again
(``DagFileProcessorManager.prepare_file_queue``). With thousands of runbooks over
many loader files a round takes minutes, so a new runbook appeared minutes after
a new hand-written DAG file would have (``bench/appear.py``).

So the DAG processor, the process that parses and holds the metadata database,
runs a thread that looks at the runbooks every :data:`EVERY` seconds. For each
loader file that owns a runbook written since that loader file last changed, it
touches the loader file (as a parse does, :func:`gonogo.dag.folder.prompt_changed`)
and asks for it to be parsed next with Airflow's own priority parsing request,
the one its "Reparse" button writes (``DagPriorityParsingRequest``). Airflow's
manager claims the request within a loop and parses that file next.

The thread starts from the plugin's listener when a job starts; it goes on only in
the DAG processor (a ``DagProcessorJob``) and only for loader files inside one of
its DAG bundles. It reads file times and, for the runbooks newer than a loader
file, their first lines: nothing is parsed, built or run here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl

from gonogo.core.runbook.loader import runbook_names
from gonogo.core.settings import runbooks_dir
from gonogo.dag.folder import LOADER_GLOB, owners_of, prompt_changed

log = logging.getLogger(__name__)

#: Seconds between two looks at the runbooks: a stat of each file, and no more.
EVERY = 2.0
#: How long a starting job may take to say what kind of job it is.
_KIND_WAIT = 60.0
_DAG_PROCESSOR = "DagProcessorJob"


#: Each runbook file's owner as last read: (its time, the number of loader files, the owner).
#: A file's head is read again only when its time or the number of loader files changes, so
#: runbooks edited since the oldest loader file changed are not re-read at every look.
Owners = dict[str, tuple[int, int, int]]


def newer_owners(
    loaders: list[Path], runbooks: Path, known: Owners | None = None
) -> dict[str, int]:
    """The runbooks written since the oldest loader file changed, each with its loader's index."""
    try:
        oldest = min(loader.stat().st_mtime_ns for loader in loaders)
    except (OSError, ValueError):
        return {}
    known = {} if known is None else known
    found: dict[str, int] = {}
    unread: dict[str, int] = {}
    listed = runbook_names(runbooks) if runbooks.is_dir() else []
    for gone in known.keys() - set(listed):
        del known[gone]
    for file in listed:
        try:
            written = os.stat(file).st_mtime_ns
        except OSError:
            continue
        if written <= oldest:
            continue
        seen = known.get(file)
        if seen is not None and seen[:2] == (written, len(loaders)):
            found[file] = seen[2]
        else:
            unread[file] = written
    for file, index in owners_of(list(unread), runbooks, len(loaders)).items():
        known[file] = (unread[file], len(loaders), index)
        found[file] = index
    return found


def prompt(folder: Path, known: Owners | None = None) -> list[Path]:
    """Touch each loader file in ``folder`` that owns a runbook newer than it; returns them."""
    loaders = sorted(folder.glob(LOADER_GLOB))
    if not loaders:
        return []
    runbooks = runbooks_dir(loaders[0].resolve().parent.parent / "runbooks")
    owners = newer_owners(loaders, runbooks, known)
    return prompt_changed(owners, loaders[0], parsing=False) if owners else []


def request_key(bundle: str, relative: str) -> str:
    """The request's primary key as Airflow computes it: one request per file at a time."""
    return hashlib.md5(f"{bundle}:{relative}".encode()).hexdigest()


def ask_to_parse(bundle: str, files: Iterable[str]) -> list[str]:
    """Airflow's priority parsing request for each file (relative to its bundle); returns the new ones."""
    from airflow.models.dagbag import DagPriorityParsingRequest
    from airflow.utils.session import create_session
    from sqlalchemy.exc import IntegrityError

    asked = []
    try:
        with create_session() as session:
            for relative in files:
                if session.get(DagPriorityParsingRequest, request_key(bundle, relative)) is None:
                    session.add(DagPriorityParsingRequest(bundle, relative))
                    asked.append(relative)
    except IntegrityError:  # another DAG processor asked first: the file is asked for
        return []
    return asked


def local_bundles() -> list[tuple[str, Path]]:
    """The DAG processor's bundles that are folders on this machine, by name."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    found = []
    for bundle in DagBundlesManager().get_all_dag_bundles():  # type: ignore[no-untyped-call]
        try:
            path = Path(bundle.path)
        except Exception:  # a bundle not yet fetched (git) has no folder yet
            continue
        if path.is_dir():
            found.append((bundle.name, path))
    return found


def watch_once(bundles: list[tuple[str, Path]], known: dict[str, Owners]) -> list[str]:
    """One look: prompt and ask for the loader files with newer runbooks; returns what was asked."""
    asked = []
    for name, path in bundles:
        touched = prompt(path, known.setdefault(name, {}))
        if touched:
            asked += ask_to_parse(name, [p.relative_to(path).as_posix() for p in touched])
    for relative in asked:
        log.info("gonogo: a runbook changed; asked Airflow to parse %s next", relative)
    return asked


def _watch(job: Any) -> None:
    waited = 0.0
    while getattr(job, "job_type", None) in (None, "undefined") and waited < _KIND_WAIT:
        time.sleep(0.5)
        waited += 0.5
    if getattr(job, "job_type", None) != _DAG_PROCESSOR:
        return
    bundles = local_bundles()
    log.info("gonogo: watching the runbooks of %d DAG bundle(s)", len(bundles))
    known: dict[str, Owners] = {}
    while True:
        try:
            watch_once(bundles, known)
        except Exception:  # a look that fails is tried again; it must never stop parsing
            log.exception("gonogo: looking for changed runbooks failed")
        time.sleep(EVERY)


@hookimpl
def on_starting(component: Any) -> None:
    """A job is starting; in the DAG processor, start watching the runbooks."""
    if type(component).__name__ != "Job":  # a task starting, not a component of Airflow
        return
    threading.Thread(target=_watch, args=(component,), name="gonogo-prompter", daemon=True).start()
