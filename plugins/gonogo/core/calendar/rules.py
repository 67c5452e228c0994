"""The calendar's rules: maintenance windows, freezes and collisions between planned changes.

Pure: plain data in, findings out. ``gonogo validate`` turns the findings into
problems located on each runbook's ``window`` (:func:`calendar_problems`);
``before_start`` applies the same rules to the run's real times
(:func:`at_trigger`); ``gonogo calendar`` and the Calendar page mark the
collisions (:func:`collisions`).

- **Outside maintenance.** A change whose window is not inside one of its
  service's maintenance windows (in its environment) is a warning, or an error
  where a window says ``outside: error``. An emergency change outside one is
  always a warning: it cannot wait for the next window.
- **In a freeze.** A standard or normal change in a freeze is an error. An
  emergency change may run in one only when the freeze names who may grant the
  exception (roles the runbook defines); at trigger time one of them must answer
  GO before any step.
- **Collisions.** Two changes in the same environment whose windows overlap
  collide when they are for the same service (an error), or for services where
  one depends on the other, directly or through others (a warning).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from gonogo.core.calendar.model import Calendar, Freeze, Maintenance, applies
from gonogo.core.calendar.times import Interval, covered, merge, overlapping_pairs, span_text
from gonogo.core.runbook.model import Runbook
from gonogo.core.runbook.source import Source, did_you_mean
from gonogo.errors import Problem, Severity

Kind = Literal["outside_maintenance", "in_freeze", "collision"]
#: How far ahead the hint for a change outside its maintenance windows looks.
LOOK_AHEAD = timedelta(days=35)


@dataclass(frozen=True)
class Change:
    """A planned change as the calendar sees it: one runbook and its window."""

    runbook: str
    title: str
    service: str
    environment: str
    type: str
    change_id: str
    window: Interval
    roles: frozenset[str] = frozenset()
    file: str = ""

    @classmethod
    def of(cls, runbook: Runbook, file: str = "") -> Change | None:
        """The runbook's change, or None when it has no window to plan against."""
        if runbook.window is None or runbook.window.end <= runbook.window.start:
            return None
        return cls(
            runbook=runbook.runbook,
            title=runbook.title,
            service=runbook.service,
            environment=runbook.environment,
            type=runbook.change.type,
            change_id=runbook.change.id,
            window=Interval(runbook.window.start, runbook.window.end),
            roles=frozenset(runbook.roles),
            file=file,
        )


@dataclass(frozen=True)
class Finding:
    """What one rule found about one change."""

    kind: Kind
    severity: Severity
    message: str
    freeze: str | None = None
    other: str | None = None


# -- maintenance windows -------------------------------------------------------------------------


def maintenance_of(calendar: Calendar, service: str, environment: str) -> list[Maintenance]:
    return [m for m in calendar.maintenance if applies(m, service, environment)]


def maintenance_in(
    calendar: Calendar, entries: Iterable[Maintenance], period: Interval
) -> list[Interval]:
    """The union of the occurrences of ``entries`` that overlap ``period``."""
    return merge(i for m in entries for i in calendar.weekly(m).expand(period))


def _outside(calendar: Calendar, change: Change, when: Interval) -> Finding | None:
    entries = maintenance_of(calendar, change.service, change.environment)
    if not entries:
        return None
    union = maintenance_in(calendar, entries, when)
    if covered(when, union):
        return None
    strict = change.type != "emergency" and any(m.outside == "error" for m in entries)
    zone = calendar.timezone
    windows = "; ".join(f"{m.id}: {calendar.weekly(m).describe()}" for m in entries)
    message = (
        f"{span_text(when, zone)} is outside the maintenance windows of {change.service} in "
        f"{change.environment} ({windows})"
    )
    fits = _next_fit(calendar, entries, when)
    if fits is not None:
        message += f"; the next one it fits in is {span_text(fits, zone)}"
    if change.type == "emergency":
        message += "; an emergency change may run outside them"
    return Finding("outside_maintenance", "error" if strict else "warning", message)


def _next_fit(
    calendar: Calendar, entries: Sequence[Maintenance], when: Interval
) -> Interval | None:
    length = when.end - when.start
    ahead = maintenance_in(calendar, entries, Interval(when.start, when.start + LOOK_AHEAD))
    return next((p for p in ahead if p.start >= when.start and p.end - p.start >= length), None)


# -- freezes -------------------------------------------------------------------------------------


def freezes_over(calendar: Calendar, change: Change, when: Interval) -> list[Freeze]:
    """The freezes for the change's service and environment that ``when`` falls in, in order."""
    found = [
        f
        for f in calendar.freezes
        if applies(f, change.service, change.environment) and calendar.span(f).overlaps(when)
    ]
    return sorted(found, key=lambda f: calendar.span(f))


def _freeze_text(calendar: Calendar, freeze: Freeze) -> str:
    name = freeze.title or freeze.id
    return f"the freeze {name!r} ({span_text(calendar.span(freeze), calendar.timezone)}: {freeze.reason})"


def _in_freeze(calendar: Calendar, change: Change, freeze: Freeze, when: Interval) -> Finding:
    about = f"{span_text(when, calendar.timezone)} falls in {_freeze_text(calendar, freeze)}"
    if change.type != "emergency":
        grant = (
            f"; only an emergency change may run in it, with an exception granted by "
            f"{' or '.join(freeze.exception.roles)}"
            if freeze.exception is not None
            else "; no change may run in it"
        )
        return Finding("in_freeze", "error", about + grant, freeze=freeze.id)
    if freeze.exception is None:
        return Finding(
            "in_freeze",
            "error",
            about + "; it names nobody who may grant an exception, so not even an emergency "
            "change may run in it",
            freeze=freeze.id,
        )
    missing = [r for r in freeze.exception.roles if r not in change.roles]
    if len(missing) == len(freeze.exception.roles):
        hint = did_you_mean(missing[0], change.roles)
        return Finding(
            "in_freeze",
            "error",
            about + f"; the exception is granted by {' or '.join(missing)}, a role this runbook "
            f"does not define{hint}",
            freeze=freeze.id,
        )
    granted = [r for r in freeze.exception.roles if r in change.roles]
    return Finding(
        "in_freeze",
        "warning",
        about + f"; an emergency change: when it is started, {' or '.join(granted)} must grant "
        "the exception (GO) before any step runs",
        freeze=freeze.id,
    )


def window_findings(
    calendar: Calendar, change: Change, when: Interval | None = None
) -> list[Finding]:
    """Maintenance and freeze findings for the change over ``when`` (default: its window)."""
    span = when or change.window
    found = []
    outside = _outside(calendar, change, span)
    if outside is not None:
        found.append(outside)
    found += [_in_freeze(calendar, change, f, span) for f in freezes_over(calendar, change, span)]
    return found


# -- collisions ----------------------------------------------------------------------------------


def depends_closure(depends: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Each service and every service it depends on, directly or through others."""
    closure: dict[str, frozenset[str]] = {}
    for service in depends:
        seen: set[str] = set()
        stack = list(depends.get(service, ()))
        while stack:
            needed = stack.pop()
            if needed in seen:
                continue
            seen.add(needed)
            stack.extend(depends.get(needed, ()))
        closure[service] = frozenset(seen - {service})
    return closure


def related(closure: Mapping[str, frozenset[str]], a: str, b: str) -> bool:
    """Whether a change to one of two services touches the other: the same, or one depends on the other."""
    return a == b or b in closure.get(a, frozenset()) or a in closure.get(b, frozenset())


@dataclass(frozen=True)
class Collision:
    """Two planned changes that overlap in time on related services in one environment."""

    first: Change
    second: Change
    shared: Interval
    same_service: bool

    @property
    def severity(self) -> Severity:
        return "error" if self.same_service else "warning"


def collisions(calendar: Calendar, changes: Sequence[Change]) -> list[Collision]:
    """Every pair of changes that collide, in the order of the list."""
    closure = depends_closure(calendar.depends)
    found = []
    for i, j in overlapping_pairs([c.window for c in changes]):
        a, b = changes[i], changes[j]
        if a.environment != b.environment or not related(closure, a.service, b.service):
            continue
        found.append(Collision(a, b, a.window.shared(b.window), a.service == b.service))
    return found


def _collision_text(
    calendar: Calendar, mine: Change, other: Change, hit: Collision, where: str
) -> str:
    closure = depends_closure(calendar.depends)
    if hit.same_service:
        how = f"on {mine.service}"
    elif other.service in closure.get(mine.service, frozenset()):
        how = f"on {other.service}, which {mine.service} depends on"
    else:
        how = f"on {other.service}, which depends on {mine.service}"
    return (
        f"the window overlaps the change {other.runbook!r} ({where}) {how} in {mine.environment}: "
        f"both planned for {span_text(hit.shared, calendar.timezone)}"
    )


# -- validate ------------------------------------------------------------------------------------


@dataclass
class Planned:
    """A valid runbook and where its values were written, for problems located on its window."""

    runbook: Runbook
    source: Source
    change: Change | None = field(init=False)

    def __post_init__(self) -> None:
        self.change = Change.of(self.runbook, self.source.file)


def calendar_problems(
    calendar: Calendar, planned: Sequence[Planned], now: datetime
) -> list[Problem]:
    """Every calendar finding about these runbooks, located on each one's ``window``.

    A window that has ended is history: nothing will run in it, so it is not checked.
    """
    current = [p for p in planned if p.change is not None and p.change.window.end > now]
    problems: list[Problem] = []
    for item in current:
        assert item.change is not None
        for finding in window_findings(calendar, item.change):
            problems.append(_located(item, f"window: {finding.message}", finding.severity))
    changes = [p.change for p in current if p.change is not None]
    by_change = {id(p.change): p for p in current}
    for hit in collisions(calendar, changes):
        one, two = by_change[id(hit.first)], by_change[id(hit.second)]
        for mine, other in ((one, two), (two, one)):
            assert mine.change is not None and other.change is not None
            line, column = other.source.position(("window",), key=True)
            where = f"{other.source.file}:{line}:{column}"
            text = _collision_text(calendar, mine.change, other.change, hit, where)
            problems.append(_located(mine, f"window: {text}", hit.severity))
    return problems


def _located(item: Planned, message: str, severity: Severity) -> Problem:
    found = item.source.problem(("window",), "", key=True)
    return Problem(found.file, found.line, found.column, "", message, severity)


# -- at trigger time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the calendar says about a run about to start.

    ``refusal``: why it may not start. ``grant``: for an emergency change in a
    freeze, the runbook roles one of whose members must grant the exception, and
    ``freeze`` says which freeze. ``warnings``: what is logged and recorded.
    """

    refusal: str | None = None
    grant: tuple[str, ...] = ()
    freeze: str | None = None
    timeout: timedelta | None = None
    warnings: tuple[str, ...] = ()


def at_trigger(calendar: Calendar, change: Change, when: Interval) -> Verdict:
    """The calendar's rules over the run's real times: ``when`` is from T to the planned finish."""
    findings = window_findings(calendar, change, when)
    warnings = tuple(
        f.message for f in findings if f.severity == "warning" and f.kind != "in_freeze"
    )
    outside = [f for f in findings if f.kind == "outside_maintenance" and f.severity == "error"]
    if outside:
        return Verdict(refusal=f"the calendar: {outside[0].message}", warnings=warnings)
    frozen = freezes_over(calendar, change, when)
    if not frozen:
        return Verdict(warnings=warnings)
    texts = "; ".join(_freeze_text(calendar, f) for f in frozen)
    if change.type != "emergency":
        return Verdict(
            refusal=f"the calendar: {span_text(when, calendar.timezone)} falls in {texts}; only "
            "an emergency change may run in a freeze, with an exception",
            warnings=warnings,
        )
    grants = [set(f.exception.roles) if f.exception else set() for f in frozen]
    roles = sorted(set.intersection(*grants) & change.roles)
    if not roles:
        return Verdict(
            refusal=f"the calendar: {span_text(when, calendar.timezone)} falls in {texts}; "
            "nobody this runbook names may grant the exception (the freeze's exception.roles "
            "must be roles of the runbook)",
            warnings=warnings,
        )
    timeouts = [f.exception.timeout for f in frozen if f.exception and f.exception.timeout]
    return Verdict(
        grant=tuple(roles),
        freeze=", ".join(f.title or f.id for f in frozen),
        timeout=min(timeouts) if timeouts else None,
        warnings=(
            *warnings,
            f"an emergency change in {texts}: needs an exception from {' or '.join(roles)}",
        ),
    )
