"""What is planned in a period, and its views: Markdown, HTML, ICS (read back) and JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from tests.unit.test_calendar import CALENDAR, OSLO, calendar, change, oslo
from tests.unit.test_calendar_cli import run

from gonogo.core.calendar.listing import DEFAULT_DAYS, calendar_data, period_of, weeks
from gonogo.core.calendar.rules import Change
from gonogo.core.calendar.times import Interval
from gonogo.core.documents.calendar import (
    calendar_html,
    calendar_ics,
    calendar_json,
    calendar_markdown,
)
from gonogo.core.settings import CALENDAR_ENV

NOW = oslo(2026, 11, 30, 9, 0)
DECEMBER = Interval(oslo(2026, 11, 30, 0, 0), oslo(2027, 1, 4, 0, 0))


def planned() -> list[Change]:
    return [
        change(name="ehr-test", environment="test", start=oslo(2026, 12, 1, 21, 0)),
        change(name="ehr-prod", start=oslo(2026, 12, 8, 21, 0)),
        change("ehr-db", name="db-patch", start=oslo(2026, 12, 8, 22, 0)),
        change("lab", name="lab-xmas", start=oslo(2026, 12, 22, 21, 0), kind="emergency"),
        change(name="next-year", start=oslo(2027, 2, 2, 21, 0)),
    ]


def data(states: dict[str, str] | None = None) -> dict[str, Any]:
    return calendar_data(calendar(), planned(), DECEMBER, NOW, states)


def test_the_period_is_whole_days_in_the_calendars_zone_with_the_last_day_included() -> None:
    cal = calendar()
    assert period_of(cal, date(2026, 12, 1), date(2026, 12, 7), NOW) == Interval(
        oslo(2026, 12, 1, 0, 0), oslo(2026, 12, 8, 0, 0)
    )
    default = period_of(cal, None, None, NOW)
    assert default.start == oslo(2026, 11, 30, 0, 0)
    assert default.end - default.start == timedelta(days=DEFAULT_DAYS)
    with pytest.raises(ValueError, match="must end after it starts"):
        period_of(cal, date(2026, 12, 7), date(2026, 12, 1), NOW)


def test_the_period_lists_its_changes_windows_and_freezes_with_collisions_marked() -> None:
    found = data({"ehr-test": "success"})
    assert [c["runbook"] for c in found["changes"]] == [
        "ehr-test",
        "ehr-prod",
        "db-patch",
        "lab-xmas",
    ]
    by_id = {c["runbook"]: c for c in found["changes"]}
    assert by_id["ehr-test"]["state"] == "success"
    assert by_id["ehr-prod"]["state"] == "planned"
    assert by_id["ehr-prod"]["collides_with"] == ["db-patch"]
    assert by_id["db-patch"]["collides_with"] == ["ehr-prod"]
    assert found["collisions"] == [
        {
            "first": "ehr-prod",
            "second": "db-patch",
            "start": "2026-12-08T22:00:00+01:00",
            "end": "2026-12-08T23:00:00+01:00",
            "severity": "warning",
            "environment": "prod",
            "services": ["ehr", "ehr-db"],
        }
    ]
    (xmas,) = by_id["lab-xmas"]["findings"]
    assert xmas["kind"] == "in_freeze" and xmas["severity"] == "warning"
    assert [f["id"] for f in found["freezes"]] == ["christmas"]
    tuesdays = [m["start"] for m in found["maintenance"] if m["id"] == "ehr-weekly"]
    assert tuesdays == [f"2026-12-{d:02d}T20:00:00+01:00" for d in (1, 8, 15, 22, 29)]
    assert found["promotions"] == [
        {
            "change_id": "CHG1",
            "steps": [
                {
                    "environment": "test",
                    "runbook": "ehr-test",
                    "start": "2026-12-01T21:00:00+01:00",
                    "end": "2026-12-01T23:00:00+01:00",
                    "state": "success",
                },
                *[
                    {"environment": "prod", "runbook": r, "start": s, "end": e, "state": "planned"}
                    for r, s, e in [
                        ("ehr-prod", "2026-12-08T21:00:00+01:00", "2026-12-08T23:00:00+01:00"),
                        ("db-patch", "2026-12-08T22:00:00+01:00", "2026-12-09T00:00:00+01:00"),
                        ("lab-xmas", "2026-12-22T21:00:00+01:00", "2026-12-22T23:00:00+01:00"),
                    ]
                ],
            ],
        }
    ]


def test_a_window_that_has_passed_is_past_unless_a_run_says_more() -> None:
    found = calendar_data(calendar(), planned(), DECEMBER, oslo(2026, 12, 2, 12, 0))
    assert found["changes"][0]["state"] == "past"


def test_the_grid_has_whole_weeks_with_each_day_showing_what_starts_on_it_and_its_freezes() -> None:
    grid = weeks(data())
    assert [len(w) for w in grid] == [7] * 5
    assert grid[0][0]["date"] == "2026-11-30" and grid[-1][-1]["date"] == "2027-01-03"
    tuesday = grid[1][1]
    assert tuesday["date"] == "2026-12-08"
    assert [c["runbook"] for c in tuesday["changes"]] == ["ehr-prod", "db-patch"]
    assert all(c["collides"] for c in tuesday["changes"])
    assert [m["id"] for m in tuesday["maintenance"]] == ["ehr-weekly", "portal-nightly"]
    wednesday = grid[1][2]  # what starts on Tuesday evening shows on Tuesday only
    assert wednesday["changes"] == []
    assert [m["id"] for m in wednesday["maintenance"]] == ["portal-nightly"]
    assert grid[3][1]["freezes"] and not grid[2][1]["freezes"]
    short = Interval(oslo(2026, 12, 2, 0, 0), oslo(2026, 12, 10, 0, 0))
    padded = weeks(calendar_data(calendar(), planned(), short, NOW))
    assert [d["in_period"] for d in padded[0]] == [False, False, *[True] * 5]
    assert padded[0][1]["changes"] == [] and padded[0][1]["date"] == "2026-12-01"
    assert [d["in_period"] for d in padded[1]] == [True] * 3 + [False] * 4


def test_markdown_lists_everything_and_escapes_runbook_text() -> None:
    changes = [*planned(), change(name="odd", start=oslo(2026, 12, 3, 21, 0))]
    odd = changes[-1]
    changes[-1] = Change(
        odd.runbook, "<img src=x onerror=alert(1)> | x", *list(vars(odd).values())[2:]
    )
    text = calendar_markdown(calendar_data(calendar(), changes, DECEMBER, NOW))
    assert text.startswith("# Change calendar: 2026-11-30 to 2027-01-03 (Europe/Oslo)\n")
    assert "| 2026-12-08 21:00 to 23:00 | A change" not in text  # titles are the runbooks'
    assert "`ehr-prod`" in text and "**collides with db-patch**" in text
    assert "- **warning**: `ehr-prod` and `db-patch` on ehr, ehr-db in prod" in text
    assert "&lt;img src=x onerror=alert(1)&gt; \\| x" in text and "<img" not in text
    assert "- CHG1: test (`ehr-test`" in text


def test_html_shows_the_weeks_with_changes_coloured_by_type_and_state() -> None:
    page = calendar_html(
        data({"ehr-test": "success"}), ui_base="/", kjoreplan_route="gonogo-kjoreplan"
    )
    assert page.count('<tr class="week">') == 5
    assert 'class="chip change type-normal state-success" data-runbook="ehr-test"' in page
    assert 'class="chip change type-normal state-planned collides" data-runbook="ehr-prod"' in page
    assert 'class="chip change type-emergency state-planned" data-runbook="lab-xmas"' in page
    assert 'href="/dags/ehr-prod/plugin/gonogo-kjoreplan"' in page
    assert '<p class="problem warning collision">' in page
    assert "href=" not in calendar_html(data()).split("<body>")[1].split("<script>")[0]


def test_html_escapes_runbook_text() -> None:
    odd = change(name="odd")
    odd = Change(odd.runbook, "<script>alert(1)</script>", *list(vars(odd).values())[2:])
    page = calendar_html(calendar_data(calendar(), [odd], DECEMBER, NOW))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_the_ics_file_reads_back_with_every_change_window_and_freeze() -> None:
    found = data()
    parsed = icalendar.Calendar.from_ical(calendar_ics(found))
    events = {str(e["uid"]): e for e in parsed.walk("VEVENT")}
    assert str(parsed["prodid"]) == "-//gonogo//change calendar//EN"
    assert len(events) == len(found["changes"]) + len(found["freezes"]) + len(found["maintenance"])
    prod = events["change-ehr-prod@gonogo"]
    assert prod.decoded("dtstart") == datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
    assert prod.decoded("dtend") == oslo(2026, 12, 8, 23, 0)
    assert str(prod["summary"]) == "COLLISION: rb (ehr, prod; normal)".replace("rb", "ehr-prod")
    assert "Collides with db-patch." in str(prod["description"])
    assert [str(c) for c in prod["categories"].cats] == ["change", "normal"]
    freeze = events["freeze-christmas@gonogo"]
    assert freeze.decoded("dtstart") == oslo(2026, 12, 18, 0, 0)
    assert freeze.decoded("dtend") == oslo(2027, 1, 4, 0, 0)
    assert str(freeze["transp"]) == "TRANSPARENT"
    tuesday = events["maintenance-ehr-weekly-2026-12-08@gonogo"]
    assert tuesday.decoded("dtend") - tuesday.decoded("dtstart") == timedelta(hours=6)


def test_json_is_the_data_itself() -> None:
    assert json.loads(calendar_json(data())) == json.loads(json.dumps(data()))


# -- gonogo calendar -------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.unit.test_calendar import RUNBOOK

    monkeypatch.delenv(CALENDAR_ENV, raising=False)
    (tmp_path / "calendar.yaml").write_text(CALENDAR)
    for name, start, service in [
        ("ehr", "2026-12-08T21:00:00+01:00", "ehr"),
        ("db", "2026-12-08T22:00:00+01:00", "ehr"),
    ]:
        end = (datetime.fromisoformat(start) + timedelta(hours=2)).isoformat()
        (tmp_path / f"{name}.yaml").write_text(
            RUNBOOK.format(id=name, service=service, kind="normal", start=start, end=end)
        )
    (tmp_path / "broken.yaml").write_text("runbook: broken\n")
    return tmp_path


def test_gonogo_calendar_prints_the_period_in_markdown(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, err = run(
        capsys, "calendar", str(folder), "--from", "2026-12-07", "--to", "2026-12-13"
    )
    assert code == 0
    assert out.startswith("# Change calendar: 2026-12-07 to 2026-12-13 (Europe/Oslo)")
    assert "- **error**: `ehr` and `db` on ehr in prod: 2026-12-08 22:00 to 23:00" in out
    assert "1 runbook(s) are invalid and not listed" in err


def test_gonogo_calendar_writes_ics_that_reads_back(
    capsysbinary: pytest.CaptureFixture[bytes], folder: Path
) -> None:
    from gonogo.client.cli import main

    code = main(
        ["calendar", str(folder), "--from", "2026-12-07", "--to", "2026-12-13", "--format", "ics"]
    )
    assert code == 0
    parsed = icalendar.Calendar.from_ical(capsysbinary.readouterr().out)
    uids = sorted(str(e["uid"]) for e in parsed.walk("VEVENT"))
    assert uids[:2] == ["change-db@gonogo", "change-ehr@gonogo"]
    assert "maintenance-ehr-weekly-2026-12-08@gonogo" in uids


def test_gonogo_calendar_json_is_what_the_core_lists(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, _ = run(capsys, "calendar", str(folder), "--from", "2026-12-07", "--format", "json")
    found = json.loads(out)
    assert code == 0 and found["from"] == "2026-12-07T00:00:00+01:00"
    assert found["to"] == "2027-01-04T00:00:00+01:00"  # four weeks
    assert [c["runbook"] for c in found["changes"]] == ["ehr", "db"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "next week"], "expected a date like 2026-12-01"),
        (["--from", "2026-12-01T20:00:00"], "needs its offset"),
        (["--from", "2026-12-07", "--to", "2026-12-01"], "the period must end after it starts"),
        (["no/such/folder"], "no such file or directory"),
    ],
)
def test_gonogo_calendar_refuses_a_bad_period_with_a_usage_error(
    capsys: pytest.CaptureFixture[str], folder: Path, argv: list[str], message: str
) -> None:
    args = argv if argv[0] == "no/such/folder" else [str(folder), *argv]
    code, _out, err = run(capsys, "calendar", *args)
    assert code == 2 and message in err


def test_gonogo_calendar_stops_on_an_invalid_calendar(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    (folder / "calendar.yaml").write_text(CALENDAR.replace("Europe/Oslo", "Europe/Olso", 1))
    code, _out, err = run(capsys, "calendar", str(folder))
    assert code == 1 and "calendar.yaml:1:11: timezone: unknown time zone 'Europe/Olso'" in err


def test_gonogo_calendar_works_without_a_calendar_file(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    (folder / "calendar.yaml").unlink()
    code, out, _err = run(
        capsys, "calendar", str(folder), "--from", "2026-12-07", "--format", "json"
    )
    found = json.loads(out)
    assert code == 0 and found["timezone"] == "UTC" and found["maintenance"] == []
    assert OSLO.key not in out
