"""Durations and times relative to the planned start T: the one place they are read and written.

A runbook writes a duration as ``90s``, ``30m``, ``2h``, ``1h30m`` or ``14d``,
and a moment as an offset from the planned start T: ``T``, ``T-30m``,
``T+1h35m``. A gate says when it opens (``opens: T-30m``) and by when it must
be decided (``decide_by: T-5m``, or a duration counted from when it opens, like
``timeout``). T is known only when a run starts, so the model keeps the offset
and the run adds T (:func:`gonogo.core.timing.timeplan.planned_start`).

Every output (the outline, the kjøreplan, the rehearsal, the board, the report,
messages and logs) writes durations and offsets with the functions here, in the
runbook's own spelling, so what a reader sees can be pasted back into a runbook.
Pure: no import of the model, so the model can use these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_AMOUNT = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_CLOCK = re.compile(r"^T\s*(?:(?P<sign>[+-])\s*(?P<amount>\S+))?$")
_AMOUNT_PATTERN = r"(\d+d)?(\d+h)?(\d+m)?(\d+s)?"
DURATION_PATTERN = rf"^(?=\d){_AMOUNT_PATTERN}$"
CLOCK_PATTERN = rf"^T([+-](?=\d){_AMOUNT_PATTERN})?$"
DECIDE_BY_PATTERN = rf"^(T([+-](?=\d){_AMOUNT_PATTERN})?|(?=\d){_AMOUNT_PATTERN})$"


@dataclass(frozen=True, order=True)
class At:
    """A moment relative to the planned start T: ``At(timedelta(minutes=-30))`` is ``T-30m``."""

    offset: timedelta

    def __str__(self) -> str:
        return format_clock(self.offset)


# -- durations ----------------------------------------------------------------------------------


def _amount(text: str) -> timedelta | None:
    """``1h30m`` as a timedelta (zero allowed), or None when it is not written like that."""
    match = _AMOUNT.match(text)
    if not match or not any(match.groupdict().values()):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    try:
        return timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    except OverflowError:  # more hours than a timedelta holds
        return None


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1h30m`` and ``14d`` become timedeltas; anything else is refused."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        found = _amount(value.strip())
        if found is not None and found > timedelta(0):
            return found
    raise ValueError(f"expected a duration like 90s, 30m, 2h, 1h30m or 14d, got {value!r}")


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`: ``timedelta(minutes=90)`` is ``1h30m``, zero ``0s``.

    A negative value gets a leading ``-``; fractions of a second are dropped.
    """
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    text += f"{minutes}m" if minutes else ""
    text += f"{seconds}s" if seconds or not text else ""
    return sign + text


def format_minutes(value: timedelta) -> str:
    """A duration to the minute (``1h5m``, ``-12m``), or to the second under a minute (``40s``).

    For a lateness or a time taken, where seconds are noise once there are minutes.
    """
    if abs(value) < timedelta(minutes=1):
        return format_duration(timedelta(seconds=round(value.total_seconds())))
    return format_duration(timedelta(minutes=round(value.total_seconds() / 60)))


def in_words(delta: timedelta) -> str:
    """``timedelta(minutes=84)`` is ``1 hour 24 minutes``: how a person says a wait, in a message."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [
        f"{n} {unit}{'s' if n != 1 else ''}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts[:2])


# -- relative to T ------------------------------------------------------------------------------


def format_clock(offset: timedelta) -> str:
    """The inverse of :func:`parse_clock`: ``timedelta(minutes=-30)`` is ``T-30m``, zero ``T``."""
    if not offset:
        return "T"
    return f"T{'-' if offset < timedelta(0) else '+'}{format_duration(abs(offset))}"


def parse_clock(value: Any) -> At:
    """``T``, ``T-30m`` and ``T+1h30m`` become :class:`At`; anything else is refused."""
    if isinstance(value, At):
        return value
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match:
            if match.group("sign") is None:
                return At(timedelta(0))
            amount = _amount(match.group("amount"))
            if amount is not None:
                return At(-amount if match.group("sign") == "-" else amount)
    raise ValueError(
        f"expected a time relative to the planned start, like T-30m or T+1h, got {value!r}"
    )


def parse_decide_by(value: Any) -> At | timedelta:
    """A clock time (``T-5m``) or a duration from when the gate opens (``30m``)."""
    if isinstance(value, At | timedelta):
        return value
    if isinstance(value, str) and value.strip().startswith("T"):
        return parse_clock(value)
    if isinstance(value, str):
        found = _amount(value.strip())
        if found:
            return found
    raise ValueError(
        "expected a time relative to the planned start (T-5m) or a duration from when "
        f"the gate opens (30m), got {value!r}"
    )


def _serialize_decide_by(value: At | timedelta) -> str:
    return str(value) if isinstance(value, At) else format_duration(value)


Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 90s, 30m, 2h, 1h30m or 14d",
        }
    ),
]

Clock = Annotated[
    At,
    PlainValidator(parse_clock),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CLOCK_PATTERN,
            "description": "A time relative to the planned start T, such as T-30m, T or T+1h",
        }
    ),
]

DecideBy = Annotated[
    At | timedelta,
    PlainValidator(parse_decide_by),
    PlainSerializer(_serialize_decide_by, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DECIDE_BY_PATTERN,
            "description": "A time relative to the planned start (T-5m), or a duration "
            "from when the gate opens (30m)",
        }
    ),
]
