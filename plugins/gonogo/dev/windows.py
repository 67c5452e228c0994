"""A copy of a runbooks folder whose change windows open now, for the demo and end-to-end tests.

The examples plan their changes for a real evening window (the EHR upgrade on a
Tuesday at 22:00), and a run waits for its window: that is the point. The demo
and a test that runs an example from start to finish cannot wait for that
evening, so they run a copy in which each window starts at a given moment and
keeps its length. Only the window's ``start`` and ``end`` values change in the
copy; every other byte is the file as written, so the plan, its fingerprint's
other parts and the error locations are those of the example.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml")


def windows_from(source: Path, target: Path, start: datetime) -> list[Path]:
    """Copy ``source`` to ``target`` (replacing it), every runbook's window moved to ``start``.

    A window keeps its length and its time zone. A file that is not a runbook
    with a window is copied as it is. Returns the copies whose window moved.
    """
    if start.tzinfo is None:
        raise ValueError("the new window start needs a time zone")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    moved = []
    for path in sorted(target.rglob("*")):
        if path.suffix in SUFFIXES and path.is_file():
            text = path.read_text()
            changed = window_moved(text, start)
            if changed != text:
                path.write_text(changed)
                moved.append(path)
    return moved


def window_moved(text: str, start: datetime) -> str:
    """``text`` with its top-level ``window`` starting at ``start``; unchanged without one."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return text  # not this module's to report: validation says what is wrong
    window = _value(root, "window")
    if not isinstance(window, yaml.MappingNode):
        return text
    start_node, end_node = _value(window, "start"), _value(window, "end")
    if not isinstance(start_node, yaml.ScalarNode) or not isinstance(end_node, yaml.ScalarNode):
        return text
    try:
        old_start = datetime.fromisoformat(start_node.value)
        old_end = datetime.fromisoformat(end_node.value)
    except ValueError:
        return text
    if old_start.tzinfo is None:
        return text
    new_start = start.astimezone(old_start.tzinfo).replace(microsecond=0)
    new_end = new_start + (old_end - old_start)
    # From the end of the text backwards, so the earlier node's offsets still hold.
    for node, value in sorted(
        ((start_node, new_start), (end_node, new_end)),
        key=lambda pair: pair[0].start_mark.index,
        reverse=True,
    ):
        text = (
            text[: node.start_mark.index] + f'"{value.isoformat()}"' + text[node.end_mark.index :]
        )
    return text


def _value(node: Any, key: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        return None
    for name, value in node.value:
        if isinstance(name, yaml.ScalarNode) and name.value == key:
            return value
    return None
