"""The P1/P2 incident report gonogo drafts for the incident manager to approve (seed 004).

The draft stands on its own, like the run report it is attached beside: what
happened, the decisions and who made them, a timeline, what was undone and
what was not, who was called and who acknowledged. The facts come from the
run's durable records (its XComs: the outcome, the answers, the calls), read
by :mod:`gonogo.dag.incident`; this module only writes them down.

Pure: no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gonogo.core.documents.text import md_cell, md_line
from gonogo.core.runs.records import moment


@dataclass(frozen=True)
class IncidentFacts:
    """Everything the draft says, gathered from the run's records."""

    title: str  # the change's title
    change_id: str
    run_id: str
    what: str  # "Rollback failed", "Technology reported red"
    priority: str
    raised_at: str  # ISO 8601
    number: str | None = None  # the ITSM's incident, when one was raised
    happened: Sequence[str] = ()
    decisions: Sequence[str] = ()
    timeline: Sequence[tuple[str, str]] = ()  # (ISO 8601 time, what)
    undone: Sequence[str] = ()
    not_undone: Sequence[str] = ()
    calls: Sequence[Mapping[str, Any]] = ()  # each call's record
    sent_back: Sequence[str] = field(default_factory=tuple)  # earlier drafts' comments

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _at(value: Any) -> str:
    found = moment(value)
    return f"{found.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if found else "(time not recorded)"


def _call_line(call: Mapping[str, Any]) -> str:
    role = call.get("role") or "?"
    if call.get("acknowledged") is True:
        return (
            f"{role} was called and acknowledged ({call.get('by')}, {_at(call.get('answered_at'))})"
        )
    if call.get("refused_by"):
        return (
            f"{role} was called; {call['refused_by']} answered but is not in the role, "
            "which does not count"
        )
    return f"{role} was called and did not acknowledge within {call.get('within') or 'the time'}"


def incident_markdown(facts: IncidentFacts) -> str:
    """The draft as Markdown: the request's body, and the approved report kept afterwards."""
    number = f", incident {md_line(facts.number)}" if facts.number else ""
    lines = [
        f"# Incident report ({md_line(facts.priority)}): {md_line(facts.what)}",
        "",
        f"{md_line(facts.title)}, change {md_line(facts.change_id)}, run "
        f"{md_line(facts.run_id)}{number}. Raised {_at(facts.raised_at)}.",
        "",
        "## What happened",
        "",
        *(f"- {md_line(h)}" for h in facts.happened or ["(nothing recorded)"]),
        "",
        "## Decisions",
        "",
        *(f"- {md_line(d)}" for d in facts.decisions or ["No decision was recorded."]),
        "",
        "## Who was called",
        "",
        *(f"- {md_line(_call_line(c))}" for c in facts.calls or []),
        *([] if facts.calls else ["- Nobody was called."]),
        "",
        "## What was undone",
        "",
        *(f"- undone: {md_line(u)}" for u in facts.undone),
        *(f"- **not undone**: {md_line(n)}" for n in facts.not_undone),
        *([] if facts.undone or facts.not_undone else ["- Nothing was undone."]),
        "",
        "## Timeline",
        "",
        "| time | what |",
        "|---|---|",
        *(f"| {_at(at)} | {md_cell(text)} |" for at, text in timeline(facts)),
    ]
    if facts.sent_back:
        lines += [
            "",
            "## Sent back earlier",
            "",
            *(f"- {md_line(c)}" for c in facts.sent_back),
        ]
    return "\n".join(lines) + "\n"


def timeline(facts: IncidentFacts) -> list[tuple[str, str]]:
    """The facts' timeline and the calls, oldest first; entries without a time last."""
    rows = [(at, text) for at, text in facts.timeline]
    for call in facts.calls:
        if call.get("at"):
            rows.append((str(call["at"]), f"{call.get('role')} called"))
        if call.get("acknowledged") is True and call.get("answered_at"):
            rows.append((str(call["answered_at"]), f"{call.get('by')} acknowledged"))
    end = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda row: moment(row[0]) or end)
