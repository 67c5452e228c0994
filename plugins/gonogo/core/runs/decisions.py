"""The decision log, and the rules an answer is read by, as plain data.

The decision log is every answer at every gate and manual step of a run,
built from Airflow's own records (its requests,
:class:`~gonogo.core.runs.records.Request`, and their tasks' states), never from a
second store, so the CLI (from the REST API), the run note and the pages (from
the database) share it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gonogo.core import naming
from gonogo.core.runs import states
from gonogo.core.runs.records import Request, moment

COLUMNS = ("gate", "role", "round", "answer", "by", "at", "comment")

#: The answer of a request its gate's NOGO ended before anyone answered it (its task skipped).
WITHDRAWN = "withdrawn"
#: The answer of a gate request nobody answered in time (its task failed).
TIMEOUT_NOGO = "NOGO (timeout)"

#: The comment field's JSON-schema keyword that names the options of this request whose
#: answer must say why. Each request declares it in its own form; the API server reads it
#: there, so the rule the task relies on is the rule the answer is checked against.
REASON_FOR = "gonogo_reason_for"  # a Python name too: hand-written DAGs pass it to Param


#: The JSON-schema dialect a request's comment field declares. Airflow checks a param's
#: schema against its dialect's meta-schema each time it reads the param's value, twice
#: a task when it serializes a DAG; without ``$schema`` that is the 2020-12 meta-schema,
#: three times dearer to check than draft 7's. With a request on every gate role, manual
#: step and undo, that was over half of the time spent serializing a loader file's DAGs
#: (bench/README.md, "Where a changed runbook's time goes"). Draft 7 has every keyword a
#: form uses.
DIALECT = "http://json-schema.org/draft-07/schema#"


def comment_schema(reason_for: Iterable[str]) -> dict[str, Any]:
    """The JSON schema of a request's comment field, declaring which options need a reason."""
    return {"$schema": DIALECT, "type": ["string", "null"], REASON_FOR: sorted(reason_for)}


def reason_for(form: Mapping[str, Any] | None) -> frozenset[str]:
    """The options whose answer needs a comment, as the request's form declares them.

    ``form`` is the request's serialized params. A request opened before forms
    declared it falls back to gonogo's former rule (:data:`naming.NEEDS_REASON`).
    """
    field = (form or {}).get(naming.COMMENT)
    schema = field.get("schema", field) if isinstance(field, Mapping) else None
    declared = schema.get(REASON_FOR) if isinstance(schema, Mapping) else None
    if isinstance(declared, list):
        return frozenset(str(o) for o in declared)
    return naming.NEEDS_REASON


def has_reason(comment: Any) -> bool:
    """A comment says something: at least one visible letter or digit.

    Punctuation alone (``.``), whitespace, zero-width characters and letters that
    render as blanks (Hangul fillers, the braille blank) do not count.
    """
    if not isinstance(comment, str):
        return False
    return any(ch.isalnum() and not _blank(ch) for ch in comment)


def _blank(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return "FILLER" in name or "BLANK" in name


def missing_reason(
    chosen: Iterable[str], comment: Any, form: Mapping[str, Any] | None
) -> str | None:
    """Why an answer is refused for lack of a reason the request's form asks for, or None."""
    needing = [o for o in chosen if o in reason_for(form)]
    if not needing or has_reason(comment):
        return None
    return f"{needing[0]} needs a comment that says why and what was checked; nothing was recorded"


def recorded_trigger(conf: Any) -> dict[str, str] | None:
    """Who triggered a run, as the API server recorded it in the run's conf: {id, name}.

    None for a run started another way (the CLI, another DAG): nobody known.
    """
    found = conf.get(naming.CONF_TRIGGER) if isinstance(conf, Mapping) else None
    if not isinstance(found, Mapping) or not found.get("id"):
        return None
    return {"id": str(found["id"]), "name": str(found.get("name") or "")}


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
    gate = naming.parse_gate_task(task_id)
    if gate is not None:
        return gate.gate, gate.role or "", gate.round
    group, _, part = task_id.partition(".")
    return f"step:{part or group}", "", 1


def decision_of(request: Request, owners: Mapping[str, str] | None = None) -> Decision:
    """A decision from one request.

    ``owners`` maps a manual step's task id to its owner role: its task id does
    not name the role the way a gate's does, and the row should show the role
    that answered, not only the user. An answer is at the time it was given; a
    timeout or a withdrawn request at its task's end, when Airflow has one.
    """
    gate, role, number = _split(request.task_id)
    role = role or (owners or {}).get(request.task_id, "")
    given = request.answer
    at = request.answered_at
    if given is not None and given.option is not None:
        answer = given.option
    elif request.state == states.FAILED:
        answer = TIMEOUT_NOGO if gate and not gate.startswith("step:") else "timeout"
        at = request.ended_at
    elif request.state == states.SKIPPED:
        answer = WITHDRAWN
        at = request.ended_at
    else:
        answer = "waiting"
    return Decision(
        gate=gate,
        role=role or ", ".join(name for _, name in request.assignees),
        round=number,
        answer=answer,
        by=given.by if given else "",
        at=at.isoformat() if at else "",
        comment=given.comment if given else "",
        try_number=request.try_number,
        task_id=request.task_id,
    )


def _moment(value: Any) -> datetime:
    """A time, comparable with any other (unreadable or none: the earliest)."""
    return moment(value) or datetime.min.replace(tzinfo=UTC)


def _withdrawing(row: Decision) -> bool:
    """Whether this answer withdrew its gate's other open requests.

    The API server withdraws them on a NOGO at a request's last round
    (:func:`gonogo.server.middleware.on_answer`); a NOGO that is asked again does not.
    """
    return (
        row.answer == naming.NOGO
        and not row.gate.startswith("step:")
        and naming.is_final_round(row.task_id)
    )


def decisions(
    requests: Iterable[Request], owners: Mapping[str, str] | None = None
) -> list[Decision]:
    """Every decision of a run in the order it happened.

    An answer is placed at the time it was given and a timeout when its task
    ended. A withdrawn request takes the time of the NOGO that withdrew it and
    comes right after it (without such a NOGO, say when the run was stopped by
    hand: when its task ended). A request still open, or with no time recorded,
    is placed at the time it opened. Sorting by opening time alone put a gate's
    late answers before another gate's early ones, and withdrawals before the
    NOGO that caused them.
    """
    found = [(decision_of(r, owners), r) for r in requests]

    def when(row: Decision, request: Request) -> datetime:
        return _moment(row.at or request.created_at)

    causes: dict[str, Decision] = {}
    for row, _ in sorted(found, key=lambda pair: when(*pair)):
        if _withdrawing(row):
            causes.setdefault(row.gate, row)  # the first: once it is in, nothing else is open
    placed: list[tuple[tuple[datetime, str, int, str], Decision]] = []
    for row, request in found:
        cause = causes.get(row.gate) if row.answer == WITHDRAWN else None
        if cause is None:
            placed.append(((when(row, request), row.task_id, 0, row.task_id), row))
        else:
            placed.append(
                ((_moment(cause.at), cause.task_id, 1, row.task_id), replace(row, at=cause.at))
            )
    return [row for _, row in sorted(placed, key=lambda pair: pair[0])]


def plan_line(preflight: Mapping[str, Any]) -> str | None:
    """The run's plan in one line, from what its first task recorded: fingerprint, approval."""
    if not preflight.get("fingerprint"):
        return None
    line = f"plan fingerprint {preflight['fingerprint']}"
    approval = preflight.get("approval") or {}
    if approval.get("approved_by"):
        line += f", approved by {', '.join(approval['approved_by'])}"
    elif preflight.get("retrospective"):
        line += ", retrospective approval required"
    if preflight.get("rehearsal"):
        line += "; a rehearsal"
    return line


def table(
    rows: list[Decision],
    events: Iterable[Mapping[str, Any]] = (),
    preflight: Mapping[str, Any] | None = None,
) -> str:
    """The decision log as a plain text table: the plan first, events (gate_expiring) after it."""
    data = [[str(getattr(r, c)) for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in data)]) for i, c in enumerate(COLUMNS)]
    plan = plan_line(preflight or {})
    lines = [plan] if plan else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in data
    ]
    for event in events:
        lines.append(f"event {event.get('event')}: {event_line(event, at=True)}")
    return "\n".join(lines)


def event_line(event: Mapping[str, Any], at: bool = False) -> str:
    """One event of the run in words: a gate about to expire, a failed delivery, a failed rollback."""
    if event.get("why") is not None:  # a notification or change-record update that failed
        return (
            f"{event.get('what', 'notification')} to {event.get('to')} failed: {event.get('why')}"
        )
    if event.get("event") == naming.STEP_INTERRUPTED:
        return (
            f"{event.get('what')} was cut off by a crash in try {event.get('try')} "
            f"(its command started {event.get('at')} on {event.get('host')}); it may have "
            "half-run, so it was not run again and a person was asked"
        )
    if event.get("event") == "gate_expiring":
        when = f" at {event.get('at')}" if at else ""
        return (
            f"gate {event.get('gate')}{when}; "
            f"no answer yet from {', '.join(event.get('silent_roles') or [])}"
        )
    return str(event.get("event"))


#: Airflow keeps a run note in a column of this many characters (Postgres enforces it).
NOTE_LIMIT = 1000


def note(
    rows: list[Decision],
    outcome: Mapping[str, Any] | None,
    events: Iterable[Mapping[str, Any]] = (),
    limit: int = NOTE_LIMIT,
) -> str:
    """The DAG run's note: the outcome and every decision, in one readable block.

    It starts with :data:`~gonogo.core.naming.NOTE_MARKER`, an HTML comment the
    UI does not show, so gonogo knows a note it wrote from one a person wrote.
    """
    lines = [naming.NOTE_MARKER]
    if outcome:
        lines.append(f"**Outcome: {outcome.get('outcome')}**")
        if outcome.get("reasons"):
            lines.append(f"Why: {'; '.join(outcome['reasons'])}")
        if outcome.get("undone"):
            lines.append(f"Undone: {', '.join(outcome['undone'])}")
        if outcome.get("not_undone"):
            lines.append(f"Not undone: {', '.join(outcome['not_undone'])}")
        if outcome.get("fingerprint"):
            lines.append(f"Plan fingerprint: {outcome['fingerprint']}")
        if outcome.get("rehearsal"):
            lines.append("Rehearsal: steps ran their rehearse actions; nothing real changed.")
        if outcome.get("retrospective_approval") == "required":
            lines.append("Emergency change: retrospective approval by the CAB required.")
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
        lines.append(f"- {event.get('event')}: {event_line(event)}")
    if len(lines) == 1:
        lines.append("No decisions.")
    return _fit(lines, limit)


def _fit(lines: list[str], limit: int) -> str:
    """The lines, cut where the note would outgrow ``limit``, saying how much was left out.

    The outcome comes first, so it always fits; the full log is in ``gonogo decisions``.
    """
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for index, line in enumerate(lines):
        rest = len(lines) - index
        tail = f"… {rest} more line(s): `gonogo decisions` or the report has everything"
        if len("\n".join([*kept, line, tail])) > limit:
            return "\n".join([*kept, tail])[:limit]
        kept.append(line)
    return text[:limit]


def to_json(
    rows: list[Decision],
    events: Iterable[Mapping[str, Any]] = (),
    preflight: Mapping[str, Any] | None = None,
) -> str:
    found = {"decisions": [r.as_dict() for r in rows], "events": list(events)}
    if preflight and preflight.get("fingerprint"):
        found["plan"] = {k: preflight.get(k) for k in ("fingerprint", "approval", "rehearsal")}
    return json.dumps(found, indent=2)
