"""Runs of the EHR example as Airflow would record them, for the pure documents' tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.core.runs.records import Request, RunRecord, TaskRecord

START = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def task(task_id: str, state: str | None, start: float | None, end: float | None) -> TaskRecord:
    return TaskRecord(
        task_id,
        state,
        at(start) if start is not None else None,
        at(end) if end is not None else None,
    )


def detail(
    task_id: str,
    state: str,
    opened: float,
    users: list[str],
    answer: str | None = None,
    by: str = "",
    when: float | None = None,
    comment: str = "",
) -> dict[str, Any]:
    return {
        "task_instance": {"task_id": task_id, "state": state, "try_number": 1},
        "subject": f"EHR 4.2 upgrade in production: {task_id}",
        "assigned_users": [{"id": u, "name": u} for u in users],
        "created_at": at(opened).isoformat(),
        "response_received": answer is not None,
        "chosen_options": [answer] if answer else None,
        "responded_by_user": {"id": by, "name": by} if by else None,
        "responded_at": at(when).isoformat() if when is not None else None,
        "params_input": {"comment": comment} if comment else {},
    }


GATE_2 = [
    ("release_manager", ["relman"], "relman", 12),
    ("service_owner", ["svcowner", "svcowner2"], "svcowner2", 14),
    ("hospital", ["wardrep"], "wardrep", 11),
]


def rolled_back() -> RunRecord:
    """GO at GO/NOGO 2, then the schema migration fails and rollback undoes two steps."""
    tasks = [
        task("preflight.smoke_before", "success", 0, 4),
        task("preflight.announce_start", "success", 4, 9),
        *(task(f"gate__go_nogo_2.{r}", "success", 10, m) for r, _, _, m in GATE_2),
        task("gate__go_nogo_2.result", "success", 14, 14.5),
        task("install.stop_app", "success", 15, 21),
        task("install.backup_db", "success", 21, 45),
        task("install.migrate_db", "failed", 45, 52),
        task("install.install_app", "upstream_failed", None, None),
        task("rollback.start", "success", 52, 52.5),
        task("rollback.undo_1", "success", 52.5, 70),
        task("rollback.undo_2", "success", 70, 72),
        task("rollback.undo_3", "skipped", None, None),
        task("rollback.announce_rollback", "success", 72, 73),
        task("outcome", "failed", 73, 73.2),
    ]
    details = [
        detail(f"gate__go_nogo_2.{r}", "success", 10, users, "GO", by, m, "ready")
        for r, users, by, m in GATE_2
    ]
    return RunRecord(
        dag_id="ehr-upgrade-4-2",
        run_id="manual__2026-12-05T21:00:00+00:00",
        state="failed",
        start=START,
        end=at(73.5),
        triggered_by="operator",
        tasks={t.task_id: t for t in tasks},
        requests=[Request.from_detail(d) for d in details],
        outcome={
            "outcome": "rolled_back",
            "failed": ["install.migrate_db"],
            "reasons": ["step install.migrate_db failed"],
            "undone": ["backup_db", "stop_app"],
            "undo_failed": [],
            "not_run": [],
            "no_rollback_defined": [],
            "global_done": ["announce_rollback"],
            "global_not_done": [],
            "not_undone": [],
        },
        events=[],
    )


def waiting_at_gate() -> RunRecord:
    """Preparation done; GO/NOGO 2 open, the release manager has answered GO."""
    tasks = [
        task("preflight.smoke_before", "success", 0, 4),
        task("preflight.announce_start", "success", 4, 9),
        task("gate__go_nogo_2.release_manager", "success", 10, 12),
        task("gate__go_nogo_2.service_owner", "awaiting_input", 10, None),
        task("gate__go_nogo_2.hospital", "awaiting_input", 10, None),
    ]
    details = [
        detail("gate__go_nogo_2.release_manager", "success", 10, ["relman"], "GO", "relman", 12),
        detail("gate__go_nogo_2.service_owner", "awaiting_input", 10, ["svcowner", "svcowner2"]),
        detail("gate__go_nogo_2.hospital", "awaiting_input", 10.5, ["wardrep"]),
    ]
    return RunRecord(
        dag_id="ehr-upgrade-4-2",
        run_id="manual__2026-12-05T21:00:00+00:00",
        state="running",
        start=START,
        triggered_by="operator",
        tasks={t.task_id: t for t in tasks},
        requests=[Request.from_detail(d) for d in details],
    )


def succeeded() -> RunRecord:
    """Every step done, every role GO at both gates; rollback skipped."""
    steps = [
        "preflight.smoke_before",
        "preflight.announce_start",
        "install.stop_app",
        "install.backup_db",
        "install.migrate_db",
        "install.install_app",
        "production_test.ward_view_works",
    ]
    tasks = [task(t, "success", 5 * n, 5 * n + 4) for n, t in enumerate(steps)]
    tasks += [task(f"gate__go_nogo_2.{r}", "success", 10, m) for r, _, _, m in GATE_2]
    tasks += [
        task("gate__go_nogo_2.result", "success", 14, 14.5),
        task("rollback.start", "skipped", None, None),
        task("rollback.undo_1", "skipped", None, None),
        task("outcome", "success", 40, 40.1),
    ]
    return RunRecord(
        dag_id="ehr-upgrade-4-2",
        run_id="manual__2026-12-05T21:00:00+00:00",
        state="success",
        start=START,
        end=at(41),
        triggered_by="operator",
        tasks={t.task_id: t for t in tasks},
        requests=[
            Request.from_detail(
                detail(f"gate__go_nogo_2.{r}", "success", 10, users, "GO", by, m, "ready")
            )
            for r, users, by, m in GATE_2
        ],
        outcome={"outcome": "succeeded", "failed": [], "reasons": []},
    )
