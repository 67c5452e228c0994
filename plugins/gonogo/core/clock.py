"""Times written relative to the planned start T: ``T``, ``T-30m``, ``T+1h30m``.

A gate says when it opens (``opens: T-30m``) and by when it must be decided
(``decide_by: T-5m``, or a duration counted from when it opens, like
``timeout``). T is known only when a run starts (the window start, or a trigger
param inside the window), so the model keeps the offset and the run adds T.
Pure: no import of the model, so the model can use these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_CLOCK = re.compile(r"^T\s*(?:(?P<sign>[+-])\s*(?P<amount>\S+))?$")
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
CLOCK_PATTERN = r"^T([+-](?=\d)(\d+h)?(\d+m)?(\d+s)?)?$"
DECIDE_BY_PATTERN = r"^(T([+-](?=\d)(\d+h)?(\d+m)?(\d+s)?)?|(?=\d)(\d+h)?(\d+m)?(\d+s)?)$"


@dataclass(frozen=True, order=True)
class At:
    """A moment relative to the planned start T: ``At(timedelta(minutes=-30))`` is ``T-30m``."""

    offset: timedelta

    def __str__(self) -> str:
        return format_clock(self.offset)


def _duration(text: str) -> timedelta | None:
    match = _DURATION.match(text)
    if not match or not any(match.groupdict().values()):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0))


def format_offset(value: timedelta) -> str:
    """``timedelta(minutes=90)`` is ``1h30m``; zero is ``0s``. The sign is left to the caller."""
    total = int(abs(value).total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")


def format_clock(offset: timedelta) -> str:
    """The inverse of :func:`parse_clock`: ``timedelta(minutes=-30)`` is ``T-30m``."""
    if not offset:
        return "T"
    return f"T{'-' if offset < timedelta(0) else '+'}{format_offset(offset)}"


def parse_clock(value: Any) -> At:
    """``T``, ``T-30m`` and ``T+1h30m`` become :class:`At`; anything else is refused."""
    if isinstance(value, At):
        return value
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match:
            if match.group("sign") is None:
                return At(timedelta(0))
            amount = _duration(match.group("amount"))
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
        found = _duration(value.strip())
        if found:
            return found
    raise ValueError(
        "expected a time relative to the planned start (T-5m) or a duration from when "
        f"the gate opens (30m), got {value!r}"
    )


def _serialize_decide_by(value: At | timedelta) -> str:
    return str(value) if isinstance(value, At) else format_offset(value)


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
