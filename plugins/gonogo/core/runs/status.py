"""The status colour of a rollout: green, yellow or red, as one pure function.

Hospital go-lives report status per area in three colours (seed 003): green is
"on plan", yellow is "something is off but we will make it", red is "the change
is in trouble". gonogo applies the same rule to a run, from plain inputs, so the
board, the run view and the report agree and the rule is tested without Airflow:

- **red**: a step failed, rollback is running or ran, a gate said NOGO, or the
  forecast finish is past the window end;
- **yellow**: behind plan (but the forecast is still inside the window), or a
  gate has been waiting past its planned time;
- **green**: otherwise.

The forecast itself is computed elsewhere (the time plan); this module only
compares it with the window end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gonogo.core.timing.clock import format_minutes

GREEN, YELLOW, RED = "green", "yellow", "red"
COLOURS = (GREEN, YELLOW, RED)

#: How late an activity may run before the rollout counts as behind plan. A few
#: minutes either way is normal; only a real slip should turn the board yellow.
ON_PLAN_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Status:
    """A colour and the reasons for it, worst first, so a reader sees why."""

    colour: str
    reasons: tuple[str, ...] = field(default_factory=tuple)


def rollout_status(
    *,
    failed: bool = False,
    rolling_back: bool = False,
    nogo: bool = False,
    refused: str | None = None,
    late: timedelta | None = None,
    waiting_past_plan: Sequence[str] = (),
    forecast_finish: datetime | None = None,
    window_end: datetime | None = None,
    tolerance: timedelta = ON_PLAN_TOLERANCE,
) -> Status:
    """The rollout's colour.

    Args:
        failed: a forward step failed.
        rolling_back: rollback has started (or ran).
        nogo: a gate ended in NOGO (an answer or a timeout).
        refused: why the run was refused before any step, in the refusal's own words.
        late: how far the run is behind its plan (negative or None: on or ahead of plan).
        waiting_past_plan: gates whose request is open past the gate's planned time.
        forecast_finish: when the run is expected to finish, if known.
        window_end: the end of the approved change window, if any.
        tolerance: lateness up to this counts as on plan.
    """
    red: list[str] = [refused] if refused else []
    if failed:
        red.append("a step failed")
    if nogo:
        red.append("a gate said NOGO")
    if rolling_back:
        red.append("rollback")
    past_window = (
        forecast_finish is not None and window_end is not None and forecast_finish > window_end
    )
    if past_window:
        red.append("forecast finish is past the window end")
    if red:
        return Status(RED, tuple(red))
    yellow: list[str] = []
    if late is not None and late > tolerance:
        yellow.append(f"behind plan by {format_minutes(late)}")
    yellow += [f"gate {gate} waiting past its planned time" for gate in waiting_past_plan]
    if yellow:
        return Status(YELLOW, tuple(yellow))
    return Status(GREEN, ("on plan",))
