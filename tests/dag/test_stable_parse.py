"""A runbook parsed twice gives the same serialized DAG, so Airflow stores one DAG version.

Airflow 3 stores a new DAG version whenever the serialized DAG's hash changes.
Anything that changes between parses (the clock, a random id, the order of a
set) would make every parse a new version. Two parses a moment apart catch
the clock read to the microsecond; a clock read rounded (to the minute, the
day) would pass that, so every serialized DAG is also searched for the
present: no date of these days, no timestamp near now.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES, RUNBOOKS
from tests.timed_runbooks import timed_runbook

from gonogo.core.runbook.loader import load_text
from gonogo.dag.builder import build_dags

GATE_OPENS = """
runbook: opens-without-window
title: A gate that opens before T, with no window
service: svc
environment: test
change: {id: CHG-1, type: standard}
roles:
  release_manager: {users: [relman]}
phases:
  - id: prepare
    steps:
      - id: check
        bash: echo checked
  - gate: go
    title: GO/NOGO
    sign_off: [release_manager]
    opens: T-30m
  - id: install
    steps:
      - id: install_app
        bash: echo installed
        rollback: {bash: echo removed}
"""


def _serialized(text: str) -> list[str]:
    """The runbook's DAGs, serialized; none may hold the present (unless the runbook names it)."""
    from airflow.serialization.serialized_objects import DagSerialization

    found = [
        json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)
        for dag in build_dags(load_text(text)[0], RUNBOOKS)
    ]
    for dag in found:
        assert not list(_the_present(json.loads(dag), text)), "the serialized DAG holds the clock"
    return found


def _the_present(value: Any, written: str = "") -> Iterator[Any]:
    """Every value that names these days (yesterday to tomorrow) or a timestamp within them.

    A day the runbook itself names (``written``: a window this week) is not the clock's.
    """
    now = datetime.now(UTC)
    days = {(now + timedelta(days=d)).date().isoformat() for d in (-1, 0, 1)}
    days = {day for day in days if day not in written}
    low, high = (now - timedelta(days=1)).timestamp(), (now + timedelta(days=1)).timestamp()
    if isinstance(value, dict):
        for item in value.values():
            yield from _the_present(item, written)
    elif isinstance(value, list):
        for item in value:
            yield from _the_present(item, written)
    elif (isinstance(value, str) and any(day in value for day in days)) or (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (low <= value <= high or low <= value / 1000 <= high)
    ):
        yield value


def test_the_search_for_the_present_finds_it() -> None:
    now = datetime.now(UTC)
    found = list(_the_present({"a": [now.isoformat(), now.timestamp()], "b": "2000-01-01"}))
    assert found == [now.isoformat(), now.timestamp()]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_serializes_the_same_at_every_parse(path: Path) -> None:
    text = path.read_text()
    first = _serialized(text)
    time.sleep(0.01)
    assert _serialized(text) == first


@pytest.mark.parametrize(
    "window", ["", "window: {start: 2026-12-01T22:00:00+01:00, end: 2026-12-02T02:00:00+01:00}"]
)
def test_a_gate_that_opens_before_t_serializes_the_same_at_every_parse(window: str) -> None:
    text = GATE_OPENS + window + "\n"
    first = _serialized(text)
    time.sleep(0.01)
    assert _serialized(text) == first


@pytest.mark.parametrize("index", range(6))
def test_generated_runbooks_serialize_the_same_at_every_parse(index: int) -> None:
    from bench.gen import generate_runbook

    text = generate_runbook(index, steps=12)
    first = _serialized(text)
    time.sleep(0.01)
    assert _serialized(text) == first


@pytest.mark.parametrize("seed", range(12))
def test_runbooks_on_the_clock_serialize_the_same_at_every_parse(seed: int) -> None:
    """Windows or none, gates that open before or after T, planned meetings, parallel steps."""
    text = timed_runbook(random.Random(seed), name=f"timed-{seed}")
    first = _serialized(text)
    time.sleep(0.01)
    assert _serialized(text) == first
