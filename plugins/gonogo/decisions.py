"""The decision log: every answer at every gate and manual step of a run, read back.

Built from Airflow's own records (HITL details and task states), never from a
second store. Pure functions over plain dicts, so the CLI (from REST JSON) and
the run-note listener (from the database) share them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

COLUMNS = ("gate", "role", "round", "answer", "by", "at", "comment")


@dataclass(frozen=True)
class Decision:
    """One request and what became of it."""

    gate: str  # the gate id, or "step:<id>" for a manual step
    role: str
    round: int
    answer: str  # GO, NOGO, Done, Failed, NOGO (timeout), withdrawn, waiting
    by: str
    at: str
    comment: str
    try_number: int
    task_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(task_id: str) -> tuple[str, str, int]:
    group, _, part = task_id.partition(".")
    if group.startswith("gate__"):
        role, _, number = part.partition("__round_")
        return group.removeprefix("gate__"), role, int(number or 1)
    return f"step:{part or group}", "", 1


def decision_from_detail(detail: Mapping[str, Any]) -> Decision:
    """A decision from one HITL detail, in the shape the REST API returns."""
    ti = detail.get("task_instance") or {}
    task_id = ti.get("task_id", "")
    gate, role, number = _split(task_id)
    chosen = detail.get("chosen_options") or []
    who = detail.get("responded_by_user") or {}
    state = ti.get("state")
    if detail.get("response_received") and chosen:
        answer = chosen[0]
    elif state == "failed":
        answer = "NOGO (timeout)" if gate and not gate.startswith("step:") else "timeout"
    elif state == "skipped":
        answer = "withdrawn"
    else:
        answer = "waiting"
    comment = (detail.get("params_input") or {}).get("comment") or ""
    return Decision(
        gate=gate,
        role=role or ", ".join(u.get("name", "") for u in detail.get("assigned_users") or []),
        round=number,
        answer=answer,
        by=who.get("name") or "",
        at=str(detail.get("responded_at") or ""),
        comment=str(comment),
        try_number=int(ti.get("try_number") or 1),
        task_id=task_id,
    )


def decisions(details: Iterable[Mapping[str, Any]]) -> list[Decision]:
    """Every decision of a run in the order the requests opened."""
    ordered = sorted(
        details, key=lambda d: (str(d.get("created_at") or ""), d["task_instance"]["task_id"])
    )
    return [decision_from_detail(d) for d in ordered]


def table(rows: list[Decision], events: Iterable[Mapping[str, Any]] = ()) -> str:
    """The decision log as a plain text table, events (gate_expiring) after it."""
    data = [[str(getattr(r, c)) for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in data)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in data
    ]
    for event in events:
        lines.append(
            f"event {event.get('event')}: gate {event.get('gate')} at {event.get('at')}; "
            f"no answer yet from {', '.join(event.get('silent_roles') or [])}"
        )
    return "\n".join(lines)


def note(
    rows: list[Decision],
    outcome: Mapping[str, Any] | None,
    events: Iterable[Mapping[str, Any]] = (),
) -> str:
    """The DAG run's note: the outcome and every decision, in one readable block."""
    lines = []
    if outcome:
        lines.append(f"**Outcome: {outcome.get('outcome')}**")
        if outcome.get("reasons"):
            lines.append(f"Why: {'; '.join(outcome['reasons'])}")
        if outcome.get("undone"):
            lines.append(f"Undone: {', '.join(outcome['undone'])}")
        if outcome.get("not_undone"):
            lines.append(f"Not undone: {', '.join(outcome['not_undone'])}")
        lines.append("")
    if rows:
        lines.append("Decisions:")
        for r in rows:
            who = f" by {r.by}" if r.by else ""
            why = f": {r.comment}" if r.comment else ""
            where = f"{r.gate}/{r.role}" if r.role and not r.gate.startswith("step:") else r.gate
            again = f" (round {r.round})" if r.round > 1 else ""
            lines.append(f"- {where}{again}: {r.answer}{who}{why}")
    for event in events:
        lines.append(
            f"- {event.get('gate')}: gate_expiring, no answer yet from "
            f"{', '.join(event.get('silent_roles') or [])}"
        )
    return "\n".join(lines) or "No decisions."


def to_json(rows: list[Decision], events: Iterable[Mapping[str, Any]] = ()) -> str:
    return json.dumps({"decisions": [r.as_dict() for r in rows], "events": list(events)}, indent=2)
