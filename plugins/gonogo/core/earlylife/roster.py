"""Who is on standby at a moment, by the roster's shifts (weekday and local time), and who next.

Seed 004 calls the incident manager on weekdays 16-18 and the system owner from
18 to 08 and at weekends. A roster lists such shifts and names a fallback: at
every moment of the week exactly one contact is on standby, the one shift that
covers that local time or else the fallback. Shifts are read on the wall clock
in the section's time zone, so a daylight-saving change moves nobody's shift.
:func:`overlapping` finds shifts that would make two contacts responsible at once,
which ``gonogo validate`` refuses.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gonogo.core.calendar.times import WEEKDAYS
from gonogo.core.runbook.model import Shift, Standby

WEEK = 7 * 24 * 60  # minutes


def _segments(shift: Shift) -> list[tuple[int, int]]:
    """The minutes of the week the shift covers, as [from, to) pieces inside one week."""
    begin = shift.start.hour * 60 + shift.start.minute
    end = shift.end.hour * 60 + shift.end.minute
    length = end - begin if end > begin else end - begin + 24 * 60
    pieces = []
    for name in shift.days:
        first = WEEKDAYS.index(name) * 24 * 60 + begin
        last = first + length
        if last <= WEEK:
            pieces.append((first, last))
        else:  # Sunday night into Monday morning
            pieces += [(first, WEEK), (0, last - WEEK)]
    return pieces


def minute_of_week(moment: datetime, zone: ZoneInfo) -> int:
    local = moment.astimezone(zone)
    return local.weekday() * 24 * 60 + local.hour * 60 + local.minute


def covers(shift: Shift, minute: int) -> bool:
    return any(first <= minute < last for first, last in _segments(shift))


def shift_at(standby: Standby, moment: datetime, zone: ZoneInfo) -> Shift | None:
    """The shift that covers ``moment``, or None when the fallback is on standby."""
    minute = minute_of_week(moment, zone)
    return next((s for s in standby.shifts if covers(s, minute)), None)


def on_standby(standby: Standby, moment: datetime, zone: ZoneInfo) -> str:
    """The role on standby at ``moment``."""
    shift = shift_at(standby, moment, zone)
    return shift.role if shift is not None else standby.fallback


def next_contact(standby: Standby, moment: datetime, zone: ZoneInfo) -> str:
    """Who is called when the contact on standby at ``moment`` does not acknowledge in time."""
    shift = shift_at(standby, moment, zone)
    if shift is not None and shift.next:
        return shift.next
    return standby.fallback


def call_order(standby: Standby, moment: datetime, zone: ZoneInfo) -> list[str]:
    """Who is called about an incident raised at ``moment``, in order, each role once.

    The contact on standby first; when they do not acknowledge in time, their
    shift's ``next`` (or the fallback); then the fallback, if not called yet.
    """
    return list(
        dict.fromkeys(
            [
                on_standby(standby, moment, zone),
                next_contact(standby, moment, zone),
                standby.fallback,
            ]
        )
    )


def most_calls(standby: Standby) -> int:
    """The longest call order at any moment: how many calls a DAG holds for one incident.

    Fixed by the roster alone, so the DAG's shape does not depend on when it is parsed.
    """
    orders = [[standby.fallback]] + [
        [s.role, s.next or standby.fallback, standby.fallback] for s in standby.shifts
    ]
    return max(len(dict.fromkeys(order)) for order in orders)


def overlapping(standby: Standby) -> list[tuple[int, int]]:
    """Every pair of shifts (by index) that share a minute of the week."""
    pairs = []
    pieces = [_segments(s) for s in standby.shifts]
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            if any(a < d and c < b for a, b in pieces[i] for c, d in pieces[j]):
                pairs.append((i, j))
    return pairs
