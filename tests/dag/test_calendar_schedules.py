"""Freezes and maintenance windows from ServiceNow's schedules, against the compatible local server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from tests.dag.test_calendar_start import check, context, runbook
from tests.unit.test_calendar import change, oslo

from gonogo.core.calendar.model import load_calendar_text
from gonogo.core.calendar.rules import window_findings
from gonogo.core.calendar.schedules import with_schedules
from gonogo.core.calendar.times import Interval
from gonogo.dag.calendar import installation_calendar
from gonogo.dag.itsm.servicenow import ServiceNow
from gonogo.dev.servicenow import FakeServiceNow

CALENDAR = """\
timezone: Europe/Oslo
itsm:
  connection: snow
  exception: {roles: [release_manager], timeout: 1h}
"""


@pytest.fixture
def snow(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServiceNow]:
    fake = FakeServiceNow()
    url = fake.start()
    fake.add_schedule(
        "EHR weekly maintenance",
        "maintenance",
        [
            {
                "name": "Tuesday evening",
                "start_date_time": "20260106T200000",
                "end_date_time": "20260107T020000",
                "repeat_type": "weekly",
                "days_of_week": "2",
            },
            {
                "name": "one-off",
                "start_date_time": "20261201T100000",
                "end_date_time": "20261201T120000",
            },
        ],
        time_zone="Europe/Oslo",
        services=("ehr", "ehr-db"),
    )
    fake.add_schedule(
        "Year-end blackout",
        "blackout",
        [
            {
                "name": "Christmas",
                "start_date_time": "20261218T000000",
                "end_date_time": "20270104T000000",
            },
            {
                "name": "Every Friday",
                "start_date_time": "20260102T150000",
                "end_date_time": "20260102T235900",
                "repeat_type": "weekly",
                "days_of_week": "5",
            },
        ],
        time_zone="Europe/Oslo",
        description="No changes while the wards run on holiday staffing",
    )
    # The connection's schema says http: the local server has no TLS.
    connection = url.replace("://", f"://{fake.user}:{fake.password}@") + "/http"
    monkeypatch.setenv("AIRFLOW_CONN_SNOW", connection)
    yield fake
    fake.stop()


def test_servicenows_schedules_become_maintenance_windows_and_freezes(snow: FakeServiceNow) -> None:
    calendar = load_calendar_text(CALENDAR, "calendar.yaml")
    found, skipped = with_schedules(
        calendar, ServiceNow(snow.url, snow.user, snow.password).schedules()
    )
    (weekly,) = found.maintenance
    assert weekly.services == ["ehr", "ehr-db"] and weekly.every == ("tuesday",)
    assert (weekly.start, weekly.end, weekly.timezone.key) == (time(20), time(2), "Europe/Oslo")
    (freeze,) = found.freezes
    assert freeze.services == "all" and freeze.reason.startswith("No changes while the wards")
    assert found.span(freeze) == Interval(oslo(2026, 12, 18, 0, 0), oslo(2027, 1, 4, 0, 0))
    assert freeze.exception is not None and freeze.exception.roles == ["release_manager"]
    assert sorted(skipped) == [
        "ServiceNow schedule 'EHR weekly maintenance', span one-off: a maintenance window that "
        "does not repeat daily or weekly is left out",
        "ServiceNow schedule 'Year-end blackout', span Every Friday: a blackout that repeats "
        "(weekly) is left out",
    ]
    # The rules cannot tell where an entry came from.
    (outside,) = window_findings(found, change(start=oslo(2026, 12, 2, 21, 0)))
    assert outside.kind == "outside_maintenance"
    assert "itsm-EHR-weekly-maintenance-1: Tuesday 20:00-02:00 Europe/Oslo" in outside.message
    assert window_findings(found, change(start=oslo(2026, 12, 1, 21, 0))) == []
    (frozen,) = window_findings(found, change("lab", start=oslo(2026, 12, 22, 21, 0)))
    assert frozen.kind == "in_freeze" and "Year-end blackout" in frozen.message


def test_before_start_refuses_a_run_in_a_servicenow_blackout(
    snow: FakeServiceNow, tmp_path: Path
) -> None:
    (tmp_path / "calendar.yaml").write_text(CALENDAR)
    with pytest.raises(AirflowFailException) as refused:
        check(runbook("normal"), tmp_path, context())
    assert "falls in the freeze 'Year-end blackout'" in str(refused.value)
    granted = check(runbook(), tmp_path, context())["exception"]
    assert granted["roles"] == ["release_manager"] and granted["timeout"] == 3600.0


def test_before_start_refuses_every_run_when_servicenow_does_not_answer(
    snow: FakeServiceNow, tmp_path: Path
) -> None:
    (tmp_path / "calendar.yaml").write_text(CALENDAR)
    snow.fail_next = [503]
    with pytest.raises(AirflowFailException, match="ITSM schedules cannot be read, so no freeze"):
        check(runbook("standard", "other"), tmp_path, context())


def test_the_installation_calendar_is_the_file_alone_without_an_itsm(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("timezone: UTC\n")
    calendar, skipped = installation_calendar(path)
    assert calendar.freezes == [] and skipped == []
