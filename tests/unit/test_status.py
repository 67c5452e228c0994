"""The green / yellow / red rule of the status board, as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gonogo.core.runs.status import GREEN, RED, YELLOW, rollout_status

END = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "colour"),
    [
        ({}, GREEN),
        ({"late": timedelta(minutes=3)}, GREEN),  # inside the tolerance
        ({"late": -timedelta(minutes=30)}, GREEN),  # ahead of plan
        ({"forecast_finish": END - timedelta(minutes=1), "window_end": END}, GREEN),
        ({"late": timedelta(minutes=20), "forecast_finish": END, "window_end": END}, YELLOW),
        ({"waiting_past_plan": ["go_nogo_2"]}, YELLOW),
        ({"failed": True}, RED),
        ({"rolling_back": True}, RED),
        ({"nogo": True}, RED),
        ({"forecast_finish": END + timedelta(minutes=1), "window_end": END}, RED),
        ({"failed": True, "late": timedelta(hours=1)}, RED),  # red wins over yellow
        ({"forecast_finish": END + timedelta(hours=1)}, GREEN),  # no window: nothing to miss
    ],
)
def test_the_colour_follows_the_rule(given: dict[str, Any], colour: str) -> None:
    assert rollout_status(**given).colour == colour


def test_the_reasons_say_why() -> None:
    found = rollout_status(
        late=timedelta(minutes=75), waiting_past_plan=["go_nogo_3"], window_end=END
    )
    assert found.reasons == (
        "behind plan by 1h15m",
        "gate go_nogo_3 waiting past its planned time",
    )
    red = rollout_status(nogo=True, rolling_back=True)
    assert red.reasons == ("a gate said NOGO", "rollback")


def test_a_run_refused_before_start_is_red_with_the_refusals_own_words() -> None:
    words = "file scripts/x.sh changed since the approved version; ask the CAB"
    found = rollout_status(refused=words)
    assert found.colour == RED and found.reasons[0] == words


def test_the_rollback_plan_carries_the_refusals_own_words() -> None:
    from gonogo.core import naming
    from gonogo.core.runs.rollback import reasons_for

    said = {naming.PREFLIGHT_TASK: "role hospital has nobody left to answer"}
    assert reasons_for([naming.PREFLIGHT_TASK], said) == [
        "refused before start: role hospital has nobody left to answer"
    ]
    assert reasons_for([naming.BEGIN_TASK]) == ["the change record refused the run"]
