"""The decision log in the order things happened: withdrawals right after the NOGO behind them.

The records are HITL details as Airflow's REST API returns them for a run of the
EHR example stopped at GO/NOGO 2: the service owner's request opened first and
was withdrawn by the hospital's NOGO, long after the release manager's GO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.unit.run_fixtures import START, at, task

from gonogo.core import naming
from gonogo.core.documents.report import report_data, report_markdown
from gonogo.core.runbook.loader import load_file
from gonogo.core.runs.decisions import WITHDRAWN, decisions, note, table
from gonogo.core.runs.records import Request, RunRecord
from gonogo.core.runs.run import progress

GATE = "gate__go_nogo_2"
RUNBOOK = Path(__file__).parent / "golden" / "ehr.yaml"


def rest(minutes: float) -> str:
    """A time as the REST API writes it."""
    return at(minutes).isoformat().replace("+00:00", "Z")


def iso(minutes: float) -> str:
    """A time as the decision log writes it."""
    return at(minutes).isoformat()


def detail(
    task_id: str,
    state: str,
    opened: float,
    users: list[str],
    *,
    answer: str | None = None,
    by: str = "",
    answered: float | None = None,
    ended: float | None = None,
    comment: str = "",
) -> dict[str, Any]:
    return {
        "task_instance": {
            "task_id": task_id,
            "dag_id": "ehr-upgrade-4-2",
            "dag_run_id": "manual__2026-12-05T21:00:00+00:00",
            "state": state,
            "try_number": 1,
            "map_index": -1,
            "start_date": rest(opened),
            "end_date": rest(ended) if ended is not None else None,
        },
        "subject": f"EHR 4.2 upgrade in production: {task_id}",
        "assigned_users": [{"id": u, "name": u} for u in users],
        "created_at": rest(opened),
        "response_received": answer is not None,
        "chosen_options": [answer] if answer else None,
        "responded_by_user": {"id": by, "name": by} if by else None,
        "responded_at": rest(answered) if answered is not None else None,
        "params_input": {"comment": comment} if comment else {},
    }


def requests(details: list[dict[str, Any]]) -> list[Request]:
    return [Request.from_detail(d) for d in details]


def stopped_at_gate_2() -> list[dict[str, Any]]:
    """The service owner's request opens first; the hospital says NOGO; it is withdrawn."""
    return [
        # Withdrawn 0.4 s after the NOGO: the API server skips it once the NOGO is stored.
        detail(f"{GATE}.service_owner", "skipped", 10, ["svcowner", "svcowner2"], ended=31.007),
        detail(
            f"{GATE}.hospital",
            "failed",
            10.2,
            ["wardrep"],
            answer="NOGO",
            by="wardrep",
            answered=31,
            ended=31.05,
            comment="AMK reports a major incident",
        ),
        detail(
            f"{GATE}.release_manager",
            "success",
            10.1,
            ["relman"],
            answer="GO",
            by="relman",
            answered=12,
            ended=12.01,
            comment="ready",
        ),
        detail(
            "preflight.announce_start",
            "success",
            4,
            ["relman"],
            answer="Done",
            by="relman",
            answered=8,
            ended=8.02,
        ),
    ]


def test_a_withdrawn_request_comes_right_after_the_nogo_that_withdrew_it() -> None:
    rows = decisions(requests(stopped_at_gate_2()), {"preflight.announce_start": "release_manager"})
    assert [(r.role, r.answer) for r in rows] == [
        ("release_manager", "Done"),
        ("release_manager", "GO"),
        ("hospital", "NOGO"),
        ("service_owner", WITHDRAWN),
    ]
    assert rows[3].at == rows[2].at == iso(31)


def test_the_withdrawal_follows_its_nogo_even_when_another_answer_has_the_same_time() -> None:
    records = [
        *stopped_at_gate_2(),
        # Another gate's answer stored in the same instant as the NOGO, under a lower task id.
        detail("gate__a_gate.aaa", "success", 9, ["dba"], answer="GO", by="dba", answered=31),
    ]
    order = [r.task_id for r in decisions(requests(records))]
    assert order.index(f"{GATE}.service_owner") == order.index(f"{GATE}.hospital") + 1


def test_a_withdrawal_without_a_nogo_is_placed_when_its_task_ended() -> None:
    # The run was marked failed by hand: every open request ended skipped, no NOGO behind it.
    records = [
        detail(f"{GATE}.service_owner", "skipped", 10, ["svcowner"], ended=40),
        detail(
            f"{GATE}.release_manager",
            "success",
            10,
            ["relman"],
            answer="GO",
            by="relman",
            answered=20,
        ),
    ]
    rows = decisions(requests(records))
    assert [(r.role, r.answer, r.at) for r in rows] == [
        ("release_manager", "GO", iso(20)),
        ("service_owner", WITHDRAWN, iso(40)),
    ]


def test_a_nogo_that_is_asked_again_withdraws_nothing() -> None:
    # Round 1 of a reask gate: the role is asked again, so the NOGO did not end the gate.
    records = [
        detail(
            f"{GATE}.hospital__round_1",
            "success",
            10,
            ["wardrep"],
            answer="NOGO",
            by="wardrep",
            answered=15,
            comment="not yet",
        ),
        detail(f"{GATE}.service_owner", "skipped", 10, ["svcowner"], ended=50),
    ]
    withdrawn = decisions(requests(records))[-1]
    assert (withdrawn.answer, withdrawn.at) == (WITHDRAWN, iso(50))


def test_a_timeout_is_placed_when_its_task_ended() -> None:
    records = [
        detail(f"{GATE}.hospital", "failed", 10, ["wardrep"], ended=40),
        detail(
            f"{GATE}.release_manager",
            "success",
            10,
            ["relman"],
            answer="GO",
            by="relman",
            answered=20,
        ),
    ]
    rows = decisions(requests(records))
    assert [(r.role, r.answer, r.at) for r in rows] == [
        ("release_manager", "GO", iso(20)),
        ("hospital", "NOGO (timeout)", iso(40)),
    ]


def test_an_open_request_without_any_time_is_placed_when_it_opened() -> None:
    records = [
        detail(f"{GATE}.hospital", "awaiting_input", 10, ["wardrep"]),
        detail("preflight.announce_start", "success", 4, ["relman"], answer="Done", answered=11),
    ]
    assert [(r.answer, r.at) for r in decisions(requests(records))] == [
        ("waiting", ""),
        ("Done", iso(11)),
    ]


def test_times_in_other_zones_are_compared_as_times() -> None:
    # 21:12+00:00 is after 22:11+01:00, though its text sorts first.
    early = detail(f"{GATE}.hospital", "success", 10, ["wardrep"], answer="GO", answered=12)
    late = detail(f"{GATE}.release_manager", "success", 10, ["relman"], answer="GO")
    late["responded_at"] = "2026-12-05T22:11:00+01:00"
    assert [r.role for r in decisions(requests([early, late]))] == ["release_manager", "hospital"]


@pytest.mark.parametrize("view", ["note", "table", "report"])
def test_every_view_lists_the_withdrawal_after_the_nogo(view: str) -> None:
    details = stopped_at_gate_2()
    if view == "note":
        lines = note(decisions(requests(details)), {"outcome": "rolled_back"}).splitlines()
    elif view == "table":
        lines = table(decisions(requests(details))).splitlines()
    else:
        runbook = load_file(RUNBOOK)[0]
        record = RunRecord(
            dag_id="ehr-upgrade-4-2",
            run_id="manual__2026-12-05T21:00:00+00:00",
            state="failed",
            start=START,
            end=at(40),
            tasks={
                t.task_id: t
                for t in (
                    task(f"{GATE}.service_owner", "skipped", 10, 31.007),
                    task(f"{GATE}.hospital", "failed", 10.2, 31.05),
                    task(f"{GATE}.release_manager", "success", 10.1, 12.01),
                )
            },
            requests=requests(details),
        )
        text = report_markdown(report_data(progress(runbook, record, at(40)), at(40)))
        lines = text.partition("## Decisions")[2].splitlines()
    nogo = next(i for i, line in enumerate(lines) if "NOGO" in line and "hospital" in line)
    assert WITHDRAWN in lines[nogo + 1] and "service_owner" in lines[nogo + 1]
    assert not any(WITHDRAWN in line for line in lines[:nogo])
    if view == "note":
        assert lines[0] == naming.NOTE_MARKER
