"""A runbook parsed twice gives the same serialized DAG, so Airflow stores one DAG version.

Airflow 3 stores a new DAG version whenever the serialized DAG's hash changes.
Anything that changes between parses (the clock, a random id, the order of a
set) would make every parse a new version.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, RUNBOOKS

from gonogo.core.loader import load_file, load_text
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


def _serialized(runbook: object, folder: Path) -> list[str]:
    from airflow.serialization.serialized_objects import DagSerialization

    return [
        json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)
        for dag in build_dags(runbook, folder)  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_serializes_the_same_at_every_parse(path: Path) -> None:
    first = _serialized(load_file(path)[0], RUNBOOKS)
    time.sleep(0.01)
    assert _serialized(load_file(path)[0], RUNBOOKS) == first


@pytest.mark.parametrize(
    "window", ["", "window: {start: 2026-12-01T22:00:00+01:00, end: 2026-12-02T02:00:00+01:00}"]
)
def test_a_gate_that_opens_before_t_serializes_the_same_at_every_parse(window: str) -> None:
    text = GATE_OPENS + window + "\n"
    first = _serialized(load_text(text)[0], RUNBOOKS)
    time.sleep(0.01)
    assert _serialized(load_text(text)[0], RUNBOOKS) == first


@pytest.mark.parametrize("index", range(6))
def test_generated_runbooks_serialize_the_same_at_every_parse(index: int) -> None:
    from bench.gen import generate_runbook

    text = generate_runbook(index, steps=12)
    first = _serialized(load_text(text)[0], RUNBOOKS)
    time.sleep(0.01)
    assert _serialized(load_text(text)[0], RUNBOOKS) == first
