"""What an unchanged runbook file validated to, kept on disk like Python's ``__pycache__``.

Airflow's DAG processor runs each loader file again every
``min_file_process_interval`` (30 s), in a fresh process, and most runbooks
have not changed since the last time. Reading YAML with positions and checking
every rule is most of what gonogo adds to a parse, so the loader keeps, per
runbook file, the validated runbook as JSON under a key of everything the
result depends on: the file's bytes, gonogo's own code, the pydantic, PyYAML and
Python it ran on, and the settings validation reads (the change policy and the
python prefixes). A different key is a miss, and the file is read and checked
again in full, so an entry can only ever stand for the same input. A runbook
whose JSON does not read back as the same runbook (a value JSON cannot hold,
such as a date in a param's default) is never kept.

An entry is trusted as much as the folder it is in, which is opened once, not
followed through a link, and used only when it belongs to this user and no one
else may write to it (the trust Airflow gives its own home); every entry is
opened inside that folder, not through a link, and must belong to this user too.
Anything unreadable is a miss, never an error, and a write that fails costs only
a parse next time. Entries not written for :data:`KEEP_DAYS` days are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydantic
import yaml

from gonogo.core.change.policy import PolicyError, current_policy
from gonogo.core.runbook.model import Runbook
from gonogo.core.settings import MAX_RUNBOOK_BYTES, python_prefixes
from gonogo.errors import Problem

log = logging.getLogger(__name__)

#: ``GONOGO_PARSE_CACHE=off`` turns the cache off; any other value names its folder.
CACHE_ENV = "GONOGO_PARSE_CACHE"
#: An entry not written for this long is removed (an unchanged runbook's costs one parse).
KEEP_DAYS = 30
#: An entry is the runbook as JSON: never near this, unless it is not one of ours.
_MAX_ENTRY = 16 * MAX_RUNBOOK_BYTES
_PACKAGE = Path(__file__).resolve().parent.parent.parent  # gonogo


def code_stamp() -> str:
    """gonogo's own source, by content, and the pydantic, PyYAML and Python it runs on.

    Content, not times: a reproducible wheel gives every file the same time, and an
    upgrade may keep a file's size (a few milliseconds for gonogo's ~1.5 MB).
    """
    libyaml = getattr(yaml, "__with_libyaml__", False)
    digest = hashlib.sha256(
        f"{pydantic.VERSION} {yaml.__version__} {libyaml} {sys.version}\n".encode()
    )
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(f"{path.relative_to(_PACKAGE)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


#: Taken when this module is first imported, right after the model and the rules: code
#: upgraded on disk later, while this process runs the old code, is caught at the first put.
_CODE = code_stamp()


def _settings_stamp() -> str:
    """The settings validation reads: the change policy (a policy file may change alone) and
    the module prefixes python steps may import from."""
    try:
        policy = repr(current_policy())
    except PolicyError as exc:
        policy = f"refused: {exc}"
    return json.dumps([policy, list(python_prefixes())])


def _ours(info: os.stat_result) -> bool:
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class ParseCache:
    """Validated runbooks by file, in the open folder ``fd``, for runbooks under ``root``."""

    def __init__(self, fd: int, root: Path) -> None:
        self.fd = fd
        self.root = root
        self._context = f"{_CODE}\n{_settings_stamp()}\n".encode()
        self._current: bool | None = None  # whether the code on disk is the code running

    @classmethod
    @contextlib.contextmanager
    def opened(cls, default: Path, root: Path) -> Iterator[ParseCache | None]:
        """The cache ``GONOGO_PARSE_CACHE`` names (``off``: none), else the one in ``default``."""
        setting = os.environ.get(CACHE_ENV, "").strip()
        if setting.lower() == "off":
            yield None
            return
        folder = Path(setting) if setting else default
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            log.warning("gonogo: no parse cache in %s: %s", folder, exc.strerror or exc)
            yield None
            return
        try:
            if not _ours(os.fstat(fd)):
                log.warning(
                    "gonogo: no parse cache in %s: it must belong to this user and be "
                    "writable by no one else",
                    folder,
                )
                yield None
            else:
                yield cls(fd, root)
        finally:
            os.close(fd)

    def key(self, raw: bytes) -> str:
        return hashlib.sha256(self._context + raw).hexdigest()

    def _entry(self, file: Path) -> str:
        """The entry's name: by the file's place under the runbooks folder, which stays the
        same when the folder is swapped for a new copy (a git sync), else by its real path."""
        try:
            place = file.absolute().relative_to(self.root.absolute()).as_posix()
        except ValueError:
            place = str(file.resolve())
        return hashlib.sha256(place.encode()).hexdigest()[:32] + ".json"

    def get(self, file: Path, key: str) -> tuple[Runbook, list[Problem]] | None:
        """The runbook and warnings stored for ``file`` under ``key``, or None."""
        try:
            handle = os.open(self._entry(file), os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError:
            return None
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode) or not _ours(info) or info.st_size > _MAX_ENTRY:
                return None
            with os.fdopen(handle, "rb", closefd=False) as entry:
                text = entry.read(_MAX_ENTRY).decode("utf-8")
            stored, _, rest = text.partition("\n")
            if stored != key:
                return None
            warnings, _, runbook = rest.partition("\n")
            problems = [Problem(**p) for p in json.loads(warnings)]
            return Runbook.model_validate_json(runbook), problems
        except Exception:  # whatever is in an entry, a bad one is only a miss
            return None
        finally:
            os.close(handle)

    def put(self, file: Path, key: str, runbook: Runbook, problems: list[Problem]) -> None:
        """Keep ``runbook`` for ``file`` if its JSON reads back as the same runbook."""
        temporary = f".{secrets.token_hex(8)}.tmp"
        try:
            if not self._still_this_code():
                return
            dumped = runbook.model_dump_json(by_alias=True, exclude_defaults=True)
            if Runbook.model_validate_json(dumped) != runbook:
                return  # a value JSON cannot hold: parsed in full each time instead
            warnings = json.dumps([p.as_dict() for p in problems])
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            handle = os.open(temporary, flags, 0o600, dir_fd=self.fd)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(f"{key}\n{warnings}\n{dumped}")
            os.replace(temporary, self._entry(file), src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except Exception as exc:  # a runbook that cannot be kept still loads
            log.info("gonogo: %s is not kept in the parse cache: %s", file, exc)
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)

    def _still_this_code(self) -> bool:
        """Once per process, at the first write: the code on disk is the code that ran.

        An upgrade that landed after this process imported gonogo would otherwise
        keep the old code's result under the new code's key. The first write also
        removes the entries older than :data:`KEEP_DAYS`.
        """
        if self._current is None:
            self._current = code_stamp() == _CODE
            self._prune()
        return self._current

    def _prune(self) -> None:
        cutoff = time.time() - KEEP_DAYS * 86400
        with contextlib.suppress(OSError), os.scandir(self.fd) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.name, dir_fd=self.fd)
