"""Cron expressions read on a local wall clock: which times of day they name, and which days.

A cadence such as ``0 6-18/2 * * *`` names times of day (its minute and hour
fields) on some days (its day-of-month, month and day-of-week fields). The
early-life DAG is built before anyone knows when support starts, so it needs
every time of day the expression can name (:func:`times_of_day`); at run time
the round on a given local date is kept only when the expression matches that
date and time (:func:`matches`), with cron's rule that a day matches when
*either* its day of month or its weekday does, once both are restricted, as
croniter implements it.

Only the five classic fields: croniter also reads a sixth (seconds) and
``@daily``-style aliases, which a runbook's reader would not expect, so they
are refused. Pure; croniter is imported on first use.
"""

from __future__ import annotations

from datetime import date, datetime, time
from itertools import pairwise

#: A cadence may not make more rounds a day than ``at_least`` may, nor rounds closer than ``every``.
MOST_A_DAY = 48
CLOSEST_MINUTES = 5
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def times_of_day(expression: str) -> list[time]:
    """Every local time of day ``expression`` can name, in order; ValueError when it is bad.

    The message says what is wrong in the runbook's terms: the fields, the
    number of rounds a day, the shortest gap between two of them.
    """
    from croniter import CroniterError, croniter

    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(
            f"expected a cron expression of {len(_FIELDS)} fields ({', '.join(_FIELDS)}), "
            f'like "0 6-18/2 * * *", got {expression!r}'
        )
    try:
        expanded = croniter(expression).expanded
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"{expression!r} is not a cron expression croniter reads: {exc}") from None
    minutes = range(60) if expanded[0] == ["*"] else [int(m) for m in expanded[0]]
    hours = range(24) if expanded[1] == ["*"] else [int(h) for h in expanded[1]]
    found = sorted({time(h, m) for h in hours for m in minutes})
    if len(found) > MOST_A_DAY:
        raise ValueError(
            f"{expression!r} makes {len(found)} rounds a day; at most {MOST_A_DAY} are allowed"
        )
    marks = [t.hour * 60 + t.minute for t in found]
    gaps = [b - a for a, b in pairwise(marks)]
    if marks:
        gaps.append(24 * 60 - marks[-1] + marks[0])  # the last one today, the first tomorrow
    if min(gaps, default=CLOSEST_MINUTES) < CLOSEST_MINUTES:
        raise ValueError(
            f"{expression!r} makes rounds {min(gaps)} minutes apart; "
            f"they must be at least {CLOSEST_MINUTES}m apart"
        )
    return found


def matches(expression: str, day: date, at: time) -> bool:
    """Whether ``expression`` names ``at`` on the local date ``day`` (cron's day-of-month OR weekday)."""
    from croniter import croniter

    return bool(croniter.match(expression, datetime.combine(day, at)))
