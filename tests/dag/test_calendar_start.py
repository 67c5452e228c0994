"""The change calendar when a run starts: ``before_start`` refuses a freeze, an emergency asks.

The checks run as the tasks run them, with a context like Airflow's; the real
run in a freeze is in tests/integration/test_calendar_trigger.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from tests.dag.fakes import TaskInstance

from gonogo.core import naming
from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs import stamp
from gonogo.core.settings import CALENDAR_ENV
from gonogo.dag.builder import build_dag
from gonogo.dag.calendar import calendar_check, freeze_granted

SECRET = "the installation's secret"
CALENDAR = """\
timezone: Europe/Oslo
maintenance:
  - id: ehr-weekly
    services: [ehr]
    every: [tuesday]
    start: "20:00"
    end: "02:00"
    outside: error
freezes:
  - id: christmas
    title: Christmas freeze
    start: 2026-12-18
    end: 2027-01-03
    reason: Reduced staffing
    exception: {roles: [release_manager], timeout: 2h}
"""
RUNBOOK = """\
runbook: hotfix
title: A fix
service: {service}
environment: prod
change: {{id: CHG9, type: {kind}}}
roles:
  release_manager: {{users: [{granters}]}}
  ops: {{users: [ola, kari]}}
window: {{start: "2026-12-22T21:00:00+01:00", end: "2026-12-22T23:00:00+01:00"}}
phases:
  - gate: go
    sign_off: [ops]
  - id: work
    steps:
      - {{id: fix, planned: 30m, bash: "true", rollback: {{bash: "true"}}}}
"""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__GONOGO__STAMP_SECRET", SECRET)
    monkeypatch.delenv(CALENDAR_ENV, raising=False)


def context(planned_start: str = "", rehearsal: bool = False, by: str = "kari") -> dict[str, Any]:
    run_id = "manual__1"
    signed = stamp.stamp(SECRET, "hotfix", run_id, by, by)
    return {
        "dag": SimpleNamespace(dag_id="hotfix"),
        "run_id": run_id,
        "ti": TaskInstance(),
        "params": {naming.PLANNED_START_PARAM: planned_start, naming.REHEARSAL_PARAM: rehearsal},
        "dag_run": SimpleNamespace(
            conf={naming.CONF_TRIGGER: signed},
            triggering_user_name=by,
            start_date=datetime(2026, 12, 22, 20, 0, tzinfo=UTC),
        ),
    }


def runbook(kind: str = "emergency", service: str = "lab", granters: str = "relman") -> Runbook:
    return load_text(RUNBOOK.format(kind=kind, service=service, granters=granters))[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "calendar.yaml").write_text(CALENDAR)
    return tmp_path


def check(book: Runbook, folder: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    return calendar_check(book, folder)(ctx)["calendar"]


@pytest.mark.parametrize("kind", ["standard", "normal"])
def test_a_run_in_a_freeze_is_refused_with_the_freezes_reason(folder: Path, kind: str) -> None:
    with pytest.raises(AirflowFailException) as refused:
        check(runbook(kind), folder, context())
    message = str(refused.value)
    assert message.startswith("not started: the calendar: 2026-12-22 21:00 to 2026-12-22 21:30")
    assert "falls in the freeze 'Christmas freeze'" in message and "Reduced staffing" in message


def test_the_trigger_may_move_t_out_of_the_freeze_only_within_the_window(tmp_path: Path) -> None:
    (tmp_path / "calendar.yaml").write_text(
        CALENDAR.replace("start: 2026-12-18", "start: 2026-12-18T00:00:00+01:00").replace(
            "end: 2027-01-03", "end: 2026-12-22T22:00:00+01:00"
        )
    )
    with pytest.raises(AirflowFailException, match="falls in the freeze"):
        check(runbook("normal"), tmp_path, context())
    found = check(runbook("normal"), tmp_path, context("2026-12-22T22:15:00+01:00"))
    assert found["from"] == "2026-12-22T21:15:00+00:00" and found["exception"] is None


def test_an_emergency_in_a_freeze_records_who_may_grant_the_exception(folder: Path) -> None:
    ctx = context()
    found = check(runbook(granters="relman, kari"), folder, ctx)
    assert found["exception"] == {
        "freeze": "Christmas freeze",
        "roles": ["release_manager"],
        "users": ["kari", "relman"],
        "timeout": 7200.0,
        "during": "2026-12-22 21:00 to 2026-12-22 21:30 Europe/Oslo",
    }
    assert ctx["ti"].pushed[naming.XCOM_CALENDAR] == found


def test_an_emergency_whose_only_granter_started_it_is_refused(folder: Path) -> None:
    with pytest.raises(AirflowFailException, match="four-eyes rule"):
        check(runbook(granters="kari"), folder, context(by="kari"))


def test_a_strict_maintenance_window_refuses_a_run_outside_it(tmp_path: Path) -> None:
    text = CALENDAR.replace("every: [tuesday]", "every: [wednesday]")
    (tmp_path / "calendar.yaml").write_text(text[: text.index("freezes:")])
    with pytest.raises(AirflowFailException, match="outside the maintenance windows of ehr"):
        check(runbook("normal", "ehr"), tmp_path, context())


def test_a_rehearsal_is_not_held_back_by_a_freeze(folder: Path) -> None:
    found = check(runbook("normal"), folder, context(rehearsal=True))
    assert found == {"file": str(folder / "calendar.yaml"), "exception": None, "rehearsal": True}


def test_without_a_calendar_nothing_is_held_back(tmp_path: Path) -> None:
    assert check(runbook("normal"), tmp_path, context()) == {"file": None, "exception": None}


def test_a_calendar_that_cannot_be_read_refuses_every_run(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "calendar.yaml").write_text(CALENDAR.replace('"20:00"', "20:00"))
    with pytest.raises(AirflowFailException, match=r"cannot be read, so no freeze can be checked"):
        check(runbook("standard", "other"), folder, context())
    monkeypatch.setenv(CALENDAR_ENV, str(folder / "missing.yaml"))
    with pytest.raises(AirflowFailException, match="cannot read the file"):
        check(runbook("standard", "other"), folder, context())


# -- the exception, recorded like a gate --------------------------------------------------------

GRANT = naming.gate_task(naming.FREEZE_GATE, naming.FREEZE_ROLE)
NEEDED = {"exception": {"freeze": "Christmas freeze", "users": ["relman"], "roles": ["rm"]}}


def guarded(record: Any, calendar: Any = NEEDED, by: str = "kari") -> None:
    ctx = context(by=by)
    ctx["ti"] = TaskInstance(
        {
            f"{naming.PREFLIGHT_TASK}:{naming.XCOM_CALENDAR}": calendar,
            GRANT: record,
        }
    )
    freeze_granted()(ctx)


def test_work_after_a_granted_exception_starts() -> None:
    guarded({"answer": "GO", "by": "relman", "by_id": "relman", "role": "grant"})


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (None, "there is no recorded GO from role grant"),
        ({"gate": naming.FREEZE_GATE, "needed": False}, "there is no recorded GO"),
        ({"answer": "NOGO", "by": "relman", "by_id": "relman"}, "there is no recorded GO"),
        ({"answer": "GO", "by": "ola", "by_id": "ola"}, "the GO for role grant came from ola"),
    ],
    ids=["no-answer", "passed-without-asking", "nogo", "not-a-granter"],
)
def test_work_in_a_freeze_without_a_granted_exception_does_not_start(record: Any, why: str) -> None:
    with pytest.raises(
        AirflowFailException, match=f"needs an exception: gate freeze_exception: {why}"
    ):
        guarded(record)


def test_work_needs_no_exception_outside_a_freeze_but_a_verdict_on_record() -> None:
    guarded(None, calendar={"file": None, "exception": None})
    with pytest.raises(AirflowFailException, match="recorded no verdict of the change calendar"):
        guarded(None, calendar=None)


def hooks(hook: Any) -> list[str]:
    """The functions a pre_execute hook runs, in order, with chains taken apart."""
    if hook.__qualname__ == "chain.<locals>.run":
        return [name for part in hook.__closure__[0].cell_contents for name in hooks(part)]
    return [hook.__qualname__]


def test_only_an_emergency_dag_has_the_exception_gate_and_all_its_work_checks_it(
    tmp_path: Path,
) -> None:
    emergency = build_dag(runbook(), tmp_path)
    assert emergency.get_task(GRANT).upstream_task_ids == {naming.WINDOW_TASK}
    assert emergency.get_task(naming.LOCK_TASK).upstream_task_ids == {GRANT}
    assert GRANT not in build_dag(runbook("normal"), tmp_path).task_ids
    checked = "freeze_granted.<locals>.hook"
    for task_id in ("work.fix", "gate__go.ops"):
        assert checked in hooks(emergency.get_task(task_id).run_before), task_id
    assert checked not in hooks(emergency.get_task(GRANT).run_before)


def test_the_exception_gate_passes_at_once_outside_a_freeze(tmp_path: Path) -> None:
    task = build_dag(runbook(), tmp_path).get_task(GRANT)
    ctx = context()
    ctx["ti"] = TaskInstance(
        {f"{naming.PREFLIGHT_TASK}:{naming.XCOM_CALENDAR}": {"exception": None}}
    )
    assert task.execute(ctx) == {"gate": naming.FREEZE_GATE, "needed": False}


def test_a_gate_may_not_take_the_exception_gates_id() -> None:
    from gonogo.errors import RunbookError

    text = RUNBOOK.format(kind="normal", service="lab", granters="relman").replace(
        "gate: go", "gate: freeze_exception"
    )
    with pytest.raises(RunbookError, match="the gate gonogo adds for an exception to a freeze"):
        load_text(text)
