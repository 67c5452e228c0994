"""The fingerprint of a plan: one content hash of what a runbook will run.

Pure: no Airflow import. The hash is taken over the validated model, not the
YAML text, so comments, quoting, key order and spelling out a default do not
change it, and over every file the runbook runs: scripts named in a bash
command and python modules named by a callable, found under the runbooks folder.

It is kept in parts (one per runbook section, step, gate and file), so when an
approved fingerprint and the current one differ, :func:`changes` can name what
changed. Two digests come from the parts:

- ``digest``: everything. This is what the CAB approves.
- ``work``: only what runs (the steps and their order, params, the rollback
  plan and the files), not the environment, window, people or gates. A runbook
  for ``test`` and its copy for ``prod`` share it when they run the same work,
  which is what the promotion guard compares.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.core.runbook.model import Activity, Gate, Phase, Runbook

#: Runbook sections that describe where, when and by whom, not what runs.
_CONTEXT = frozenset(
    {
        "runbook",
        "title",
        "description",
        "service",
        "environment",
        "change",
        "window",
        "roles",
        "notify",
        "itsm",
        "incident",
        "approval",
        "requires",
    }
)
SHORT = 12
_TEMPLATE = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)


def _hash(value: Any) -> str:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """A plan's hash, and the parts it is made of (``step:<id>``, ``file:<path>``, …)."""

    digest: str
    work: str
    parts: Mapping[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.digest[:SHORT]

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "work": self.work, "parts": dict(self.parts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        return cls(str(data["digest"]), str(data["work"]), dict(data.get("parts") or {}))


def fingerprint(runbook: Runbook, runbooks_dir: str | Path) -> Fingerprint:
    """The fingerprint of ``runbook`` with the files it references under ``runbooks_dir``."""
    data = runbook.model_dump(mode="json", by_alias=True)
    parts: dict[str, str] = {}
    for key, value in data.items():
        if key != "phases":
            parts[f"runbook:{key}"] = _hash(value)
    order: list[Any] = []
    for item, dumped in zip(runbook.phases, data["phases"], strict=True):
        if isinstance(item, Gate):
            parts[f"gate:{item.gate}"] = _hash(dumped)
            order.append(["gate", item.gate])
            continue
        order.append(["phase", item.id, item.title, [s.id for s in item.steps]])
        for step, step_data in zip(item.steps, dumped["steps"], strict=True):
            parts[f"step:{step.id}"] = _hash(step_data)
    parts["runbook:order"] = _hash(order)
    root = Path(runbooks_dir)
    for name in referenced_files(runbook, root):
        parts[f"file:{name}"] = _hash((root / name).read_bytes())
    work = {k: v for k, v in parts.items() if not _is_context(k)}
    return Fingerprint(_hash(parts), _hash(work), parts)


def _is_context(part: str) -> bool:
    kind, _, name = part.partition(":")
    return kind == "gate" or (kind == "runbook" and name in _CONTEXT)


def _activities(runbook: Runbook) -> Iterator[Activity]:
    for item in runbook.phases:
        if isinstance(item, Phase):
            for step in item.steps:
                yield step
                yield from (a for a in (step.rollback, step.rehearse) if a is not None)
        else:
            yield from item.checks
    yield from runbook.rollback.steps


def referenced_files(runbook: Runbook, root: Path) -> list[str]:
    """Files under ``root`` that the runbook runs, as sorted paths relative to ``root``.

    A bash word that names an existing file under the folder (``scripts/app.sh``,
    ``./db.sh``) counts; so does the module file of every python callable, with
    the ``__init__.py`` of each package on its way. Files elsewhere (installed
    packages, system tools) are not part of the plan.
    """
    try:
        base = root.resolve()
    except OSError:
        return []
    found: set[str] = set()

    def add(candidate: Path) -> None:
        try:
            path = candidate.resolve()
            if path.is_file() and path.is_relative_to(base):
                found.add(path.relative_to(base).as_posix())
        except (OSError, ValueError):
            pass

    for activity in _activities(runbook):
        words = _words(activity.bash) if activity.bash is not None else activity.exec or []
        for word in words:
            if word and not word.startswith("-") and len(word) < 512 and "{{" not in word:
                add(base / word)
        if activity.python is not None:
            module = activity.python.callable.partition(":")[0].split(".")
            for depth in range(1, len(module)):
                add(base.joinpath(*module[:depth], "__init__.py"))
            add(base.joinpath(*module).with_suffix(".py"))
            add(base.joinpath(*module, "__init__.py"))
    return sorted(found)


def _words(command: str) -> list[str]:
    """The command's words, split at shell operators too, with templates taken out."""
    text = _TEMPLATE.sub(" ", command)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: the plain split still finds script paths
        return re.split(r"[\s;&|<>()]+", text)


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What changed from one fingerprint's parts to another's, one line each, files first."""
    lines = []
    for part in sorted(set(before) | set(after), key=_change_order):
        old, new = before.get(part), after.get(part)
        if old == new:
            continue
        kind, _, name = part.partition(":")
        what = {"file": "file", "step": "step", "gate": "gate"}.get(kind, "runbook section")
        if kind == "runbook" and name == "order":
            lines.append("the order of phases, steps and gates changed")
            continue
        verb = "added" if old is None else "removed" if new is None else "changed"
        lines.append(f"{what} {name} {verb}")
    return lines


def _change_order(part: str) -> tuple[int, str]:
    kind = part.partition(":")[0]
    return ({"file": 0, "step": 1, "gate": 2}.get(kind, 3), part)
