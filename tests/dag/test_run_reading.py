"""The server's reader and the client's mapper read one recorded run into the same records.

One run, recorded once below (a crash in a step and the person's answer, a
gate's GO, a timed-out request, forecast_overrun, a failed notification and
rollback_failed), is written out twice: as the rows the reader's queries return
from the metadata database (:func:`gonogo.server.rundata.records_of`) and as the
JSON the REST API returns to the client (:func:`gonogo.client.runs.run_record`).
Each side gets its inputs in another order, as a database and an API may give them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from gonogo.client.runs import run_record
from gonogo.core.runs.decisions import decisions, note, to_json
from gonogo.core.runs.records import RunRecord
from gonogo.server.rundata import records_of

DAG, RUN = "fault-reader", "manual__2026-12-05T21:00:00+00:00"
START = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def rest(value: datetime | None) -> str | None:
    """A time as the REST API writes it."""
    return value.isoformat().replace("+00:00", "Z") if value else None


# task id, state, start, end, try
TASKS = [
    ("work.first", "success", at(0), at(5), 1),
    ("work.slow", "failed", at(5), at(80), 2),
    ("forecast", "success", at(0), at(2), 1),
    ("gate__go.release_manager", "success", at(1), at(3), 1),
    ("gate__go.hospital", "failed", at(1), at(60), 1),
    ("rollback.undo_1", "failed", at(81), at(82), 1),
    ("outcome", "failed", at(83), at(84), 1),
]
FORM = {"comment": {"value": "", "description": None, "schema": {"type": ["string", "null"]}}}
# task id, opened, assigned, answer, by, answered, comment
REQUESTS = [
    ("work.slow", at(40), ["relman"], "Roll back", "relman", at(50), "half-installed"),
    ("gate__go.release_manager", at(1), ["relman"], "GO", "relman", at(2), "ready"),
    ("gate__go.hospital", at(1), ["wardrep"], None, "", None, ""),
]
# task id, key, pushed at, value
XCOMS: list[tuple[str, str, datetime, Any]] = [
    ("outcome", "events", at(84), [{"event": "rollback_failed", "outcome": "rollback_failed"}]),
    ("outcome", "outcome", at(84), {"outcome": "rollback_failed", "undo_failed": ["first"]}),
    ("work.slow", "events", at(40), [{"event": "step_interrupted", "what": "step slow", "try": 1}]),
    (
        "forecast",
        "events",
        at(2),
        [{"event": "forecast_overrun", "reasons": ["late"], "on_overrun": "continue"}],
    ),
    (
        "rollback.tell_users",
        "notices",
        at(81),
        [{"what": "notification", "to": "it_hook", "why": "HTTP 500"}],
    ),
    (
        "forecast",
        "forecast",
        at(2),
        [{"at": rest(at(0)), "finish": rest(at(60))}, {"at": rest(at(2)), "finish": rest(at(90))}],
    ),
    # The incident manager approved the second draft of the incident report; the first was
    # sent back and so kept nothing under the key.
    (
        "incident.report__2",
        "incident_report",
        at(200),
        {"approved": True, "by": "relman", "priority": "P1", "report": "# Incident report (P1)"},
    ),
    ("incident.report", "incident_report", at(150), {"approved": False, "report": "sent back"}),
]


def from_database() -> RunRecord:
    run = SimpleNamespace(
        dag_id=DAG,
        run_id=RUN,
        state="failed",
        start_date=at(0),
        end_date=at(85),
        triggering_user_name="operator",
        conf={"planned_start": rest(at(5))},
    )
    tasks = [(DAG, RUN, t, s, start, end, tries) for t, s, start, end, tries in TASKS]
    ended = {t: (s, tries, end) for t, s, _, end, tries in TASKS}
    requests = [
        (
            SimpleNamespace(
                subject=f"about {task_id}",
                params=FORM,
                chosen_options=[answer] if answer else None,
                responded_by={"id": by, "name": by} if by else None,
                responded_at=answered,
                params_input={"comment": comment} if comment else {},
                response_received=answer is not None,
                created_at=opened,
                assignees=[{"id": u, "name": u} for u in users],
            ),
            DAG,
            RUN,
            task_id,
            *ended[task_id],
        )
        for task_id, opened, users, answer, by, answered, comment in REQUESTS
    ]
    other_run = (DAG, "another", "work.slow", "events", at(1), [{"event": "step_interrupted"}])
    xcoms = [(DAG, RUN, *x) for x in XCOMS] + [other_run]
    return records_of([run], list(reversed(tasks)), requests, xcoms)[0]


def from_rest() -> RunRecord:
    run = {
        "dag_id": DAG,
        "dag_run_id": RUN,
        "state": "failed",
        "start_date": rest(at(0)),
        "end_date": rest(at(85)),
        "triggering_user_name": "operator",
        "conf": {"planned_start": rest(at(5))},
    }

    def ti(task_id: str) -> dict[str, Any]:
        _, state, start, end, tries = next(t for t in TASKS if t[0] == task_id)
        return {
            "task_id": task_id,
            "dag_id": DAG,
            "dag_run_id": RUN,
            "map_index": -1,
            "state": state,
            "start_date": rest(start),
            "end_date": rest(end),
            "try_number": tries,
        }

    details = [
        {
            "task_instance": ti(task_id),
            "subject": f"about {task_id}",
            "options": ["x"],
            "params": FORM,
            "assigned_users": [{"id": u, "name": u} for u in users],
            "created_at": rest(opened),
            "responded_by_user": {"id": by, "name": by} if by else None,
            "responded_at": rest(answered),
            "chosen_options": [answer] if answer else None,
            "params_input": {"comment": comment} if comment else {},
            "response_received": answer is not None,
        }
        for task_id, opened, users, answer, by, answered, comment in reversed(REQUESTS)
    ]
    xcoms = [
        {"task_id": t, "key": key, "timestamp": rest(when), "map_index": -1, "value": value}
        for t, key, when, value in sorted(XCOMS, key=lambda x: x[0])  # by task, as REST sorts
    ]
    return run_record(run, [ti(t[0]) for t in TASKS], details, xcoms)


def by_task(record: RunRecord) -> RunRecord:
    """The record with its requests by task id: their order carries nothing (decisions sort them)."""
    return replace(record, requests=sorted(record.requests, key=lambda r: r.task_id))


def test_the_reader_and_the_mapper_read_one_run_into_equal_records() -> None:
    assert by_task(from_database()) == by_task(from_rest())


def test_every_task_s_events_and_failed_notices_are_read_in_the_order_they_were_recorded() -> None:
    for record in (from_database(), from_rest()):
        assert [e.name for e in record.events] == [
            "forecast_overrun",
            "step_interrupted",
            "notice",
            "rollback_failed",
        ]
        assert [e.task_id for e in record.events][:2] == ["forecast", "work.slow"]


def test_the_latest_forecast_and_the_outcome_are_read_on_both_sides() -> None:
    for record in (from_database(), from_rest()):
        assert record.forecast == {"at": rest(at(2)), "finish": rest(at(90))}
        assert record.outcome == {"outcome": "rollback_failed", "undo_failed": ["first"]}


def test_the_approved_incident_report_is_read_on_both_sides() -> None:
    for record in (from_database(), from_rest()):
        (kept,) = record.incident_reports
        assert kept["task_id"] == "incident.report__2" and kept["by"] == "relman"
        assert kept["report"] == "# Incident report (P1)"


def test_the_decision_log_and_the_note_are_the_same_from_either_side() -> None:
    owners = {"work.slow": "release_manager"}
    views = []
    for record in (from_database(), from_rest()):
        rows = decisions(record.requests, owners)
        events = [e.data for e in record.events]
        views.append((to_json(rows, events), note(rows, record.outcome, events)))
    assert views[0] == views[1]
    log, text = views[0]
    assert [(r.gate, r.role, r.answer) for r in decisions(from_rest().requests, owners)] == [
        ("go", "release_manager", "GO"),
        ("step:slow", "release_manager", "Roll back"),
        ("go", "hospital", "NOGO (timeout)"),
    ]
    assert "- step:slow: Roll back by relman: half-installed" in text
    assert "step slow was cut off by a crash in try 1" in text
    assert "- forecast_overrun: forecast_overrun" in text
    assert "- notice: notification to it_hook failed: HTTP 500" in text
    assert '"event": "rollback_failed"' in log
