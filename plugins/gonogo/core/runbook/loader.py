"""A runbook file or text to a validated :class:`~gonogo.core.runbook.model.Runbook`, every problem located.

:mod:`gonogo.core.runbook.source` parses the YAML with positions, pydantic checks the
shape of each piece (:mod:`gonogo.core.runbook.model`), and :mod:`gonogo.core.runbook.rules`
checks what needs the whole runbook. Every problem is collected before the
file is refused, so a user fixes them in one pass.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gonogo.core.runbook.model import Runbook
from gonogo.core.runbook.parsed import ParseCache
from gonogo.core.runbook.rules import check
from gonogo.core.runbook.source import Loc, Source, parse_yaml, validation_problems
from gonogo.core.settings import CALENDAR_FILE
from gonogo.core.settings import MAX_RUNBOOK_BYTES as MAX_BYTES
from gonogo.errors import Problem, RunbookError

SUFFIXES = (".yaml", ".yml")


def _without_union_tag(loc: Loc) -> Loc:
    """Drop the '<phase>'/'<gate>' tag pydantic puts after ``phases[i]``, and only that one.

    A user's own key may start with '<' too; it stays, so the unknown key is still reported.
    """
    if len(loc) > 2 and loc[0] == "phases" and loc[2] in ("<phase>", "<gate>"):
        return (*loc[:2], *loc[3:])
    return loc


def _model_fields_at(source: Source, loc: Loc) -> list[str]:
    """The keys the schema allows at ``loc``, for "did you mean" hints."""
    from typing import get_args, get_origin

    from gonogo.core.runbook import model as m

    current: Any = m.Runbook
    data: Any = source.data
    skip_next = False  # the next part is a list index or a dict key, not a field
    for part in loc:
        data = _child(data, part)
        if skip_next:
            skip_next = False
            if current is None and isinstance(data, dict):  # an item of phases
                current = m.Gate if "gate" in data else m.Phase
            continue
        fields = getattr(current, "model_fields", {})
        info = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        if info is None:
            return []
        if current is m.Runbook and part == "phases":
            current, skip_next = None, True
            continue
        current = None
        for candidate in (info.annotation, *get_args(info.annotation)):
            origin = get_origin(candidate)
            if origin in (list, dict):
                candidate, skip_next = get_args(candidate)[-1], True
            if hasattr(candidate, "model_fields"):
                current = candidate
                break
        if current is None and not skip_next:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _child(data: Any, part: str | int) -> Any:
    if isinstance(data, list) and isinstance(part, int) and part < len(data):
        return data[part]
    return data.get(part) if isinstance(data, dict) else None


def load_text(text: str, file: str = "<string>") -> tuple[Runbook, list[Problem]]:
    """Validate runbook text. Returns the runbook and its warnings; raises on any error.

    Raises only :class:`RunbookError`: whatever else goes wrong on the way (a
    value no check foresaw) is reported as a problem of this file, so one odd
    file never stops the others from loading.
    """
    runbook, problems, _ = _load_source(text, file)
    return runbook, problems


def _load_source(text: str, file: str) -> tuple[Runbook, list[Problem], Source]:
    try:
        return _validate(text, file)
    except RunbookError:
        raise
    except Exception as exc:  # RecursionError, OverflowError: anything a check did not foresee
        message = f"cannot read the runbook ({exc.__class__.__name__}: {str(exc)[:200]})"
        raise RunbookError([Problem(file, 1, 1, "", message)]) from None


def _validate(text: str, file: str) -> tuple[Runbook, list[Problem], Source]:
    source = parse_yaml(text, file)
    if not isinstance(source.data, dict):
        raise RunbookError(
            [source.problem((), "expected a mapping with 'runbook', 'title', … at the top")]
        )
    try:
        runbook = Runbook.model_validate(source.data)
    except ValidationError as exc:
        raise RunbookError(
            validation_problems(
                source, exc, partial(_model_fields_at, source), clean=_without_union_tag
            )
        ) from None
    problems = check(runbook, source)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RunbookError(problems)
    return runbook, problems, source


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_BYTES + 1) -> bytes:
    """At most ``limit`` bytes of a regular file (symlinks followed); anything else is refused.

    A FIFO or a device could stream forever or block the DAG processor, and
    ``st_size`` says nothing about either, so the type is checked on the open
    file and reading stops at ``limit`` whatever the size claims.
    """
    shown = str(path)

    def refuse(why: str) -> RunbookError:
        return RunbookError([Problem(shown, 1, 1, "", why)])

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise refuse("not a regular file (a directory, FIFO or device); not read")
        # O_NONBLOCK: if the path became a FIFO since, opening it must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise refuse("not a regular file (a directory, FIFO or device); not read")
            chunks: list[bytes] = []
            size = 0
            while size < limit:
                chunk = os.read(fd, min(65536, limit - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise refuse(f"cannot read the file: {exc.strerror or exc}") from None
    return b"".join(chunks)


def load_file(path: str | os.PathLike[str]) -> tuple[Runbook, list[Problem]]:
    """Read and validate one runbook file."""
    runbook, problems, _ = _load_file_source(path)
    return runbook, problems


def _load_file_source(
    path: str | os.PathLike[str], cache: ParseCache | None = None
) -> tuple[Runbook, list[Problem], Source | None]:
    """The runbook in ``path``; from ``cache`` (no source then) when the file has not changed."""
    shown = str(path)
    raw = read_bytes(path)
    if cache is not None:
        key = cache.key(raw)
        kept = cache.get(Path(path), key)
        if kept is not None:
            return (*kept, None)
        runbook, problems, source = _load_bytes(raw, shown)
        cache.put(Path(path), key, runbook, problems)
        return runbook, problems, source
    return _load_bytes(raw, shown)


def _load_bytes(raw: bytes, shown: str) -> tuple[Runbook, list[Problem], Source]:
    if len(raw) > MAX_BYTES:
        raise RunbookError([Problem(shown, 1, 1, "", f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunbookError(
            [Problem(shown, 1, 1, "", f"the file is not UTF-8 ({exc.reason})")]
        ) from None
    return _load_source(text, shown)


@dataclass
class Loaded:
    """One file of a folder: its runbook when valid, and every problem found in it."""

    file: Path
    runbook: Runbook | None
    problems: list[Problem] = field(default_factory=list)
    source: Source | None = None  # where each value is, for checks that run later

    @property
    def valid(self) -> bool:
        return self.runbook is not None


def load_files(
    files: Sequence[str | os.PathLike[str]], cache: ParseCache | None = None
) -> list[Loaded]:
    """Load every file; two files with the same runbook id are both refused.

    Neither copy may win by the order the files sort in, so each is reported
    at its own ``runbook:`` key, naming the other file. With a ``cache``
    (the DAG processor's), an unchanged file's runbook comes from it, without
    its source.
    """
    loaded: list[Loaded] = []
    where: dict[str, list[int]] = {}  # the files of each runbook id
    for file in files:
        try:
            runbook, problems, source = _load_file_source(file, cache)
        except RunbookError as exc:
            loaded.append(Loaded(Path(file), None, exc.problems))
            continue
        where.setdefault(runbook.runbook, []).append(len(loaded))
        loaded.append(Loaded(Path(file), runbook, problems, source))
    for ident, indexes in where.items():
        if len(indexes) < 2:
            continue
        copies = [(index, _runbook_key(loaded[index])) for index in indexes]
        for index, at in copies:
            others = ", ".join(p.file for i, p in copies if i != index)
            message = f"runbook id {ident!r} is also used by {others}; neither is loaded"
            problem = Problem(at.file, at.line, at.column, at.path, message)
            item = loaded[index]
            item.runbook = None
            item.problems = sorted([*item.problems, problem])
    return loaded


def _runbook_key(item: Loaded) -> Problem:
    """Where ``item``'s ``runbook:`` key is, reading the file again if it came from the cache."""
    source = item.source
    if source is None:
        try:
            source = _load_file_source(item.file)[2]
        except RunbookError:  # changed since it was read: its first line will do
            return Problem(str(item.file), 1, 1, "runbook", "")
    assert source is not None
    return source.problem(("runbook",), "", key=True)


def runbook_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every runbook file named, or found below the folders named (hidden ones left out).

    The calendar (``calendar.yaml`` at the top of a folder, or named) is not a runbook.
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if not path.is_dir():
            if path.name != CALENDAR_FILE:
                found.append(path)
            continue
        found.extend(Path(name) for name in runbook_names(path))
    return found


def runbook_names(folder: str | os.PathLike[str]) -> list[str]:
    """The runbook files below ``folder``, as sorted path strings.

    Strings, not Paths: a task that starts beside thousands of runbooks lists them
    all, and making a Path of each cost more than the listing itself. The
    calendar at the top of the folder is left out.
    """
    below: list[str] = []
    top = True
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        below.extend(
            os.path.join(parent, n)
            for n in names
            if n.endswith(SUFFIXES) and not n.startswith(".") and not (top and n == CALENDAR_FILE)
        )
        top = False
    return sorted(below, key=_path_order)


def _path_order(name: str) -> tuple[str, ...]:
    """The order Paths sort in (part by part), so a listing reads the same either way."""
    return tuple(name.split(os.sep))
