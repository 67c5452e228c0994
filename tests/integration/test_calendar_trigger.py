"""The change calendar in a real Airflow: a run in a freeze is refused; an emergency is granted.

The harness's calendar (tests/integration/runbooks/calendar.yaml) freezes the
services of these two runbooks for good, and names the release manager as the
one who may grant an emergency change an exception. The refusal is in the
everyday suite; the exception's answers and the Calendar page are long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import requests
from tests.integration.conftest import Airflow

FROZEN = "it-frozen"
EMERGENCY = "it-frozen-emergency"
GRANT = "gate__freeze_exception.grant"


def ran(airflow: Airflow, log: str) -> list[str]:
    path = airflow.state_dir / f"{log}.log"
    return path.read_text().split() if path.exists() else []


def test_a_run_in_a_freeze_is_refused_before_any_step_with_the_freezes_reason(
    airflow: Airflow,
) -> None:
    admin = airflow.admin
    airflow.wait_dags(FROZEN)
    run_id = airflow.operator.trigger(FROZEN)
    assert admin.wait_run(FROZEN, run_id)["state"] == "failed"
    tis = admin.task_instances(FROZEN, run_id)
    assert tis["before_start"]["state"] == "failed"
    assert tis["work.apply"]["state"] != "success"
    assert ran(airflow, "frozen") == []
    outcome = admin.xcom(FROZEN, run_id, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    (reason,) = outcome["reasons"]
    assert reason.startswith("refused before start: the calendar: ")
    assert "falls in the freeze 'Test freeze'" in reason
    assert "Frozen for the calendar tests" in reason
    assert "Frozen for the calendar tests" in admin.run(FROZEN, run_id)["note"]


@pytest.mark.long
def test_an_emergency_in_a_freeze_runs_once_the_release_manager_grants_the_exception(
    airflow: Airflow,
) -> None:
    admin = airflow.admin
    airflow.wait_dags(EMERGENCY)
    run_id = airflow.operator.trigger(EMERGENCY)
    request = admin.wait_pending(EMERGENCY, run_id, GRANT)
    assert request["subject"] == "Freeze exception: Emergency fix in a freeze (release_manager)"
    assert "in the freeze Test freeze" in request["body"]
    assert [u["id"] for u in request["assigned_users"]] == ["relman"]
    assert ran(airflow, "frozen-emergency") == []  # nothing before the exception

    refused = airflow.client("svcowner").answer(EMERGENCY, run_id, GRANT, "GO")
    assert refused.status_code == 403, refused.text
    airflow.client("relman").answer_or_raise(EMERGENCY, run_id, GRANT, "GO")
    admin.wait_pending(EMERGENCY, run_id, "gate__go.ops")
    airflow.client("svcowner").answer_or_raise(EMERGENCY, run_id, "gate__go.ops", "GO")
    assert admin.wait_run(EMERGENCY, run_id)["state"] == "success"
    assert ran(airflow, "frozen-emergency") == ["apply"]
    grant = admin.xcom(EMERGENCY, run_id, GRANT)
    assert (grant["answer"], grant["by"]) == ("GO", "relman")


@pytest.mark.long
def test_a_nogo_to_the_exception_stops_the_emergency_before_any_step(airflow: Airflow) -> None:
    admin = airflow.admin
    airflow.wait_dags(EMERGENCY)
    before = ran(airflow, "frozen-emergency")
    run_id = airflow.operator.trigger(EMERGENCY)
    admin.wait_pending(EMERGENCY, run_id, GRANT)
    airflow.client("relman").answer_or_raise(
        EMERGENCY, run_id, GRANT, "NOGO", comment="wait for the ward rounds to end"
    )
    assert admin.wait_run(EMERGENCY, run_id)["state"] == "failed"
    assert ran(airflow, "frozen-emergency") == before
    outcome = admin.xcom(EMERGENCY, run_id, "outcome", key="outcome")
    assert outcome["outcome"] == "nogo_before_start"
    assert outcome["reasons"] == ["gate freeze_exception: NOGO or no answer from role grant"]
    grant = admin.xcom(EMERGENCY, run_id, GRANT)
    assert (grant["answer"], grant["comment"]) == ("NOGO", "wait for the ward rounds to end")
    assert "wait for the ward rounds to end" in admin.run(EMERGENCY, run_id)["note"]


# -- the Calendar page ----------------------------------------------------------------------------

OSLO = ZoneInfo("Europe/Oslo")
PLANNED = """\
runbook: {id}
title: {title}
service: {service}
environment: test
change: {{id: {change}, type: {kind}}}
roles:
  ops: {{users: [svcowner]}}
window: {{start: "{start}", end: "{end}"}}
phases:{gate}
  - id: work
    steps:
      - {{id: apply, bash: "true", read_only: true}}
"""
MORE = """\
maintenance:
  - id: it-cal-evening
    title: Test evening window
    services: [it-cal, it-cal-db]
    every: day
    start: "20:00"
    end: "23:00"
depends:
  it-cal: [it-cal-db]
"""


@dataclass
class Planned:
    day: datetime  # the evening the changes are planned for, at midnight in Oslo
    ids: tuple[str, ...]


@pytest.fixture(scope="module")
def planned(airflow: Airflow) -> Iterator[Planned]:
    """Three changes planned three evenings from now: two collide on it-cal, one on its database."""
    folder = Path(airflow.stack.runbooks_dir)
    calendar = folder / "calendar.yaml"
    original = calendar.read_text()
    day = datetime.combine(datetime.now(OSLO).date() + timedelta(days=3), time(0), tzinfo=OSLO)

    def at(hour: float) -> str:
        return (day + timedelta(hours=hour)).isoformat()

    books = [
        ("it-cal-a", "Portal release 7", "it-cal", "CHG-CAL-1", "normal", 20, 22),
        ("it-cal-b", "Portal hotfix", "it-cal", "CHG-CAL-2", "emergency", 21, 23),
        ("it-cal-db", "Database patch", "it-cal-db", "CHG-CAL-3", "standard", 22.5, 23.5),
    ]
    for ident, title, service, change, kind, start, end in books:
        (folder / f"{ident}.yaml").write_text(
            PLANNED.format(
                id=ident,
                title=title,
                service=service,
                change=change,
                kind=kind,
                start=at(start),
                end=at(end),
                gate="" if kind == "standard" else "\n  - {gate: go, sign_off: [ops]}",
            )
        )
    calendar.write_text(original + MORE)
    ids = tuple(b[0] for b in books)
    try:
        airflow.wait_dags(*ids)
        yield Planned(day, ids)
    finally:
        calendar.write_text(original)


def page(airflow: Airflow, user: str | None, **params: Any) -> requests.Response:
    cookies = {"_token": airflow.client(user).token()} if user else {}
    return requests.get(
        f"{airflow.stack.base_url}/gonogo/calendar", params=params, cookies=cookies, timeout=30
    )


@pytest.mark.long
def test_the_calendar_page_lists_the_planned_changes_with_their_collisions(
    airflow: Airflow, planned: Planned
) -> None:
    found = page(airflow, "viewer", format="json")
    assert found.status_code == 200, found.text
    data = found.json()
    changes = {c["runbook"]: c for c in data["changes"]}
    assert set(planned.ids) <= set(changes)
    assert changes["it-cal-a"]["collides_with"] == ["it-cal-b"]
    assert changes["it-cal-b"]["collides_with"] == ["it-cal-a", "it-cal-db"]
    assert changes["it-cal-a"]["state"] == "planned"
    severities = {(c["first"], c["second"]): c["severity"] for c in data["collisions"]}
    assert severities[("it-cal-a", "it-cal-b")] == "error"
    assert severities[("it-cal-b", "it-cal-db")] == "warning"
    (outside,) = changes["it-cal-db"]["findings"]  # it ends after the evening window
    assert outside["kind"] == "outside_maintenance"
    assert any(f["id"] == "it-freeze" for f in data["freezes"])
    evening = [m for m in data["maintenance"] if m["id"] == "it-cal-evening"]
    assert len(evening) == 28  # every evening of the four weeks from today

    html = page(airflow, "viewer")
    assert html.status_code == 200 and 'data-runbook="it-cal-a"' in html.text
    assert "state-planned collides" in html.text
    ics = page(airflow, "viewer", format="ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    events = {str(e["uid"]) for e in icalendar.Calendar.from_ical(ics.content).walk("VEVENT")}
    assert {f"change-{i}@gonogo" for i in planned.ids} <= events


@pytest.mark.long
def test_the_calendar_page_shows_a_run_once_it_is_started(
    airflow: Airflow, planned: Planned
) -> None:
    run_id = airflow.operator.trigger("it-cal-db")  # waits for its window, three days from now
    airflow.admin.wait_for(
        "the run to wait for its window",
        lambda: (
            airflow.admin.task_instances("it-cal-db", run_id)["wait_for_window"]["state"]
            == "deferred"
        ),
        timeout=120,
    )
    changes = {c["runbook"]: c for c in page(airflow, "viewer", format="json").json()["changes"]}
    assert changes["it-cal-db"]["state"] == "running"
    assert changes["it-cal-a"]["state"] == "planned"


@pytest.mark.long
def test_the_calendar_page_checks_its_caller(airflow: Airflow, planned: Planned) -> None:
    assert page(airflow, None).status_code == 401
    hidden = page(airflow, "outsider", format="json")
    assert hidden.status_code == 200 and hidden.json()["changes"] == []
    assert hidden.json()["freezes"]  # the installation's calendar is everyone's to see
    views = {
        v["url_route"]: v
        for p in airflow.admin.call("GET", "/plugins")["plugins"]
        if p["name"] == "gonogo"
        for v in p["external_views"]
    }
    assert views["gonogo-calendar"]["destination"] == "nav"
    assert views["gonogo-calendar"]["href"] == "/gonogo/calendar"
