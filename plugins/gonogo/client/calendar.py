"""The calendar on the command line: which file, its rules in ``validate``, and ``gonogo calendar``.

The calendar is ``--calendar FILE``, else ``GONOGO_CALENDAR``, else
``calendar.yaml`` at the top of the first runbooks folder that has one (the
folder named, or the folder of a file named).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gonogo.core.calendar.model import Calendar, load_calendar
from gonogo.core.calendar.rules import Planned, calendar_problems
from gonogo.core.loader import Loaded
from gonogo.core.settings import calendar_file
from gonogo.errors import CalendarError, Problem


def find_calendar(paths: Sequence[str | Path], named: str | None = None) -> Path | None:
    """The calendar for runbooks under ``paths``: ``named``, the setting, or the file beside them."""
    if named:
        return Path(named)
    for entry in paths:
        path = Path(entry)
        found = calendar_file(path if path.is_dir() else path.parent)
        if found is not None:
            return found
    return None


def read_calendar(path: Path | None) -> tuple[Calendar | None, list[Problem]]:
    """The calendar at ``path`` (None: there is none), or its problems when it is invalid."""
    if path is None:
        return None, []
    if not path.exists():
        message = "no such calendar file (named by --calendar or GONOGO_CALENDAR)"
        return None, [Problem(str(path), 1, 1, "", message)]
    try:
        return load_calendar(path), []
    except CalendarError as exc:
        return None, exc.problems


def validate_problems(
    loaded: Sequence[Loaded], paths: Sequence[str | Path], named: str | None = None
) -> tuple[Path | None, list[Problem]]:
    """The calendar used, and its problems or those of the valid runbooks against it."""
    where = find_calendar(paths, named)
    calendar, problems = read_calendar(where)
    if calendar is None:
        return where, problems
    planned = [Planned(i.runbook, i.source) for i in loaded if i.runbook is not None and i.source]
    return where, calendar_problems(calendar, planned, datetime.now(UTC))


def say_calendar(where: Path | None) -> None:
    if where is not None:
        print(f"checked against the calendar {where}", file=sys.stderr)
