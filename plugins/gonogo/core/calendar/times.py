"""Intervals of time, weekly windows in a local time zone, and which intervals overlap.

Pure. Every interval is held in UTC: Python compares two datetimes that share a
``tzinfo`` by their wall-clock fields and ignores ``fold``, so two local times an
hour apart on the night the clocks go back would compare equal. Converting once,
when a local time is read, keeps every comparison after it exact.

A weekly window (every Tuesday 20:00-02:00 Europe/Oslo) keeps its local times
across a daylight-saving change, so on those nights it is an hour longer or
shorter in real time. A local time the clocks skip (02:30 on the night they go
forward) is read with the offset before the gap, as RFC 5545 does: it falls an
hour later on the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, order=True)
class Interval:
    """From ``start`` up to, not including, ``end``; both in UTC. ``start == end`` is an instant."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("an interval needs aware datetimes")
        if self.end < self.start:
            raise ValueError(f"an interval cannot end ({self.end}) before it starts ({self.start})")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def instant(self) -> bool:
        return self.start == self.end

    def overlaps(self, other: Interval) -> bool:
        """Whether the two share a moment; an instant shares its own moment with what holds it."""
        if self.instant and other.instant:
            return self.start == other.start
        if self.instant:
            return other.start <= self.start < other.end
        if other.instant:
            return self.start <= other.start < self.end
        return self.start < other.end and other.start < self.end

    def within(self, other: Interval) -> bool:
        """Whether every moment of this interval is in ``other``."""
        if self.instant:
            return other.start <= self.start < other.end or self.start == other.start
        return other.start <= self.start and self.end <= other.end

    def shared(self, other: Interval) -> Interval:
        """The part both cover (call only when they overlap)."""
        return Interval(max(self.start, other.start), min(self.end, other.end))


def local_moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``at`` on ``day`` in ``zone``, in UTC.

    The first of two repeated local times (the clocks go back) is the one meant;
    a skipped local time (the clocks go forward) is read with the offset before
    the gap, as RFC 5545 reads DTSTART.
    """
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Weekly:
    """A window that recurs on the same weekdays at the same local times.

    ``weekdays`` are 0 (Monday) to 6 (Sunday): the days the window *starts*. An
    ``end`` at or before ``start`` is on the next day (20:00-02:00).
    """

    weekdays: frozenset[int]
    start: time
    end: time
    zone: ZoneInfo

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def on(self, day: date) -> Interval:
        """The window that starts on ``day`` (whatever weekday it is)."""
        last = day + timedelta(days=1) if self.overnight else day
        return Interval(
            local_moment(day, self.start, self.zone), local_moment(last, self.end, self.zone)
        )

    def expand(self, period: Interval) -> list[Interval]:
        """Every occurrence that overlaps ``period``, in order."""
        first = period.start.astimezone(self.zone).date() - timedelta(days=1)
        last = period.end.astimezone(self.zone).date()
        found = []
        day = first
        while day <= last:
            if day.weekday() in self.weekdays:
                occurrence = self.on(day)
                if occurrence.overlaps(period):
                    found.append(occurrence)
            day += timedelta(days=1)
        return found

    def describe(self) -> str:
        """``Tuesday 20:00-02:00 Europe/Oslo``; every day reads ``every day``."""
        days = (
            "every day"
            if len(self.weekdays) == 7
            else ", ".join(WEEKDAYS[d].capitalize() for d in sorted(self.weekdays))
        )
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals`` as sorted intervals that neither overlap nor touch.

    Instants cover no time, so they are left out.
    """
    merged: list[Interval] = []
    for item in sorted(i for i in intervals if not i.instant):
        if merged and item.start <= merged[-1].end:
            if item.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, item.end)
        else:
            merged.append(item)
    return merged


def covered(interval: Interval, union: Sequence[Interval]) -> bool:
    """Whether ``interval`` lies inside one piece of ``union`` (a :func:`merge` result)."""
    return any(interval.within(piece) for piece in union)


def overlapping_pairs(intervals: Sequence[Interval]) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of indexes whose intervals overlap.

    A sweep over the intervals in start order, so it costs the number of pairs
    found plus a sort, not every pair; a property test compares it with checking
    every pair.
    """
    order = sorted(range(len(intervals)), key=lambda i: (intervals[i].start, intervals[i].end))
    active: list[int] = []
    pairs: list[tuple[int, int]] = []
    for index in order:
        current = intervals[index]
        # Those that ended before this one starts can overlap nothing later either,
        # except an instant at exactly this start, which overlaps what starts there.
        active = [
            a for a in active if intervals[a].end > current.start or _meets(intervals[a], current)
        ]
        for other in active:
            if intervals[other].overlaps(current):
                pairs.append((min(index, other), max(index, other)))
        active.append(index)
    return sorted(pairs)


def _meets(earlier: Interval, later: Interval) -> bool:
    """Whether an interval that ends where ``later`` starts can still overlap what comes after."""
    return earlier.instant and earlier.start == later.start


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Oslo``, ``UTC``); ValueError when there is none."""
    from zoneinfo import ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name like Europe/Oslo"
        ) from None


def clock_text(moment: datetime, zone: ZoneInfo) -> str:
    """``2026-12-05 22:00`` in ``zone``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def span_text(interval: Interval, zone: ZoneInfo) -> str:
    """``2026-12-05 22:00 to 2026-12-06 01:00 Europe/Oslo``."""
    if interval.instant:
        return f"{clock_text(interval.start, zone)} {zone.key}"
    return f"{clock_text(interval.start, zone)} to {clock_text(interval.end, zone)} {zone.key}"
