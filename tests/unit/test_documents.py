"""The kjøreplan, the report, the board and the run view, rendered without Airflow.

Markdown and JSON are compared with golden files (``GONOGO_UPDATE_GOLDEN=1``
rewrites them; review the diff); HTML is checked for its structure, and runbook
text is escaped everywhere.
"""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.unit.run_fixtures import at, rolled_back, succeeded, waiting_at_gate

from gonogo.core.documents.board import board_html, run_html, sort_rows
from gonogo.core.documents.kjoreplan import plan_data, plan_html, plan_json, plan_markdown
from gonogo.core.documents.report import report_data, report_html, report_json, report_markdown
from gonogo.core.runbook.loader import load_file, load_text
from gonogo.core.runs.decisions import decisions
from gonogo.core.runs.records import Request
from gonogo.core.runs.run import owners_by_task, progress

GOLDEN = Path(__file__).parent / "golden"
RUNBOOK = GOLDEN / "ehr.yaml"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GONOGO_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; GONOGO_UPDATE_GOLDEN=1 rewrites it"


@pytest.fixture(scope="module")
def runbook() -> Any:
    return load_file(RUNBOOK)[0]


class Structure(HTMLParser):
    """The parts of an HTML document the checks look at."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(v in (a.get(k) or "").split() for k, v in attrs.items())
        ]


def parse(html: str) -> Structure:
    found = Structure()
    found.feed(html)
    return found


# -- the kjøreplan -------------------------------------------------------------------------------


def test_kjoreplan_markdown_matches_its_golden_file(runbook: Any) -> None:
    golden("kjoreplan.md", plan_markdown(plan_data(runbook)))


def test_kjoreplan_json_matches_its_golden_file(runbook: Any) -> None:
    golden("kjoreplan.json", plan_json(plan_data(runbook)))


def test_kjoreplan_holds_what_the_cab_reviews(runbook: Any) -> None:
    data = plan_data(runbook)
    assert data["window"]["end"] == "2026-12-06T04:00:00+01:00"
    kinds = [(i["kind"], i["id"]) for i in data["items"]]
    assert kinds == [
        ("phase", "preflight"),
        ("gate", "go_nogo_2"),
        ("phase", "install"),
        ("phase", "production_test"),
        ("gate", "go_nogo_3"),
    ]
    gate = data["items"][1]
    assert (gate["planned_start"], gate["planned_end"]) == ("2026-12-05T22:10:00+01:00",) * 2
    assert [p["role"] for p in gate["participants"]] == [
        "release_manager",
        "service_owner",
        "hospital",
    ]
    assert gate["checks"][0]["required"] is True
    install = data["items"][2]["steps"]
    assert (install[1]["planned_start"], install[1]["planned_end"]) == (
        "2026-12-05T22:15:00+01:00",
        "2026-12-05T22:35:00+01:00",
    )
    # The rollback plan in the order it would run: newest first, then the global steps.
    assert [o["id"] for o in data["rollback"]["order"]] == [
        "install_app",
        "backup_db",
        "stop_app",
        "announce_start",
        "announce_rollback",
    ]
    assert data["communication"] == [
        {
            "on": ["gate_waiting", "step_failed", "rollback_started"],
            "connection": "service_desk",
            "roles": [],
        }
    ]


def test_kjoreplan_without_a_window_counts_from_t() -> None:
    text = RUNBOOK.read_text().replace(
        'window: {start: "2026-12-05T22:00:00+01:00", end: "2026-12-06T04:00:00+01:00"}\n', ""
    )
    data = plan_data(load_text(text, "ehr.yaml")[0])
    assert data["window"] is None
    assert data["items"][2]["steps"][1]["planned_start"] == "T+15m"
    assert data["items"][0]["planned_start"] == "T"
    assert "| 3.2 | T+15m | T+35m |" in plan_markdown(data)


def test_kjoreplan_html_is_one_printable_file(runbook: Any) -> None:
    html = plan_html(plan_data(runbook))
    page = parse(html)
    assert len(page.all("svg", **{"class": "gantt"})) == 1
    # A bar per step, a milestone per gate.
    assert html.count('class="bar"') == 7 and html.count('class="milestone"') == 2
    sections = page.all("section", **{"class": "phase"})
    assert len(sections) == 1 + 5 + 1  # overview, the five phases and gates, rollback
    assert "size: A4" in page.style and "break-before: page" in page.style
    # Self-contained: no script, no stylesheet or image fetched from anywhere.
    assert not page.all("script") and not page.all("link") and not page.all("img")
    assert "Ward view shows patient lists" in "".join(page.text)


HOSTILE = '<script>alert("x")</script>'


def test_runbook_text_is_escaped_in_every_format() -> None:
    text = (
        RUNBOOK.read_text()
        .replace("title: EHR 4.2 upgrade in production", f"title: '{HOSTILE}'")
        .replace("- Every resource is present as planned", "- '<img src=x onerror=alert(1)>'")
        .replace("title: Back up the EHR database", "title: 'Back up </text><script>x</script>'")
    )
    runbook = load_text(text, "ehr.yaml")[0]
    data = plan_data(runbook)
    html = plan_html(data)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;/text&gt;&lt;script&gt;" in html  # inside the SVG as well
    markdown = plan_markdown(data)
    assert "<script" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;" in markdown
    report = report_data(progress(runbook, rolled_back(), at(80)), at(80))
    for rendered in (report_html(report), run_html(report), board_html([report], at(80))):
        # The live views carry one script of their own (links out of the UI's iframe).
        assert rendered.count("<script") == 1 and "<script>alert" not in rendered
        assert "&lt;script&gt;" in rendered
    assert "<script" not in report_markdown(report)


# -- the report ----------------------------------------------------------------------------------


def test_report_markdown_matches_its_golden_file(runbook: Any) -> None:
    data = report_data(progress(runbook, rolled_back(), at(80)), at(80))
    golden("report.md", report_markdown(data, "https://airflow.example/"))


def test_report_json_matches_its_golden_file(runbook: Any) -> None:
    data = report_data(progress(runbook, rolled_back(), at(80)), at(80))
    golden("report.json", report_json(data))
    assert json.loads(report_json(data)) == data


def test_report_of_a_rolled_back_run_says_what_was_undone(runbook: Any) -> None:
    data = report_data(progress(runbook, rolled_back(), at(80)), at(80))
    assert data["result"] == "rolled_back"
    assert data["status"]["colour"] == "red"
    assert data["outcome"]["undone"] == ["backup_db", "stop_app"]
    rows = {a["id"]: a for a in data["activities"]}
    assert rows["migrate_db"]["result"] == "failed"
    assert rows["migrate_db"]["duration"] == 7 * 60
    assert rows["go_nogo_2"]["result"] == "GO"
    assert rows["backup_db"]["log"].endswith("/tasks/install.backup_db")
    html = report_html(data, "/")
    page = parse(html)
    assert len(page.all("svg", **{"class": "gantt"})) == 1
    assert page.all("span", **{"class": "red"})
    links = [a["href"] for a in page.all("a")]
    assert (
        "/dags/ehr-upgrade-4-2/runs/manual__2026-12-05T21%3A00%3A00%2B00%3A00/tasks/install.migrate_db"
        in links
    )


def test_report_of_a_run_that_succeeded_says_rollback_did_not_run(runbook: Any) -> None:
    data = report_data(progress(runbook, succeeded(), at(50)), at(50))
    assert (data["result"], data["status"]["colour"], data["rollback_ran"]) == (
        "succeeded",
        "green",
        False,
    )
    assert "Rollback did not run." in report_markdown(data)
    assert "<p>Rollback did not run.</p>" in report_html(data)


# -- the board and the run view ------------------------------------------------------------------


def test_a_run_waiting_at_a_gate_shows_who_is_awaited_and_turns_yellow(runbook: Any) -> None:
    found = progress(runbook, waiting_at_gate(), at(20))
    assert [(w.role, w.users) for w in found.awaited] == [
        ("service_owner", ("svcowner", "svcowner2")),
        ("hospital", ("wardrep",)),
    ]
    assert found.phase == "go_nogo_2"
    assert found.status.colour == "yellow"
    assert "gate go_nogo_2 waiting past its planned time" in found.status.reasons
    # Waiting 10 minutes at a gate planned for 22:10 pushes the forecast 10 minutes back.
    assert found.forecast_finish == found.planned_end + (at(20) - at(10))


def test_the_forecast_task_s_forecast_is_used_and_past_the_window_is_red(runbook: Any) -> None:
    from dataclasses import replace

    late = replace(
        waiting_at_gate(),
        forecast={"at": at(19).isoformat(), "finish": "2026-12-06T04:30:00+01:00"},
    )
    found = progress(runbook, late, at(20))
    assert found.forecast_finish is not None
    assert found.forecast_finish.isoformat() == "2026-12-06T04:30:00+01:00"
    assert found.status.colour == "red"
    assert "forecast finish is past the window end" in found.status.reasons


def test_a_gate_just_opened_on_time_is_green(runbook: Any) -> None:
    assert progress(runbook, waiting_at_gate(), at(11)).status.colour == "green"


def test_the_run_view_links_each_open_request_to_its_answer_page(runbook: Any) -> None:
    data = report_data(progress(runbook, waiting_at_gate(), at(20)), at(20))
    page = parse(run_html(data, "/"))
    links = [a["href"] for a in page.all("a", **{"class": "request"})]
    run = "manual__2026-12-05T21%3A00%3A00%2B00%3A00"
    assert links == [
        f"/dags/ehr-upgrade-4-2/runs/{run}/tasks/gate__go_nogo_2.service_owner/required_actions",
        f"/dags/ehr-upgrade-4-2/runs/{run}/tasks/gate__go_nogo_2.hospital/required_actions",
    ]
    assert [a["target"] for a in page.all("a", **{"class": "request"})] == ["_top", "_top"]
    assert page.all("meta", **{"http-equiv": "refresh"})
    assert data["awaited"][0]["waiting"] == 600


def test_the_board_shows_running_rollouts_first_worst_first(runbook: Any) -> None:
    done = report_data(progress(runbook, rolled_back(), at(80)), at(80))
    waiting = report_data(progress(runbook, waiting_at_gate(), at(20)), at(20))
    assert [r["result"] for r in sort_rows([done, waiting])] == ["running", "rolled_back"]
    page = parse(board_html([done, waiting], at(20)))
    rows = page.all("tr", **{"class": "rollout"})
    assert [r["data-status"] for r in rows] == ["yellow", "red"]
    assert page.all("meta", **{"http-equiv": "refresh"})


def test_an_empty_board_says_so() -> None:
    assert "No active or recent rollouts" in board_html([], at(0))


# -- the decision log ----------------------------------------------------------------------------


def test_decisions_are_listed_in_the_order_they_were_given() -> None:
    rows = decisions(rolled_back().requests)
    assert [(r.role, r.at) for r in rows] == [
        ("hospital", at(11).isoformat()),
        ("release_manager", at(12).isoformat()),
        ("service_owner", at(14).isoformat()),
    ]


def test_a_manual_step_decision_shows_the_role_not_the_user(runbook: Any) -> None:
    detail = {
        "task_instance": {"task_id": "production_test.ward_view_works", "state": "success"},
        "assigned_users": [{"id": "wardrep", "name": "wardrep"}],
        "response_received": True,
        "chosen_options": ["Done"],
        "responded_by_user": {"id": "wardrep", "name": "wardrep"},
        "responded_at": at(60).isoformat(),
        "params_input": {"comment": "lists load"},
        "created_at": at(50).isoformat(),
    }
    (row,) = decisions([Request.from_detail(detail)], owners_by_task(runbook))
    assert (row.gate, row.role, row.by, row.answer) == (
        "step:ward_view_works",
        "hospital",
        "wardrep",
        "Done",
    )


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_gonogo_plan_writes_the_kjoreplan_in_each_format(
    fmt: str, runbook: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gonogo.client.cli import main

    assert main(["plan", str(RUNBOOK), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    data = plan_data(runbook)
    expected = {"md": plan_markdown, "json": plan_json, "html": plan_html}[fmt](data)
    assert printed == expected


def test_gonogo_plan_still_prints_the_outline_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gonogo.client.cli import main

    assert main(["plan", str(RUNBOOK)]) == 0
    assert "## Plan" in capsys.readouterr().out


def test_the_board_counts_from_the_planned_start_the_run_was_given(runbook: Any) -> None:
    from dataclasses import replace

    given = replace(succeeded(), planned_start="2026-12-05T22:30:00+01:00")
    by_window = {a.id: a.planned_start for a in progress(runbook, succeeded(), at(50)).activities}
    found = progress(runbook, given, at(50))
    assert found.planned_start is not None
    assert found.planned_start.isoformat() == "2026-12-05T22:30:00+01:00"
    for activity in found.activities:
        assert activity.planned_start == by_window[activity.id] + (at(30) - at(0))


def test_a_planned_gate_meeting_has_its_length_on_the_board_as_in_the_kjoreplan() -> None:
    text = RUNBOOK.read_text().replace(
        "  - gate: go_nogo_3\n", "  - gate: go_nogo_3\n    planned: 20m\n"
    )
    runbook = load_text(text, "ehr.yaml")[0]
    gate = next(a for a in progress(runbook, succeeded(), at(50)).activities if a.id == "go_nogo_3")
    shown = next(i for i in plan_data(runbook)["items"] if i["id"] == "go_nogo_3")
    assert gate.planned_start is not None and gate.planned_end is not None
    assert (gate.planned_start.isoformat(), gate.planned_end.isoformat()) == (
        shown["planned_start"],
        shown["planned_end"],
    )
    assert gate.planned_end - gate.planned_start == at(20) - at(0)


def test_the_report_keeps_the_approved_incident_report(runbook: Any) -> None:
    from dataclasses import replace

    kept = {
        "approved": True,
        "by": "relman",
        "at": at(90).isoformat(),
        "priority": "P1",
        "incident": "INC0010001",
        "report": "# Incident report (P1): Rollback failed\n\n## What happened\n\n- <b>x</b>",
    }
    record = replace(rolled_back(), incident_reports=(kept,))
    data = report_data(progress(runbook, record, at(95)), at(95))
    text = report_markdown(data)
    assert "## Incident report (P1), approved" in text
    assert "Approved by relman at" in text and "incident INC0010001 closed" in text
    assert "### Incident report (P1): Rollback failed" in text  # its headings under the report's
    page = report_html(data)
    assert 'class="incident-report-text"' in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "## Incident report" not in report_markdown(
        report_data(progress(runbook, rolled_back(), at(95)), at(95))
    )
