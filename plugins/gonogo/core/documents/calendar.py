"""The change calendar as Markdown, HTML (the Calendar page), ICS and JSON.

Every view renders :func:`gonogo.core.calendar.listing.calendar_data`, so the
command line, the subscribed calendar and the page in the Airflow UI show the
same changes, windows, freezes and collisions. ICS is written with the
``icalendar`` library; each change keeps one UID (its runbook id), so a mail
client that subscribes to the file updates the event when the window moves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.core.calendar.listing import weeks
from gonogo.core.documents.html import clock
from gonogo.core.documents.text import md_cell, md_text

#: The ``url_route`` of the Calendar page inside the Airflow UI (``…/plugin/<route>``).
CALENDAR_ROUTE = "gonogo-calendar"
#: The ICS calendar's product id and name.
PRODID = "-//gonogo//change calendar//EN"
UID_DOMAIN = "gonogo"


def calendar_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def period_text(data: Mapping[str, Any]) -> str:
    """``2026-12-07 to 2026-12-20`` for whole days (the last one included), else the two times."""
    start, end = datetime.fromisoformat(str(data["from"])), datetime.fromisoformat(str(data["to"]))
    if start.time() == end.time() == datetime.min.time():
        return f"{start.date()} to {(end - timedelta(days=1)).date()}"
    return f"{clock(data['from'])} to {clock(data['to'])}"


def _span(item: Mapping[str, Any]) -> str:
    start, end = clock(item["start"]), clock(item["end"])
    if start[:10] == end[:10]:
        return f"{start} to {end[11:]}"
    return f"{start} to {end}"


def _services(value: Any) -> str:
    return "all" if value == "all" else ", ".join(value) or "-"


def _notes(change: Mapping[str, Any]) -> str:
    notes = (
        [f"**collides with {', '.join(change['collides_with'])}**"]
        if change["collides_with"]
        else []
    )
    notes += [f"{f['severity']}: {f['message']}" for f in change["findings"]]
    return "; ".join(notes) or "-"


def calendar_markdown(data: Mapping[str, Any]) -> str:
    """The period's changes, collisions, freezes and maintenance windows, as Markdown tables."""
    lines = [
        f"# Change calendar: {period_text(data)} ({data['timezone']})",
        "",
        "## Planned changes",
        "",
    ]
    if data["changes"]:
        lines += [
            "| when | change | type | service | environment | state | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in data["changes"]:
            lines.append(
                f"| {_span(c)} | {md_cell(c['title'])} (`{md_cell(c['runbook'])}`, "
                f"{md_cell(c['change_id'])}) | {c['type']} | {md_cell(c['service'])} | "
                f"{md_cell(c['environment'])} | {md_cell(c['state'])} | {md_cell(_notes(c))} |"
            )
    else:
        lines.append("No change is planned in this period.")
    lines += ["", "## Collisions", ""]
    if data["collisions"]:
        for hit in data["collisions"]:
            lines.append(
                f"- **{hit['severity']}**: `{md_text(hit['first'])}` and `{md_text(hit['second'])}` "
                f"on {md_text(', '.join(hit['services']))} in {md_text(hit['environment'])}: "
                f"{_span(hit)}"
            )
    else:
        lines.append("None.")
    lines += ["", "## Freezes", ""]
    if data["freezes"]:
        lines += [
            "| from | to | freeze | services | environments | reason | exception by |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in data["freezes"]:
            lines.append(
                f"| {clock(f['start'])} | {clock(f['end'])} | {md_cell(f['title'])} | "
                f"{md_cell(_services(f['services']))} | {md_cell(', '.join(f['environments']) or 'all')} | "
                f"{md_cell(f['reason'])} | {md_cell(', '.join(f['exception']) or 'nobody')} |"
            )
    else:
        lines.append("None.")
    lines += ["", "## Maintenance windows", ""]
    if data["maintenance"]:
        lines += ["| when | window | services | environments |", "|---|---|---|---|"]
        for m in data["maintenance"]:
            lines.append(
                f"| {_span(m)} | {md_cell(m['title'])} ({md_cell(m['every'])}) | "
                f"{md_cell(_services(m['services']))} | {md_cell(', '.join(m['environments']) or 'all')} |"
            )
    else:
        lines.append("None.")
    if data["promotions"]:
        lines += ["", "## Promotion through the environments", ""]
        for p in data["promotions"]:
            path = " → ".join(
                f"{md_text(s['environment'])} (`{md_text(s['runbook'])}`, {clock(s['start'])}, "
                f"{md_text(s['state'])})"
                for s in p["steps"]
            )
            lines.append(f"- {md_text(p['change_id'])}: {path}")
    return "\n".join(lines) + "\n"


def calendar_html(
    data: Mapping[str, Any],
    ui_base: str | None = None,
    kjoreplan_route: str = "",
    refresh: int | None = None,
) -> str:
    """The calendar page: a grid of weeks, then every entry in lists.

    ``ui_base``: the Airflow UI's base path, for links to each change's kjøreplan
    (none in a file written by ``gonogo calendar``).
    """
    from gonogo.core.documents.html import render

    return render(
        "calendar.html.j2",
        c=data,
        weeks=weeks(data),
        ui_base=ui_base,
        kjoreplan_route=kjoreplan_route,
        refresh=refresh,
        notes=_notes,
        span=_span,
        services=_services,
        period=period_text(data),
    )


def calendar_ics(data: Mapping[str, Any]) -> bytes:
    """The calendar as an iCalendar file (RFC 5545): one event per change, window and freeze."""
    from icalendar import Calendar, Event

    ics = Calendar()
    ics.add("prodid", PRODID)
    ics.add("version", "2.0")
    ics.add("calscale", "GREGORIAN")
    ics.add("x-wr-calname", "Change calendar")
    ics.add("x-wr-timezone", str(data["timezone"]))
    stamp = _utc(str(data["at"]))

    def event(uid: str, summary: str, item: Mapping[str, Any], description: str) -> Event:
        found = Event()
        found.add("uid", f"{uid}@{UID_DOMAIN}")
        found.add("dtstamp", stamp)
        found.add("dtstart", _utc(str(item["start"])))
        found.add("dtend", _utc(str(item["end"])))
        found.add("summary", summary)
        found.add("description", description)
        return found

    for c in data["changes"]:
        mark = "COLLISION: " if c["collides_with"] else ""
        found = event(
            f"change-{c['runbook']}",
            f"{mark}{c['title']} ({c['service']}, {c['environment']}; {c['type']})",
            c,
            "\n".join(
                [
                    f"Runbook {c['runbook']}, change {c['change_id']} ({c['type']}); {c['state']}.",
                    *(f"Collides with {other}." for other in c["collides_with"]),
                    *(f"{f['severity']}: {f['message']}" for f in c["findings"]),
                ]
            ),
        )
        found.add("categories", ["change", c["type"]])
        found.add("status", "CONFIRMED")
        ics.add_component(found)
    for f in data["freezes"]:
        found = event(
            f"freeze-{f['id']}",
            f"Freeze: {f['title']}",
            f,
            f"{f['reason']}\nServices: {_services(f['services'])}; environments: "
            f"{', '.join(f['environments']) or 'all'}; exception by: "
            f"{', '.join(f['exception']) or 'nobody'}.",
        )
        found.add("categories", ["freeze"])
        found.add("transp", "TRANSPARENT")
        ics.add_component(found)
    for m in data["maintenance"]:
        day = str(m["start"])[:10]
        found = event(
            f"maintenance-{m['id']}-{day}",
            f"Maintenance window: {m['title']}",
            m,
            f"{m['every']}; services: {_services(m['services'])}; environments: "
            f"{', '.join(m['environments']) or 'all'}.",
        )
        found.add("categories", ["maintenance"])
        found.add("transp", "TRANSPARENT")
        ics.add_component(found)
    return bytes(ics.to_ical())


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
