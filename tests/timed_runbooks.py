"""Runbooks that exercise planned time, generated from a random source the caller gives.

A window or none, gates that open before or after T, planned gate meetings,
steps in parallel (``depends_on``) or in a chain, with and without planned
durations. The tests that compare every view of a plan (tests/dag/test_one_time_plan.py)
draw the source from hypothesis; the serialized-DAG stability test
(tests/dag/test_stable_parse.py) from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import yaml

from gonogo.core.timing.clock import format_clock

#: Some window starts: on the hour and off it, in two UTC offsets.
WINDOW_STARTS = (
    datetime.fromisoformat("2027-01-12T22:00:00+01:00"),
    datetime.fromisoformat("2027-03-28T01:37:00+01:00"),
    datetime.fromisoformat("2026-12-05T07:05:00+00:00"),
)


def _steps(rng: random.Random, phase: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for number in range(rng.randint(1, 4)):
        step: dict[str, Any] = {"id": f"p{phase}_s{number}", "bash": "echo step"}
        if rng.random() < 0.8:
            step["planned"] = f"{rng.randint(1, 30)}m"
        earlier = [s["id"] for s in steps]
        if earlier and rng.random() < 0.5:
            step["depends_on"] = rng.sample(earlier, rng.randint(0, len(earlier)))
        if rng.random() < 0.5:
            step["rollback"] = {"bash": "echo undo"}
        steps.append(step)
    return steps


def timed_runbook(rng: random.Random, name: str = "timed") -> str:
    """The YAML text of a valid runbook whose times depend only on ``rng``."""
    phases: list[dict[str, Any]] = []
    opens = sorted(rng.randint(-60, 60) for _ in range(rng.randint(1, 3)))
    count = rng.randint(2, 4)
    for phase in range(count):
        phases.append({"id": f"p{phase}", "steps": _steps(rng, phase)})
        if phase < count - 1 and rng.random() < 0.7:
            gate: dict[str, Any] = {"gate": f"g{phase}", "sign_off": ["release_manager"]}
            if opens and rng.random() < 0.8:
                gate["opens"] = format_clock(timedelta(minutes=opens.pop(0)))
            if rng.random() < 0.5:
                gate["planned"] = f"{rng.randint(1, 30)}m"
            phases.append(gate)
    data: dict[str, Any] = {
        "runbook": name,
        "title": f"Planned time {name}",
        "service": "svc",
        "environment": "test",
        "change": {"id": "CHG-TIME", "type": "standard"},
        "roles": {"release_manager": {"users": ["relman"]}},
        "phases": phases,
    }
    if any("gate" in item for item in phases) and rng.random() < 0.5:
        data["change"]["type"] = "normal"  # a normal change needs a gate
    if rng.random() < 0.6:
        start = rng.choice(WINDOW_STARTS)
        data["window"] = {
            "start": start.isoformat(),
            "end": (start + timedelta(hours=12)).isoformat(),
        }
    return yaml.safe_dump(data, sort_keys=False)
