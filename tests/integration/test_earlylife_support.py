"""Issue 24 against a real Airflow: a succeeded rollout starts early-life support.

The test writes its runbook when it runs, with one status round a few minutes
ahead (the harness starts long before some tests run): the rollout succeeds,
its go-live event starts the early-life DAG, two areas report (one red with a
comment and "needs a decision", which the DSL decides), the third is late, is
reminded, and the contact on standby is told; the Early life page (with the
decision log), the board and ``gonogo early-life`` show it, the page also in a real browser.
Two minutes after the round the DSL meets (a cron cadence): its agenda shows
the red that needs a decision and the silent area, and the coordinator logs the
meeting's decisions, which join the decision log on the status page and in the agenda.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from tests.integration.conftest import Airflow, answer_when_open, apprise_hook, cli, go_live
from tests.integration.test_browser import browser, in_view, log_in, shot  # noqa: F401

from gonogo.dev.receivers import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.long]

DAG = "it-early-life"
LIFE = f"{DAG}.early_life"


def meeting_of(round_at: datetime) -> datetime:
    """The one DSL meeting: two minutes after the round, once two areas have reported."""
    return round_at + timedelta(minutes=2)


def runbook(round_at: datetime) -> str:
    return f"""\
runbook: {DAG}
title: Ward system go-live with early-life support
service: {DAG}
environment: test
change: {{id: CHG-IT-EARLY, type: standard}}
roles:
  ward: {{users: [wardrep], title: Clinical coordinator}}
  ops: {{users: [dba], title: Technology coordinator}}
  desk: {{users: [svcowner2], title: Support coordinator}}
  lead: {{users: [relman], title: Deployment lead}}
  owner: {{users: [svcowner], contact: "system owner on call", title: System owner}}
notify:
  - on: [report_overdue, report_escalated]
    connection: it_early_hook
phases:
  - id: work
    steps:
      - {{id: switch_on, bash: echo live, read_only: true}}
early_life:
  lasts: 20m
  timezone: UTC
  coordinator: lead
  areas:
    - {{id: clinical, title: Clinical operations, role: ward}}
    - {{id: tech, title: Technology, role: ops}}
    - {{id: support, title: Support, role: desk}}
  reports:
    - {{days: "1-", at: ["{round_at:%H:%M}"]}}
  meetings:
    - {{days: "1-", cron: "{meeting_of(round_at):%M %H} * * *"}}
  report_within: 1m
  standby_after: 1m
  escalate_to: [lead]
  standby:
    fallback: owner
"""


@pytest.fixture(scope="module")
def hook(airflow: Airflow) -> Iterator[WebhookReceiver]:
    with apprise_hook(airflow, "it_early_hook", "early") as receiver:
        yield receiver


def report(airflow: Airflow, user: str, run: str, task: str, body: dict[str, Any]) -> Any:
    return answer_when_open(airflow, user, LIFE, run, task, body)


@dataclass(frozen=True)
class WentLive:
    """A rollout that succeeded and the early-life run it started, after one round."""

    rollout: str
    life: str
    group: str  # the round


@pytest.fixture(scope="module")
def went_live(airflow: Airflow, hook: WebhookReceiver) -> WentLive:
    """The rollout succeeds; in the round, two areas report and the DSL decides; one is chased."""
    now = datetime.now(UTC)
    round_at = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
    rollout, life = go_live(airflow, DAG, runbook(round_at))
    admin, operator = airflow.admin, airflow.operator
    support = admin.wait_task(LIFE, life, "start", ["success", "failed"], timeout=120)
    assert support["state"] == "success"
    recorded = admin.xcom(LIFE, life, "start")
    assert recorded["rollout_run_id"] == rollout
    assert recorded["rounds"] == [round_at.isoformat()]

    group = f"d{1 if round_at.date() == now.date() else 2}_{round_at:%H%M}"
    request = admin.wait_pending(LIFE, life, f"{group}.tech", timeout=300)
    opened = datetime.now(UTC)
    assert opened >= round_at - timedelta(seconds=5)  # not asked before the round's time
    assert "A very large incident or several large ones" in request["body"]
    assert request["options"] == ["Green", "Yellow", "Red"]
    # Red without a reason is refused by the API server; with one, and needs a decision, taken.
    refused = report(airflow, "dba", life, f"{group}.tech", {"chosen_options": ["Red"]})
    assert refused.status_code == 422, refused.text
    taken = report(
        airflow,
        "dba",
        life,
        f"{group}.tech",
        {
            "chosen_options": ["Red"],
            "params_input": {"comment": "Database failover is slow", "needs_decision": True},
        },
    )
    assert taken.status_code == 200, taken.text
    taken = report(airflow, "wardrep", life, f"{group}.clinical", {"chosen_options": ["Green"]})
    assert taken.status_code == 200, taken.text
    # The red that needs a decision goes to the DSL, whose decision is the log's row.
    decide = f"{group}.decide__tech"
    asked = admin.wait_pending(LIFE, life, decide, timeout=120)
    assert "dba reported: Database failover is slow" in asked["body"]
    decided = report(
        airflow,
        "relman",
        life,
        decide,
        {
            "chosen_options": ["Decided"],
            "params_input": {
                "comment": "Fail over to the standby database tonight",
                "owner": "dba",
                "due": "22:00",
            },
        },
    )
    assert decided.status_code == 200, decided.text
    # Support does not answer: reminded at the deadline, then the standby contact is told.
    reminded = operator.wait_for(
        "the reminder",
        lambda: next((a for a in hook.at("early") if "overdue: Support" in a.title), None),
        timeout=150,
    )
    assert "For: Support coordinator" in reminded.body
    told = operator.wait_for(
        "the standby contact",
        lambda: next((a for a in hook.at("early") if "No status from Support" in a.title), None),
        timeout=150,
    )
    assert "System owner (system owner on call)" in told.body
    assert not any("Technology" in a.title or "Clinical" in a.title for a in hook.at("early"))
    chase = admin.wait_task(LIFE, life, f"{group}.chase", ["success", "failed"], timeout=60)
    assert chase["state"] == "success"
    assert admin.xcom(LIFE, life, f"{group}.chase") == {
        "reminded": ["support"],
        "standby": ["support"],
        "standby_role": "owner",
    }
    return WentLive(rollout, life, group)


def test_a_rollout_that_succeeds_starts_status_rounds_and_a_late_area_is_chased(
    airflow: Airflow, went_live: WentLive
) -> None:
    operator = airflow.operator
    rollout, life, group = went_live.rollout, went_live.life, went_live.group
    # The status page, as JSON, shows the areas by rounds, the latest, the overdue, the colour.
    page = operator.gonogo(f"/early-life/{DAG}")
    assert page["run_id"] == life
    assert page["status"]["colour"] == "red"
    assert page["latest"]["tech"]["colour"] == "red"
    assert page["latest"]["tech"]["needs_decision"] is True
    assert page["latest"]["tech"]["comment"] == "Database failover is slow"
    assert page["latest"]["clinical"]["colour"] == "green"
    assert page["overdue"] == [{"round": group, "area": "support", "title": "Support"}]
    assert [r["round"] for r in page["rounds"]] == [group]
    (logged,) = page["decisions"]
    assert (logged["area"], logged["forum"], logged["decision"], logged["owner"]) == (
        "tech",
        "lead",
        "Decided",
        "dba",
    )
    assert (
        logged["text"] == "Fail over to the standby database tonight" and logged["by"] == "relman"
    )
    html = requests.get(
        f"{airflow.stack.base_url}/gonogo/early-life/{LIFE}",
        headers={"Authorization": f"Bearer {operator.token()}"},
        timeout=30,
    )
    assert html.status_code == 200 and 'data-status="red"' in html.text
    # The board's row for the rollout shows the early-life colour while support lasts.
    board = operator.gonogo("/board")
    row = next(r for r in board["rollouts"] if r["run_id"] == rollout)
    assert row["early_life"]["status"]["colour"] == "red"
    # The same status as a file.
    printed = cli(airflow, "operator", "early-life", DAG)
    assert printed.returncode == 0, printed.stderr
    assert "**Overall: RED**" in printed.stdout
    assert "RED (needs a decision): Database failover is slow" in printed.stdout
    # A viewer of nothing gets nothing.
    assert (
        requests.get(
            f"{airflow.stack.base_url}/gonogo/early-life/{DAG}",
            headers={"Authorization": f"Bearer {airflow.client('outsider').token()}"},
            timeout=30,
        ).status_code
        == 403
    )


@pytest.mark.browser
def test_a_viewer_sees_the_red_area_the_late_one_and_the_decision_in_the_browser(
    airflow: Airflow,
    browser: Any,  # noqa: F811
    went_live: WentLive,
) -> None:
    """The Early life page in headless Chromium (as tests/integration/test_browser.py)."""
    from selenium.webdriver.common.by import By

    log_in(browser, airflow, "viewer")
    browser.get(f"{airflow.stack.base_url}/dags/{LIFE}/plugin/gonogo-early-life")
    overall = in_view(browser, "the overall colour", lambda d: d.find_element(By.ID, "overall"))
    assert overall.get_attribute("data-status") == "red"
    cell = in_view(
        browser,
        "the red report in its round",
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'tr[data-round="{went_live.group}"] td[data-area="tech"]'
        ),
    )
    assert cell.get_attribute("data-colour") == "red"
    assert "needs a decision" in cell.text and "Database failover is slow" in cell.text
    late = in_view(
        browser,
        "the overdue area",
        lambda d: d.find_element(By.CSS_SELECTOR, 'ul.overdue li[data-area="support"]'),
    )
    assert went_live.group in late.text
    decision = in_view(
        browser,
        "the decision log",
        lambda d: d.find_element(By.CSS_SELECTOR, 'tr.decision-row[data-area="tech"]'),
    )
    assert "Fail over to the standby database tonight" in decision.text
    shot(browser, "early_life")  # tests/artifacts/browser/early_life.png (git-ignored)


# -- the DSL meeting: its agenda and its decision log ------------------------------------------


@dataclass(frozen=True)
class Met:
    """The DSL meeting of the support in ``went_live``, once the coordinator logged it."""

    group: str  # m1_1402
    at: str  # the meeting's moment, ISO
    decisions: list[dict[str, Any]]  # what the log task recorded


def _agenda(airflow: Airflow, at: str, format: str) -> Any:
    response = requests.get(
        f"{airflow.stack.base_url}/gonogo/early-life/{DAG}/agenda",
        params={"at": at, "format": format},
        headers={"Authorization": f"Bearer {airflow.operator.token()}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json() if format == "json" else response.text


@pytest.fixture(scope="module")
def met(airflow: Airflow, went_live: WentLive) -> Met:
    """The meeting's log opens at its time; an incomplete log is refused, a whole one taken."""
    admin, life = airflow.admin, went_live.life
    support = admin.xcom(LIFE, life, "start")
    start = datetime.fromisoformat(support["start"])
    meeting = meeting_of(datetime.fromisoformat(support["rounds"][0]))
    group = f"m{(meeting.date() - start.date()).days + 1}_{meeting:%H%M}"
    task = f"{group}.log"
    asked = admin.wait_pending(LIFE, life, task, timeout=300)
    assert datetime.now(UTC) >= meeting - timedelta(seconds=5)  # not asked before the meeting
    assert [u["id"] for u in asked["assigned_users"]] == ["relman"]  # the coordinator role
    assert asked["options"] == ["Logged", "No decisions"]
    form = {name: spec["value"] for name, spec in asked["params"].items()}
    assert asked["params"]["escalated_to_1"]["schema"]["enum"] == ["none", "lead"]
    # A decision without its owner is refused by the API server; nothing is stored.
    ownerless = {**form, "decision_1": "Keep the old print server running"}
    refused = report(
        airflow, "relman", life, task, {"chosen_options": ["Logged"], "params_input": ownerless}
    )
    assert refused.status_code == 422, refused.text
    assert "decision 1 (owner_1) needs who" in refused.json()["detail"]
    logged = {
        **ownerless,
        "owner_1": "svcowner2",
        "due_1": "Friday",
        "decision_2": "Ask the vendor for a database fix",
        "owner_2": "dba",
        "escalated_to_2": "lead",
        "comment": "Short meeting: the database is the only red",
    }
    taken = report(
        airflow, "relman", life, task, {"chosen_options": ["Logged"], "params_input": logged}
    )
    assert taken.status_code == 200, taken.text
    done = admin.wait_task(LIFE, life, task, ["success", "failed"], timeout=120)
    assert done["state"] == "success"
    recorded = admin.xcom(LIFE, life, task)
    return Met(group, meeting.isoformat(), recorded["decisions"])


def test_the_agenda_shows_the_red_that_needs_a_decision_and_the_silent_area(
    airflow: Airflow, went_live: WentLive, met: Met
) -> None:
    found = _agenda(airflow, met.at, "json")
    assert found["meeting_group"] == met.group
    points = {p["number"]: p for p in found["points"]}
    (blocked,) = points[3]["items"]  # what stops the areas: a decision is needed
    assert (blocked["area"], blocked["colour"], blocked["needs_decision"]) == ("tech", "red", True)
    assert blocked["comment"] == "Database failover is slow"
    assert [i["area"] for i in points[2]["items"]] == ["tech"]  # a new red
    assert found["not_reported"] == ["Support"]  # the late area
    text = _agenda(airflow, met.at, "md")
    assert "   - Technology: red, needs a decision: Database failover is slow" in text
    assert "No report yet from: Support." in text


def test_the_meetings_decisions_join_the_decision_log_of_the_status_and_the_agenda(
    airflow: Airflow, went_live: WentLive, met: Met
) -> None:
    assert [(d["decision"], d["owner"], d["escalated_to"]) for d in met.decisions] == [
        ("Keep the old print server running", "svcowner2", ""),
        ("Ask the vendor for a database fix", "dba", "lead"),
    ]
    page = airflow.operator.gonogo(f"/early-life/{DAG}")
    rows = [(d["round"], d["forum"], d["text"], d["owner"], d["by"]) for d in page["decisions"]]
    assert rows == [
        (went_live.group, "lead", "Fail over to the standby database tonight", "dba", "relman"),
        (met.group, "meeting", "Keep the old print server running", "svcowner2", "relman"),
        (met.group, "meeting", "Ask the vendor for a database fix", "dba", "relman"),
    ]
    agenda = _agenda(airflow, met.at, "json")
    assert [(d["round"], d["forum"]) for d in agenda["decisions"]] == [r[:2] for r in rows]
    text = _agenda(airflow, met.at, "md")
    assert (
        f"| {met.group} | Meeting day {met.group[1]} {met.group[-4:-2]}:{met.group[-2:]} | "
        "meeting | Logged: Ask the vendor for a database fix | dba |  | relman | lead |"
    ) in text
    assert "Decided: Fail over to the standby database tonight" in text


@pytest.mark.browser
def test_the_agenda_page_with_the_decision_log_in_the_browser(
    airflow: Airflow,
    browser: Any,  # noqa: F811
    met: Met,
) -> None:
    """The agenda, reached from the Early life tab, in headless Chromium."""
    from selenium.webdriver.common.by import By

    log_in(browser, airflow, "viewer")
    browser.get(f"{airflow.stack.base_url}/dags/{LIFE}/plugin/gonogo-early-life")
    meeting = in_view(
        browser,
        "the meeting's decision on the status page",
        lambda d: d.find_element(By.CSS_SELECTOR, 'tr.decision-row[data-forum="meeting"]'),
    )
    assert "Keep the old print server running" in meeting.text
    shot(browser, "early_life")  # now with the meeting's decisions beside the DSL's
    in_view(browser, "the agenda link", lambda d: d.find_element(By.ID, "agenda")).click()
    blocked = in_view(
        browser,
        "the red that needs a decision on the agenda",
        lambda d: d.find_element(By.CSS_SELECTOR, 'li[data-point="3"] li[data-area="tech"]'),
    )
    assert "needs a decision" in blocked.text
    logged = in_view(
        browser,
        "the meeting's decision in the agenda's log",
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'tr.decision-row[data-forum="meeting"][data-round="{met.group}"]'
        ),
    )
    assert "svcowner2" in logged.text
    shot(browser, "agenda")  # tests/artifacts/browser/agenda.png (git-ignored)
