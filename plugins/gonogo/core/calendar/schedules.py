"""Maintenance windows and freezes from the ITSM's schedules, as entries of the calendar file.

ServiceNow keeps them as schedules (``cmn_schedule``, type ``maintenance`` or
``blackout``) of spans (``cmn_schedule_span``): a start and an end written in
the schedule's time zone (``20261218T000000``), repeated ``daily``, ``weekly``
on ``days_of_week`` (``1`` Monday … ``7`` Sunday), or not at all. The
configuration items that use a schedule (``cmdb_ci.maintenance_schedule``) are
the services it is for. The adapter (:mod:`gonogo.dag.itsm.servicenow`) reads
those records into :class:`Schedule`; this module turns them into the same
entries a calendar file holds, so the rules cannot tell where an entry came from:

- a maintenance schedule's repeating span is a maintenance window for its
  configuration items (one that repeats not at all, or is for nothing, is left
  out, and said so);
- a blackout schedule's span is a freeze for its configuration items, or for
  every service when none uses it; its exception roles are the calendar's
  ``itsm.exception`` (ServiceNow does not know gonogo's roles). A repeating
  blackout span is left out, and said so.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from gonogo.core.calendar.model import Calendar, Freeze, Grant, Maintenance
from gonogo.core.calendar.times import WEEKDAYS, zone_of

_STAMP = re.compile(r"^(\d{8})T(\d{6})$")


@dataclass(frozen=True)
class Span:
    """One ``cmn_schedule_span``, as stored."""

    name: str
    start: str
    end: str
    repeat: str = ""
    days_of_week: str = ""


@dataclass(frozen=True)
class Schedule:
    """One ``cmn_schedule`` with its spans and the configuration items that use it."""

    ref: str
    name: str
    kind: str  # maintenance or blackout
    time_zone: str
    description: str
    spans: tuple[Span, ...]
    services: tuple[str, ...]


class ScheduleSource(Protocol):
    """An ITSM adapter that can read its maintenance and blackout schedules."""

    def schedules(self) -> list[Schedule]:
        """Every maintenance and blackout schedule, with its spans and the items that use it."""


def _local(stamp: str, zone_name: str) -> datetime:
    match = _STAMP.match(stamp.strip())
    if match is None:
        raise ValueError(f"{stamp!r} is not a ServiceNow schedule time (YYYYMMDDTHHMMSS)")
    naive = datetime.strptime(f"{match[1]}{match[2]}", "%Y%m%d%H%M%S")
    return naive.replace(tzinfo=zone_of(zone_name))


def _ident(schedule: Schedule, number: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", schedule.name).strip("-")[:60] or schedule.ref[:12]
    return f"itsm-{slug}-{number}"


def entries(
    schedules: Sequence[Schedule], exception: Grant | None, default_zone: str
) -> tuple[list[Maintenance], list[Freeze], list[str]]:
    """The maintenance windows and freezes the schedules hold, and what was left out and why."""
    maintenance: list[Maintenance] = []
    freezes: list[Freeze] = []
    skipped: list[str] = []
    for schedule in schedules:
        zone = schedule.time_zone or default_zone
        for number, span in enumerate(schedule.spans, 1):
            where = f"ServiceNow schedule {schedule.name!r}, span {span.name or number}"
            try:
                found = _entry(schedule, span, number, zone, exception)
            except (ValueError, ValidationError) as exc:
                skipped.append(f"{where}: {str(exc).splitlines()[0]}")
                continue
            if isinstance(found, str):
                skipped.append(f"{where}: {found}")
            elif isinstance(found, Maintenance):
                maintenance.append(found)
            else:
                freezes.append(found)
    return maintenance, freezes, skipped


def _entry(
    schedule: Schedule, span: Span, number: int, zone: str, exception: Grant | None
) -> Maintenance | Freeze | str:
    start, end = _local(span.start, zone), _local(span.end, zone)
    if schedule.kind == "maintenance":
        if span.repeat not in ("daily", "weekly"):
            return "a maintenance window that does not repeat daily or weekly is left out"
        if not schedule.services:
            return "no configuration item uses this maintenance schedule; left out"
        days: Any = "day"
        if span.repeat == "weekly":
            days = [WEEKDAYS[int(d) - 1] for d in span.days_of_week if d in "1234567"]
            if not days:
                return "a weekly window without days_of_week is left out"
        return Maintenance.model_validate(
            {
                "id": _ident(schedule, number),
                "title": schedule.name,
                "services": list(schedule.services),
                "every": days,
                "start": start.strftime("%H:%M"),
                "end": end.strftime("%H:%M"),
                "timezone": zone,
            }
        )
    if schedule.kind == "blackout":
        if span.repeat:
            return f"a blackout that repeats ({span.repeat}) is left out"
        return Freeze.model_validate(
            {
                "id": _ident(schedule, number),
                "title": schedule.name,
                "start": start,
                "end": end,
                "reason": schedule.description or f"ServiceNow blackout schedule {schedule.name}",
                "services": list(schedule.services) or "all",
                "exception": exception,
            }
        )
    return f"a schedule of type {schedule.kind!r} is neither maintenance nor blackout"


def with_schedules(calendar: Calendar, schedules: Sequence[Schedule]) -> tuple[Calendar, list[str]]:
    """The calendar with the schedules' windows and freezes added, and what was left out."""
    exception = calendar.itsm.exception if calendar.itsm is not None else None
    maintenance, freezes, skipped = entries(schedules, exception, calendar.timezone.key)
    merged = calendar.model_copy(
        update={
            "maintenance": [*calendar.maintenance, *maintenance],
            "freezes": [*calendar.freezes, *freezes],
        }
    )
    return merged, skipped
