"""The communication plan's words: who hears what, and messages a person can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.conftest import EHR

from gonogo.core.messages.notify import RunFacts, deadline_text, deliveries, recipients, render
from gonogo.core.runbook.loader import load_file
from gonogo.core.runbook.model import EVENTS
from gonogo.core.timing.clock import in_words

NOW = datetime(2026, 12, 5, 14, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def ehr():
    runbook, _ = load_file(EHR)
    return runbook


def facts(ehr) -> RunFacts:
    return RunFacts.of(
        ehr, "manual__2026-12-05", "http://airflow.example/dags/ehr/runs/r1", "operator"
    )


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(seconds=30), "less than a minute"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=24, seconds=50), "24 minutes"),
        (timedelta(hours=1, minutes=24), "1 hour 24 minutes"),
        (timedelta(days=2, hours=3, minutes=5), "2 days 3 hours"),
    ],
)
def test_a_wait_is_said_in_words(delta: timedelta, words: str) -> None:
    assert in_words(delta) == words


def test_a_deadline_is_given_as_a_clock_time_and_a_wait() -> None:
    deadline = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
    assert deadline_text(deadline, NOW) == "answer by 14:30 UTC, in 24 minutes"


def test_a_deadline_on_another_day_names_the_day() -> None:
    assert deadline_text(NOW + timedelta(days=1), NOW).startswith("answer by Sun 06 Dec 14:06 UTC")


def test_a_passed_deadline_says_so() -> None:
    assert (
        deadline_text(NOW - timedelta(minutes=1), NOW) == "the time to answer ran out at 14:05 UTC"
    )


def test_gate_waiting_asks_the_role_with_deadline_and_both_links(ehr) -> None:
    message = render(
        "gate_waiting",
        facts(ehr),
        {
            "gate": "go_nogo_2",
            "role": "hospital",
            "users": ["wardrep"],
            "deadline": "2026-12-05T14:30:00+00:00",
            "link": "http://airflow.example/dags/ehr/runs/r1/tasks/t/required_actions?map_index=-1",
        },
        NOW,
        runbook=ehr,
        roles=["hospital"],
    )
    assert message.title == (
        "GO/NOGO 2, 30 minutes before start waits for Hospital representative: "
        "EHR 4.2 upgrade in production"
    )
    body = message.body
    assert "change CHG0034512, normal, prod" in body
    assert "asks the Hospital representative (wardrep) for GO or NOGO" in body
    assert "Answer by 14:30 UTC, in 24 minutes. No answer in time counts as NOGO." in body
    assert "Answer here: http://airflow.example/dags/ehr/runs/r1/tasks/t/required_actions" in body
    assert "The run: http://airflow.example/dags/ehr/runs/r1" in body
    assert body.startswith("For: Hospital representative")


def test_nogo_names_who_and_why(ehr) -> None:
    message = render(
        "gate_decided",
        facts(ehr),
        {
            "gate": "go_nogo_3",
            "decision": "NOGO",
            "by": "wardrep",
            "role": "hospital",
            "comment": "ward view is empty",
        },
        NOW,
        runbook=ehr,
    )
    assert message.title.startswith("GO/NOGO 3, after the production test: NOGO")
    assert (
        "wardrep said NOGO for the Hospital representative: \u201cward view is empty\u201d"
        in message.body
    )
    assert message.severity == "failure"


def test_gate_expiring_names_the_silent_roles_and_links_each_request(ehr) -> None:
    message = render(
        "gate_expiring",
        facts(ehr),
        {
            "gate": "go_nogo_2",
            "silent_roles": ["hospital"],
            "deadline": "2026-12-05T14:12:00+00:00",
            "links": {"hospital": "http://x/req"},
        },
        NOW,
        runbook=ehr,
    )
    assert "no answer yet from: Hospital representative" in message.body
    assert "Answer by 14:12 UTC, in 6 minutes" in message.body
    assert "Answer for Hospital representative: http://x/req" in message.body


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_has_words_with_the_change_and_the_run(ehr, event: str) -> None:
    message = render(event, facts(ehr), {"outcome": "rolled_back"}, NOW, runbook=ehr)
    assert "CHG0034512" in message.body and "The run: http://" in message.body
    assert message.title.endswith("EHR 4.2 upgrade in production")


def test_an_unknown_event_is_refused(ehr) -> None:
    with pytest.raises(ValueError, match="unknown event 'nogo'"):
        render("nogo", facts(ehr), {}, NOW)


def test_gate_waiting_reaches_only_the_rule_for_the_asked_role(ehr) -> None:
    found = deliveries(ehr, "gate_waiting", {"role": "hospital"})
    assert [(d.connection, d.roles) for d in found] == [("approvers", ("hospital",))]
    assert deliveries(ehr, "gate_waiting", {"role": "dba"}) == []


def test_a_p1_rollback_failure_also_addresses_the_incident_manager(ehr) -> None:
    found = {d.connection: d.roles for d in deliveries(ehr, "rollback_failed", {})}
    assert found == {"service_desk": ("incident_manager",), "mail": ("incident_manager",)}
    assert recipients(ehr, found["mail"]) == ["incident-desk@hospital.example"]


def test_a_p3_rollback_failure_does_not_wake_the_incident_manager(ehr) -> None:
    quieter = ehr.model_copy(
        update={"incident": ehr.incident.model_copy(update={"priority": "P3"})}
    )
    found = {d.connection: d.roles for d in deliveries(quieter, "rollback_failed", {})}
    assert found["service_desk"] == ()


def test_html_keeps_paragraphs_and_makes_links_clickable(ehr) -> None:
    message = render("run_started", facts(ehr), {}, NOW, runbook=ehr)
    html = message.html()
    assert '<a href="http://airflow.example/dags/ehr/runs/r1">' in html
    assert html.count("<p>") == message.body.count("\n\n") + 1
