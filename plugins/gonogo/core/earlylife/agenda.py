"""The agenda of a leadership (DSL) meeting, from the areas' reports, in seed 003's order.

Seed 003's DSL walks a fixed agenda built from the reds and yellows:

1. earlier red events: have they moved, and if not, what holds them (a decision,
   a cross-professional team?);
2. new red events: what makes the area flag red;
3. what stops the areas from solving them (a decision needed?);
4. must the reds be put in an order;
5. earlier yellow events; 6. new yellow events; 7. must the yellows be put in an order;
8. anything that affects the plan; 9. anything to tell the wards;
10. does the care leadership need more about the reds or yellows;
11. green reflections where things go really well.

"Earlier" is what an area reported by the previous meeting; "now" is its
latest report by this one. Beside the points, the decision log as it stands
for this meeting: what the forums decided on reds and what earlier meetings
logged (and this one, once its log is recorded), with the open red decisions.
Pure: the reports and decisions are the HITL records, read by
:func:`gonogo.core.earlylife.status.report_from_request` and
:func:`~gonogo.core.earlylife.status.decisions_from_request`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gonogo.core.documents.earlylife import decision_log_markdown, decision_rows
from gonogo.core.documents.text import md_cell, md_line
from gonogo.core.earlylife import names
from gonogo.core.earlylife.rounds import Round, rounds
from gonogo.core.earlylife.status import Decision, Report
from gonogo.core.runbook.model import EarlyLife
from gonogo.core.runs.status import GREEN, RED, YELLOW


def meetings(section: EarlyLife, start: datetime) -> list[Round]:
    return rounds(section.meetings, start, section.lasts, section.timezone)


def _when(report: Report) -> datetime | None:
    return _moment(report.at)


def latest_by(reports: Sequence[Report], moment: datetime | None) -> dict[str, Report]:
    """Each area's newest answered report at ``moment`` (None: none yet)."""
    found: dict[str, Report] = {}
    if moment is None:
        return found
    for report in sorted(reports, key=lambda r: _when(r) or moment):
        at = _when(report)
        if report.colour is not None and at is not None and at <= moment:
            found[report.area] = report
    return found


def _line(report: Report, titles: Mapping[str, str]) -> dict[str, Any]:
    return {
        "area": report.area,
        "title": titles.get(report.area, report.area),
        "colour": report.colour,
        "comment": report.comment,
        "needs_decision": report.needs_decision,
        "by": report.by,
        "at": report.at,
    }


def log_so_far(
    decisions: Sequence[Decision], meeting: datetime, group: str | None
) -> list[Decision]:
    """The decision log as it stands for the meeting at ``meeting`` (its group ``group``).

    What was decided before it, what is still open, and what this meeting logged.
    """

    def shown(d: Decision) -> bool:
        when = _moment(d.at)
        return when is None or when <= meeting or d.round == group

    return [d for d in decisions if shown(d)]


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def agenda(
    section: EarlyLife,
    start: datetime,
    reports: Sequence[Report],
    meeting: datetime,
    decisions: Sequence[Decision] = (),
) -> dict[str, Any]:
    """The agenda of the meeting at ``meeting``: the seed's eleven points, each with its areas,
    and the decision log so far."""
    titles = {a.id: a.title or a.id for a in section.areas}
    planned = meetings(section, start)
    this = next((m for m in planned if m.at == meeting), None)
    group = names.meeting_group(this.slot.day, this.slot.at) if this else None
    held = [m.at for m in planned if m.at < meeting]
    previous = held[-1] if held else None
    before = latest_by(reports, previous)
    now = latest_by(reports, meeting)

    def moved(area: str, colour: str) -> dict[str, Any]:
        line = _line(before[area], titles)
        current = now.get(area)
        line["now"] = current.colour if current else None
        line["moved"] = current is not None and current.colour != colour
        line["now_comment"] = current.comment if current else ""
        return line

    earlier_reds = [moved(a, RED) for a, r in before.items() if r.colour == RED]
    new_reds = [
        _line(r, titles)
        for a, r in now.items()
        if r.colour == RED and (a not in before or before[a].colour != RED)
    ]
    reds = [r for r in now.values() if r.colour == RED]
    earlier_yellows = [moved(a, YELLOW) for a, r in before.items() if r.colour == YELLOW]
    new_yellows = [
        _line(r, titles)
        for a, r in now.items()
        if r.colour == YELLOW and (a not in before or before[a].colour != YELLOW)
    ]
    yellows = [r for r in now.values() if r.colour == YELLOW]
    to_decide = [_line(r, titles) for r in now.values() if r.needs_decision]
    points = [
        ("Earlier red events: have they moved? If not, what holds them?", earlier_reds),
        ("New red events: what makes the area flag red?", new_reds),
        (
            "What stops the areas from solving them: is a decision or a team needed?",
            [line for line in to_decide if line["colour"] == RED],
        ),
        (
            "Must the red challenges be put in an order?",
            [_line(r, titles) for r in reds] if len(reds) > 1 else [],
        ),
        ("Earlier yellow events: have they moved?", earlier_yellows),
        ("New yellow events", new_yellows),
        (
            "Must the yellow issues be put in an order?",
            [_line(r, titles) for r in yellows] if len(yellows) > 1 else [],
        ),
        ("Anything that affects the plan?", to_decide),
        ("Anything to tell the wards and the operations?", []),
        ("Does the care leadership need more about the red or yellow challenges?", []),
        (
            "Green reflections: where does it go really well?",
            [_line(r, titles) for r in now.values() if r.colour == GREEN and r.comment],
        ),
    ]
    silent = sorted(titles[a] for a in titles if a not in now)
    return {
        "meeting": meeting.isoformat(),
        "local": meeting.astimezone(section.timezone).strftime("%a %d %b %H:%M"),
        "previous": previous.isoformat() if previous else None,
        "points": [
            {"number": n, "question": q, "items": items}
            for n, (q, items) in enumerate(points, start=1)
        ],
        "not_reported": silent,
        "escalate_to": list(section.escalate_to),
        "meeting_group": group,
        "decisions": decision_rows(log_so_far(decisions, meeting, group), titles),
    }


def next_meeting(section: EarlyLife, start: datetime, now: datetime) -> datetime | None:
    """The first meeting at or after ``now``; the last one once support has no more."""
    planned = [m.at for m in meetings(section, start)]
    upcoming = [m for m in planned if m >= now]
    if upcoming:
        return upcoming[0]
    return planned[-1] if planned else None


def agenda_markdown(data: Mapping[str, Any], title: str) -> str:
    """The agenda as Markdown, to share before the meeting or project in it."""
    lines = [f"# DSL meeting {data['local']}: {md_line(title)}", ""]
    if data["previous"]:
        lines += [f"Changes since the previous meeting ({data['previous']}).", ""]
    for point in data["points"]:
        lines.append(f"{point['number']}. {point['question']}")
        for item in point["items"]:
            text = f"   - {md_cell(item['title'])}: {item['colour']}"
            if "moved" in item:
                text += f", now {item['now'] or 'not reported'}"
                text += "" if item["moved"] else " (has not moved)"
            if item["needs_decision"]:
                text += ", needs a decision"
            if item["comment"]:
                text += f": {md_cell(item['comment'])}"
            lines.append(text)
    if data["not_reported"]:
        lines += ["", f"No report yet from: {md_cell(', '.join(data['not_reported']))}."]
    if data.get("decisions"):
        lines += ["", "## Decision log", "", *decision_log_markdown(data["decisions"])]
    return "\n".join(lines) + "\n"


def agenda_html(data: Mapping[str, Any]) -> str:
    """The agenda as a page: the eleven points, each with the areas it is about."""
    from gonogo.core.documents.html import render

    return render("agenda.html.j2", a=data)
