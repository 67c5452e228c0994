"""An incident gonogo raises: who is called in what order, which answers count, the report's draft."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import EHR

from gonogo import load_file, load_text
from gonogo.core.calendar.times import WEEKDAYS
from gonogo.core.documents.incident import IncidentFacts, incident_markdown, timeline
from gonogo.core.earlylife import incident
from gonogo.core.earlylife.roster import call_order, most_calls, next_contact, on_standby
from gonogo.core.messages.notify import RunFacts, deliveries, render
from gonogo.core.runbook.model import Shift, Standby
from gonogo.errors import RunbookError
from gonogo.server.rules import form_refusal, only_with_refusal

OSLO = ZoneInfo("Europe/Oslo")
SEED_004 = Standby.model_validate(
    {
        "shifts": [
            {
                "role": "incident_manager",
                "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "start": "16:00",
                "end": "18:00",
                "next": "deputy",
            },
        ],
        "fallback": "system_owner",
    }
)

# -- who is called, in order ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "order"),
    [
        (datetime(2026, 12, 2, 17, tzinfo=OSLO), ["incident_manager", "deputy", "system_owner"]),
        (datetime(2026, 12, 2, 20, tzinfo=OSLO), ["system_owner"]),  # the fallback's own time
        (datetime(2026, 12, 5, 17, tzinfo=OSLO), ["system_owner"]),  # a Saturday
    ],
)
def test_the_call_order_is_standby_then_next_then_fallback(
    moment: datetime, order: list[str]
) -> None:
    assert call_order(SEED_004, moment, OSLO) == order
    assert most_calls(SEED_004) == 3


def test_a_shift_whose_next_is_the_fallback_calls_two() -> None:
    roster = Standby.model_validate(
        {
            "shifts": [{"role": "a", "days": ["monday"], "start": "08:00", "end": "16:00"}],
            "fallback": "b",
        }
    )
    assert call_order(roster, datetime(2026, 11, 30, 9, tzinfo=OSLO), OSLO) == ["a", "b"]
    assert most_calls(roster) == 2


_shift = st.builds(
    lambda role, nxt, days, start, end: Shift.model_validate(
        {"role": role, "next": nxt, "days": days, "start": start, "end": end}
    ),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from([None, "a", "b", "fallback"]),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True),
    st.sampled_from(["00:00", "06:00", "08:00", "16:00", "18:00", "22:30"]),
    st.sampled_from(["02:00", "08:00", "15:30", "18:00", "23:59"]),
)


@settings(max_examples=80, deadline=None)
@given(
    shifts=st.lists(_shift, max_size=4),
    minute=st.integers(min_value=0, max_value=8 * 24 * 60),
)
def test_every_moment_calls_the_standby_first_then_next_then_fallback_each_once(
    shifts: list[Shift], minute: int
) -> None:
    roster = Standby(shifts=shifts, fallback="fallback")
    moment = datetime(2026, 10, 19, tzinfo=OSLO) + timedelta(minutes=minute)  # DST week
    order = call_order(roster, moment, OSLO)
    assert order[0] == on_standby(roster, moment, OSLO)
    assert order[-1] == "fallback"
    assert len(order) == len(set(order))  # nobody is called twice
    assert next_contact(roster, moment, OSLO) in order
    if order[0] != next_contact(roster, moment, OSLO):
        assert order[1] == next_contact(roster, moment, OSLO)
    assert 1 <= len(order) <= most_calls(roster)  # the DAG always holds enough calls


# -- task ids and records ---------------------------------------------------------------------


@pytest.mark.parametrize("area", [None, "tech", "clinical_ops"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_call_and_report_ids_read_back(area: str | None, n: int) -> None:
    assert incident.parse_part(incident.call_task(n, area)) == incident.Part("call", area, n)
    assert incident.parse_part(incident.report_task(area, n)) == incident.Part("report", area, n)


@pytest.mark.parametrize("part", ["tech", "decide__tech", "call__", "call__tech", "chase", ""])
def test_other_parts_are_no_incident_task(part: str) -> None:
    assert incident.parse_part(part) is None


@pytest.mark.parametrize(
    ("report", "priority"),
    [
        ({"colour": "red", "incident": "P1"}, "P1"),
        ({"colour": "red", "incident": "P2"}, "P2"),
        ({"colour": "red", "incident": ""}, None),
        ({"colour": "red", "incident": None}, None),
        ({"colour": "red", "incident": "P3"}, None),  # P3/P4 are no P1/P2 incident
        ({"colour": "yellow", "incident": "P1"}, None),  # only a red raises one
        ({"colour": "red"}, None),
        (None, None),
    ],
)
def test_only_a_red_marked_p1_or_p2_raises_an_incident(
    report: object, priority: str | None
) -> None:
    assert incident.red_incident(report) == priority


def test_only_an_acknowledgement_by_a_member_of_the_called_role_counts() -> None:
    assert incident.counts("dba", ["dba", "per"])
    assert not incident.counts("relman", ["dba"])
    assert not incident.counts("", [""])
    calls = [{"role": "a", "acknowledged": False}, {"role": "b", "acknowledged": True, "by": "x"}]
    assert incident.acknowledged_by(calls) == calls[1]
    assert incident.acknowledged_by([None, {"role": "a", "acknowledged": "yes"}]) is None


# -- the area report's form -------------------------------------------------------------------

FORM = {
    "comment": {"value": "", "schema": {"type": ["string", "null"]}},
    "incident": {
        "value": "",
        "schema": {"type": "string", "enum": ["", "P1", "P2"], incident.ONLY_WITH: ["Red"]},
    },
}


@pytest.mark.parametrize(
    ("chosen", "value", "refused"),
    [
        (["Red"], "P1", False),
        (["Red"], "", False),
        (["Yellow"], "", False),
        (["Yellow"], "P2", True),
        (["Green"], "P1", True),
    ],
)
def test_a_priority_goes_only_with_red(chosen: list[str], value: str, refused: bool) -> None:
    reason = only_with_refusal(chosen, {"incident": value}, FORM)
    assert (reason is not None) == refused
    if refused:
        assert "goes only with Red" in str(reason) and "nothing was recorded" in str(reason)


def test_a_value_outside_the_fields_choices_is_refused_before_airflow_stores_it() -> None:
    assert form_refusal({"incident": "P2"}, FORM) is None
    reason = form_refusal({"incident": "P3"}, FORM)
    assert reason is not None and "must be one of" in reason and "'P3'" in reason


# -- the messages -----------------------------------------------------------------------------


def test_an_incident_call_addresses_the_called_role_with_the_deadline() -> None:
    runbook, _ = load_file(EHR)
    now = datetime(2026, 12, 2, 16, tzinfo=UTC)
    detail = {
        "what": "Technology reported red (database down)",
        "priority": "P1",
        "role": "system_owner",
        "users": ["svcowner"],
        "deadline": (now + timedelta(minutes=15)).isoformat(),
        "not_acknowledged": ["deployment_lead"],
        "address": ["system_owner"],
        "link": "http://airflow/required",
    }
    found = deliveries(runbook, "incident_call", detail)
    assert found and all("system_owner" in d.roles for d in found)
    message = render(
        "incident_call",
        RunFacts.of(runbook, "run_1"),
        detail,
        now,
        runbook=runbook,
        roles=["system_owner"],
    )
    assert message.title.startswith("INCIDENT P1: Technology reported red")
    assert "Acknowledge by 16:15 UTC, in 15 minutes." in message.body
    assert "Not acknowledged in time by: Deployment lead (DSL)." in message.body
    assert "http://airflow/required" in message.body


# -- the draft --------------------------------------------------------------------------------


def _facts(**changes: object) -> IncidentFacts:
    base: dict[str, object] = {
        "title": "EHR <4.2>",
        "change_id": "CHG1",
        "run_id": "run_1",
        "what": "Rollback failed: EHR",
        "priority": "P1",
        "raised_at": "2026-12-02T16:00:00+00:00",
        "number": "INC0010001",
        "happened": ["The rollback failed"],
        "decisions": ["GO/NOGO 2: GO for hospital by lise"],
        "timeline": [("2026-12-02T15:50:00+00:00", "step install finished")],
        "undone": ["backup_db"],
        "not_undone": ["install_app: undo failed"],
        "calls": [
            {
                "role": "a",
                "at": "2026-12-02T16:00:05+00:00",
                "acknowledged": False,
                "within": "1 minute",
            },
            {
                "role": "b",
                "at": "2026-12-02T16:01:20+00:00",
                "acknowledged": True,
                "by": "svcowner",
                "answered_at": "2026-12-02T16:01:40+00:00",
            },
        ],
    }
    return IncidentFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_the_draft_says_what_happened_decisions_calls_undone_and_a_timeline() -> None:
    text = incident_markdown(_facts())
    assert text.startswith("# Incident report (P1): Rollback failed: EHR")
    assert "EHR &lt;4.2&gt;" in text  # runbook text is escaped
    assert "incident INC0010001" in text
    assert "- GO/NOGO 2: GO for hospital by lise" in text
    assert "- a was called and did not acknowledge within 1 minute" in text
    assert "- b was called and acknowledged (svcowner, 2026-12-02 16:01:40 UTC)" in text
    assert "- undone: backup_db" in text and "- **not undone**: install_app: undo failed" in text
    rows = [line for line in text.splitlines() if line.startswith("| 2026")]
    assert [r.split(" | ")[1].rstrip(" |") for r in rows] == [
        "step install finished",
        "a called",
        "b called",
        "svcowner acknowledged",
    ]


def test_a_draft_sent_back_says_what_was_asked() -> None:
    text = incident_markdown(_facts(sent_back=["relman: name the root cause"]))
    assert "## Sent back earlier" in text and "- relman: name the root cause" in text


def test_an_answer_from_outside_the_role_is_named_as_not_counting() -> None:
    facts = _facts(calls=[{"role": "a", "refused_by": "intruder"}])
    assert "intruder answered but is not in the role" in incident_markdown(facts)
    assert timeline(facts) == list(facts.timeline)


def test_the_incident_manager_must_exist_where_p1_reports_are_approved() -> None:
    text = EHR.read_text().replace(
        "incident: {priority: P1}", "incident: {priority: P1, manager: boss}"
    )
    assert "manager: boss" in text
    _, problems = load_text(text, str(EHR))
    said = [str(p) for p in problems]
    assert any("'boss'" in p and "approves the P1/P2 incident report" in p for p in said), said


def test_a_roster_nobody_is_told_through_is_warned_about() -> None:
    text = EHR.read_text().replace(
        "[report_overdue, report_escalated, incident_call, incident_report]",
        "[report_overdue, report_escalated]",
    )
    _, problems = load_text(text, str(EHR))
    said = [str(p) for p in problems]
    assert any("no notify rule carries incident_call" in p for p in said), said
    _, problems = load_file(EHR)
    assert not any("incident_call" in str(p) for p in problems)


def test_a_phase_may_not_take_the_incident_groups_name() -> None:
    """The rollout's incident tasks are a group of that name; a phase of it would clash."""
    text = EHR.read_text().replace("  - id: preflight\n", "  - id: incident\n", 1)
    assert "  - id: incident\n" in text
    with pytest.raises(RunbookError, match=r"phases\[0\]\.id: 'incident' is a name gonogo uses"):
        load_text(text, str(EHR))


@pytest.mark.parametrize(
    ("task_id", "early_life", "report"),
    [
        ("incident.report", False, True),
        ("incident.report__2", False, True),
        ("install.report", False, False),  # a step that happens to be called report
        ("incident.call__1", False, False),
        ("d1_0600.report__technology", True, True),
        ("d1_0600.report__technology__2", True, True),
        ("d1_0600.report__technology", False, False),
        ("report", False, False),
    ],
)
def test_a_report_task_is_known_by_its_group(task_id: str, early_life: bool, report: bool) -> None:
    assert incident.is_report_task(task_id, early_life) is report


def test_a_comment_with_line_breaks_cannot_add_sections_to_the_draft() -> None:
    """A reporter's comment is one line of the draft, never a heading the manager would trust."""
    forged = "disk full\n\n## Who was called\n\n- everyone acknowledged"
    text = incident_markdown(
        _facts(
            what=f"Technology reported red ({forged})",
            happened=[f"dba reported red: {forged}"],
            decisions=[f"dsl: Decided by rm: {forged}"],
            sent_back=[f"rm: {forged}"],
        )
    )
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings.count("## Who was called") == 1, headings
    assert not any(line.startswith("- everyone") for line in text.splitlines())
    assert "disk full ## Who was called - everyone acknowledged" in text
