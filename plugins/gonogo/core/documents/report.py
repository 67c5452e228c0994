"""The report after a change: what ran, against plan, who decided what, what was undone.

It is attached to the change record, so it must stand on its own: the outcome
and why; every activity with owner, planned against actual start, duration and
result; every decision; what was rolled back and what was not; notifications
(events) where those were recorded; a link to each task's log; and a
plan-against-actual Gantt picture.

:func:`report_data` is the one shape (the JSON format, and what the server's
JSON endpoint returns to ``gonogo report``); Markdown and HTML render it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from gonogo.core import naming
from gonogo.core.documents.gantt import Bar, gantt_svg
from gonogo.core.documents.text import md_cell, md_text
from gonogo.core.runs import states
from gonogo.core.runs.run import Progress
from gonogo.core.timing.clock import format_duration


def _q(value: str) -> str:
    return quote(value, safe="")


def task_link(dag_id: str, run_id: str, task_id: str) -> str:
    """The Airflow UI path of a task instance (its logs), relative to the UI's base URL."""
    return f"dags/{_q(dag_id)}/runs/{_q(run_id)}/tasks/{_q(task_id)}"


def request_link(dag_id: str, run_id: str, task_id: str) -> str:
    """The Airflow UI path where an open request is answered (Required Actions of the task)."""
    return f"{task_link(dag_id, run_id, task_id)}/required_actions"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def report_data(progress: Progress, now: datetime | None = None) -> dict[str, Any]:
    """The report as plain data; times are ISO 8601, durations in seconds.

    With ``now``, each open request also says how long it has been waiting.
    """
    data = progress.as_dict()
    data["document"] = "report"
    for row, activity in zip(data["activities"], progress.activities, strict=True):
        row["duration"] = _seconds(activity.start, activity.end)
        row["log"] = task_link(progress.dag_id, progress.run_id, activity.task_id)
    for row in data["awaited"]:
        row["link"] = request_link(progress.dag_id, progress.run_id, row["task_id"])
        since = datetime.fromisoformat(row["since"]) if row["since"] else None
        row["waiting"] = (now - since).total_seconds() if now and since else None
    for row in data["rollback"]:
        row["log"] = task_link(progress.dag_id, progress.run_id, row["task_id"])
    outcome = dict(progress.outcome or {})
    data["outcome"] = outcome or None
    data["rollback_ran"] = any(
        t.task_id == naming.ROLLBACK_START and t.state == states.SUCCESS for t in progress.rollback
    )
    data["result"] = outcome.get("outcome") or (progress.state if progress.end else "running")
    data["plan"] = plan_facts(outcome)
    data["bars"] = [_bar_dict(b) for b in report_bars(progress)]
    return data


def plan_facts(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """What the run's outcome says about its plan: fingerprint, rehearsal, approval. Pure."""
    facts = []
    if outcome.get("fingerprint"):
        facts.append(("Plan fingerprint", str(outcome["fingerprint"])))
    if outcome.get("rehearsal"):
        facts.append(("Rehearsal", "steps ran their rehearse actions; nothing real changed"))
    approval = outcome.get("retrospective_approval")
    if approval == "required":
        facts.append(("Approval", "retrospective approval required: the CAB has not approved it"))
    elif approval:
        facts.append(("Approval", f"emergency change, approved afterwards: {approval}"))
    return facts


def _bar_dict(bar: Bar) -> dict[str, Any]:
    return {
        "label": bar.label,
        "milestone": bar.milestone,
        "planned_start": bar.planned_start,
        "planned_minutes": bar.planned_minutes,
        "actual_start": bar.actual_start,
        "actual_minutes": bar.actual_minutes,
        "result": bar.result,
    }


def report_bars(progress: Progress) -> list[Bar]:
    """Plan against actual, in minutes from the planned start (or the run's start)."""
    base = progress.planned_start or progress.start
    if base is None:
        return []

    def minutes(at: datetime | None) -> float | None:
        return round((at - base).total_seconds() / 60, 2) if at else None

    bars = []
    end_of_run = progress.end
    for a in progress.activities:
        start = minutes(a.start)
        finish = minutes(a.end or (end_of_run if a.start else None))
        planned_start = minutes(a.planned_start)
        planned_end = minutes(a.planned_end)
        bars.append(
            Bar(
                ("◆ " if a.kind == "gate" else "") + a.title,
                a.kind == "gate",
                planned_start,
                (planned_end or 0) - (planned_start or 0),
                start,
                (finish - start) if start is not None and finish is not None else None,
                a.result,
            )
        )
    return bars


def report_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _clock(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _took(seconds: float | None) -> str:
    return format_duration(timedelta(seconds=round(seconds))) if seconds is not None else "-"


def report_markdown(data: dict[str, Any], ui_base: str = "") -> str:
    """The report as Markdown, to attach to the change record."""
    t = md_text
    outcome = data["outcome"] or {}
    lines = [
        f"# Report: {t(data['title'])}",
        "",
        f"- **Run:** `{data['run_id']}` of `{data['dag_id']}`",
        f"- **Change:** {t(data['change'])}",
        f"- **Service:** {t(data['service'])} in {t(data['environment'])}",
        f"- **Started:** {_clock(data['start'])} by {t(data['triggered_by'] or 'the scheduler')}",
        f"- **Ended:** {_clock(data['end'])}",
        f"- **Outcome:** {data['result']}",
        f"- **Status:** {data['status']['colour']} ({'; '.join(data['status']['reasons'])})",
    ]
    if outcome.get("reasons"):
        lines.append(f"- **Why:** {t('; '.join(outcome['reasons']))}")
    lines += [f"- **{label}:** {t(text)}" for label, text in data.get("plan", [])]
    lines += [
        "",
        "## Activities",
        "",
        "| activity | owner | planned start | actual start | took | result | log |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in data["activities"]:
        kind = "◆ " if a["kind"] == "gate" else ""
        lines.append(
            f"| {kind}{md_cell(a['title'])} | {md_cell(a['owner'] or '-')} | "
            f"{_clock(a['planned_start'])} | {_clock(a['start'])} | {_took(a['duration'])} | "
            f"{a['result'] or 'not run'} | [log]({ui_base}{a['log']}) |"
        )
    lines += ["", "## Decisions", ""]
    if data["decisions"]:
        lines += ["| when | gate | role | answer | by | comment |", "|---|---|---|---|---|---|"]
        for d in data["decisions"]:
            lines.append(
                f"| {_clock(d['at'])} | {md_cell(d['gate'])} | {md_cell(d['role'])} | "
                f"{d['answer']} | {md_cell(d['by'] or '-')} | {md_cell(d['comment'] or '-')} |"
            )
    else:
        lines.append("No decisions were asked for.")
    lines += ["", "## Rollback", ""]
    if not data["rollback_ran"]:
        lines.append("Rollback did not run.")
    else:
        for label, key in (
            ("Undone", "undone"),
            ("Undo failed", "undo_failed"),
            ("Not run (rollback stopped)", "not_run"),
            ("No rollback defined", "no_rollback_defined"),
            ("Global steps done", "global_done"),
            ("Global steps not done", "global_not_done"),
        ):
            if outcome.get(key):
                lines.append(f"- **{label}:** {', '.join(t(s) for s in outcome[key])}")
        if data["rollback"]:
            lines += ["", "| task | result | log |", "|---|---|---|"]
            lines += [
                f"| {md_cell(r['task_id'])} | {r['state']} | [log]({ui_base}{r['log']}) |"
                for r in data["rollback"]
            ]
    for kept in data.get("incident_reports") or []:
        closed = f"; incident {t(kept['incident'])} closed" if kept.get("incident") else ""
        lines += [
            "",
            f"## Incident report ({t(kept.get('priority') or '')}), approved",
            "",
            f"Approved by {t(kept.get('by') or '')} at {_clock(kept.get('at'))}{closed}.",
            "",
            *(
                f"##{line}" if line.startswith("#") else line
                for line in kept["report"].splitlines()
            ),
        ]
    if data["events"]:
        lines += ["", "## Events", ""]
        for e in data["events"]:
            rest = ", ".join(f"{k}: {v}" for k, v in e.items() if k != "event")
            lines.append(f"- {t(e.get('event', ''))}{': ' + t(rest) if rest else ''}")
    return "\n".join(lines) + "\n"


def report_html(data: dict[str, Any], ui_base: str = "", refresh: int | None = None) -> str:
    """The report as one self-contained HTML file (also the run-level report view)."""
    from gonogo.core.documents.html import render

    bars = [Bar(**b) for b in data["bars"]]
    return render(
        "report.html.j2",
        r=data,
        ui_base=ui_base,
        refresh=refresh,
        gantt=gantt_svg(bars, "Plan against actual"),
    )
