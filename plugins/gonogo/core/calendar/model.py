"""The calendar file: maintenance windows, freezes and which services depend on which.

One file for the installation, ``calendar.yaml`` at the top of the runbooks
folder (or the file ``GONOGO_CALENDAR`` names), read with gonogo's own YAML
reader so every problem is located like a runbook's::

    timezone: Europe/Oslo                 # for the entries that name none
    maintenance:
      - id: ehr-weekly
        services: [ehr]
        environments: [prod]              # default: every environment
        every: [tuesday]                  # weekdays the window starts on, or: day
        start: "20:00"                    # quoted: YAML reads 20:00 as a number
        end: "02:00"                      # at or before start: the next morning
        outside: error                    # a change outside is an error (default: warning)
    freezes:
      - id: christmas
        start: 2026-12-18                 # a date: from the start of that day
        end: 2027-01-03                   # a date: to the end of that day
        reason: Reduced staffing over Christmas and New Year
        services: all                     # or a list
        environments: [prod]
        exception: {roles: [release_manager], timeout: 2h}
    depends:
      ehr: [ehr-db, integration-engine]   # ehr depends on these
    itsm:                                 # also ServiceNow's schedules, read inside Airflow
      connection: servicenow
      exception: {roles: [release_manager]}

Pure: no Airflow import.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from gonogo.core.calendar.fields import LocalTime, TimeZone, Weekdays
from gonogo.core.calendar.times import WEEKDAYS, Interval, Weekly, local_moment
from gonogo.core.runbook.model import ID_PATTERN
from gonogo.core.runbook.source import Loc, Source, parse_yaml, validation_problems
from gonogo.core.timing.clock import Duration
from gonogo.errors import CalendarError, Problem, RunbookError

_NAME = r"^[A-Za-z0-9_.-]+$"


def _moment(value: Any) -> date | datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "expected a date (2026-12-18) or a time with its offset "
                f"(2026-12-18T08:00:00+01:00), got {value!r}"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{value.isoformat()} needs its offset (…+01:00), or write the date alone"
            )
        return value
    if isinstance(value, date):
        return value
    raise ValueError(f"expected a date or a time with its offset, got {value!r}")


Moment = Annotated[
    date | datetime,
    PlainValidator(_moment),
    WithJsonSchema({"type": "string", "description": "A date, or a time with its offset"}),
]
Name = Annotated[str, Field(min_length=1, pattern=_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Maintenance(_Model):
    """A recurring window in which changes to its services are planned."""

    id: str = Field(pattern=ID_PATTERN)
    title: str | None = None
    services: list[Name] = Field(min_length=1)
    environments: list[Name] | None = Field(
        default=None, description="The environments it is for; without it, every one"
    )
    every: Weekdays
    start: LocalTime
    end: LocalTime
    timezone: TimeZone | None = None
    outside: Literal["warning", "error"] = Field(
        default="warning",
        description="What a standard or normal change planned outside it is (an emergency "
        "change outside it is always a warning)",
    )


class Grant(_Model):
    """Who may let an emergency change run in a freeze: one member of these runbook roles."""

    roles: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    timeout: Duration | None = Field(
        default=None, description="No answer within this time means the run does not start"
    )


class Freeze(_Model):
    """A period in which no change starts, unless an emergency change is granted an exception."""

    id: str = Field(pattern=ID_PATTERN)
    title: str | None = None
    start: Moment
    end: Moment
    reason: str = Field(min_length=1)
    services: list[Name] | Literal["all"] = "all"
    environments: list[Name] | None = None
    exception: Grant | None = Field(
        default=None, description="Who may grant an emergency change an exception"
    )


class Schedules(_Model):
    """Maintenance windows and freezes read from the ITSM's schedules too (inside Airflow)."""

    connection: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The Airflow connection of the ITSM (base URL, login, password)",
    )
    kind: Literal["servicenow"] = "servicenow"
    exception: Grant | None = Field(
        default=None, description="Who may grant an exception to the ITSM's blackouts"
    )


class Calendar(_Model):
    """The installation's change calendar."""

    timezone: TimeZone = Field(default=ZoneInfo("UTC"))
    itsm: Schedules | None = Field(
        default=None, description="Also read the ITSM's maintenance and blackout schedules"
    )
    maintenance: list[Maintenance] = Field(default_factory=list)
    freezes: list[Freeze] = Field(default_factory=list)
    depends: dict[Name, list[Name]] = Field(
        default_factory=dict, description="Each service and the services it depends on"
    )

    def zone_of(self, entry: Maintenance) -> ZoneInfo:
        return entry.timezone or self.timezone

    def weekly(self, entry: Maintenance) -> Weekly:
        days = frozenset(WEEKDAYS.index(d) for d in entry.every)
        return Weekly(days, entry.start, entry.end, self.zone_of(entry))

    def span(self, freeze: Freeze) -> Interval:
        """The freeze in UTC: a date starts at the start of its day and ends at the end of it."""
        return Interval(self._at(freeze.start, False), self._at(freeze.end, True))

    def _at(self, value: date | datetime, end: bool) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        day = value + timedelta(days=1) if end else value
        return local_moment(day, time(0, 0), self.timezone)


def applies(entry: Maintenance | Freeze, service: str, environment: str) -> bool:
    """Whether a maintenance window or freeze covers ``service`` in ``environment``."""
    if entry.environments is not None and environment not in entry.environments:
        return False
    return entry.services == "all" or service in entry.services


# -- reading the file --------------------------------------------------------------------------


def load_calendar(path: str | os.PathLike[str]) -> Calendar:
    """Read and check the calendar file; raises :class:`CalendarError` with every problem."""
    from gonogo.core.runbook.loader import read_bytes

    shown = str(path)
    try:
        raw = read_bytes(path)
    except RunbookError as exc:
        raise CalendarError(exc.problems) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CalendarError(
            [Problem(shown, 1, 1, "", f"the file is not UTF-8 ({exc.reason})")]
        ) from None
    return load_calendar_text(text, shown)


def load_calendar_text(text: str, file: str = "<calendar>") -> Calendar:
    """The calendar in ``text``; raises :class:`CalendarError` with every problem, located."""
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        return Calendar()  # nothing planned yet (the YAML reader refuses an empty document)
    try:
        source = parse_yaml(text, file)
    except RunbookError as exc:
        raise CalendarError(exc.problems) from None
    if not isinstance(source.data, dict):
        raise CalendarError(
            [source.problem((), "expected a mapping with maintenance, freezes and depends")]
        )
    try:
        calendar = Calendar.model_validate(source.data)
    except ValidationError as exc:
        raise CalendarError(validation_problems(source, exc, _fields_at)) from None
    problems = _checks(calendar, source)
    if problems:
        raise CalendarError(problems)
    return calendar


def _checks(calendar: Calendar, source: Source) -> list[Problem]:
    problems = []
    seen: dict[str, Loc] = {}
    ids: list[tuple[Loc, str]] = [
        (("maintenance", i, "id"), m.id) for i, m in enumerate(calendar.maintenance)
    ]
    ids += [(("freezes", i, "id"), f.id) for i, f in enumerate(calendar.freezes)]
    for loc, ident in ids:
        if ident in seen:
            line, _ = source.position(seen[ident])
            problems.append(source.problem(loc, f"id {ident!r} is already used on line {line}"))
        seen.setdefault(ident, loc)
    for i, freeze in enumerate(calendar.freezes):
        try:
            span: Interval | None = calendar.span(freeze)
        except ValueError:  # it ends before it starts
            span = None
        if span is None or span.end <= span.start:
            problems.append(
                source.problem(("freezes", i, "end"), "the freeze must end after it starts")
            )
    for i, entry in enumerate(calendar.maintenance):
        if entry.start == entry.end:
            problems.append(
                source.problem(
                    ("maintenance", i, "end"),
                    "the window must not end when it starts; for a whole day write start "
                    '"00:00" and end "23:59", or use a freeze',
                )
            )
    for service, needs in calendar.depends.items():
        for j, needed in enumerate(needs):
            if needed == service:
                problems.append(
                    source.problem(("depends", service, j), "a service cannot depend on itself")
                )
    return problems


def _fields_at(loc: Loc) -> list[str]:
    """The keys the calendar format allows at ``loc``, for "did you mean" hints."""
    current: Any = Calendar
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        current = _model_in(fields[part].annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The model class inside an annotation such as ``list[Freeze]`` or ``Grant | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
