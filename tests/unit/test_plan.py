"""Order and timing of a runbook, as pure functions over the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EHR, EXAMPLES, with_window

from gonogo import StepRecord, load_file, load_text, plan_rollback, render_outline
from gonogo.core.documents.kjoreplan import plan_data
from gonogo.core.runbook.graph import phase_leaves, phase_upstreams
from gonogo.core.runbook.model import Phase
from gonogo.core.runs.rollback import rollback_if_last_fails
from gonogo.core.timing.timeplan import time_plan


def phase(*steps: dict[str, Any]) -> Phase:
    return Phase.model_validate({"id": "p", "steps": [{"bash": "true", **s} for s in steps]})


def minutes(value: int) -> timedelta:
    return timedelta(minutes=value)


PARALLEL = """\
runbook: parallel
title: Two servers in parallel
service: app
environment: test
change: {id: CHG1, type: standard}
phases:
  - id: prepare
    steps:
      - {id: drain, planned: 10m, bash: drain}
  - id: upgrade
    steps:
      - {id: node_a, planned: 30m, bash: upgrade a}
      - {id: node_b, planned: 20m, depends_on: [], bash: upgrade b}
      - {id: verify, planned: 5m, depends_on: [node_a, node_b], bash: verify}
"""


@pytest.mark.parametrize(
    ("item", "offset"),
    [
        ("smoke_before", minutes(-30)),  # GO/NOGO 2 opens at T-30m: its preparation begins then
        ("announce_start", minutes(-25)),
        ("go_nogo_2", minutes(-20)),  # when the preparation is done, at zero duration
        ("stop_app", minutes(0)),  # work after a gate on the clock waits for T
        ("backup_db", minutes(5)),  # after stop_app's 5m
        ("migrate_db", minutes(25)),
        ("start_app", minutes(60)),
        ("go_nogo_3", minutes(85)),
        ("announce_done", minutes(85)),
    ],
)
def test_ehr_items_are_planned_after_the_steps_before_them(item: str, offset: timedelta) -> None:
    runbook, _ = load_file(EHR)
    assert time_plan(runbook).by_id()[item].start == offset


def test_a_step_without_a_planned_duration_takes_no_time() -> None:
    runbook, _ = load_text(PARALLEL.replace("planned: 30m, ", ""), "rb.yaml")
    slots = time_plan(runbook).by_id()
    assert slots["node_a"].duration == timedelta(0)
    assert slots["verify"].start == minutes(10 + 20)


def test_parallel_steps_start_together_and_a_join_waits_for_the_longest() -> None:
    runbook, _ = load_text(PARALLEL, "rb.yaml")
    slots = time_plan(runbook).by_id()
    assert slots["node_a"].start == slots["node_b"].start == minutes(10)
    assert slots["verify"].start == minutes(10 + 30)


def test_a_step_without_depends_on_follows_the_step_above_it() -> None:
    assert phase_upstreams(phase({"id": "a"}, {"id": "b"}, {"id": "c"})) == {
        "a": [],
        "b": ["a"],
        "c": ["b"],
    }


def test_empty_depends_on_starts_the_step_with_the_phase() -> None:
    upstreams = phase_upstreams(phase({"id": "a"}, {"id": "b", "depends_on": []}))
    assert upstreams["b"] == []


def test_depends_on_replaces_the_step_above_and_drops_earlier_phases() -> None:
    upstreams = phase_upstreams(
        phase({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "from_earlier_phase"]})
    )
    assert upstreams["c"] == ["a"]


@pytest.mark.parametrize(
    ("steps", "leaves"),
    [
        ([{"id": "a"}, {"id": "b"}, {"id": "c"}], ["c"]),
        ([{"id": "a"}, {"id": "b", "depends_on": []}], ["a", "b"]),
        (
            [{"id": "a"}, {"id": "b", "depends_on": []}, {"id": "c", "depends_on": ["a", "b"]}],
            ["c"],
        ),
        ([{"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a"]}], ["b", "c"]),
    ],
    ids=["chain", "two-branches", "join", "fork"],
)
def test_a_phase_ends_with_the_steps_nothing_else_waits_for(
    steps: list[dict[str, Any]], leaves: list[str]
) -> None:
    assert phase_leaves(phase(*steps)) == leaves


def test_outline_without_a_window_shows_offsets_from_the_start(ehr_text: str) -> None:
    runbook, _ = load_text(with_window(ehr_text, None))
    outline = render_outline(runbook)
    assert "### 1. Phase `preflight`: Preparation (T-30m)" in outline
    assert "| 3.2 | T+5m | Back up the EHR database (`backup_db`) |" in outline
    assert "GO/NOGO gate `go_nogo_3`: GO/NOGO 3, after the production test (T+1h25m)" in outline


def test_outline_with_a_window_shows_clock_times_from_its_start() -> None:
    runbook, _ = load_file(EHR)
    outline = render_outline(runbook)
    assert "- **Window:** 2027-01-12T22:00:00+01:00 to 2027-01-13T02:00:00+01:00" in outline
    assert "### 1. Phase `preflight`: Preparation (21:30)" in outline
    assert "| 3.2 | 22:05 | Back up the EHR database (`backup_db`) |" in outline
    assert "| 6.1 | 23:25 | Announce that the EHR is back (`announce_done`) |" in outline
    assert "T+" not in outline


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_kjoreplan_plans_every_activity_when_gonogo_plan_does(path: Path) -> None:
    runbook, _ = load_file(path)
    items = plan_data(runbook)["items"]
    shown = {i["id"]: i["offset_minutes"] for i in items if i["kind"] == "gate"}
    shown |= {
        s["id"]: s["offset_minutes"] for i in items if i["kind"] == "phase" for s in i["steps"]
    }
    planned = {a.id: a.start.total_seconds() / 60 for a in time_plan(runbook).activities}
    assert shown == planned  # and the outline (gonogo plan) prints the time plan itself


def test_printed_rollback_undoes_the_ehr_steps_newest_first() -> None:
    runbook, _ = load_file(EHR)
    plan = rollback_if_last_fails(runbook)
    assert plan.compensate == [
        "start_app",
        "install_app",
        "backup_db",
        "stop_app",
        "announce_start",
    ]
    assert plan.not_undone == ["ward_view_works", "smoke_after", "migrate_db", "smoke_before"]


def test_a_success_without_an_end_time_is_undone_last_next_to_aware_end_times() -> None:
    end = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    records = [
        StepRecord("no_end", "success", None, True, 0),
        StepRecord("later", "success", end + minutes(5), True, 1),
        StepRecord("earlier", "success", end, True, 2),
    ]
    assert plan_rollback(records).compensate == ["later", "earlier", "no_end"]


def test_equal_end_times_undo_the_later_step_in_the_document_first() -> None:
    end = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    records = [
        StepRecord("first", "success", end, True, 0),
        StepRecord("second", "success", end, True, 1),
    ]
    assert plan_rollback(records).compensate == ["second", "first"]
