"""The plan in time (issue 12): planned start T, gates on the clock, forecast, last safe moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.timed_runbooks import timed_runbook

from gonogo import RunbookError, load_text, render_outline
from gonogo.core.runbook.model import Runbook
from gonogo.core.timing.clock import (
    At,
    format_clock,
    format_minutes,
    parse_clock,
    parse_decide_by,
    parse_duration,
)
from gonogo.core.timing.timeplan import (
    Actual,
    TimePlan,
    forecast,
    forecast_lines,
    history,
    on_overrun,
    overrun,
    overrun_role,
    planned_start,
    time_plan,
)
from gonogo.errors import TimePlanError

T = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def runbook(**overrides: Any) -> Runbook:
    """A normal change: preparation, GO/NOGO 2 half an hour before T, two parallel installs."""
    data: dict[str, Any] = {
        "runbook": "clock",
        "title": "A change on the clock",
        "service": "app",
        "environment": "prod",
        "change": {"id": "CHG1", "type": "normal"},
        "window": {"start": "2026-12-05T21:00:00+00:00", "end": "2026-12-05T23:00:00+00:00"},
        "roles": {"release_manager": {"users": ["kari"]}, "hospital": {"users": ["lise"]}},
        "phases": [
            {
                "id": "prepare",
                "steps": [{"id": "smoke", "planned": "10m", "bash": "smoke", "read_only": True}],
            },
            {
                "gate": "go_nogo_2",
                "sign_off": ["release_manager", "hospital"],
                "opens": "T-30m",
                "decide_by": "T-5m",
            },
            {
                "id": "install",
                "steps": [
                    {"id": "backup", "planned": "20m", "bash": "b", "rollback": {"bash": "r"}},
                    {
                        "id": "app_a",
                        "planned": "30m",
                        "depends_on": [],
                        "bash": "a",
                        "rollback": {"bash": "ua", "planned": "10m"},
                    },
                    {
                        "id": "app_b",
                        "planned": "15m",
                        "depends_on": ["backup"],
                        "bash": "b",
                        "rollback": {"bash": "ub"},
                    },
                    {
                        "id": "verify",
                        "planned": "5m",
                        "depends_on": ["app_a", "app_b"],
                        "bash": "v",
                    },
                ],
            },
            {"gate": "go_nogo_3", "sign_off": ["hospital"], "planned": "10m"},
        ],
        "rollback": {"steps": [{"id": "tell", "bash": "tell", "planned": "5m"}]},
    }
    data.update(overrides)
    return load_text(yaml.safe_dump(data, sort_keys=False), "rb.yaml")[0]


def problems_of(**overrides: Any) -> list[str]:
    base = runbook()
    data = base.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.update(overrides)
    with pytest.raises(RunbookError) as caught:
        load_text(yaml.safe_dump(data, sort_keys=False), "rb.yaml")
    return [str(p) for p in caught.value.errors]


# -- clock -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset"),
    [("T", 0), ("T-30m", -30), ("T+1h30m", 90), ("T - 5m", -5), ("T+90s", 1.5)],
)
def test_clock_times_are_read_relative_to_t(text: str, offset: float) -> None:
    assert parse_clock(text) == At(minutes(offset))


@pytest.mark.parametrize("text", ["30m", "T-", "T-x", "S-5m", "T*5m", ""])
def test_a_clock_time_that_is_not_relative_to_t_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="relative to the planned start"):
        parse_clock(text)


def test_decide_by_is_a_clock_time_or_a_duration_from_opening() -> None:
    assert parse_decide_by("T-5m") == At(minutes(-5))
    assert parse_decide_by("20m") == minutes(20)


@given(st.integers(min_value=-4 * 86400, max_value=4 * 86400))
def test_a_clock_time_reads_back_as_written(seconds: int) -> None:
    offset = timedelta(seconds=seconds)
    assert parse_clock(format_clock(offset)).offset == offset


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(40.4, "40s"), (-40, "-40s"), (65 * 60 + 29, "1h5m"), (-12 * 60 - 31, "-13m"), (0, "0s")],
)
def test_a_lateness_is_written_to_the_minute_in_the_runbook_s_spelling(
    seconds: float, text: str
) -> None:
    assert format_minutes(timedelta(seconds=seconds)) == text
    if not text.startswith("-") and text != "0s":
        assert abs(parse_duration(text) - timedelta(seconds=seconds)) <= timedelta(seconds=30)


# -- the plan ----------------------------------------------------------------------------------


def test_a_gate_that_opens_before_t_starts_the_run_early_and_work_after_it_waits_for_t() -> None:
    plan = time_plan(runbook()).by_id()
    assert plan["smoke"].start == minutes(-30)
    assert (plan["go_nogo_2"].start, plan["go_nogo_2"].end) == (minutes(-20), minutes(-5))
    assert plan["backup"].start == timedelta(0)
    assert plan["backup"].not_before == timedelta(0)


def test_parallel_steps_follow_the_critical_path() -> None:
    plan = time_plan(runbook()).by_id()
    assert plan["app_a"].start == plan["backup"].start == timedelta(0)
    assert plan["app_b"].start == minutes(20)  # after backup
    assert plan["verify"].start == minutes(35)  # after app_b (20 + 15), not app_a (30)
    assert plan["go_nogo_3"].start == minutes(40)
    assert time_plan(runbook()).finish == minutes(50)  # go_nogo_3 planned for 10m


def test_without_clocked_gates_the_plan_starts_at_t_as_before() -> None:
    rb = runbook()
    phases = [p.model_dump(mode="json", exclude_defaults=True) for p in rb.phases]
    phases[1].pop("opens")
    phases[1].pop("decide_by")
    plan = time_plan(runbook(phases=phases))
    assert plan.begin == timedelta(0)
    assert plan.by_id()["smoke"].start == timedelta(0)
    assert plan.by_id()["backup"].start == minutes(10)


def test_the_rollback_budget_counts_every_compensation_and_the_global_steps() -> None:
    # backup 20m (its own planned), app_a 10m (the undo's planned), app_b 15m, tell 5m
    assert time_plan(runbook()).rollback_budget == minutes(50)


# -- validation --------------------------------------------------------------------------------


def gate_phases(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    phases = [p.model_dump(mode="json", exclude_defaults=True) for p in runbook().phases]
    for index, change in changes.items():
        phases[int(index.removeprefix("p"))].update(change)
    return phases


def test_a_gate_that_opens_after_a_later_gate_is_located() -> None:
    found = problems_of(phases=gate_phases(p1={"opens": "T+1h"}, p3={"opens": "T+30m"}))
    assert any(
        p.startswith("rb.yaml:")
        and "phases[1].opens" in p
        and "opens at T+1h, after the later gate 'go_nogo_3' (T+30m)" in p
        for p in found
    ), found


def test_decide_by_before_the_gate_opens_is_refused() -> None:
    found = problems_of(phases=gate_phases(p1={"decide_by": "T-40m"}))
    assert any(
        "phases[1].decide_by" in p and "not after the gate opens (T-30m)" in p for p in found
    )


def test_timeout_and_decide_by_together_are_refused() -> None:
    found = problems_of(phases=gate_phases(p1={"timeout": "10m"}))
    assert any("phases[1].decide_by" in p and "not both" in p for p in found)


def test_a_deadline_before_the_work_ahead_of_the_gate_can_end_is_refused() -> None:
    phases = gate_phases(p1={"opens": "T-12m", "decide_by": "T-10m"})
    phases[0]["steps"][0]["planned"] = "15m"  # the run begins at T-12m: preparation ends at T+3m
    found = problems_of(phases=phases)
    assert any("planned to open at T+3m" in p and "decided by T-10m" in p for p in found), found


def test_a_plan_longer_than_the_window_is_located_at_the_window_end() -> None:
    found = problems_of(
        window={"start": "2026-12-05T21:00:00+00:00", "end": "2026-12-05T21:40:00+00:00"}
    )
    assert any(
        "window.end" in p and "does not fit in the window: it ends at T+50m (21:50:00)" in p
        for p in found
    ), found


def test_planned_start_is_a_reserved_param() -> None:
    found = problems_of(params={"planned_start": {"type": "string", "default": ""}})
    assert any("params.planned_start" in p and "reserved" in p for p in found)


def test_decide_on_overrun_needs_someone_to_ask() -> None:
    found = problems_of(
        roles={"hospital": {"users": ["lise"]}},
        phases=[{"id": "work", "steps": [{"id": "s", "bash": "x"}]}],
        change={"id": "CHG1", "type": "standard"},
        window={
            "start": "2026-12-05T21:00:00+00:00",
            "end": "2026-12-05T23:00:00+00:00",
            "on_overrun": "decide",
        },
    )
    assert any("window.on_overrun" in p and "release_manager" in p for p in found), found


def test_overrun_defaults_to_decide_for_normal_changes_and_asks_the_release_manager() -> None:
    rb = runbook()
    assert on_overrun(rb) == "decide"
    assert overrun_role(rb) == "release_manager"
    standard = runbook(change={"id": "CHG1", "type": "standard"})
    assert on_overrun(standard) == "continue"
    other = runbook(roles={"hospital": {"users": ["lise"]}, "release_manager": {"users": ["k"]}})
    assert overrun_role(other) == "release_manager"


# -- T -----------------------------------------------------------------------------------------


def test_t_is_the_window_start_unless_the_trigger_sets_it_inside_the_window() -> None:
    window = runbook().window
    assert window is not None
    started = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    assert planned_start(window, "", started, minutes(-30)) == window.start
    assert planned_start(window, "2026-12-05T22:15:00+01:00", started, minutes(-30)) == datetime(
        2026, 12, 5, 21, 15, tzinfo=UTC
    )
    assert planned_start(None, None, started, minutes(0)) == started


def test_without_a_window_the_run_begins_when_triggered_at_its_planned_begin() -> None:
    rb = runbook(window=None)
    plan = time_plan(rb)
    started = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    t = planned_start(None, None, started, plan.begin)
    assert t == started + minutes(30)  # GO/NOGO 2 opens at T-30m: its preparation starts now
    assert t + plan.by_id()["smoke"].start == started


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-12-05T20:59:00+00:00", "outside the window"),
        ("2026-12-05T23:00:00+00:00", "outside the window"),
        ("2026-12-05T22:00:00", "needs a time zone"),
        ("tonight", "is not a time"),
    ],
)
def test_a_planned_start_outside_the_window_or_unreadable_is_refused(
    value: str, message: str
) -> None:
    with pytest.raises(TimePlanError, match=message):
        planned_start(runbook().window, value, T, minutes(0))


# -- the forecast ------------------------------------------------------------------------------


def on_plan(plan: TimePlan, start: datetime, now: datetime) -> dict[str, Actual]:
    """The actuals of a run that kept exactly to plan, as seen at ``now``."""
    actuals = {}
    for a in plan.activities:
        if start + a.end <= now:
            actuals[a.id] = Actual(start + a.start, start + a.end)
        elif start + a.start <= now:
            actuals[a.id] = Actual(start + a.start)
    return actuals


def test_a_run_on_plan_is_forecast_to_end_as_planned() -> None:
    plan = time_plan(runbook())
    now = T + minutes(25)
    fc = forecast(plan, T, on_plan(plan, T, now), now, T + minutes(120))
    assert fc.finish == fc.planned_finish == T + minutes(50)
    assert fc.late == timedelta(0)


def test_a_slow_step_moves_the_finish_along_its_critical_path() -> None:
    plan = time_plan(runbook())
    now = T + minutes(45)
    actuals = on_plan(plan, T, T + minutes(20))  # backup done at T+20m
    actuals["app_a"] = Actual(T, T + minutes(30))
    actuals["app_b"] = Actual(T + minutes(20))  # planned 15m, still running at T+45m
    fc = forecast(plan, T, actuals, now, T + minutes(120))
    # verify waits for app_b (ends no earlier than now), then 5m, then go_nogo_3 10m
    assert fc.finish == now + minutes(15)
    assert fc.late == minutes(10)


def test_the_rollback_runs_what_has_started_newest_first_and_waits_for_running_steps() -> None:
    plan = time_plan(runbook())
    actuals = on_plan(plan, T, T + minutes(10))  # backup and app_a running
    fc = forecast(plan, T, actuals, T + minutes(10), T + minutes(120))
    # backup (20m) + app_a (10m) + global tell (5m); app_a is planned to end at T+30m
    assert fc.rollback_budget == minutes(35)
    assert fc.rollback_finish == T + minutes(30) + minutes(35)
    assert fc.last_safe == T + minutes(120) - minutes(35)


def test_overrun_when_the_forecast_passes_the_window_end() -> None:
    plan = time_plan(runbook())
    actuals = on_plan(plan, T, T + minutes(1))
    fc = forecast(plan, T, actuals, T + minutes(1), T + minutes(45))
    reasons = overrun(fc, minutes(5))
    assert (
        reasons
        and "forecast to end at 21:50:00, 5m after the window ends at 21:45:00" in reasons[0]
    )


def test_overrun_when_the_last_safe_moment_is_within_the_margin() -> None:
    plan = time_plan(runbook())
    now = T + minutes(25)
    fc = forecast(plan, T, on_plan(plan, T, now), now, T + minutes(80))
    # everything up to app_b has started: 20 + 10 + 15 + 5 = 50m, last safe at T+30m
    assert fc.last_safe == T + minutes(30)
    assert overrun(fc, minutes(4)) == []
    reasons = overrun(fc, minutes(5))
    assert (
        len(reasons) == 1
        and "last safe moment to start a rollback is 21:30:00 (in 5m)" in reasons[0]
    )


def test_no_overrun_when_the_work_ends_before_the_last_safe_moment() -> None:
    plan = time_plan(runbook())
    now = T + minutes(25)
    fc = forecast(plan, T, on_plan(plan, T, now), now, T + minutes(110))
    assert fc.last_safe is not None and fc.finish <= fc.last_safe
    assert overrun(fc, minutes(60)) == []


def test_the_numbers_for_the_release_manager() -> None:
    plan = time_plan(runbook())
    now = T + minutes(45)
    fc = forecast(plan, T, on_plan(plan, T, T + minutes(20)), now, T + minutes(60))
    text = "\n".join(forecast_lines(fc))
    assert "- Planned finish: 21:50:00" in text
    assert "- Window ends: 22:00:00" in text
    assert "- Last safe moment to start a rollback: 21:10:00" in text  # 22:00 - 50m


def test_history_orders_recorded_forecasts_and_drops_gaps() -> None:
    plan = time_plan(runbook())
    first = forecast(plan, T, {}, T - minutes(30)).as_dict()
    second = forecast(plan, T, {}, T - minutes(20)).as_dict()
    assert history([second, None, first]) == [first, second]
    assert first["late"] == 0 and first["start"] == T.isoformat()


def test_the_printed_plan_shows_clock_times_and_the_rollback_budget() -> None:
    text = render_outline(runbook())
    assert "GO/NOGO gate `go_nogo_2`: go_nogo_2 (20:40)" in text
    assert "- Opens: T-30m (20:30)" in text
    assert "- Decide by: T-5m (20:55)" in text
    assert "| 3.3 | 21:20 | app_b" in text
    assert "Budget: undoing everything takes 50m by plan." in text
    assert "Last safe moment to start a full rollback: 22:10; on overrun: decide." in text


# -- properties --------------------------------------------------------------------------------


def runbooks() -> st.SearchStrategy[Runbook]:
    """Runbooks on the clock (tests/timed_runbooks.py), drawn through hypothesis."""
    return st.randoms(use_true_random=False).map(
        lambda rng: load_text(timed_runbook(rng), "prop.yaml")[0]
    )


@settings(max_examples=150, deadline=None)
@given(runbooks(), st.floats(0, 1))
def test_with_every_actual_equal_to_plan_the_forecast_equals_the_plan(
    rb: Runbook, share: float
) -> None:
    plan = time_plan(rb)
    now = T + plan.begin + (plan.finish - plan.begin) * share
    fc = forecast(plan, T, on_plan(plan, T, now), now)
    assert fc.finish == fc.planned_finish


@settings(max_examples=150, deadline=None)
@given(runbooks(), st.data())
def test_a_forecast_never_ends_before_now(rb: Runbook, data: st.DataObject) -> None:
    plan = time_plan(rb)
    clock = T + plan.begin
    actuals: dict[str, Actual] = {}
    cut = data.draw(st.integers(0, len(plan.activities)))
    for activity in plan.activities[:cut]:  # each after what it waits for: plan order
        clock += timedelta(minutes=data.draw(st.integers(0, 120)))
        ended = data.draw(st.booleans())
        actuals[activity.id] = Actual(clock, clock + minutes(5)) if ended else Actual(clock)
        clock += minutes(5)
    now = clock + timedelta(minutes=data.draw(st.integers(0, 120)))
    fc = forecast(plan, T, actuals, now, now + minutes(60))
    if not fc.done:
        assert fc.finish >= now
    assert fc.rollback_finish >= now
