"""When the areas report and the leadership meets: local times by day of support, as moments.

Day 1 is the local calendar day on which support starts (the rollout succeeded),
day 2 the next, and so on, as seed 003 plans its go-live: "Friday every two
hours, Saturday to Monday every hour, Tuesday every two hours, Wednesday to
Friday twice a day". The first entry whose day range holds a day gives that
day's times. Times are wall-clock times in the section's time zone, so a round
at 06:00 is at 06:00 before and after a daylight-saving change; a time the
clocks skip is read as :func:`gonogo.core.calendar.times.local_moment` reads it.

The DAG is built before anyone knows when support starts, so it holds every
*slot* (a day of support and a local time) that support can reach, and a
round's task turns its slot into a moment at run time, skipping the slots
before the start or after the end. A ``cron`` entry's slots are every time of
day its expression can name; which of them happen depends on the calendar date
the day of support falls on (``0 9 * * mon-fri``), so :func:`rounds` keeps a
cron slot only when the expression matches its local date and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gonogo.core.calendar.cron import matches, times_of_day
from gonogo.core.calendar.times import local_moment
from gonogo.core.runbook.model import Rounds

#: ``at_least`` spreads its rounds over this part of the day unless ``between`` says otherwise.
DAYTIME = (time(6, 0), time(18, 0))
_WHOLE_DAY = (time(0, 0), time(23, 59))


@dataclass(frozen=True, order=True)
class Slot:
    """A round as the DAG holds it: a day of support (from 1) and a local time."""

    day: int
    at: time


def days_of_support(lasts: timedelta) -> int:
    """How many calendar days support can touch: it may start late on its first day."""
    return -(-lasts // timedelta(days=1)) + 1


def entry_for(entries: Sequence[Rounds], day: int) -> Rounds | None:
    """The first entry whose day range holds ``day``; None when no entry plans that day."""
    for entry in entries:
        first, last = entry.days
        if first <= day and (last is None or day <= last):
            return entry
    return None


def times_of(entry: Rounds) -> list[time]:
    """The local times of one day of ``entry``, in order."""
    if entry.at is not None:
        return sorted(set(entry.at))
    if entry.cron is not None:
        return times_of_day(entry.cron)
    start, end = entry.between or (DAYTIME if entry.at_least is not None else _WHOLE_DAY)
    first = start.hour * 60 + start.minute
    span = end.hour * 60 + end.minute - first
    if entry.every is not None:
        step = int(entry.every.total_seconds() // 60)
        minutes = list(range(first, first + span + 1, step))
    else:
        count = entry.at_least or 1
        minutes = [first] if count == 1 else [first + span * k // (count - 1) for k in range(count)]
    return sorted({time(m // 60, m % 60) for m in minutes})


def slots(entries: Sequence[Rounds], lasts: timedelta) -> list[Slot]:
    """Every slot that support lasting ``lasts`` can reach, in order."""
    found = []
    for day in range(1, days_of_support(lasts) + 1):
        entry = entry_for(entries, day)
        if entry is not None:
            found += [Slot(day, at) for at in times_of(entry)]
    return found


def date_of(slot: Slot, start: datetime, zone: ZoneInfo) -> date:
    """The local calendar date of the slot's day, for support that started at ``start``."""
    return start.astimezone(zone).date() + timedelta(days=slot.day - 1)


def moment_of(slot: Slot, start: datetime, zone: ZoneInfo) -> datetime:
    """The slot's moment in UTC, for support that started at ``start``."""
    return local_moment(date_of(slot, start, zone), slot.at, zone)


def on_its_date(entries: Sequence[Rounds], slot: Slot, start: datetime, zone: ZoneInfo) -> bool:
    """Whether the slot's entry plans it on the date its day falls on: always, except for cron."""
    entry = entry_for(entries, slot.day)
    if entry is None or entry.cron is None:
        return entry is not None
    return matches(entry.cron, date_of(slot, start, zone), slot.at)


def in_support(moment: datetime, start: datetime, lasts: timedelta) -> bool:
    """Whether a round at ``moment`` happens: from the start of support up to, not at, its end."""
    return start.astimezone(UTC) <= moment < start.astimezone(UTC) + lasts


@dataclass(frozen=True)
class Round:
    """One round that happens: its slot and its moment in UTC."""

    slot: Slot
    at: datetime


def rounds(
    entries: Sequence[Rounds], start: datetime, lasts: timedelta, zone: ZoneInfo
) -> list[Round]:
    """Every round of support that started at ``start``, in time order.

    A time the clocks skip lands on the moment of the time an hour later (02:00
    is 03:00 on the night they go forward); two slots at one moment are one round,
    the earlier slot's. A cron slot happens only on the dates its expression names.
    """
    found: dict[datetime, Round] = {}
    for slot in slots(entries, lasts):
        at = moment_of(slot, start, zone)
        if in_support(at, start, lasts) and on_its_date(entries, slot, start, zone):
            found.setdefault(at, Round(slot, at))
    return sorted(found.values(), key=lambda r: r.at)
