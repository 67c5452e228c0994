"""The calendar on the command line: ``gonogo validate`` against it, and ``gonogo calendar``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.test_calendar import CALENDAR, OSLO, RUNBOOK

from gonogo.client.cli import main
from gonogo.core.settings import CALENDAR_ENV


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# validate checks only windows still ahead, so these tests move the calendar's dates
# (a Tuesday evening on 2026-12-01 and the Christmas freeze) to weeks from today.
TODAY = datetime.now(UTC).date()
SHIFT = (TODAY + timedelta(days=14 + (1 - TODAY.weekday()) % 7)) - date(2026, 12, 1)
MOVED = CALENDAR.replace("2026-12-18", str(date(2026, 12, 18) + SHIFT)).replace(
    "2027-01-03", str(date(2027, 1, 3) + SHIFT)
)


def moved(text: str) -> str:
    """An ISO time from the examples, moved as the calendar is: the same wall-clock time in Oslo."""
    wall = datetime.fromisoformat(text).astimezone(OSLO).replace(tzinfo=None)
    return (wall + SHIFT).replace(tzinfo=OSLO).isoformat()


def write(folder: Path, name: str, start: str, end: str, **values: str) -> Path:
    path = folder / f"{name}.yaml"
    fields = {"service": "ehr", "kind": "normal", **values}
    path.write_text(RUNBOOK.format(id=name, start=moved(start), end=moved(end), **fields))
    return path


def day(text: str) -> str:
    """A date in the messages, moved as the calendar is."""
    return str(date.fromisoformat(text) + SHIFT)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CALENDAR_ENV, raising=False)
    (tmp_path / "calendar.yaml").write_text(MOVED)
    return tmp_path


def test_validate_checks_every_window_against_the_calendar_beside_the_runbooks(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    a = write(folder, "a", "2026-12-01T21:00:00+01:00", "2026-12-01T23:00:00+01:00")
    b = write(folder, "b", "2026-12-01T22:00:00+01:00", "2026-12-02T01:00:00+01:00")
    ok = write(folder, "ok", "2026-12-08T21:00:00+01:00", "2026-12-08T23:00:00+01:00")
    code, out, err = run(capsys, "validate", str(folder))
    assert code == 1
    assert f"{a}:9:1: window: the window overlaps the change 'b' ({b}:9:1) on ehr in prod" in out
    assert f"{b}:9:1: window: the window overlaps the change 'a' ({a}:9:1)" in out
    assert str(ok) not in out
    assert f"checked against the calendar {folder / 'calendar.yaml'}" in err
    assert "3 runbook(s) checked: 1 valid, 2 invalid, 2 error(s)" in err


def test_a_warning_from_the_calendar_does_not_fail_validate(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    portal = write(
        folder, "portal", "2026-12-02T12:00:00+01:00", "2026-12-02T13:00:00+01:00", service="portal"
    )
    code, out, _err = run(capsys, "validate", str(portal))
    assert code == 0
    assert (
        f"{portal}:9:1: warning: window: {day('2026-12-02')} 12:00 to {day('2026-12-02')} 13:00"
        in out
    )
    assert "outside the maintenance windows of portal in prod" in out


def test_the_json_report_names_the_calendar_and_marks_the_refused_runbook(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    path = write(folder, "xmas", "2026-12-22T21:00:00+01:00", "2026-12-22T23:00:00+01:00")
    code, out, _err = run(capsys, "validate", "--format", "json", str(folder))
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    assert report["calendar"] == str(folder / "calendar.yaml")
    assert report["files"] == [{"file": str(path), "valid": False, "runbook": "xmas"}]
    (problem,) = [p for p in report["problems"] if "freeze" in p["message"]]
    assert (problem["line"], problem["column"], problem["severity"]) == (9, 1, "error")


def test_the_calendar_setting_names_another_file(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "xmas", "2026-12-22T21:00:00+01:00", "2026-12-22T23:00:00+01:00")
    other = folder / "elsewhere.cal"
    other.write_text("timezone: UTC\n")
    monkeypatch.setenv(CALENDAR_ENV, str(other))
    code, _out, err = run(capsys, "validate", str(folder / "xmas.yaml"))
    assert code == 0 and f"checked against the calendar {other}" in err
    code, out, _err = run(
        capsys, "validate", "--calendar", str(folder / "calendar.yaml"), str(folder)
    )
    assert code == 1 and "falls in the freeze 'christmas'" in out


def test_a_calendar_named_but_missing_fails_validate_instead_of_checking_nothing(
    capsys: pytest.CaptureFixture[str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, "ok", "2026-12-08T21:00:00+01:00", "2026-12-08T23:00:00+01:00")
    monkeypatch.setenv(CALENDAR_ENV, str(folder / "missing.yaml"))
    code, out, _err = run(capsys, "validate", str(folder))
    assert code == 1
    assert f"{folder / 'missing.yaml'}:1:1: no such calendar file" in out


def test_an_invalid_calendar_fails_validate_with_its_own_located_problems(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    write(folder, "ok", "2026-12-08T21:00:00+01:00", "2026-12-08T23:00:00+01:00")
    (folder / "calendar.yaml").write_text(MOVED.replace('start: "20:00"', "start: 20:00"))
    code, out, _err = run(capsys, "validate", str(folder))
    assert code == 1
    assert f"{folder / 'calendar.yaml'}:7:12: maintenance[0].start: write the time in quotes" in out


def test_schedules_from_the_itsm_are_read_inside_airflow_only_and_validate_says_so(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    write(folder, "ok", "2026-12-08T21:00:00+01:00", "2026-12-08T23:00:00+01:00")
    (folder / "calendar.yaml").write_text(MOVED + "itsm: {connection: snow}\n")
    code, _out, err = run(capsys, "validate", str(folder))
    assert code == 0
    assert "note: the calendar's servicenow schedules are read inside Airflow only" in err
