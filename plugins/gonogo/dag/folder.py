"""Everything the DAG file in ``dags/`` does: every runbook in the folder becomes a DAG.

A broken runbook never hides the others. Its error, with ``file:line:col``, is
reported as an import error against the runbook's own file
(:mod:`gonogo.dag.import_errors`) while every valid runbook still loads.

While a task runs, Airflow sets the parsing context (dag_id, task_id); then only
that runbook is validated and compiled, so a task's start-up does not grow with
the number of runbooks.

Shards. Airflow gives each DAG file 30 s to parse (``dagbag_import_timeout``),
and a runbook costs tens of milliseconds, so one file cannot hold thousands. The
DAGs folder may hold several copies of the loader file, ``gonogo_dags.py``,
``gonogo_dags_01.py``, …: each copy owns the runbooks whose id hashes to its
place among them (:func:`shard_of`), found by reading only the head of each
runbook. The id decides, not the file name, so two files with one id land in
the same shard and are both reported. With a single copy it owns every runbook.

A loader file that holds more than it can build in that time stops at three
quarters of it (:func:`parse_budget`): what it built loads, and each runbook it
did not reach is reported on its own file, with the number of copies to make.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import re
import stat
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gonogo.core import naming
from gonogo.core.earlylife import names
from gonogo.core.runbook.loader import SUFFIXES, load_files, read_bytes, runbook_names
from gonogo.core.runbook.parsed import ParseCache
from gonogo.core.settings import state_home
from gonogo.dag.import_errors import add_import_error, importing_dagbag, remember
from gonogo.errors import Problem, RunbookError

log = logging.getLogger(__name__)

#: Matched on the head's bytes: decoding a head cost more than reading it.
_RUNBOOK_ID = re.compile(rb"^runbook:\s*['\"]?([A-Za-z0-9_.-]+)", re.M)


def report(path: Path, problems: list[Problem], broken: dict[str, str] | None = None) -> None:
    """Make a broken runbook visible: the DAG processor log, and the import errors in the UI.

    ``broken`` collects it for :func:`gonogo.dag.import_errors.remember`.
    """
    message = "\n".join(str(p) for p in problems)
    log.error("gonogo: runbook %s is invalid and was not loaded:\n%s", path, message)
    add_import_error(path, message)
    if broken is not None:
        broken[str(path)] = message


HEAD_BYTES = 4096


def head_id(file: str | Path) -> str | None:
    """The runbook id the file's head names, "" when it names none, None when unreadable.

    Only the head is read: ``runbook:`` is the first key by convention.
    """
    try:
        head = read_bytes(file, HEAD_BYTES)
    except RunbookError:
        return None  # not a readable regular file: no runbook of any id
    match = _RUNBOOK_ID.search(head)
    return match.group(1).decode("ascii") if match else ""


def _wanted(files: list[str], dag_id: str) -> list[str]:
    """The files that can hold runbook ``dag_id``: a cheap text scan, no YAML parsing.

    A file whose head does not name its runbook is kept, and the full load decides.
    """
    return [file for file in files if head_id(file) in ("", dag_id)]


def runbook_of(dag_id: str) -> str:
    """The runbook a DAG id belongs to: its own, its plan approval's or its early-life DAG's."""
    return names.runbook_of_dag(dag_id) or naming.approved_runbook(dag_id) or dag_id


_PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def _named_file(folder: Path, dag_id: str, shard: tuple[int, int]) -> list[Path] | None:
    """A task's runbook when its file is named after it (``<id>.yaml`` at the top of the folder).

    Then a task reads one file, not the head of every runbook: its start-up does
    not grow with the number of runbooks. None when there is no such file (or it
    names another runbook): the caller looks at every file. A runbook another
    loader file owns is not this one's to build: an empty list.
    """
    runbook_id = runbook_of(dag_id)
    if not _PLAIN_ID.fullmatch(runbook_id):
        return None
    for suffix in SUFFIXES:
        path = folder / f"{runbook_id}{suffix}"
        if head_id(path) == runbook_id:
            return [path] if owner(runbook_id, shard[1]) == shard[0] else []
    return None


LOADER_GLOB = "gonogo_dags*.py"
#: Runbooks one loader file should hold at most: about 10 s of the 30 s Airflow gives a file.
PER_LOADER = 200


def shard_of(loader: Path) -> tuple[int, int]:
    """This loader file's place among the loader files beside it, and how many there are."""
    names = sorted(p.name for p in loader.parent.glob(LOADER_GLOB))
    if loader.name not in names:  # a loader under another name owns everything
        return 0, 1
    return names.index(loader.name), len(names)


def owner(key: str, shards: int) -> int:
    """The shard that owns a runbook: a stable hash of its id (or path), not Python's hash()."""
    return zlib.crc32(key.encode("utf-8")) % shards


def owners_of(files: list[str], folder: Path, shards: int) -> dict[str, int]:
    """Each runbook file's shard, by the id its head names (or its path when it names none)."""
    if shards == 1:
        return dict.fromkeys(files, 0)
    return {
        file: owner(head_id(file) or Path(file).relative_to(folder).as_posix(), shards)
        for file in files
    }


def prompt_changed(owners: dict[str, int], loader: Path, parsing: bool = True) -> list[Path]:
    """Make the loader file of each runbook written since it look changed to Airflow.

    Airflow's DAG processor parses changed DAG files first (its default
    ``file_parsing_sort_mode`` is ``modified_time``), but it knows only the loader
    files, not the runbooks. So when a runbook file is newer than the loader
    file that owns it, that loader file's time is set to now, and a new or
    edited runbook is parsed as soon as an edited DAG file would be. The touched
    loader file is then newer than the runbook: nothing is touched twice. A runbook
    dated in the future, and a loader file that is a link, are left alone. A DAGs
    folder that cannot be written (a read-only bundle) keeps Airflow's order.
    Returns the loader files touched.
    """
    names = sorted(loader.parent.glob(LOADER_GLOB))  # in shard_of's order
    try:
        infos = [path.lstat() for path in names]
    except OSError:
        return []
    times = [info.st_mtime_ns for info in infos]
    # This parse reads its own runbooks anew, and a linked loader file is not this folder's.
    skip = {
        i
        for i, info in enumerate(infos)
        if stat.S_ISLNK(info.st_mode) or (parsing and names[i] == loader)
    }
    now = time.time_ns()
    touched: set[int] = set()
    for file, index in owners.items():
        if index >= len(names) or index in touched or index in skip:
            continue
        try:
            written = os.stat(file).st_mtime_ns
        except OSError:
            continue
        # A runbook dated in the future would look newer at every parse, and Airflow
        # would parse its loader file without pause: it waits for the clock instead.
        if times[index] < written <= now:
            touched.add(index)
    prompted = []
    for index in sorted(touched):
        try:
            os.utime(names[index])
        except OSError as exc:
            log.info("gonogo: could not prompt Airflow to parse %s: %s", names[index], exc)
            continue
        prompted.append(names[index])
    return prompted


def namespace_key(dag_id: str) -> str:
    """The DAG file's global that holds a DAG: not an identifier, so no name in the file is it.

    Airflow finds DAGs by value among a module's globals; the key only has to
    keep a runbook id such as ``build_all`` or ``__file__`` from replacing one
    of the file's own names.
    """
    return f"gonogo:{dag_id}"


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the runbooks are built, back on after.

    A build allocates many objects that live on (models, DAGs, tasks); each automatic
    collection rescans all of them, which with 200 runbooks was 40 % of the parse.
    What the build leaves as cyclic garbage is collected once it is back on.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def build_all(folder: Path, namespace: dict[str, Any]) -> dict[str, Any]:
    """Put a DAG for every valid runbook under ``folder`` into ``namespace``; report the rest.

    Two files with the same runbook id are both reported and neither is
    loaded: which one would win must not depend on how the files sort.
    """
    whole = _full_parse(namespace)
    if whole is not None:  # said first, before the runbooks are listed
        mark_parse(whole)
    try:
        with _collector_paused():
            return _build_all(folder, namespace)
    finally:
        if whole is not None:
            mark_parse(whole, ended=True)


def _candidates(
    folder: Path, loader: str | None, shard: tuple[int, int], wanted: str | None
) -> list[Path]:
    """The runbook files this loader file may build: its shard, and for a task, its runbook's."""
    files = runbook_names(folder) if folder.is_dir() else []
    if not files:
        log.warning("gonogo: no runbooks found in %s", folder)
    if loader:
        owners = owners_of(files, folder, shard[1])
        files = [file for file in files if owners[file] == shard[0]]
        if shard[1] > 1 and not wanted and importing_dagbag() is not None:  # a full parse
            prompt_changed(owners, Path(loader))
        if len(files) > PER_LOADER and not wanted:
            log.warning(
                "gonogo: %s loads %d runbooks; past about %d a file nears Airflow's 30 s "
                "per DAG file. Run `gonogo shards %d` on the DAGs folder to split them.",
                loader,
                len(files),
                PER_LOADER,
                shards_needed(len(files), shard[1]),
            )
    if wanted:
        files = _wanted(files, runbook_of(wanted))
    return [Path(file) for file in files]


_clock = time.monotonic

#: The share of Airflow's time per DAG file a loader file spends building; the rest is
#: left for the imports before it and the DagBag's own work after it.
BUDGET_SHARE = 0.75


def parse_budget(loader: str | None) -> float | None:
    """Seconds a loader file may spend building runbooks, or None for no limit.

    Airflow kills a DAG file's import after ``dagbag_import_timeout`` (a local
    policy may set it per file), and then not one of its DAGs loads.
    """
    if not loader:
        return None
    from airflow import settings

    timeout = settings.get_dagbag_import_timeout(loader)
    return timeout * BUDGET_SHARE if isinstance(timeout, int | float) and timeout > 0 else None


def shards_needed(runbooks: int, shards: int) -> int:
    """Loader files for everything, when one of ``shards`` files holds ``runbooks``."""
    return max(shards + 1, -(-runbooks * shards // PER_LOADER))


def _out_of_time(loader: str, shards: int, file: Path, done: int, total: int) -> Problem:
    return Problem(
        str(file),
        1,
        1,
        "",
        f"not loaded: {Path(loader).name} got through {done} of its {total} runbooks "
        "within Airflow's time per DAG file (dagbag_import_timeout) and stopped, so that "
        "those still load. Split the runbooks over more loader files: "
        f"`gonogo shards {shards_needed(total, shards)}` on the DAGs folder.",
    )


def parse_record(loader: Path, ended: bool = False) -> Path:
    """The file whose time says when the latest full parse of ``loader`` began to read runbooks.

    ``ended``: the one that says when the latest one ended. The DAG processor's
    watch (:mod:`gonogo.server.prompter`) reads both: a parse that was already
    running when it asked for the file listed the folder too early.
    """
    where = hashlib.sha256(os.fsencode(loader.resolve())).hexdigest()[:16]
    return state_home() / "parsing" / f"{loader.name}.{where}{'.ended' if ended else ''}"


def mark_parse(loader: Path, ended: bool = False) -> None:
    """Set :func:`parse_record`'s file to now: before the runbooks are listed, and after."""
    stamp = parse_record(loader, ended)
    try:
        stamp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp.touch()
    except OSError as exc:  # the watch then stops asking, and Airflow's order applies
        log.warning("gonogo: could not mark the parse of %s: %s", loader, exc)


def _full_parse(namespace: dict[str, Any]) -> Path | None:
    """The loader file, when this is the DAG processor's parse of all of it."""
    from airflow.sdk import get_parsing_context

    loader = namespace.get("__file__")
    if loader and not get_parsing_context().dag_id and importing_dagbag() is not None:
        return Path(loader)
    return None


def _build_all(folder: Path, namespace: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk import get_parsing_context

    from gonogo.dag.builder import build_dags

    started = _clock()
    wanted = get_parsing_context().dag_id
    loader = namespace.get("__file__")
    shard = shard_of(Path(loader)) if loader else (0, 1)
    named = _named_file(folder, wanted, shard) if wanted else None
    files = named if named is not None else _candidates(folder, loader, shard, wanted)
    budget = None if wanted else parse_budget(loader)
    dags = {}
    broken: dict[str, str] = {}
    with ParseCache.opened(state_home() / "parsed", folder) as cache:
        loaded = load_files(files, cache)
    for position, item in enumerate(loaded):
        file, runbook = item.file, item.runbook
        if budget is not None and _clock() - started > budget:
            assert loader is not None
            log.error(
                "gonogo: %s ran out of time after %d of %d runbooks; the rest are reported, "
                "not loaded",
                loader,
                position,
                len(loaded),
            )
            for rest in loaded[position:]:
                problem = _out_of_time(loader, shard[1], rest.file, position, len(loaded))
                report(rest.file, [problem], broken)
            break
        if runbook is None:
            report(file, item.problems, broken)
            continue
        companions = (naming.approval_dag(runbook.runbook), names.early_life_dag(runbook.runbook))
        if wanted and wanted not in (runbook.runbook, *companions):
            continue
        try:
            built = build_dags(runbook, folder, only=wanted)
        except RunbookError as exc:
            report(file, exc.problems, broken)
            continue
        except Exception as exc:  # a compiler bug must not hide the other runbooks
            log.exception("gonogo: could not build a DAG from %s", file)
            problem = Problem(str(file), 1, 1, "", f"could not build the DAG: {exc}")
            report(file, [problem], broken)
            continue
        for dag in built:
            dags[dag.dag_id] = dag
            namespace[namespace_key(dag.dag_id)] = dag
    if loader and not wanted and importing_dagbag() is not None:  # a full parse of its shard
        try:
            remember(loader, broken)
        except OSError as exc:  # the errors still show, only not steadily
            log.warning("gonogo: could not keep the broken runbooks for steady reporting: %s", exc)
    return dags
