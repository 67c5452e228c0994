"""Where each activity of a runbook falls in time: the time plan's offsets, by activity id.

One arithmetic for every view: the kjøreplan, the report, the board and the
rollback's planned durations read these slots, and ``gonogo plan``, the forecast
and the rehearsal read :func:`gonogo.core.timeplan.time_plan` itself, so a gate's
``opens`` time or ``planned`` meeting moves the same activities in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gonogo.core.model import Runbook
from gonogo.core.timeplan import time_plan


@dataclass(frozen=True)
class Slot:
    """Where an item of the runbook falls in time, counted from the planned start T."""

    item_id: str
    offset: timedelta
    duration: timedelta


def schedule(runbook: Runbook) -> dict[str, Slot]:
    """Planned start offset and duration of every step and gate (see :func:`time_plan`).

    An offset is negative for work planned before T (the preparation before a
    gate that opens before the start). Steps without a planned duration take zero.
    """
    return {a.id: Slot(a.id, a.start, a.duration) for a in time_plan(runbook).activities}
