"""Field types for local clock times, weekdays and time zones, read as a person writes them.

Shared by the calendar file and the runbook (its ``early_life:`` section), so
"20:00", ``[tuesday, thursday]`` and ``Europe/Oslo`` are read, refused and
described the same way in both. Pure: no import of either model.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from gonogo.core.calendar.times import WEEKDAYS, zone_of
from gonogo.core.runbook.source import did_you_mean

_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
_CLOCK = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)$")


def _zone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not _ZONE.match(value):
        raise ValueError(f"expected an IANA time zone name like Europe/Oslo, got {value!r}")
    return zone_of(value)


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        hours, minutes = divmod(value, 60)
        raise ValueError(
            f'write the time in quotes, like "{hours:02d}:{minutes:02d}": unquoted, '
            f"YAML reads it as the number {value}"
        )
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a local time like "20:00", got {value!r}')
    return time(int(match["h"]), int(match["m"]))


def _weekdays(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected weekdays, like [tuesday, thursday], or: day")
    names: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name == "day":
            names.extend(WEEKDAYS)
        elif name in WEEKDAYS:
            names.append(name)
        else:
            raise ValueError(
                f"{item!r} is not a weekday{did_you_mean(name, [*WEEKDAYS, 'day'])}; "
                "expected monday … sunday, or day for every day"
            )
    return tuple(sorted(set(names), key=WEEKDAYS.index))


TimeZone = Annotated[
    ZoneInfo,
    PlainValidator(_zone),
    PlainSerializer(lambda zone: zone.key, return_type=str),
    WithJsonSchema({"type": "string", "description": "An IANA time zone, e.g. Europe/Oslo"}),
]
LocalTime = Annotated[
    time,
    PlainValidator(_clock),
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str),  # as written
    WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern}),
]
Weekdays = Annotated[
    tuple[str, ...],
    PlainValidator(_weekdays),
    PlainSerializer(list, return_type=list[str]),
    WithJsonSchema({"type": "array", "items": {"enum": [*WEEKDAYS, "day"]}}),
]
