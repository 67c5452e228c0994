"""The change calendar (issue 25): the file, weekly windows across DST, freezes, collisions."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import RUNBOOKS

from gonogo.core.calendar.model import Calendar, load_calendar, load_calendar_text
from gonogo.core.calendar.rules import (
    Change,
    Planned,
    at_trigger,
    calendar_problems,
    collisions,
    depends_closure,
    related,
    window_findings,
)
from gonogo.core.calendar.times import Interval, Weekly, merge, overlapping_pairs
from gonogo.core.runbook.loader import load_files
from gonogo.errors import CalendarError

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 1, 1, tzinfo=UTC)

CALENDAR = """\
timezone: Europe/Oslo
maintenance:
  - id: ehr-weekly
    services: [ehr, ehr-db]
    environments: [prod]
    every: [tuesday]
    start: "20:00"
    end: "02:00"
    outside: error
  - id: portal-nightly
    services: [portal]
    every: day
    start: "23:00"
    end: "05:00"
freezes:
  - id: christmas
    start: 2026-12-18
    end: 2027-01-03
    reason: Reduced staffing
    environments: [prod]
    exception: {roles: [release_manager], timeout: 2h}
  - id: ehr-audit
    start: 2026-11-10T08:00:00+01:00
    end: 2026-11-10T23:00:00+01:00
    reason: External audit of the EHR
    services: [ehr]
depends:
  ehr: [ehr-db, lab]
  portal: [ehr]
"""


def calendar(text: str = CALENDAR) -> Calendar:
    return load_calendar_text(text, "calendar.yaml")


def oslo(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO)  # type: ignore[misc]


def change(
    service: str = "ehr",
    start: datetime | None = None,
    hours: float = 2,
    kind: str = "normal",
    environment: str = "prod",
    roles: frozenset[str] = frozenset({"release_manager"}),
    name: str = "rb",
) -> Change:
    begin = start or oslo(2026, 12, 1, 21, 0)  # a Tuesday evening
    window = Interval(begin, begin + timedelta(hours=hours))
    return Change(name, name, service, environment, kind, "CHG1", window, roles)


# -- the file --------------------------------------------------------------------------------------


def test_the_example_calendar_is_valid() -> None:
    found = load_calendar(RUNBOOKS / "calendar.yaml")
    assert {m.id for m in found.maintenance} == {"ehr-weekly", "portal-nightly"}
    assert found.freezes[0].exception is not None


def test_an_empty_calendar_has_nothing_in_it() -> None:
    assert calendar("# nothing planned yet\n") == Calendar()


@pytest.mark.parametrize(
    ("change_text", "where", "message"),
    [
        (
            ("    every: [tuesday]", "    evry: [tuesday]"),
            "6:5",
            "unknown key; did you mean 'every'?",
        ),
        (
            ('    start: "20:00"', "    start: 20:00"),
            "7:12",
            'write the time in quotes, like "20:00"',
        ),
        (('    end: "02:00"', '    end: "25:00"'), "8:10", "expected a local time like"),
        (("    every: [tuesday]", "    every: [tusday]"), "6:12", "did you mean 'tuesday'?"),
        (
            ("timezone: Europe/Oslo", "timezone: Europe/Olso"),
            "1:11",
            "unknown time zone 'Europe/Olso'",
        ),
        (
            ("timezone: Europe/Oslo", "timezone: ../../etc/passwd"),
            "1:11",
            "expected an IANA time zone",
        ),
        (
            ("    start: 2026-12-18\n", "    start: 2026-12-18T08:00:00\n"),
            "17:12",
            "needs its offset",
        ),
        (
            ("    end: 2027-01-03", "    end: 2026-12-01"),
            "18:10",
            "the freeze must end after it starts",
        ),
        (
            ("  - id: ehr-audit", "  - id: christmas"),
            "22:9",
            "id 'christmas' is already used on line 16",
        ),
        (("  portal: [ehr]", "  portal: [portal]"), "29:12", "a service cannot depend on itself"),
        (("    reason: Reduced staffing\n", ""), "16:5", "missing required key 'reason'"),
    ],
    ids=[
        "typo",
        "unquoted-time",
        "no-such-time",
        "weekday",
        "zone",
        "zone-path",
        "naive",
        "freeze-ends-first",
        "duplicate-id",
        "self-dependency",
        "missing",
    ],
)
def test_a_problem_in_the_calendar_is_located(
    change_text: tuple[str, str], where: str, message: str
) -> None:
    old, new = change_text
    assert old in CALENDAR
    with pytest.raises(CalendarError) as refused:
        calendar(CALENDAR.replace(old, new, 1))
    shown = [str(p) for p in refused.value.problems]
    assert any(p.startswith(f"calendar.yaml:{where}:") and message in p for p in shown), shown


def test_every_problem_is_reported_at_once() -> None:
    text = CALENDAR.replace("evry", "every").replace("    every: [tuesday]", "    evry: [tuesday]")
    text = text.replace("timezone: Europe/Oslo", "timezone: Mars/Olympus")
    with pytest.raises(CalendarError) as refused:
        calendar(text)
    assert len(refused.value.problems) >= 2


def test_a_calendar_file_with_an_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("depends:\n  a: &x [b]\n  c: *x\n")
    with pytest.raises(CalendarError, match="aliases"):
        load_calendar(path)


def test_a_freeze_of_dates_runs_from_the_start_of_the_first_day_to_the_end_of_the_last() -> None:
    span = calendar().span(calendar().freezes[0])
    assert span == Interval(oslo(2026, 12, 18, 0, 0), oslo(2027, 1, 4, 0, 0))


# -- weekly windows and daylight saving ------------------------------------------------------------


def test_an_overnight_window_ends_the_next_morning() -> None:
    weekly = calendar().weekly(calendar().maintenance[0])
    found = weekly.expand(Interval(oslo(2026, 12, 1, 0, 0), oslo(2026, 12, 9, 0, 0)))
    assert found == [
        Interval(oslo(2026, 12, 1, 20, 0), oslo(2026, 12, 2, 2, 0)),
        Interval(oslo(2026, 12, 8, 20, 0), oslo(2026, 12, 9, 2, 0)),
    ]


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 28), 5), (date(2026, 10, 24), 7), (date(2026, 10, 17), 6)],
    ids=["clocks-go-forward", "clocks-go-back", "ordinary-night"],
)
def test_a_window_across_a_daylight_saving_change_keeps_its_local_times(
    day: date, hours: int
) -> None:
    """Saturday 22:00-04:00 in Oslo: one hour shorter or longer in real time on those nights."""
    weekly = Weekly(frozenset({5}), time(22, 0), time(4, 0), OSLO)
    (night,) = weekly.expand(
        Interval(
            oslo(day.year, day.month, day.day, 12, 0), oslo(day.year, day.month, day.day, 23, 0)
        )
    )
    assert night.start.astimezone(OSLO).time() == time(22, 0)
    assert night.end.astimezone(OSLO).time() == time(4, 0)
    assert night.end - night.start == timedelta(hours=hours)


def test_a_local_time_the_clocks_skip_falls_an_hour_later_as_rfc_5545_reads_it() -> None:
    weekly = Weekly(frozenset({6}), time(2, 30), time(4, 0), OSLO)
    (night,) = weekly.expand(Interval(oslo(2026, 3, 29, 0, 0), oslo(2026, 3, 29, 12, 0)))
    assert night.start.astimezone(OSLO).time() == time(3, 30)
    assert night.end - night.start == timedelta(minutes=30)


ZONES = ["Europe/Oslo", "America/New_York", "Australia/Sydney", "UTC", "Asia/Kolkata"]
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


def exists(day: date, at: time, zone: ZoneInfo) -> bool:
    """Whether the wall clock in ``zone`` shows ``at`` on ``day`` (not skipped by DST)."""
    moment = datetime.combine(day, at, tzinfo=zone)
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment.replace(
        tzinfo=None
    )


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=clock,
    end=clock,
    first=st.dates(date(2025, 1, 1), date(2028, 12, 31)),
    length=st.integers(1, 40),
)
def test_every_occurrence_keeps_its_local_times_and_none_is_missing(
    zone: str, days: frozenset[int], start: time, end: time, first: date, length: int
) -> None:
    if start == end:
        return
    tz = ZoneInfo(zone)
    weekly = Weekly(days, start, end, tz)
    period = Interval(
        datetime.combine(first, time(12), tzinfo=tz),
        datetime.combine(first + timedelta(days=length), time(12), tzinfo=tz),
    )
    found = weekly.expand(period)
    for occurrence in found:
        local_start = occurrence.start.astimezone(tz)
        assert occurrence.overlaps(period)
        assert local_start.weekday() in days or not exists(local_start.date(), start, tz)
        if exists(local_start.date(), start, tz):
            assert local_start.time() == start
        last = local_start.date() + timedelta(days=1 if weekly.overnight else 0)
        if exists(last, end, tz):
            assert occurrence.end.astimezone(tz).time() == end
    # Complete: every day of the period whose window overlaps it is there, once.
    expected = [
        weekly.on(first + timedelta(days=n))
        for n in range(-1, length + 1)
        if (first + timedelta(days=n)).weekday() in days
        and weekly.on(first + timedelta(days=n)).overlaps(period)
    ]
    assert found == expected


# -- overlaps --------------------------------------------------------------------------------------

moments = st.integers(0, 40).map(lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m))
intervals = st.tuples(moments, st.integers(0, 10)).map(
    lambda t: Interval(t[0], t[0] + timedelta(minutes=t[1]))
)


@given(intervals, intervals)
def test_overlap_is_symmetric(a: Interval, b: Interval) -> None:
    assert a.overlaps(b) == b.overlaps(a)


@given(intervals, intervals)
def test_overlap_means_a_shared_moment(a: Interval, b: Interval) -> None:
    """Minute steps: two intervals overlap exactly when some minute lies in both."""

    def minutes_of(i: Interval) -> set[datetime]:
        if i.instant:
            return {i.start}
        count = int((i.end - i.start).total_seconds() // 60)
        return {i.start + timedelta(minutes=n) for n in range(count)}

    assert a.overlaps(b) == bool(minutes_of(a) & minutes_of(b))


@settings(max_examples=300)
@given(st.lists(intervals, max_size=25))
def test_the_sweep_finds_every_overlapping_pair_and_no_other(items: list[Interval]) -> None:
    brute = [
        (i, j)
        for i in range(len(items))
        for j in range(i + 1, len(items))
        if items[i].overlaps(items[j])
    ]
    assert overlapping_pairs(items) == brute


@given(st.lists(intervals.filter(lambda i: not i.instant), max_size=20))
def test_merged_intervals_cover_what_they_merge_and_nothing_touches(items: list[Interval]) -> None:
    union = merge(items)
    assert all(a.end < b.start for a, b in itertools.pairwise(union))
    assert all(any(i.within(piece) for piece in union) for i in items)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["ehr", "ehr-db", "lab", "portal", "other"]), intervals),
        max_size=12,
    )
)
def test_collisions_do_not_depend_on_the_order_of_the_runbooks(
    planned: list[tuple[str, Interval]],
) -> None:
    cal = calendar()
    changes = [
        Change(f"rb{n}", "t", service, "prod", "normal", "C", window)
        for n, (service, window) in enumerate(planned)
    ]

    def pairs(found: list[Any]) -> set[frozenset[str]]:
        return {frozenset({c.first.runbook, c.second.runbook}) for c in found}

    forward = pairs(collisions(cal, changes))
    assert forward == pairs(collisions(cal, changes[::-1]))
    closure = depends_closure(cal.depends)
    expected = {
        frozenset({a.runbook, b.runbook})
        for i, a in enumerate(changes)
        for b in changes[i + 1 :]
        if a.window.overlaps(b.window) and related(closure, a.service, b.service)
    }
    assert forward == expected


# -- the rules -------------------------------------------------------------------------------------


def test_a_change_inside_its_maintenance_window_is_fine() -> None:
    assert window_findings(calendar(), change()) == []


def test_a_normal_change_outside_a_strict_maintenance_window_is_an_error_with_the_next_fit() -> (
    None
):
    (finding,) = window_findings(calendar(), change(start=oslo(2026, 12, 2, 21, 0)))
    assert finding.kind == "outside_maintenance" and finding.severity == "error"
    assert "outside the maintenance windows of ehr in prod" in finding.message
    assert "ehr-weekly: Tuesday 20:00-02:00 Europe/Oslo" in finding.message
    assert "the next one it fits in is 2026-12-08 20:00 to 2026-12-09 02:00" in finding.message


def test_a_change_that_runs_past_the_end_of_the_window_is_outside_it() -> None:
    (finding,) = window_findings(calendar(), change(start=oslo(2026, 12, 2, 1, 0), hours=2))
    assert finding.kind == "outside_maintenance"


def test_outside_a_lenient_window_is_a_warning_and_an_emergency_is_never_an_error() -> None:
    (portal,) = window_findings(calendar(), change("portal", start=oslo(2026, 12, 2, 12, 0)))
    assert portal.severity == "warning"
    (hotfix,) = window_findings(
        calendar(), change(start=oslo(2026, 12, 2, 12, 0), kind="emergency")
    )
    assert (
        hotfix.severity == "warning"
        and "an emergency change may run outside them" in hotfix.message
    )


def test_a_service_without_maintenance_windows_may_change_any_time() -> None:
    assert window_findings(calendar(), change("lab", start=oslo(2026, 12, 2, 12, 0))) == []


def test_maintenance_windows_are_for_their_environments_only() -> None:
    assert (
        window_findings(calendar(), change(start=oslo(2026, 12, 2, 12, 0), environment="test"))
        == []
    )


@pytest.mark.parametrize("kind", ["standard", "normal"])
def test_a_planned_change_in_a_freeze_is_an_error(kind: str) -> None:
    (finding,) = window_findings(
        calendar(), change("lab", start=oslo(2026, 12, 22, 21, 0), kind=kind)
    )
    assert finding.kind == "in_freeze" and finding.severity == "error"
    assert (
        "falls in the freeze 'christmas' (2026-12-18 00:00 to 2027-01-04 00:00" in finding.message
    )
    assert "granted by release_manager" in finding.message


def test_an_emergency_change_in_a_freeze_needs_an_exception_at_trigger_time() -> None:
    (finding,) = window_findings(
        calendar(), change("lab", start=oslo(2026, 12, 22, 21, 0), kind="emergency")
    )
    assert finding.severity == "warning"
    assert "release_manager must grant the exception (GO) before any step runs" in finding.message


def test_an_emergency_change_whose_runbook_lacks_the_granting_role_is_an_error() -> None:
    (finding,) = window_findings(
        calendar(),
        change(
            "lab",
            start=oslo(2026, 12, 22, 21, 0),
            kind="emergency",
            roles=frozenset({"release_managr"}),
        ),
    )
    assert finding.severity == "error"
    assert "a role this runbook does not define; did you mean 'release_managr'?" in finding.message


def test_a_freeze_without_an_exception_stops_even_an_emergency() -> None:
    (finding,) = window_findings(
        calendar(), change(start=oslo(2026, 11, 10, 21, 0), kind="emergency")
    )
    assert (
        finding.severity == "error" and "names nobody who may grant an exception" in finding.message
    )


def test_freezes_are_for_their_services_and_environments_only() -> None:
    assert window_findings(calendar(), change("lab", start=oslo(2026, 11, 10, 12, 0))) == []
    assert (
        window_findings(
            calendar(), change("lab", start=oslo(2026, 12, 22, 21, 0), environment="test")
        )
        == []
    )


def test_a_change_that_ends_as_a_freeze_begins_is_not_in_it() -> None:
    assert window_findings(calendar(), change("lab", start=oslo(2026, 12, 17, 22, 0))) == []
    assert window_findings(calendar(), change("lab", start=oslo(2026, 12, 17, 22, 1)))


def test_dependencies_are_followed_through_other_services() -> None:
    closure = depends_closure(calendar().depends)
    assert closure["portal"] == {"ehr", "ehr-db", "lab"}
    assert related(closure, "lab", "portal") and related(closure, "portal", "lab")
    assert not related(closure, "ehr-db", "lab")  # both needed by ehr: siblings, not related


@pytest.mark.parametrize(
    ("other", "environment", "expected"),
    [
        ("ehr", "prod", "error"),
        ("ehr-db", "prod", "warning"),
        ("portal", "prod", "warning"),
        ("ehr", "test", None),
        ("other", "prod", None),
    ],
)
def test_overlapping_windows_collide_on_the_same_or_a_related_service(
    other: str, environment: str, expected: str | None
) -> None:
    first = change(name="a")
    second = change(other, start=oslo(2026, 12, 1, 22, 0), environment=environment, name="b")
    found = collisions(calendar(), [first, second])
    assert [c.severity for c in found] == ([expected] if expected else [])
    if found:
        assert found[0].shared == Interval(oslo(2026, 12, 1, 22, 0), oslo(2026, 12, 1, 23, 0))


# -- validate: problems on the runbook's window ---------------------------------------------------

RUNBOOK = """\
runbook: {id}
title: A change
service: {service}
environment: prod
change: {{id: CHG1, type: {kind}}}
roles:
  release_manager: {{users: [kari]}}
  ops: {{users: [ola]}}
window:
  start: "{start}"
  end: "{end}"
phases:
  - gate: go
    sign_off: [release_manager]
  - id: work
    steps:
      - {{id: s, bash: "true", read_only: true}}
"""


def planned(tmp_path: Path, *books: dict[str, str]) -> list[Planned]:
    files = []
    for book in books:
        values = {"service": "ehr", "kind": "normal", **book}
        path = tmp_path / f"{values['id']}.yaml"
        path.write_text(RUNBOOK.format(**values))
        files.append(path)
    loaded = load_files(files)
    assert all(item.runbook is not None for item in loaded), [item.problems for item in loaded]
    return [Planned(item.runbook, item.source) for item in loaded if item.runbook and item.source]


def test_calendar_problems_point_at_each_runbooks_window(tmp_path: Path) -> None:
    books = planned(
        tmp_path,
        {"id": "a", "start": "2026-12-01T21:00:00+01:00", "end": "2026-12-01T23:00:00+01:00"},
        {"id": "b", "start": "2026-12-01T22:00:00+01:00", "end": "2026-12-02T01:00:00+01:00"},
        {
            "id": "c",
            "start": "2026-12-22T21:00:00+01:00",
            "end": "2026-12-22T23:00:00+01:00",
            "service": "lab",
        },
    )
    shown = sorted(str(p) for p in calendar_problems(calendar(), books, NOW))
    a, b, c = (str(tmp_path / f"{n}.yaml") for n in "abc")
    assert shown == sorted(
        [
            f"{a}:9:1: window: the window overlaps the change 'b' ({b}:9:1) on ehr in prod: "
            "both planned for 2026-12-01 22:00 to 2026-12-01 23:00 Europe/Oslo",
            f"{b}:9:1: window: the window overlaps the change 'a' ({a}:9:1) on ehr in prod: "
            "both planned for 2026-12-01 22:00 to 2026-12-01 23:00 Europe/Oslo",
            f"{c}:9:1: window: 2026-12-22 21:00 to 2026-12-22 23:00 Europe/Oslo falls in the "
            "freeze 'christmas' (2026-12-18 00:00 to 2027-01-04 00:00 Europe/Oslo: Reduced "
            "staffing); only an emergency change may run in it, with an exception granted by "
            "release_manager",
        ]
    )


def test_a_window_that_has_ended_is_not_checked(tmp_path: Path) -> None:
    books = planned(
        tmp_path,
        {"id": "a", "start": "2026-12-22T21:00:00+01:00", "end": "2026-12-22T23:00:00+01:00"},
    )
    assert calendar_problems(calendar(), books, datetime(2027, 2, 1, tzinfo=UTC)) == []


# -- at trigger time -------------------------------------------------------------------------------


def test_at_trigger_a_normal_change_in_a_freeze_is_refused_with_the_reason() -> None:
    run = Interval(oslo(2026, 12, 22, 21, 0), oslo(2026, 12, 22, 22, 0))
    verdict = at_trigger(calendar(), change("lab"), run)
    assert verdict.refusal is not None and verdict.grant == ()
    assert "falls in the freeze 'christmas'" in verdict.refusal
    assert "Reduced staffing" in verdict.refusal


def test_at_trigger_an_emergency_in_a_freeze_needs_a_grant_from_the_freezes_roles() -> None:
    run = Interval(oslo(2026, 12, 22, 21, 0), oslo(2026, 12, 22, 21, 0))
    verdict = at_trigger(calendar(), change("lab", kind="emergency"), run)
    assert verdict.refusal is None
    assert verdict.grant == ("release_manager",)
    assert verdict.freeze == "christmas" and verdict.timeout == timedelta(hours=2)


def test_at_trigger_a_strict_maintenance_window_refuses_a_run_outside_it() -> None:
    run = Interval(oslo(2026, 12, 2, 12, 0), oslo(2026, 12, 2, 13, 0))
    verdict = at_trigger(calendar(), change(), run)
    assert verdict.refusal is not None and "outside the maintenance windows" in verdict.refusal
    lenient = at_trigger(calendar(), change("portal"), run)
    assert lenient.refusal is None and lenient.warnings


def test_at_trigger_an_instant_in_the_maintenance_window_is_inside_it() -> None:
    run = Interval(oslo(2026, 12, 1, 20, 0), oslo(2026, 12, 1, 20, 0))
    assert at_trigger(calendar(), change(), run) == at_trigger(calendar(), change(), run)
    assert at_trigger(calendar(), change(), run).refusal is None


def test_the_calendar_file_format_is_yaml_gonogo_reads_safely() -> None:
    with pytest.raises(CalendarError, match="could not determine a constructor"):
        calendar("timezone: !!python/name:os.system\n")
    assert yaml.safe_load(CALENDAR)  # the examples are plain YAML


def test_the_calendar_beside_the_runbooks_is_not_read_as_a_runbook(tmp_path: Path) -> None:
    from gonogo.core.runbook.loader import runbook_files

    (tmp_path / "team").mkdir()
    for name in ("calendar.yaml", "a.yaml", "team/calendar.yaml"):
        (tmp_path / name).write_text("x: 1\n")
    found = {p.relative_to(tmp_path).as_posix() for p in runbook_files([tmp_path])}
    assert found == {"a.yaml", "team/calendar.yaml"}  # only the top one is the calendar
    assert runbook_files([tmp_path / "calendar.yaml"]) == []


def test_the_readmes_calendar_is_a_valid_calendar() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The change calendar", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    found = load_calendar_text(block, "README.md")
    assert found.maintenance[0].outside == "error" and found.freezes[0].services == "all"
