"""What is planned in a period: changes, maintenance windows, freezes and collisions, as data.

One function, :func:`calendar_data`, makes the plain data every view renders:
``gonogo calendar`` (Markdown, HTML, ICS, JSON) and the Calendar page in the
Airflow UI, so they cannot show different facts. Times are ISO strings in the
calendar's time zone; each change carries what the rules found about it and
the changes it collides with; ``promotions`` lists each change id's runbooks
through their environments in the order they are planned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gonogo.core.calendar.model import Calendar
from gonogo.core.calendar.rules import Change, collisions, window_findings
from gonogo.core.calendar.times import WEEKDAYS, Interval, local_moment

#: What a change is when nothing is known of its runs: its window is ahead, or has passed.
PLANNED, PAST = "planned", "past"
#: How far ``gonogo calendar`` looks ahead when no --to is given.
DEFAULT_DAYS = 28


def period_of(
    calendar: Calendar, start: date | datetime | None, end: date | datetime | None, now: datetime
) -> Interval:
    """The period to list: dates are whole days in the calendar's zone (``end`` included).

    Without ``start``, today; without ``end``, :data:`DEFAULT_DAYS` after the start.
    """
    zone = calendar.timezone

    def moment(value: date | datetime, last: bool) -> datetime:
        if isinstance(value, datetime):
            return value
        return local_moment(value + timedelta(days=1) if last else value, time(0), zone)

    begin = (
        moment(start, False) if start is not None else moment(now.astimezone(zone).date(), False)
    )
    finish = moment(end, True) if end is not None else begin + timedelta(days=DEFAULT_DAYS)
    if finish <= begin:
        raise ValueError("the period must end after it starts")
    return Interval(begin, finish)


def _iso(moment: datetime, calendar: Calendar) -> str:
    return moment.astimezone(calendar.timezone).isoformat()


def calendar_data(
    calendar: Calendar,
    changes: Sequence[Change],
    period: Interval,
    now: datetime,
    states: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything in ``period``; ``states`` is each runbook's latest run state, where known."""
    known = states or {}
    shown = sorted((c for c in changes if c.window.overlaps(period)), key=lambda c: c.window)
    hits = collisions(calendar, shown)
    against: dict[str, list[str]] = {}
    for hit in hits:
        against.setdefault(hit.first.runbook, []).append(hit.second.runbook)
        against.setdefault(hit.second.runbook, []).append(hit.first.runbook)
    rows = []
    for change in shown:
        findings = window_findings(calendar, change)
        rows.append(
            {
                "runbook": change.runbook,
                "title": change.title,
                "service": change.service,
                "environment": change.environment,
                "type": change.type,
                "change_id": change.change_id,
                "start": _iso(change.window.start, calendar),
                "end": _iso(change.window.end, calendar),
                "state": known.get(change.runbook)
                or (PAST if change.window.end <= now else PLANNED),
                "collides_with": sorted(against.get(change.runbook, [])),
                "findings": [
                    {"kind": f.kind, "severity": f.severity, "message": f.message} for f in findings
                ],
            }
        )
    return {
        "from": _iso(period.start, calendar),
        "to": _iso(period.end, calendar),
        "timezone": calendar.timezone.key,
        "at": _iso(now, calendar),
        "changes": rows,
        "maintenance": _maintenance(calendar, period),
        "freezes": _freezes(calendar, period),
        "collisions": [
            {
                "first": hit.first.runbook,
                "second": hit.second.runbook,
                "start": _iso(hit.shared.start, calendar),
                "end": _iso(hit.shared.end, calendar),
                "severity": hit.severity,
                "environment": hit.first.environment,
                "services": sorted({hit.first.service, hit.second.service}),
            }
            for hit in hits
        ],
        "promotions": _promotions(rows),
    }


def _maintenance(calendar: Calendar, period: Interval) -> list[dict[str, Any]]:
    found = []
    for entry in calendar.maintenance:
        weekly = calendar.weekly(entry)
        for occurrence in weekly.expand(period):
            found.append(
                {
                    "id": entry.id,
                    "title": entry.title or entry.id,
                    "services": list(entry.services),
                    "environments": list(entry.environments or []),
                    "start": _iso(occurrence.start, calendar),
                    "end": _iso(occurrence.end, calendar),
                    "every": weekly.describe(),
                    "outside": entry.outside,
                }
            )
    return sorted(found, key=lambda m: (m["start"], m["id"]))


def _freezes(calendar: Calendar, period: Interval) -> list[dict[str, Any]]:
    found = []
    for freeze in calendar.freezes:
        span = calendar.span(freeze)
        if not span.overlaps(period):
            continue
        found.append(
            {
                "id": freeze.id,
                "title": freeze.title or freeze.id,
                "reason": freeze.reason,
                "services": "all" if freeze.services == "all" else list(freeze.services),
                "environments": list(freeze.environments or []),
                "start": _iso(span.start, calendar),
                "end": _iso(span.end, calendar),
                "exception": list(freeze.exception.roles) if freeze.exception else [],
            }
        )
    return sorted(found, key=lambda f: (f["start"], f["id"]))


def _promotions(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each change id planned in more than one environment: its runbooks in the order planned."""
    by_change: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_change.setdefault(str(row["change_id"]), []).append(row)
    return [
        {
            "change_id": change_id,
            "steps": [
                {k: r[k] for k in ("environment", "runbook", "start", "end", "state")}
                for r in sorted(group, key=lambda r: str(r["start"]))
            ],
        }
        for change_id, group in sorted(by_change.items())
        if len({r["environment"] for r in group}) > 1
    ]


def weeks(data: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """The period as whole weeks (Monday first) of days, for the grid.

    Each day has the changes and maintenance windows that start on it (one that
    runs past midnight shows on its first day) and the freezes that cover it.
    """
    zone = ZoneInfo(str(data["timezone"]))
    start = datetime.fromisoformat(str(data["from"])).astimezone(zone)
    end = datetime.fromisoformat(str(data["to"])).astimezone(zone)
    first = start.date() - timedelta(days=start.weekday())
    last = (end - timedelta(microseconds=1)).date()
    collided = {c["first"] for c in data["collisions"]} | {c["second"] for c in data["collisions"]}
    grid: list[list[dict[str, Any]]] = []
    day = first
    while day <= last or day.weekday() != 0:  # whole weeks, Monday to Sunday
        span = Interval(
            local_moment(day, time(0), zone), local_moment(day + timedelta(days=1), time(0), zone)
        )
        inside = Interval(start, end).overlaps(span)

        def touching(items: Sequence[Mapping[str, Any]], span: Interval = span) -> list[Any]:
            return [i for i in items if _interval(i).overlaps(span)]

        def starting(items: Sequence[Mapping[str, Any]], span: Interval = span) -> list[Any]:
            return [i for i in items if span.start <= _interval(i).start < span.end]

        if day.weekday() == 0:
            grid.append([])
        grid[-1].append(
            {
                "date": day.isoformat(),
                "weekday": WEEKDAYS[day.weekday()],
                "in_period": inside,
                "maintenance": starting(data["maintenance"]) if inside else [],
                "freezes": touching(data["freezes"]) if inside else [],
                "changes": [
                    {**c, "collides": c["runbook"] in collided}
                    for c in (starting(data["changes"]) if inside else [])
                ],
            }
        )
        day += timedelta(days=1)
    return grid


def _interval(item: Mapping[str, Any]) -> Interval:
    return Interval(
        datetime.fromisoformat(str(item["start"])), datetime.fromisoformat(str(item["end"]))
    )
