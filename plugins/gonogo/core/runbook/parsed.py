"""What an unchanged runbook file validated to, kept on disk like Python's ``__pycache__``.

Airflow's DAG processor runs each loader file again every
``min_file_process_interval`` (30 s), in a fresh process, and most runbooks
have not changed since the last time. Reading YAML with positions and checking
every rule is most of what gonogo adds to a parse, so the loader keeps, per
runbook file, the validated runbook as JSON under a key of everything the
result depends on: the file's bytes, gonogo's own code, every ``GONOGO_*``
setting and the change policy. A different key is a miss, and the file is read
and checked again in full, so an entry can only ever stand for the same input.

An entry is trusted as much as the folder it is in: it is used only when that
folder belongs to this user and no one else may write to it (the same trust
Airflow gives its own home). Anything unreadable is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pydantic
from pydantic import ValidationError

from gonogo.core.change.policy import PolicyError, current_policy
from gonogo.core.runbook.model import Runbook
from gonogo.errors import Problem

log = logging.getLogger(__name__)

#: ``GONOGO_PARSE_CACHE=off`` turns the cache off; any other value names its folder.
CACHE_ENV = "GONOGO_PARSE_CACHE"
_CODE = Path(__file__).resolve().parent.parent  # the gonogo package


@lru_cache(maxsize=1)
def _code_stamp() -> str:
    """gonogo's own source, by content, and the pydantic and Python that validated with it.

    Content, not times: a reproducible wheel gives every file the same time, and an
    upgrade may keep a file's size (a few milliseconds for gonogo's ~1.5 MB).
    """
    digest = hashlib.sha256(f"{pydantic.VERSION} {sys.version}\n".encode())
    for path in sorted(_CODE.rglob("*.py")):
        digest.update(f"{path.relative_to(_CODE)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _settings_stamp() -> str:
    """Every ``GONOGO_*`` setting and the policy they select (a policy file may change alone)."""
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("GONOGO_"))
    try:
        policy = repr(current_policy())
    except PolicyError as exc:
        policy = f"refused: {exc}"
    return json.dumps([settings, policy])


class ParseCache:
    """Validated runbooks by file, in ``folder``; see the module's docstring for when one is used."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._context = f"{_code_stamp()}\n{_settings_stamp()}\n".encode()

    @classmethod
    def from_settings(cls, default: Path) -> ParseCache | None:
        """The cache ``GONOGO_PARSE_CACHE`` names (``off``: none), else one in ``default``."""
        setting = os.environ.get(CACHE_ENV, "").strip()
        if setting.lower() == "off":
            return None
        folder = Path(setting) if setting else default
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = folder.stat()
        except OSError as exc:
            log.warning("gonogo: no parse cache in %s: %s", folder, exc.strerror or exc)
            return None
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning(
                "gonogo: no parse cache in %s: it must belong to this user and be writable "
                "by no one else",
                folder,
            )
            return None
        return cls(folder)

    def key(self, raw: bytes) -> str:
        return hashlib.sha256(self._context + raw).hexdigest()

    def _entry(self, file: Path) -> Path:
        name = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def get(self, file: Path, key: str) -> tuple[Runbook, list[Problem]] | None:
        """The runbook and warnings stored for ``file`` under ``key``, or None."""
        try:
            stored, _, rest = self._entry(file).read_text(encoding="utf-8").partition("\n")
            if stored != key:
                return None
            warnings, _, runbook = rest.partition("\n")
            problems = [Problem(**p) for p in json.loads(warnings)]
            return Runbook.model_validate_json(runbook), problems
        except (OSError, ValueError, TypeError, ValidationError):
            return None

    def put(self, file: Path, key: str, runbook: Runbook, problems: list[Problem]) -> None:
        """Keep ``runbook`` for ``file``; a write that fails only costs a parse next time."""
        warnings = json.dumps([p.as_dict() for p in problems])
        text = f"{key}\n{warnings}\n{runbook.model_dump_json(by_alias=True)}"
        try:
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".json")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, self._entry(file))  # a reader sees the old entry or the new
        except OSError as exc:
            log.warning("gonogo: could not keep %s in the parse cache: %s", file, exc)
