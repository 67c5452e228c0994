"""Issue 12 against a real Airflow: gates on the clock, the forecast and forecast_overrun.

Each test writes its runbook when it runs, with a change window a few minutes
long around that moment (the harness starts long before some tests run), and
sets the planned start T with the trigger's ``planned_start``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from tests.integration.conftest import Airflow

pytestmark = [pytest.mark.integration, pytest.mark.long]

OPENS_BEFORE = 25  # seconds: the gate opens at T-25s
OVERRUN_AFTER = 120  # seconds of planned work after the slow step


def write_runbook(airflow: Airflow, name: str, text: str) -> str:
    (airflow.stack.runbooks_dir / f"{name}.yaml").write_text(text)
    airflow.wait_dags(name)
    return name


def clock_runbook(name: str, start: datetime, end: datetime) -> str:
    return f"""\
runbook: {name}
title: A gate on the clock
service: {name}
environment: test
change: {{id: CHG-IT-CLOCK, type: normal}}
window: {{start: "{start.isoformat()}", end: "{end.isoformat()}"}}
roles:
  release_manager: {{users: [relman]}}
  hospital: {{users: [wardrep]}}
phases:
  - id: prepare
    steps:
      - {{id: ready, bash: echo ready, planned: 5s, read_only: true}}
  - gate: go
    sign_off: [hospital]
    opens: T-{OPENS_BEFORE}s
  - id: work
    steps:
      - id: change
        bash: echo changed
        planned: 5s
        rollback: {{bash: echo undoing change}}
"""


def overrun_runbook(name: str, start: datetime, end: datetime) -> str:
    return f"""\
runbook: {name}
title: A slow step in a short window
service: {name}
environment: test
change: {{id: CHG-IT-LATE, type: standard}}
window: {{start: "{start.isoformat()}", end: "{end.isoformat()}", margin: 20s, on_overrun: decide}}
roles:
  release_manager: {{users: [relman]}}
params:
  sleep: {{type: integer, default: 1}}
phases:
  - id: work
    steps:
      - id: prepare_db
        bash: echo prepared
        planned: 5s
        rollback: {{bash: echo undoing prepare_db, planned: 10s}}
      - id: slow
        exec: [sleep, "{{{{ params.sleep }}}}"]
        planned: 20s
        rollback: {{bash: echo undoing slow, planned: 10s}}
      - id: open_up
        bash: echo open
        planned: {OVERRUN_AFTER}s
        read_only: true
"""


def when(text: str | None) -> datetime:
    assert text, "no time recorded"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_gate_does_not_open_before_its_time_and_work_waits_for_t(airflow: Airflow) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    dag = write_runbook(
        airflow,
        "it-clock-gate",
        clock_runbook("it-clock-gate", now - timedelta(minutes=1), now + timedelta(minutes=15)),
    )
    t = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=50)
    run = airflow.operator.trigger(dag, {"planned_start": t.isoformat()})
    request = airflow.admin.wait_pending(dag, run, "gate__go.hospital", timeout=180)
    tis = airflow.admin.task_instances(dag, run)
    opened = when(tis["gate__go.hospital"]["start_date"])
    assert opened >= t - timedelta(seconds=OPENS_BEFORE), (opened, t)
    assert when(tis["gate__go.opens"]["end_date"]) >= t - timedelta(seconds=OPENS_BEFORE)
    assert tis["prepare.ready"]["state"] == "success"  # the preparation ran before the gate
    assert "hospital" in request["body"]
    airflow.client("wardrep").answer_or_raise(dag, run, "gate__go.hospital", "GO", "ready")
    assert airflow.admin.wait_run(dag, run, timeout=240)["state"] == "success"
    tis = airflow.admin.task_instances(dag, run)
    assert when(tis["work.change"]["start_date"]) >= t  # technical work waited for T
    assert tis["wait_for_start"]["state"] == "success"
    history = airflow.admin.xcom(dag, run, "forecast", key="forecast")
    assert len(history) >= 2
    assert all(entry["start"] == t.isoformat() for entry in history)
    # by plan: preparation from T-25s, the gate at once, the 5 s change from T
    assert history[0]["planned_finish"] == (t + timedelta(seconds=5)).isoformat()
    # The report (and the board) count from the planned_start this run was given, as its tasks do.
    report = airflow.admin.gonogo(f"/report/{dag}/{quote(run, safe='')}")
    assert datetime.fromisoformat(report["planned_start"]) == t
    planned = {a["id"]: datetime.fromisoformat(a["planned_start"]) for a in report["activities"]}
    assert planned == {
        "ready": t - timedelta(seconds=OPENS_BEFORE),
        "go": t - timedelta(seconds=OPENS_BEFORE - 5),
        "change": t,
    }


def test_a_slow_step_raises_forecast_overrun_and_roll_back_now_ends_inside_the_window(
    airflow: Airflow,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(minutes=4)
    dag = write_runbook(
        airflow, "it-clock-late", overrun_runbook("it-clock-late", now - timedelta(minutes=1), end)
    )
    started = datetime.now(UTC)
    # The slow step ends 45 s before the window does: time enough to undo two steps.
    sleep = int((end - started).total_seconds()) - 45
    run = airflow.operator.trigger(
        dag, {"planned_start": started.replace(microsecond=0).isoformat(), "sleep": sleep}
    )
    request = airflow.admin.wait_pending(dag, run, "forecast", timeout=240)
    asked = datetime.now(UTC)
    # The forecast passed the window end while the slow step ran, well before the window ends.
    assert end - asked > timedelta(seconds=60), asked
    assert "after the window ends" in request["body"]
    assert "Last safe moment to start a rollback" in request["body"]
    assert airflow.admin.task_instances(dag, run)["work.slow"]["state"] == "running"
    events = airflow.admin.xcom(dag, run, "forecast", key="events")
    assert events[0]["event"] == "forecast_overrun" and events[0]["on_overrun"] == "decide"

    relman = airflow.client("relman")
    refused = relman.answer(dag, run, "forecast", "Continue", "")
    assert refused.status_code == 422 and "Continue needs a comment" in refused.json()["detail"]
    relman.answer_or_raise(dag, run, "forecast", "Roll back now", "we will not make it")

    assert airflow.admin.wait_run(dag, run, timeout=300)["state"] == "failed"
    assert datetime.now(UTC) < end  # rolled back inside the window
    outcome = airflow.admin.xcom(dag, run, "outcome", key="outcome")
    assert outcome["outcome"] == "rolled_back"
    assert outcome["undone"] == ["slow", "prepare_db"]
    assert any("forecast_overrun" in reason for reason in outcome["reasons"])
    tis = airflow.admin.task_instances(dag, run)
    assert tis["work.open_up"]["state"] == "skipped"
