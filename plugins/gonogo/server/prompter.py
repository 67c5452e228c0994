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

Unless that file is being parsed right then: with a parsing process free, Airflow
drops a queued file that is already running (``_start_new_processes``), and the
running parse may have listed the runbooks before the new one was written. A parse
records when it began and ended (:func:`gonogo.dag.folder.parse_record`), so when
the file was being parsed as it was asked for, the thread asks once more when that
parse has ended, unless a parse began after the runbook was written by then (for at
most :data:`ASK_FOR` seconds).

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
from gonogo.dag.folder import LOADER_GLOB, owners_of, parse_record, prompt_changed

log = logging.getLogger(__name__)

#: Seconds between two looks at the runbooks: a stat of each file, and no more.
EVERY = 2.0
#: Seconds the watch waits for a parse that was running as it asked for its file to end,
#: to ask once more (a parse takes seconds; Airflow gives a file 30 s at most).
ASK_FOR = 300.0
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


#: Each loader file asked for while a parse of it was running: (the newest time of its
#: runbooks it must read, when it was asked for).
Asked = dict[Path, tuple[int, float]]


def prompt(
    folder: Path, known: Owners | None = None, asked: Asked | None = None, looked: bool = False
) -> list[Path]:
    """The loader files in ``folder`` to parse next; those older than a runbook they own are touched.

    ``looked``: ``known`` holds the times of the last look, so a runbook whose time
    differs was written since, and its loader file is returned even when it is not
    older than the runbook. A parse of another loader file may have touched it first
    (:func:`gonogo.dag.folder.prompt_changed`), and a touch alone waits for the end of
    Airflow's round of parsing. ``asked`` keeps, for each file returned, the newest of
    its runbooks' times.
    """
    loaders = sorted(folder.glob(LOADER_GLOB))
    if not loaders:
        return []
    runbooks = runbooks_dir(loaders[0].resolve().parent.parent / "runbooks")
    known = {} if known is None else known
    before = {file: seen[0] for file, seen in known.items()}
    owners = newer_owners(loaders, runbooks, known)
    found = prompt_changed(owners, loaders[0], parsing=False) if owners else []
    if looked:
        now = time.time_ns()
        for file, index in owners.items():
            time_ns = known[file][0]
            if before.get(file) != time_ns and time_ns <= now and loaders[index] not in found:
                found.append(loaders[index])
    if asked is not None and found:
        started = time.monotonic()
        for loader in found:
            if _parsing(loader):
                index = loaders.index(loader)
                written = [known[file][0] for file, owner in owners.items() if owner == index]
                asked[loader] = (max(written, default=0), started)
    return found


def _stamp(loader: Path, ended: bool) -> int | None:
    try:
        return parse_record(loader, ended).stat().st_mtime_ns
    except OSError:
        return None


def _parsing(loader: Path) -> bool:
    """Whether a parse of ``loader`` has begun and not ended (as the parses record it)."""
    began, ended = _stamp(loader, False), _stamp(loader, True)
    return began is not None and (ended is None or began > ended)


def not_yet_read(asked: Asked) -> list[Path]:
    """The loader files to ask for again: asked for while being parsed, that parse now ended.

    Each is asked for once more, unless a parse that began after its runbooks were
    written has read them by then. One asked for longer than :data:`ASK_FOR` ago, or
    whose parse cannot be told (no record of it), is forgotten, and Airflow's own order
    applies.
    """
    now = time.monotonic()
    again = []
    for loader, (written, since) in list(asked.items()):
        began = _stamp(loader, False)
        if began is None or began > written:
            del asked[loader]
        elif now - since > ASK_FOR:
            log.warning("gonogo: %s was not parsed within %.0f s of asking", loader, ASK_FOR)
            del asked[loader]
        elif not _parsing(loader):  # the parse that was running has ended
            del asked[loader]
            again.append(loader)
    return again


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


def watch_once(
    bundles: list[tuple[str, Path]],
    known: dict[str, Owners],
    pending: dict[str, Asked] | None = None,
) -> list[str]:
    """One look: prompt and ask for the loader files with newer runbooks; returns what was asked.

    ``pending``: per bundle, the files asked for while being parsed, asked for once more
    when that parse has ended (:func:`not_yet_read`).
    """
    pending = {} if pending is None else pending
    asked = []
    for name, path in bundles:
        waiting = pending.setdefault(name, {})
        again = not_yet_read(waiting)
        looked = name in known
        touched = prompt(path, known.setdefault(name, {}), waiting, looked)
        files = touched + [loader for loader in again if loader not in touched]
        if files:
            asked += ask_to_parse(name, [p.relative_to(path).as_posix() for p in files])
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
    pending: dict[str, Asked] = {}
    while True:
        try:
            watch_once(bundles, known, pending)
        except Exception:  # a look that fails is tried again; it must never stop parsing
            log.exception("gonogo: looking for changed runbooks failed")
        time.sleep(EVERY)


@hookimpl
def on_starting(component: Any) -> None:
    """A job is starting; in the DAG processor, start watching the runbooks."""
    if type(component).__name__ != "Job":  # a task starting, not a component of Airflow
        return
    threading.Thread(target=_watch, args=(component,), name="gonogo-prompter", daemon=True).start()
