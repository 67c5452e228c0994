"""The early-life status: areas by rounds with colours and comments, as JSON, Markdown and HTML.

One data shape (:func:`support_data`) serves the plugin page, ``gonogo
early-life`` and the board's early-life column, so they show the same facts:
each round that has opened, each area's report in it (colour, comment, who,
needs a decision), the latest report per area, what is overdue, and the overall
colour with its reasons (:func:`gonogo.core.earlylife.status.overall`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gonogo.core.documents.text import md_cell, md_line, md_text
from gonogo.core.earlylife import names
from gonogo.core.earlylife.status import Decision, Support
from gonogo.core.runbook.model import Runbook

#: The ``url_route`` of the early-life view inside the Airflow UI.
EARLY_LIFE_ROUTE = "gonogo-early-life"


def support_data(
    runbook: Runbook,
    support: Support,
    now: datetime,
    run_id: str,
    state: str,
    decisions: Sequence[Decision] = (),
) -> dict[str, Any]:
    """The status of one early-life run as plain JSON-ready data, with its decision log."""
    assert runbook.early_life is not None
    section = runbook.early_life
    zone = section.timezone
    titles = {a.id: a.title or a.id for a in section.areas}
    rounds = []
    for item in support.rounds:
        group = names.round_group(item.slot.day, item.slot.at)
        cells = {}
        for area in support.areas:
            found = support.reports.get((group, area))
            overdue = (group, area) in support.overdue
            cells[area] = {
                "colour": found.colour if found else None,
                "comment": found.comment if found else "",
                "by": found.by if found else "",
                "at": found.at if found else "",
                "needs_decision": bool(found and found.needs_decision),
                "overdue": overdue,
            }
        rounds.append(
            {
                "round": group,
                "day": item.slot.day,
                "at": item.at.isoformat(),
                "local": item.at.astimezone(zone).strftime("%a %d %b %H:%M"),
                "areas": cells,
            }
        )
    latest = {
        area: (report.as_dict() if report else None) for area, report in support.latest.items()
    }
    return {
        "runbook": runbook.runbook,
        "title": runbook.title,
        "change_id": runbook.change.id,
        "dag_id": names.early_life_dag(runbook.runbook),
        "run_id": run_id,
        "state": state,
        "timezone": zone.key,
        "start": support.start.astimezone(zone).isoformat(),
        "end": support.end.astimezone(zone).isoformat(),
        "active": support.start <= now < support.end and state in ("running", "queued"),
        "at": now.isoformat(),
        "areas": [{"id": a, "title": titles.get(a, a)} for a in support.areas],
        "meetings": bool(section.meetings),  # whether there is an agenda to link to
        "rounds": rounds,
        "latest": latest,
        "overdue": [{"round": g, "area": a, "title": titles.get(a, a)} for g, a in support.overdue],
        "needs_decision": [
            {"area": a, "round": r["round"], "comment": r["comment"]}
            for a, r in latest.items()
            if r and r["needs_decision"]
        ],
        "status": {"colour": support.status.colour, "reasons": list(support.status.reasons)},
        "decisions": decision_rows(decisions, titles),
    }


def decision_rows(decisions: Sequence[Decision], titles: Mapping[str, str]) -> list[dict[str, Any]]:
    """The decision log as rows, oldest first (open ones last): the forums' answers to reds and
    the meetings' logged decisions in one list, for the status page and the agenda alike."""

    def title(d: Decision) -> str:
        meeting = names.parse_meeting(d.round) if d.forum == names.MEETING_FORUM else None
        if meeting is not None:
            return f"Meeting day {meeting.day} {meeting.at:%H:%M}"
        return titles.get(d.area, d.area)

    ordered = sorted(decisions, key=lambda d: (d.at or "~", d.round, d.area))
    return [{**d.as_dict(), "title": title(d)} for d in ordered]


def decision_log_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The decision log as a Markdown table's lines (none when the log is empty)."""
    if not rows:
        return []
    lines = [
        "| round | area | forum | decision | owner | due | by | escalated to |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in rows:
        said = f"{d['decision']}: {d['text']}" if d["decision"] else "waiting"
        cells = [d["round"], d["title"], d["forum"], said, d["owner"], d["due"], d["by"]]
        cells.append(d["escalated_to"])
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return lines


def _cell(cell: Mapping[str, Any]) -> str:
    if cell["colour"] is None:
        return "**overdue**" if cell["overdue"] else "·"
    text = cell["colour"].upper() if cell["colour"] != "green" else "green"
    if cell["needs_decision"]:
        text += " (needs a decision)"
    if cell["comment"]:
        text += f": {cell['comment']}"
    return md_cell(text)


def support_markdown(data: Mapping[str, Any]) -> str:
    """The status as Markdown, for a file beside the change record or a chat message."""
    status = data["status"]
    lines = [
        f"# Early-life support: {md_line(data['title'])}",
        "",
        f"Change {md_text(data['change_id'])}, run `{data['run_id']}` ({data['state']}). "
        f"Support from {data['start']} to {data['end']} ({data['timezone']}).",
        "",
        f"**Overall: {status['colour'].upper()}**"
        + (f" ({'; '.join(status['reasons'])})" if status["reasons"] else ""),
        "",
        "## Latest per area",
        "",
        "| area | colour | round | comment |",
        "|---|---|---|---|",
    ]
    for area in data["areas"]:
        found = data["latest"].get(area["id"])
        if found:
            lines.append(
                f"| {md_cell(area['title'])} | {found['colour']}"
                f"{' (needs a decision)' if found['needs_decision'] else ''} | {found['round']} | "
                f"{md_cell(found['comment'])} |"
            )
        else:
            lines.append(f"| {md_cell(area['title'])} | no report yet | | |")
    if data["overdue"]:
        lines += ["", "## Overdue", ""]
        lines += [f"- {md_cell(o['title'])}, round {o['round']}" for o in data["overdue"]]
    if data["decisions"]:
        lines += ["", "## Decision log", "", *decision_log_markdown(data["decisions"])]
    for kept in data.get("incident_reports") or []:
        lines += [
            "",
            f"## Incident report ({md_text(kept.get('priority'))}), approved by "
            f"{md_text(kept.get('by'))}",
            "",
            *(
                f"##{line}" if line.startswith("#") else line
                for line in kept["report"].splitlines()
            ),
        ]
    lines += ["", "## Rounds", ""]
    if data["rounds"]:
        lines.append("| round | " + " | ".join(md_cell(a["title"]) for a in data["areas"]) + " |")
        lines.append("|---" * (len(data["areas"]) + 1) + "|")
        for item in data["rounds"]:
            cells = [_cell(item["areas"][a["id"]]) for a in data["areas"]]
            lines.append(f"| {item['local']} | " + " | ".join(cells) + " |")
    else:
        lines.append("No round has opened yet.")
    return "\n".join(lines) + "\n"


def support_html(data: Mapping[str, Any], refresh: int | None = 30) -> str:
    """The status page: the overall colour, the latest per area, the rounds grid."""
    from gonogo.core.documents.html import render

    return render("earlylife.html.j2", s=data, refresh=refresh)
