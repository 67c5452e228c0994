"""A leadership meeting's decision log: its form, the decisions in an answer, and what is refused.

Seed 003's DSL logs each decision with who carries it out, by when, and where it
went when the meeting could not settle it. The coordinator records a meeting's
decisions in one HITL request (``<meeting>.log``, :mod:`gonogo.dag.earlylife`):
a fixed number of rows (:data:`~gonogo.core.earlylife.names.LOG_ROWS`), each
the fields ``decision_<n>``, ``owner_<n>``, ``due_<n>`` and, when the section
names forums, ``escalated_to_<n>``. Why rows of plain fields rather than one
list of objects is said where the request is built.

The rule an answer is checked by is here, once: the API server refuses an
answer that breaks it before Airflow stores it (:mod:`gonogo.server.middleware`),
and the task reads the decisions with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gonogo.core.earlylife import names
from gonogo.core.runs.decisions import has_reason


def log_form(forums: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The form's fields besides the comment: ``{name: {"default": …, **json schema}}``, in order.

    Each row is its own section of the form (Airflow's UI shows a section as a
    fold-out panel), and the forum is a drop-down of "none" and ``forums``.
    """
    fields: dict[str, dict[str, Any]] = {}
    for row in range(1, names.LOG_ROWS + 1):
        section = f"Decision {row}"
        text: dict[str, Any] = {"default": "", "type": ["string", "null"], "section": section}
        fields[names.log_field(names.LOG_DECISION, row)] = {
            **text,
            "title": "Decision",
            "description": "What was decided" + (" (leave the rest empty)" if row > 1 else ""),
        }
        fields[names.log_field(names.LOG_OWNER, row)] = {
            **text,
            "title": "Owner",
            "description": "Who carries it out (required with a decision)",
        }
        fields[names.log_field(names.LOG_DUE, row)] = {
            **text,
            "title": "Due",
            "description": "By when",
        }
        if forums:
            fields[names.log_field(names.LOG_ESCALATED, row)] = {
                "default": names.NOT_ESCALATED,
                "type": "string",
                "enum": [names.NOT_ESCALATED, *forums],
                "section": section,
                "title": "Escalated to",
                "description": "The forum the decision goes on to, if the meeting escalated it",
            }
    return fields


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def logged(params_input: Mapping[str, Any]) -> list[dict[str, str]]:
    """The decisions an answer logs, in row order: each row where any field was filled in.

    A row's ``escalated_to`` is "" when it was not escalated.
    """
    found = []
    for row in range(1, names.LOG_ROWS + 1):
        parts = {p: _text(params_input.get(names.log_field(p, row))) for p in names.LOG_PARTS}
        if parts[names.LOG_ESCALATED] == names.NOT_ESCALATED:
            parts[names.LOG_ESCALATED] = ""
        if any(parts.values()):
            found.append({"row": str(row), **parts})
    return found


def log_refusal(chosen: Iterable[str], params_input: Mapping[str, Any]) -> str | None:
    """Why an answer to a meeting's decision log is refused, or None.

    Every logged decision needs the decision and its owner (who says something,
    as a comment must); "Logged" needs at least one decision, "No decisions"
    none, so an empty log is said, not guessed.
    """
    rows = logged(params_input)
    options = list(chosen)
    for row in rows:
        for part, what in ((names.LOG_DECISION, "what was decided"), (names.LOG_OWNER, "who")):
            if not has_reason(row[part]):
                field = names.log_field(part, int(row["row"]))
                return (
                    f"decision {row['row']} ({field}) needs {what}: a logged decision has a "
                    "decision and an owner; nothing was recorded"
                )
    if names.LOGGED in options and not rows:
        return (
            f"{names.LOGGED} needs at least one decision ({names.log_field(names.LOG_DECISION, 1)}"
            f" and {names.log_field(names.LOG_OWNER, 1)}); answer {names.NO_DECISIONS!r} when the "
            "meeting decided nothing; nothing was recorded"
        )
    if names.NO_DECISIONS in options and rows:
        return (
            f"{names.NO_DECISIONS!r} was chosen but decision {rows[0]['row']} is filled in; "
            f"choose {names.LOGGED!r} to log it; nothing was recorded"
        )
    return None
