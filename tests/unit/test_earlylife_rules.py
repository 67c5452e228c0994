"""Early-life support: the ``early_life:`` section, its rounds, the standby roster, the colour."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import EHR

from gonogo import RunbookError, load_file, load_text
from gonogo.core.calendar.times import WEEKDAYS
from gonogo.core.earlylife import names
from gonogo.core.earlylife.roster import (
    covers,
    minute_of_week,
    next_contact,
    on_standby,
    overlapping,
)
from gonogo.core.earlylife.rounds import Slot, moment_of, rounds, slots, times_of
from gonogo.core.earlylife.status import Report, overall, report_from_detail, support
from gonogo.core.runbook.model import EarlyLife, Rounds, Shift, Standby

OSLO = ZoneInfo("Europe/Oslo")


def section(**changes: object) -> EarlyLife:
    base: dict[str, object] = {
        "lasts": "3d",
        "timezone": "Europe/Oslo",
        "coordinator": "lead",
        "areas": [{"id": "clinical", "role": "ward"}, {"id": "tech", "role": "ops"}],
        "reports": [{"days": "1-", "at_least": 4}],
        "standby": {"fallback": "owner"},
    }
    return EarlyLife.model_validate({**base, **changes})


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as info:
        load_text(text, "rb.yaml")
    return [str(p) for p in info.value.errors]


# -- the section ------------------------------------------------------------------------------


def test_the_flagship_example_plans_support_as_the_seed_does() -> None:
    runbook, _ = load_file(EHR)
    life = runbook.early_life
    assert life is not None
    assert life.lasts == timedelta(days=8)
    assert [m.days for m in life.meetings] == [(1, 1), (2, 4), (5, 5), (6, 8)]
    assert life.areas[1].meaning("red").startswith("A very large incident")
    assert life.areas[0].meaning("red").startswith("Great impact on our clinical work")


def test_an_unknown_role_in_the_section_is_located_with_a_suggestion() -> None:
    text = EHR.read_text().replace("      role: support_lead\n", "      role: suport_lead\n")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "suport_lead" in t)
    found = problems_of(text)
    assert len(found) == 1
    assert found[0].startswith(
        f"rb.yaml:{line}:13: early_life.areas[2].role: unknown role 'suport_lead'; "
        "did you mean 'support_lead'?"
    )


def test_two_entries_planning_the_same_day_are_refused() -> None:
    text = EHR.read_text().replace("{days: 5, every: 2h", "{days: 4, every: 2h")
    assert any(
        "early_life.meetings[2].days: days 4 overlap days 2-4 of meetings[1]" in p
        for p in problems_of(text)
    )


def test_overlapping_standby_shifts_are_refused() -> None:
    text = EHR.read_text().replace(
        "    fallback: system_owner\n",
        '      - {role: system_owner, days: [friday], start: "17:00", end: "08:00"}\n'
        "    fallback: system_owner\n",
    )
    assert any(
        "early_life.standby.shifts[1]: this shift covers some of the same times as shifts[0]" in p
        for p in problems_of(text)
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"days": 1}, "needs exactly one of at, every, at_least or cron; found none"),
        ({"days": 1, "at": ["09:00"], "every": "1h"}, "found at, every"),
        ({"days": "3-1", "at": ["09:00"]}, "ends before it starts"),
        ({"days": "0", "at": ["09:00"]}, "counted from 1"),
        ({"days": 1, "every": "1h", "between": ["18:00", "06:00"]}, "must end after it starts"),
    ],
)
def test_a_badly_written_cadence_is_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rounds.model_validate(entry)


# -- rounds -----------------------------------------------------------------------------------


def test_at_least_four_a_day_between_06_and_18_is_every_four_hours() -> None:
    entry = Rounds.model_validate({"days": 1, "at_least": 4})
    assert times_of(entry) == [time(6), time(10), time(14), time(18)]


def test_the_seed_meeting_schedule_changes_at_the_day_range_boundary() -> None:
    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    meetings = runbook.early_life.meetings
    found = slots(meetings, timedelta(days=8))
    per_day = {d: [s.at for s in found if s.day == d] for d in range(1, 10)}
    assert len(per_day[1]) == 7  # every two hours, 08-20
    assert len(per_day[4]) == 15  # every hour, 07-21
    assert len(per_day[5]) == 7
    assert per_day[6] == [time(9), time(15)]  # twice a day from day 6
    assert per_day[9] == []  # support of 8 days can touch day 9, but nothing is planned


def test_rounds_start_after_go_live_and_stop_at_the_end_of_support() -> None:
    start = datetime(2027, 1, 13, 11, 30, tzinfo=OSLO)  # after the 10:00 round
    found = rounds(
        [Rounds.model_validate({"days": "1-", "at_least": 4})], start, timedelta(days=1), OSLO
    )
    local = [r.at.astimezone(OSLO) for r in found]
    assert [(t.day, t.hour) for t in local] == [(13, 14), (13, 18), (14, 6), (14, 10)]


@pytest.mark.parametrize(
    ("start", "changed"),
    [
        (datetime(2026, 3, 28, 7, 0, tzinfo=OSLO), 2),  # the clocks go forward on 29 March
        (datetime(2026, 10, 24, 7, 0, tzinfo=OSLO), 2),  # and back on 25 October
    ],
)
def test_rounds_keep_their_local_times_across_a_daylight_saving_change(
    start: datetime, changed: int
) -> None:
    entries = [
        Rounds.model_validate({"days": 1, "at": ["09:00"]}),
        Rounds.model_validate({"days": "2-", "every": "6h", "between": ["06:00", "18:00"]}),
    ]
    found = rounds(entries, start, timedelta(days=2, hours=14), OSLO)
    local = [r.at.astimezone(OSLO) for r in found]
    assert [(t.day - start.day + 1, t.hour) for t in local] == [
        (1, 9),
        (2, 6),
        (2, 12),
        (2, 18),
        (3, 6),
        (3, 12),
        (3, 18),
    ]
    offsets = {r.at.astimezone(OSLO).utcoffset() for r in found}
    assert len(offsets) == changed  # the same wall-clock hours under two UTC offsets


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(OSLO)
    ),
    days=st.integers(1, 5),
    boundary=st.integers(2, 4),
    first=st.lists(st.integers(0, 23), min_size=1, max_size=4, unique=True),
    every=st.sampled_from(["1h", "2h", "3h"]),
)
def test_every_round_is_on_the_plan_of_its_own_day(
    start: datetime, days: int, boundary: int, first: list[int], every: str
) -> None:
    early = Rounds.model_validate(
        {"days": f"1-{boundary - 1}", "at": [f"{h:02d}:00" for h in first]}
    )
    late = Rounds.model_validate({"days": f"{boundary}-", "every": every})
    lasts = timedelta(days=days)
    found = rounds([early, late], start, lasts, OSLO)
    moments = [r.at for r in found]
    assert moments == sorted(set(moments))
    first_day = start.astimezone(OSLO).date()
    for item in found:
        local = item.at.astimezone(OSLO)
        day = (local.date() - first_day).days + 1
        assert item.slot.day == day
        plan = early if day < boundary else late
        assert local.time().replace(second=0, microsecond=0) in times_of(plan) or (
            moment_of(item.slot, start, OSLO) == item.at  # a time the clocks skipped
        )
        assert start <= item.at < start.astimezone(UTC) + lasts
    expected = [
        moment_of(s, start, OSLO)
        for s in slots([early, late], lasts)
        if start <= moment_of(s, start, OSLO) < start.astimezone(UTC) + lasts
    ]
    assert sorted(set(expected)) == moments  # two slots at one moment are one round


# -- the standby roster -----------------------------------------------------------------------

SEED_004 = Standby.model_validate(
    {
        "shifts": [
            {
                "role": "incident_manager",
                "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "start": "16:00",
                "end": "18:00",
                "next": "system_owner",
            },
        ],
        "fallback": "system_owner",
    }
)


@pytest.mark.parametrize(
    ("moment", "role"),
    [
        (datetime(2026, 12, 2, 16, 30, tzinfo=OSLO), "incident_manager"),  # Wednesday
        (datetime(2026, 12, 2, 18, 0, tzinfo=OSLO), "system_owner"),
        (datetime(2026, 12, 5, 17, 0, tzinfo=OSLO), "system_owner"),  # Saturday
    ],
)
def test_the_seed_roster_calls_by_time_of_day_and_day_of_week(moment: datetime, role: str) -> None:
    assert on_standby(SEED_004, moment, OSLO) == role


def test_the_next_contact_is_the_shifts_next_else_the_fallback() -> None:
    assert next_contact(SEED_004, datetime(2026, 12, 2, 17, tzinfo=OSLO), OSLO) == "system_owner"
    assert next_contact(SEED_004, datetime(2026, 12, 2, 20, tzinfo=OSLO), OSLO) == "system_owner"


_shift = st.builds(
    lambda role, days, start, end: Shift.model_validate(
        {"role": role, "days": days, "start": start, "end": end}
    ),
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True),
    st.sampled_from(["00:00", "06:00", "08:00", "16:00", "18:00", "22:30"]),
    st.sampled_from(["02:00", "08:00", "15:30", "18:00", "23:59"]),
)


@settings(max_examples=80, deadline=None)
@given(shifts=st.lists(_shift, max_size=4))
def test_every_moment_of_a_week_has_exactly_one_standby_contact(shifts: list[Shift]) -> None:
    roster = Standby(shifts=shifts, fallback="fallback")
    if overlapping(roster):  # gonogo validate refuses such a roster
        return
    monday = datetime(2026, 10, 19, tzinfo=OSLO)  # the week the clocks go back
    for minute in range(0, 7 * 24 * 60 + 60, 7):
        moment = (monday + timedelta(minutes=minute)).astimezone(UTC)
        covering = [s for s in shifts if covers(s, minute_of_week(moment, OSLO))]
        assert len(covering) <= 1
        expected = covering[0].role if covering else "fallback"
        assert on_standby(roster, moment, OSLO) == expected


def test_shifts_that_share_a_minute_are_found_including_over_sunday_night() -> None:
    roster = Standby.model_validate(
        {
            "shifts": [
                {"role": "a", "days": ["sunday"], "start": "22:00", "end": "06:00"},
                {"role": "b", "days": ["monday"], "start": "05:00", "end": "09:00"},
                {"role": "c", "days": ["monday"], "start": "09:00", "end": "10:00"},
            ],
            "fallback": "f",
        }
    )
    assert overlapping(roster) == [(0, 1)]


# -- the colour -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latest", "overdue", "colour"),
    [
        ({"a": "green", "b": "green"}, [], "green"),
        ({"a": "green", "b": "yellow"}, [], "yellow"),
        ({"a": "yellow", "b": "red"}, [], "red"),
        ({"a": "green", "b": None}, [], "yellow"),
        ({"a": "green", "b": "green"}, ["b"], "yellow"),
        ({"a": "red", "b": None}, ["b"], "red"),
    ],
)
def test_any_red_is_red_then_any_yellow_or_unknown_is_yellow(
    latest: dict[str, str | None], overdue: list[str], colour: str
) -> None:
    assert overall(latest, overdue).colour == colour


@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["green", "yellow", "red"])))
def test_the_overall_colour_is_the_worst_area(latest: dict[str, str]) -> None:
    rank = ["green", "yellow", "red"]
    worst = max(latest.values(), key=rank.index, default="green")
    assert overall(latest).colour == worst


def detail(task_id: str, option: str | None, comment: str = "", flag: bool = False) -> dict:
    return {
        "task_instance": {"task_id": task_id, "state": "success" if option else "awaiting_input"},
        "response_received": option is not None,
        "chosen_options": [option] if option else None,
        "params_input": {"comment": comment, names.NEEDS_DECISION: flag},
        "responded_by_user": {"id": "u", "name": "u"} if option else None,
        "responded_at": "2027-01-13T09:05:00+00:00" if option else None,
    }


def test_a_report_is_read_from_its_hitl_detail() -> None:
    found = report_from_detail(detail("d1_1000.tech", "Red", "DB slow", flag=True))
    assert found == Report(
        "tech", "d1_1000", "red", "DB slow", "u", "2027-01-13T09:05:00+00:00", True
    )
    assert report_from_detail(detail("d1_1000.opens", None)) is None
    assert report_from_detail(detail("start", None)) is None


def test_support_shows_latest_per_area_overdue_and_the_colour() -> None:
    life = section(reports=[{"days": "1-", "at": ["09:00", "12:00"]}], report_within="30m")
    start = datetime(2027, 1, 13, 8, 0, tzinfo=OSLO)
    reports = [
        report_from_detail(detail("d1_0900.clinical", "Green")),
        report_from_detail(detail("d1_0900.tech", "Yellow", "slow")),
        report_from_detail(detail("d1_1200.tech", "Red", "down", flag=True)),
    ]
    now = datetime(2027, 1, 13, 12, 45, tzinfo=OSLO)
    seen = support(life, start, [r for r in reports if r], now)
    assert [names.round_group(r.slot.day, r.slot.at) for r in seen.rounds] == ["d1_0900", "d1_1200"]
    assert seen.latest["tech"] and seen.latest["tech"].colour == "red"
    assert seen.overdue == [("d1_1200", "clinical")]
    assert seen.status.colour == "red"
    assert "clinical is overdue" in seen.status.reasons


def test_a_round_id_reads_back_as_its_slot() -> None:
    assert names.parse_round(names.round_group(12, time(6, 5))) == (12, time(6, 5))
    assert names.parse_round("d1_2460") is None
    assert names.parse_round("start") is None
    assert Slot(1, time(6)) < Slot(1, time(7)) < Slot(2, time(0))


# -- the status page's data, Markdown and HTML ------------------------------------------------


def test_the_status_document_shows_areas_by_rounds_latest_overdue_and_colour() -> None:
    from gonogo.core.documents.earlylife import support_data, support_html, support_markdown

    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    start = datetime(2027, 1, 13, 1, 30, tzinfo=UTC)  # 02:30 in Oslo
    reports = [
        Report("technology", "d1_0600", "red", "Database slow | failover", "dba", "t", True),
        Report("clinical", "d1_0600", "green", "", "wardrep", "t", False),
        Report("application", "d1_0600", "yellow", "Print queue stuck", "svcowner", "t", False),
    ]
    now = datetime(2027, 1, 13, 5, 45, tzinfo=UTC)  # 06:45: the 06:00 round is due at 06:30
    data = support_data(
        runbook, support(runbook.early_life, start, reports, now), now, "r", "running"
    )
    assert data["status"]["colour"] == "red"
    assert data["overdue"] == [
        {"round": "d1_0600", "area": "support", "title": "Support and service desk"}
    ]
    assert data["needs_decision"] == [
        {"area": "technology", "round": "d1_0600", "comment": "Database slow | failover"}
    ]
    assert data["active"] is True
    text = support_markdown(data)
    assert "**Overall: RED** (technology is red; application is yellow; support is overdue)" in text
    assert "| Wed 13 Jan 06:00 | green | YELLOW: Print queue stuck | **overdue** | " in text
    assert "RED (needs a decision): Database slow \\| failover |" in text
    page = support_html(data)
    assert 'id="overall" data-status="red"' in page
    assert 'data-area="technology" data-colour="red"' in page


# -- the DSL meeting agenda -------------------------------------------------------------------


def test_the_agenda_follows_the_seed_order_earlier_reds_moved_new_reds_yellows() -> None:
    from gonogo.core.earlylife.agenda import agenda, agenda_html, agenda_markdown, next_meeting

    life = section(
        reports=[{"days": "1-", "at": ["09:00", "11:00"]}],
        meetings=[{"days": "1-", "at": ["10:00", "12:00"]}],
    )
    start = datetime(2027, 1, 13, 8, 0, tzinfo=OSLO)

    def at(hour: int, minute: int = 5) -> str:
        return datetime(2027, 1, 13, hour, minute, tzinfo=OSLO).isoformat()

    reports = [
        Report("clinical", "d1_0900", "red", "Lab orders lost", "u", at(9), True),
        Report("tech", "d1_0900", "yellow", "Slow login", "u", at(9), False),
        Report("clinical", "d1_1100", "yellow", "Workaround in place", "u", at(11), False),
        Report("tech", "d1_1100", "red", "Database down", "u", at(11), True),
    ]
    noon = datetime(2027, 1, 13, 12, 0, tzinfo=OSLO)
    assert next_meeting(life, start, datetime(2027, 1, 13, 10, 30, tzinfo=OSLO)) == noon
    found = agenda(life, start, reports, noon)
    points = {p["number"]: p for p in found["points"]}
    assert [p["number"] for p in found["points"]] == list(range(1, 12))
    assert points[1]["question"].startswith("Earlier red events")
    earlier = points[1]["items"]
    assert [(i["area"], i["now"], i["moved"]) for i in earlier] == [("clinical", "yellow", True)]
    assert [i["area"] for i in points[2]["items"]] == ["tech"]
    assert [i["area"] for i in points[3]["items"]] == ["tech"]  # red and needs a decision
    assert [(i["area"], i["now"]) for i in points[5]["items"]] == [("tech", "red")]
    assert [i["area"] for i in points[6]["items"]] == ["clinical"]
    text = agenda_markdown(found, "EHR go-live")
    assert text.index("1. Earlier red events") < text.index("2. New red events")
    assert "   - tech: red, needs a decision: Database down" in text
    page = agenda_html({**found, "title": "EHR go-live", "run_id": "r"})
    assert '<li data-point="1">Earlier red events' in page
    assert "(has not moved)" not in page  # the earlier red moved to yellow
    # At the first meeting nothing is earlier: the 09:00 red is new.
    first = agenda(life, start, reports, datetime(2027, 1, 13, 10, 0, tzinfo=OSLO))
    assert first["points"][0]["items"] == []
    assert [i["area"] for i in first["points"][1]["items"]] == ["clinical"]


def test_the_readme_example_of_the_section_is_valid() -> None:
    import yaml
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\nearly_life:", 1)[1].split("```", 1)[0]
    life = EarlyLife.model_validate(yaml.safe_load("early_life:" + block)["early_life"])
    assert life.standby.fallback == "system_owner"
    assert times_of(life.reports[0]) == [time(6), time(10), time(14), time(18)]


def test_a_forums_answer_is_a_row_of_the_decision_log() -> None:
    from gonogo.core.documents.earlylife import support_data, support_markdown
    from gonogo.core.earlylife.status import decision_from_detail

    forums = ["dsl", "lgv"]
    answered = detail("d1_1000.decide__tech", "Escalate", "Needs the care leadership")
    answered["params_input"].update(owner="relman", due="14:00")
    row = decision_from_detail(answered, forums)
    assert row is not None
    assert (row.area, row.forum, row.decision, row.owner, row.due, row.escalated_to) == (
        "tech",
        "dsl",
        "Escalate",
        "relman",
        "14:00",
        "lgv",
    )
    last = decision_from_detail(detail("d1_1000.decide__tech__2", "Decided", "Roll back"), forums)
    assert last is not None and (last.forum, last.escalated_to) == ("lgv", "")
    assert decision_from_detail(detail("d1_1000.tech", "Red"), forums) is None
    assert report_from_detail(answered) is None  # a decision is no status report
    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    start = datetime(2027, 1, 13, 8, 0, tzinfo=OSLO)
    seen = support(runbook.early_life, start, [], start)
    text = support_markdown(support_data(runbook, seen, start, "r", "running", [row, last]))
    assert (
        "| d1_1000 | tech | dsl | Escalate: Needs the care leadership | relman | 14:00 | u | lgv |"
        in text
    )


# -- cron cadences ----------------------------------------------------------------------------


def test_a_cron_cadence_names_the_times_of_its_minute_and_hour_fields() -> None:
    entry = Rounds.model_validate({"days": "1-", "cron": "0 6-18/2 * * *"})
    assert times_of(entry) == [time(h) for h in range(6, 19, 2)]
    assert times_of(Rounds.model_validate({"days": 1, "cron": "15,45 9 * * *"})) == [
        time(9, 15),
        time(9, 45),
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 6 * *", "expected a cron expression of 5 fields"),
        ("0 0 6 * * *", "expected a cron expression of 5 fields"),  # croniter's seconds field
        ("@daily", "expected a cron expression of 5 fields"),
        ("0 25 * * *", "is not a cron expression croniter reads"),
        ("0 6 * * funday", "is not a cron expression croniter reads"),
        ("*/10 * * * *", "makes 144 rounds a day; at most 48"),
        ("0,3 9 * * *", "makes rounds 3 minutes apart; they must be at least 5m apart"),
        ("2,58 0,23 * * *", "makes rounds 4 minutes apart"),  # 23:58, then 00:02 the next day
    ],
)
def test_a_bad_cron_cadence_is_refused_with_its_reason(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rounds.model_validate({"days": 1, "cron": expression})


def test_cron_and_between_do_not_mix() -> None:
    with pytest.raises(ValueError, match="between applies to every and at_least, not to cron"):
        Rounds.model_validate({"days": 1, "cron": "0 9 * * *", "between": ["06:00", "18:00"]})


def test_a_bad_cron_in_a_runbook_is_located_in_the_file() -> None:
    text = EHR.read_text().replace(
        '{days: "6-8", at: ["09:00", "15:00"]}', '{days: "6-8", cron: "*/2 9 * * *"}'
    )
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "*/2 9 * * *" in t)
    found = problems_of(text)
    assert len(found) == 1
    assert found[0].startswith(f"rb.yaml:{line}:")
    assert "early_life.meetings[3].cron: " in found[0]
    assert "makes rounds 2 minutes apart" in found[0]


def test_a_weekday_cron_skips_the_weekend_and_keeps_cron_s_day_or_weekday_rule() -> None:
    start = datetime(2027, 1, 29, 7, 0, tzinfo=OSLO)  # a Friday
    weekdays = [Rounds.model_validate({"days": "1-", "cron": "0 9 * * mon-fri"})]
    found = rounds(weekdays, start, timedelta(days=5), OSLO)
    assert [r.at.astimezone(OSLO).strftime("%a %d") for r in found] == [
        "Fri 29",
        "Mon 01",
        "Tue 02",  # support ends Wednesday at 07:00
    ]
    assert [r.slot.day for r in found] == [1, 4, 5]
    # Day of month and weekday both restricted: either one matches (the 1st, and Mondays).
    either = [Rounds.model_validate({"days": "1-", "cron": "0 9 1 * fri"})]
    found = rounds(either, start, timedelta(days=8), OSLO)
    assert [r.at.astimezone(OSLO).strftime("%a %d") for r in found] == [
        "Fri 29",
        "Mon 01",
        "Fri 05",
    ]


#: The same cadence, 06, 12 and 18 local time, written in each kind.
SAME_CADENCE = [
    {"at": ["06:00", "12:00", "18:00"]},
    {"every": "6h", "between": ["06:00", "18:00"]},
    {"at_least": 3},
    {"cron": "0 6-18/6 * * *"},
]


@pytest.mark.parametrize("kind", SAME_CADENCE, ids=lambda k: next(iter(k)))
@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 3, 28, 7, 0, tzinfo=OSLO),  # the clocks go forward on Sunday 29 March
        datetime(2026, 10, 24, 7, 0, tzinfo=OSLO),  # and back on Sunday 25 October
        datetime(2027, 3, 27, 7, 0, tzinfo=OSLO),  # 28 March 2027
        datetime(2027, 10, 30, 7, 0, tzinfo=OSLO),  # 31 October 2027
    ],
)
def test_every_kind_of_cadence_keeps_its_local_times_across_the_day_range_and_dst(
    kind: dict[str, object], start: datetime
) -> None:
    entries = [
        Rounds.model_validate({"days": 1, "at": ["09:00"]}),
        Rounds.model_validate({"days": "2-", **kind}),
    ]
    found = rounds(entries, start, timedelta(days=2, hours=14), OSLO)
    local = [r.at.astimezone(OSLO) for r in found]
    assert [((t.date() - start.date()).days + 1, t.hour) for t in local] == [
        (1, 9),
        (2, 6),
        (2, 12),
        (2, 18),
        (3, 6),
        (3, 12),
        (3, 18),
    ]
    assert len({t.utcoffset() for t in local}) == 2  # one wall clock under two UTC offsets


def _cron_fires(expression: str, day: datetime) -> list[time]:
    """The wall-clock times croniter itself steps through on ``day``: the oracle for cron."""
    from croniter import croniter

    found = []
    walker = croniter(expression, day - timedelta(seconds=1))
    while (step := walker.get_next(datetime)) < day + timedelta(days=1):
        found.append(step.time())
    return found


_KIND = st.sampled_from(
    [
        {"at": ["00:30", "02:30", "09:00"]},
        {"every": "3h"},
        {"every": "90m", "between": ["01:00", "04:00"]},
        {"at_least": 5, "between": ["01:00", "21:00"]},
        {"cron": "30 2 * * *"},
        {"cron": "0 1-4 * * sat,sun"},
        {"cron": "15 */6 1-7 * mon"},
        {"cron": "0 9,15 * * mon-fri"},
    ]
)
_DST_DAYS = [datetime(2026, 3, 29), datetime(2026, 10, 25), datetime(2027, 3, 28)]


@settings(max_examples=80, deadline=None)
@given(
    around=st.sampled_from(_DST_DAYS),
    offset=st.integers(-3 * 24, 24),  # hours before or after the night the clocks change
    boundary=st.integers(2, 4),
    early=_KIND,
    late=_KIND,
    days=st.integers(1, 5),
)
def test_a_cadence_of_any_kind_yields_its_rounds_across_a_day_range_boundary_and_dst(
    around: datetime,
    offset: int,
    boundary: int,
    early: dict[str, object],
    late: dict[str, object],
    days: int,
) -> None:
    start = (around + timedelta(hours=offset)).replace(tzinfo=OSLO)
    plans = [
        Rounds.model_validate({"days": f"1-{boundary - 1}", **early}),
        Rounds.model_validate({"days": f"{boundary}-", **late}),
    ]
    lasts = timedelta(days=days)
    found = rounds(plans, start, lasts, OSLO)
    # The oracle: each calendar day of support, the times its plan names on that date
    # (cron's by croniter's own stepping, not by the fields the DAG holds), as moments.
    first_day = start.astimezone(OSLO).date()
    expected: dict[datetime, int] = {}
    for day in range(1, days + 2):
        date = first_day + timedelta(days=day - 1)
        plan = plans[0] if day < boundary else plans[1]
        midnight = datetime.combine(date, time(0))
        named = _cron_fires(plan.cron, midnight) if plan.cron else times_of(plan)
        for at in named:
            moment = datetime.combine(date, at, tzinfo=OSLO).astimezone(UTC)
            if start <= moment < start.astimezone(UTC) + lasts:
                expected.setdefault(moment, day)
    assert [r.at for r in found] == sorted(expected)
    assert [r.slot.day for r in found] == [expected[r.at] for r in found]


# -- a meeting's decision log -----------------------------------------------------------------


def log_answer(option: str, *rows: dict[str, str], forums: tuple[str, ...] = ("dsl",)) -> dict:
    """An answer to a meeting's log as the form sends it: every field, empty where unused."""
    from gonogo.core.earlylife.meetinglog import log_form

    answer = {name: spec["default"] for name, spec in log_form(list(forums)).items()}
    answer["comment"] = ""
    for n, row in enumerate(rows, start=1):
        answer.update({names.log_field(part, n): value for part, value in row.items()})
    return {"chosen_options": [option], "params_input": answer}


def test_the_meeting_form_has_rows_of_plain_fields_and_a_drop_down_of_the_forums() -> None:
    from gonogo.core.earlylife.meetinglog import log_form

    form = log_form(["dsl", "lgv"])
    assert len(form) == names.LOG_ROWS * 4
    assert form["escalated_to_1"]["enum"] == ["none", "dsl", "lgv"]
    assert {form[f"{p}_2"]["section"] for p in names.LOG_PARTS} == {"Decision 2"}
    assert all(spec["type"] != "array" and spec["type"] != "object" for spec in form.values())
    assert "escalated_to_1" not in log_form([])  # no forum named: nothing to escalate to


@pytest.mark.parametrize(
    ("option", "rows", "message"),
    [
        (
            "Logged",
            [{"decision": "Open the extra ward", "owner": ""}],
            "decision 1 (owner_1) needs who",
        ),
        ("Logged", [{"decision": "", "owner": "dba", "due": "22:00"}], "(decision_1) needs what"),
        ("Logged", [{"decision": "…", "owner": "dba"}], "(decision_1) needs what was decided"),
        ("Logged", [], "Logged needs at least one decision"),
        ("No decisions", [{"decision": "Roll back", "owner": "rm"}], "choose 'Logged' to log it"),
    ],
)
def test_a_meeting_log_without_a_decision_or_owner_is_refused(
    option: str, rows: list[dict[str, str]], message: str
) -> None:
    from gonogo.core.earlylife.meetinglog import log_refusal

    sent = log_answer(option, *rows)
    refused = log_refusal(sent["chosen_options"], sent["params_input"])
    assert refused is not None and message in refused
    assert refused.endswith("nothing was recorded")


def test_a_meeting_log_reads_back_as_rows_of_the_one_decision_log() -> None:
    from gonogo.core.earlylife.meetinglog import log_refusal
    from gonogo.core.earlylife.status import decisions_from_request
    from gonogo.core.runs.records import Request

    sent = log_answer(
        "Logged",
        {"decision": "Extra staff at the service desk", "owner": "desk", "due": "Friday"},
        {"decision": "Ask for a second database", "owner": "dba", "escalated_to": "dsl"},
    )
    assert log_refusal(sent["chosen_options"], sent["params_input"]) is None
    assert log_refusal(*log_answer("No decisions").values()) is None
    answered = detail("m1_1000.log", "Logged")
    answered["params_input"] = sent["params_input"]
    rows = decisions_from_request(Request.from_detail(answered), ["dsl"])
    assert [(r.round, r.forum, r.text, r.owner, r.due, r.escalated_to) for r in rows] == [
        ("m1_1000", "meeting", "Extra staff at the service desk", "desk", "Friday", ""),
        ("m1_1000", "meeting", "Ask for a second database", "dba", "", "dsl"),
    ]
    assert {r.by for r in rows} == {"u"} and rows[0].at == "2027-01-13T09:05:00+00:00"
    waiting = detail("m1_1000.log", None)
    assert decisions_from_request(Request.from_detail(waiting), ["dsl"]) == []
    assert report_from_detail(answered) is None  # a meeting's log is no status report
    red = decisions_from_request(Request.from_detail(detail("d1_1000.decide__tech", None)), [])
    assert len(red) == 1 and red[0].decision == ""  # an open red decision stays in the log


def test_the_agenda_and_the_status_show_one_log_of_the_forums_and_the_meetings_decisions() -> None:
    from gonogo.core.documents.earlylife import support_data, support_html, support_markdown
    from gonogo.core.earlylife.agenda import agenda, agenda_html, agenda_markdown
    from gonogo.core.earlylife.status import Decision

    life = section(
        reports=[{"days": "1-", "at": ["09:00"]}],
        meetings=[{"days": "1-", "cron": "0 10,12 * * *"}],  # meetings accept cron too
        escalate_to=["dsl"],
    )
    start = datetime(2027, 1, 13, 8, 0, tzinfo=OSLO)

    def at(hour: int, minute: int) -> str:
        return datetime(2027, 1, 13, hour, minute, tzinfo=OSLO).isoformat()

    red = Decision(
        "tech", "d1_0900", "dsl", "Decided", "Fail over", "dba", "22:00", "rm", at(9, 30), ""
    )
    meeting = Decision(
        "", "m1_1000", "meeting", "Logged", "More desk staff", "desk", "", "rm", at(10, 20), "dsl"
    )
    later = Decision("", "m1_1200", "meeting", "Logged", "Close", "rm", "", "rm", at(12, 30), "")
    reports = [Report("tech", "d1_0900", "red", "DB slow", "dba", at(9, 5), True)]
    ten = datetime(2027, 1, 13, 10, 0, tzinfo=OSLO)
    found = agenda(life, start, reports, ten, [later, meeting, red])
    assert found["meeting_group"] == "m1_1000"
    # This meeting's own log shows once it is recorded; a later meeting's does not.
    assert [(d["round"], d["title"]) for d in found["decisions"]] == [
        ("d1_0900", "tech"),
        ("m1_1000", "Meeting day 1 10:00"),
    ]
    text = agenda_markdown(found, "go-live")
    assert "## Decision log" in text
    assert (
        "| m1_1000 | Meeting day 1 10:00 | meeting | Logged: More desk staff | desk |  | rm | dsl |"
        in text
    )
    assert "| d1_0900 | tech | dsl | Decided: Fail over | dba | 22:00 | rm |  |" in text
    page = agenda_html({**found, "title": "go-live", "run_id": "r"})
    assert 'data-forum="meeting" data-round="m1_1000"' in page
    noon = agenda(
        life, start, reports, datetime(2027, 1, 13, 12, 0, tzinfo=OSLO), [later, meeting, red]
    )
    assert [d["round"] for d in noon["decisions"]] == ["d1_0900", "m1_1000", "m1_1200"]
    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    seen = support(runbook.early_life, start, [], start)
    status = support_data(runbook, seen, start, "r", "running", [meeting, red])
    assert [d["forum"] for d in status["decisions"]] == ["dsl", "meeting"]
    assert (
        "| m1_1000 | Meeting day 1 10:00 | meeting | Logged: More desk staff |"
        in support_markdown(status)
    )
    page = support_html(status)
    assert 'id="agenda" href="ehr-upgrade-4-2.early_life/agenda?run_id=r"' in page
    assert 'data-forum="meeting" data-round="m1_1000"' in page


# -- what a reporter or the coordinator types stays text in the Markdown pages -----------------

_TAG = "<img src=x onerror=alert(1)>"
_LINES = "fine\n\n# All green, approved by the incident manager"


def test_a_comment_or_a_decisions_fields_never_become_markup_in_the_status_markdown() -> None:
    from gonogo.core.documents.earlylife import support_data, support_markdown
    from gonogo.core.earlylife.status import Decision

    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    start = datetime(2027, 1, 13, 1, 30, tzinfo=UTC)
    reports = [Report("technology", "d1_0600", "red", f"{_TAG}{_LINES}", "dba", "t", True)]
    logged = Decision(
        "", "m1_1000", "meeting", "Logged", _LINES, "<script>x</script>", _TAG, "rm", "t", ""
    )
    now = datetime(2027, 1, 13, 5, 45, tzinfo=UTC)
    seen = support(runbook.early_life, start, reports, now)
    text = support_markdown(support_data(runbook, seen, now, "r", "running", [logged]))
    assert "<img" not in text and "<script" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\n# All green" not in text  # a comment is one cell, never a heading of the page


def test_a_comment_never_becomes_markup_in_the_agenda_markdown() -> None:
    from gonogo.core.earlylife.agenda import agenda, agenda_markdown

    life = section(
        reports=[{"days": "1-", "at": ["09:00"]}],
        meetings=[{"days": "1-", "at": ["10:00"]}],
    )
    start = datetime(2027, 1, 13, 8, 0, tzinfo=OSLO)
    at = datetime(2027, 1, 13, 9, 5, tzinfo=OSLO).isoformat()
    reports = [Report("tech", "d1_0900", "red", f"{_TAG}{_LINES}", "u", at, True)]
    found = agenda(life, start, reports, datetime(2027, 1, 13, 10, 0, tzinfo=OSLO))
    text = agenda_markdown(found, "<b>go-live</b>")
    assert "<img" not in text and "<b>" not in text
    assert "\n# All green" not in text
