"""The kjøreplan: everything the CAB reviews, from the runbook alone.

Change, service, environment and window; the contact list; every phase and
activity in order with owner, planned start and end and its rollback; each
GO/NOGO with its planned time, participants and agenda; the rollback plan in the
order it would run; the communication plan; and a timeline picture.

:func:`plan_data` is the one shape (the JSON format); Markdown and HTML are
renderings of it, so the three formats cannot disagree.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from gonogo.core.documents.gantt import Bar, gantt_svg
from gonogo.core.documents.outline import describe
from gonogo.core.documents.text import md_cell, md_text
from gonogo.core.runbook.model import Activity, Gate, Runbook
from gonogo.core.runs.rollback import rollback_if_last_fails
from gonogo.core.timing.clock import format_clock, format_duration
from gonogo.core.timing.timeplan import time_plan


def _at(start: datetime | None, offset: timedelta) -> str:
    """A planned time: the clock time from the window start, else relative to T (``T+1h35m``)."""
    return (start + offset).isoformat() if start is not None else format_clock(offset)


def _does(activity: Activity) -> str:
    return describe(activity).strip("`") if activity.manual is None else activity.manual


def plan_data(runbook: Runbook) -> dict[str, Any]:
    """The kjøreplan as plain data: the JSON format and the input of every rendering."""
    plan = time_plan(runbook)
    slots = plan.by_id()
    start = runbook.window.start if runbook.window is not None else None

    def users(role: str | None) -> list[str]:
        return list(runbook.roles[role].users) if role and role in runbook.roles else []

    items: list[dict[str, Any]] = []
    number = 0
    for item in runbook.phases:
        number += 1
        if isinstance(item, Gate):
            slot = slots[item.gate]
            items.append(
                {
                    "kind": "gate",
                    "number": number,
                    "id": item.gate,
                    "title": item.title or item.gate,
                    "opens": str(item.opens) if item.opens is not None else None,
                    "planned_start": _at(start, slot.start),
                    "planned_end": _at(start, slot.end),
                    "offset_minutes": slot.start.total_seconds() / 60,
                    "minutes": slot.duration.total_seconds() / 60,
                    "participants": [{"role": r, "users": users(r)} for r in item.sign_off],
                    "timeout": format_duration(item.timeout) if item.timeout else None,
                    "on_nogo": item.on_nogo,
                    "checklist": list(item.checklist),
                    "checks": [
                        {
                            "id": c.id,
                            "title": c.title or c.id,
                            "required": c.required,
                            "does": _does(c),
                        }
                        for c in item.checks
                    ],
                }
            )
            continue
        steps = []
        for index, step in enumerate(item.steps, start=1):
            slot = slots[step.id]
            steps.append(
                {
                    "number": f"{number}.{index}",
                    "id": step.id,
                    "title": step.title or step.id,
                    "kind": step.kind,
                    "owner": step.owner,
                    "users": users(step.owner),
                    "planned": format_duration(step.planned) if step.planned else None,
                    "planned_start": _at(start, slot.start),
                    "planned_end": _at(start, slot.end),
                    "offset_minutes": slot.start.total_seconds() / 60,
                    "minutes": slot.duration.total_seconds() / 60,
                    "does": _does(step),
                    "undo": _does(step.rollback) if step.rollback is not None else None,
                    "read_only": step.read_only,
                }
            )
        first = min(slots[s.id].start for s in item.steps)
        last = max(slots[s.id].end for s in item.steps)
        items.append(
            {
                "kind": "phase",
                "number": number,
                "id": item.id,
                "title": item.title or item.id,
                "planned_start": _at(start, first),
                "planned_end": _at(start, last),
                "steps": steps,
            }
        )
    undo = rollback_if_last_fails(runbook)
    by_id = {s.id: s for _, s in runbook.steps()}
    order = [
        {"id": s, "title": by_id[s].title or s, "does": _does(by_id[s].rollback)}  # type: ignore[arg-type]
        for s in undo.compensate
    ]
    order += [
        {"id": g.id, "title": g.title or g.id, "does": _does(g)} for g in runbook.rollback.steps
    ]
    return {
        "document": "kjøreplan",
        "runbook": runbook.runbook,
        "title": runbook.title,
        "description": (runbook.description or "").strip(),
        "change": {"id": runbook.change.id, "type": runbook.change.type},
        "service": runbook.service,
        "environment": runbook.environment,
        "window": (
            {"start": runbook.window.start.isoformat(), "end": runbook.window.end.isoformat()}
            if runbook.window is not None
            else None
        ),
        "planned_end": _at(start, plan.finish),
        "contacts": [
            {
                "role": name,
                "title": role.title or name,
                "users": list(role.users),
                "contact": role.contact,
                "email": getattr(role, "email", None),
            }
            for name, role in runbook.roles.items()
        ],
        "items": items,
        "rollback": {
            "mode": runbook.rollback.mode,
            "approve": list(runbook.rollback.approve),
            "decide_by": list(runbook.rollback.decide_by),
            "order": order,
            "not_undone": list(undo.not_undone),
        },
        "communication": [
            {
                "on": list(rule.on),
                "connection": rule.connection,
                "roles": list(getattr(rule, "roles", []) or []),
            }
            for rule in runbook.notify
        ],
    }


def plan_bars(data: dict[str, Any]) -> list[Bar]:
    """The Gantt rows of a kjøreplan: every step a bar, every gate a milestone."""
    bars: list[Bar] = []
    for item in data["items"]:
        if item["kind"] == "gate":
            bars.append(Bar(f"◆ {item['title']}", True, item["offset_minutes"], 0))
            continue
        bars += [
            Bar(f"{s['number']} {s['title']}", False, s["offset_minutes"], s["minutes"])
            for s in item["steps"]
        ]
    return bars


def plan_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _people(users: list[str]) -> str:
    return ", ".join(users) if users else "(nobody)"


def _span(item: dict[str, Any]) -> str:
    """``start to end``, or only the start of a gate planned to take no time."""
    if item["planned_end"] == item["planned_start"]:
        return str(item["planned_start"])
    return f"{item['planned_start']} to {item['planned_end']}"


def plan_markdown(data: dict[str, Any]) -> str:
    """The kjøreplan as Markdown: headings per phase and gate, a table of activities."""
    t = md_text
    lines = [
        f"# Kjøreplan: {t(data['title'])}",
        "",
        f"- **Runbook:** `{data['runbook']}`",
        f"- **Change:** {t(data['change']['id'])} ({data['change']['type']})",
        f"- **Service:** {t(data['service'])} in {t(data['environment'])}",
    ]
    if data["window"]:
        lines.append(f"- **Window:** {data['window']['start']} to {data['window']['end']}")
    else:
        lines.append("- **Window:** none set; times are relative to the planned start T")
    lines.append(f"- **Planned end:** {data['planned_end']}")
    if data["description"]:
        lines += ["", t(data["description"])]
    lines += ["", "## Contacts", ""]
    if data["contacts"]:
        lines += ["| role | people | contact |", "|---|---|---|"]
        for c in data["contacts"]:
            reach = ", ".join(x for x in (c["contact"], c["email"]) if x) or "-"
            lines.append(
                f"| {md_cell(c['title'])} (`{c['role']}`) | {md_cell(_people(c['users']))} | "
                f"{md_cell(reach)} |"
            )
    else:
        lines.append("No roles are named.")
    for item in data["items"]:
        lines.append("")
        if item["kind"] == "gate":
            lines += [
                f"## {item['number']}. GO/NOGO: {t(item['title'])} ({_span(item)})",
                "",
                "- **Participants:** "
                + "; ".join(f"{p['role']} ({_people(p['users'])})" for p in item["participants"]),
                f"- **Timeout:** {item['timeout'] or 'none'}; no answer in time is NOGO",
            ]
            if item["opens"]:
                lines.append(f"- **Opens:** {item['opens']}, not before")
            if item["on_nogo"] == "reask":
                lines.append("- **On NOGO:** the roles that said NOGO are asked again after a fix")
            if item["checklist"] or item["checks"]:
                lines += ["", "Agenda:", ""]
                lines += [f"- [ ] {t(entry)}" for entry in item["checklist"]]
                for c in item["checks"]:
                    required = "required" if c["required"] else "for information"
                    lines.append(f"- check {t(c['title'])} ({required}): `{md_cell(c['does'])}`")
            continue
        lines += [
            f"## {item['number']}. {t(item['title'])} ({_span(item)})",
            "",
            "| # | start | end | activity | owner | does | rollback |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in item["steps"]:
            owner = f"{s['owner']} ({_people(s['users'])})" if s["owner"] else "-"
            undo = s["undo"] or ("nothing to undo (read only)" if s["read_only"] else "-")
            lines.append(
                f"| {s['number']} | {s['planned_start']} | {s['planned_end']} | "
                f"{md_cell(s['title'])} | {md_cell(owner)} | {md_cell(s['does'])} | "
                f"{md_cell(undo)} |"
            )
    rollback = data["rollback"]
    lines += ["", "## Rollback plan", "", f"Mode: {rollback['mode']}."]
    if rollback["approve"]:
        lines.append(f"Before it starts, GO from: {', '.join(rollback['approve'])}.")
    lines += ["", "If the last activity failed, rollback would run in this order:", ""]
    lines += [
        f"{n}. {t(o['title'])}: `{md_cell(o['does'])}`"
        for n, o in enumerate(rollback["order"], start=1)
    ] or ["Nothing to run."]
    if rollback["not_undone"]:
        lines += ["", f"Not undone (no rollback defined): {', '.join(rollback['not_undone'])}"]
    lines += ["", "## Communication plan", ""]
    if data["communication"]:
        lines += ["| when | to | roles |", "|---|---|---|"]
        lines += [
            f"| {', '.join(c['on'])} | {md_cell(c['connection'])} | {', '.join(c['roles']) or '-'} |"
            for c in data["communication"]
        ]
    else:
        lines.append("No notifications are configured.")
    return "\n".join(lines) + "\n"


def plan_html(data: dict[str, Any]) -> str:
    """The kjøreplan as one self-contained HTML file that prints on A4."""
    from gonogo.core.documents.html import render

    return render(
        "kjoreplan.html.j2", plan=data, gantt=gantt_svg(plan_bars(data), "Planned timeline")
    )
