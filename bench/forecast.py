"""What the forecast costs each time an activity ends (a benchmark, not a test).

    python bench/forecast.py [--steps 200] [--repeat 5]

The forecast task recomputes the forecast after every step end: it builds the
plan in time from the runbook, projects the finish from the actuals so far and
checks for ``forecast_overrun``. This replays a whole run of a generated
runbook (``--steps`` steps, every step ending on plan, one after the other)
and times that work per step end. The anchor, measured in the same run, is
``time_plan()`` of the same runbook (the plan without actuals),
so the ratio says what the forecast adds over planning alone on this machine.
Target: under 5 ms per step end for 200 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from benchlib import Row, print_table, ratio, summary, write_result
from gen import generate_runbook  # bench/ is on sys.path when this runs as a script
from gonogo import load_text
from gonogo.core.runbook.model import Runbook
from gonogo.core.timing.timeplan import Actual, forecast, overrun, time_plan

TARGET_MS = 5.0
T = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def replay(runbook: Runbook, window_end: datetime) -> list[float]:
    """Milliseconds of plan + forecast + overrun check at each step end of a run on plan."""
    plan = time_plan(runbook)
    actuals: dict[str, Actual] = {}
    costs = []
    for activity in plan.activities:
        end = T + activity.end
        actuals[activity.id] = Actual(T + activity.start, end)
        if activity.kind != "step":
            continue
        started = time.perf_counter()
        fresh = time_plan(runbook)  # a task process starts cold
        fc = forecast(fresh, T, actuals, end, window_end)
        overrun(fc, timedelta(minutes=15))
        fc.as_dict()
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def anchor(runbook: Runbook, times: int) -> list[float]:
    """Milliseconds of ``time_plan()`` for the same runbook: planning alone."""
    costs = []
    for _ in range(times):
        started = time.perf_counter()
        time_plan(runbook)
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps in the runbook")
    parser.add_argument("--gates", type=int, default=3, help="gates in the runbook")
    parser.add_argument("--repeat", type=int, default=5, help="whole runs to replay")
    parser.add_argument("--quick", action="store_true", help="one replay")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1

    runbook, _ = load_text(generate_runbook(7, args.steps, args.gates), "forecast-bench.yaml")
    plan = time_plan(runbook)
    window_end = T + plan.finish + timedelta(hours=1)
    step_ends: list[float] = []
    planning: list[float] = []
    for _ in range(args.repeat):
        planning += anchor(runbook, len(runbook.steps()))
        step_ends += replay(runbook, window_end)

    base = summary(planning)
    cost = summary(step_ends)
    rows = [
        Row("anchor: time_plan() of the runbook", base, unit="ms"),
        Row(
            f"forecast at a step end ({args.steps} steps)",
            cost,
            unit="ms",
            ratio=ratio(cost["median"], base["median"]),
            ratio_label="fc/anchor",
        ),
    ]
    print_table(f"forecast: {args.steps} steps, {args.gates} gates, {args.repeat} runs", rows)
    verdict = "met" if cost["p95"] < TARGET_MS else "MISSED"
    print(f"target: under {TARGET_MS:g} ms per step end (p95 {cost['p95']:.2f} ms): {verdict}")
    write_result(
        "forecast",
        {"steps": args.steps, "gates": args.gates, "repeat": args.repeat},
        rows,
        target_ms_per_step_end=TARGET_MS,
        target_met=verdict == "met",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
