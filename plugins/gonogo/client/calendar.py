"""The calendar on the command line: which file, its rules in ``validate``, and ``gonogo calendar``.

The calendar is ``--calendar FILE``, else ``GONOGO_CALENDAR``, else
``calendar.yaml`` at the top of the first runbooks folder that has one (the
folder named, or the folder of a file named).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gonogo.core.calendar.model import Calendar, load_calendar
from gonogo.core.calendar.rules import Planned, calendar_problems
from gonogo.core.runbook.loader import Loaded
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
        calendar = load_calendar(path)
    except CalendarError as exc:
        return None, exc.problems
    if calendar.itsm is not None:
        print(
            f"note: the calendar's {calendar.itsm.kind} schedules are read inside Airflow only "
            "(before_start and the Calendar page); only the file is used here",
            file=sys.stderr,
        )
    return calendar, []


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


def _when(text: str) -> date | datetime:
    """``--from``/``--to``: a date (a whole day in the calendar's zone) or a time with its offset."""
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip())
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2026-12-01 or a time like 2026-12-01T20:00:00+01:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its offset, or give the date alone")
    return moment


def calendar_command(args: argparse.Namespace) -> int:
    """``gonogo calendar``: the planned changes, maintenance windows and freezes in a period."""
    from gonogo.core.calendar.listing import calendar_data, period_of
    from gonogo.core.calendar.rules import Change
    from gonogo.core.documents import calendar as documents
    from gonogo.core.runbook.loader import load_files, runbook_files

    paths = args.paths or ["runbooks"]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"gonogo calendar: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    where = find_calendar(paths, args.calendar)
    calendar, problems = read_calendar(where)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    calendar = calendar or Calendar()
    loaded = load_files(runbook_files(paths))
    broken = [item for item in loaded if item.runbook is None]
    if broken:
        print(
            f"gonogo calendar: {len(broken)} runbook(s) are invalid and not listed "
            "(gonogo validate says why)",
            file=sys.stderr,
        )
    changes = [
        found
        for item in loaded
        if item.runbook is not None
        and (found := Change.of(item.runbook, str(item.file))) is not None
    ]
    now = datetime.now(UTC)
    try:
        period = period_of(calendar, args.start, args.end, now)
    except ValueError as exc:
        print(f"gonogo calendar: --to: {exc}", file=sys.stderr)
        return 2
    data = calendar_data(calendar, changes, period, now)
    if args.format == "ics":
        sys.stdout.buffer.write(documents.calendar_ics(data))
        sys.stdout.flush()
        return 0
    render = {
        "md": documents.calendar_markdown,
        "html": documents.calendar_html,
        "json": documents.calendar_json,
    }[args.format]
    print(render(data), end="")
    return 0


def add_calendar_command(commands: Any) -> None:
    calendar = commands.add_parser(
        "calendar",
        help="the planned changes, maintenance windows and freezes in a period, collisions marked",
    )
    calendar.add_argument(
        "paths", nargs="*", metavar="PATH", help="runbook files or folders (default: runbooks/)"
    )
    calendar.add_argument(
        "--from",
        dest="start",
        type=_when,
        metavar="DATE",
        help="the first day, e.g. 2026-12-01 (default: today)",
    )
    calendar.add_argument(
        "--to",
        dest="end",
        type=_when,
        metavar="DATE",
        help="the last day, included (default: four weeks after the first)",
    )
    calendar.add_argument(
        "--format",
        choices=["md", "html", "ics", "json"],
        default="md",
        help="md (default), html (the Calendar page as one file), ics (to subscribe to), json",
    )
    calendar.add_argument(
        "--calendar",
        metavar="FILE",
        help="the calendar file (default: $GONOGO_CALENDAR, else calendar.yaml in the runbooks folder)",
    )
    calendar.set_defaults(func=calendar_command)
