"""A runbook written while Airflow runs is parsed next: the DAG processor asks for its loader file.

gonogo.server.prompter runs in the DAG processor; it asks Airflow, with Airflow's
own priority parsing request, to parse the loader file that owns a runbook
written since that file last changed. How much sooner that is, at 1,000 and
10,000 runbooks, is measured by ``bench/appear.py``, not here.
"""

from __future__ import annotations

import pytest
from tests.integration.conftest import Airflow

pytestmark = pytest.mark.integration

RUNBOOK = """\
runbook: it-appear
title: Written while Airflow runs
service: it-appear
environment: test
change: {id: CHG-IT-APPEAR, type: standard}
phases:
  - id: only
    steps:
      - {id: noop, bash: "true", read_only: true}
"""


ASKED = "a runbook changed; asked Airflow to parse gonogo_dags.py next"


def asked(airflow: Airflow) -> int:
    return airflow.stack.log_tail("dag-processor", 50_000_000).count(ASKED)


def test_a_runbook_written_while_airflow_runs_is_asked_to_be_parsed_next(airflow: Airflow) -> None:
    assert "gonogo: watching the runbooks of 1 DAG bundle(s)" in airflow.stack.log_tail(
        "dag-processor", 50_000_000
    )
    before = asked(airflow)
    (airflow.stack.runbooks_dir / "it_appear.yaml").write_text(RUNBOOK)
    airflow.wait_dags("it-appear")
    airflow.admin.wait_for("the request to be logged", lambda: asked(airflow) > before, timeout=30)
