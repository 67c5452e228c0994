"""The runbook as a readable outline: ``gonogo plan`` and each DAG's doc."""

from __future__ import annotations

import shlex
from datetime import timedelta

from gonogo.core.runbook.model import Activity, Gate, Runbook
from gonogo.core.runs.rollback import rollback_if_last_fails
from gonogo.core.timing.clock import At, format_clock, format_duration
from gonogo.core.timing.timeplan import on_overrun, time_plan


def describe(activity: Activity) -> str:
    """What an activity does, in one line: the command, the request, the callable or the instruction."""
    if activity.bash is not None:
        return f"`{activity.bash}`"
    if activity.exec is not None:
        return f"`{shlex.join(activity.exec)}`"
    if activity.http is not None:
        return f"`{activity.http.method} {activity.http.url}`"
    if activity.python is not None:
        return f"`{activity.python.callable}`"
    return activity.manual or ""


def _clock(runbook: Runbook, offset: timedelta) -> str:
    """A planned time: the clock time when T is known (the window start), else relative to T."""
    if runbook.window is None:
        return format_clock(offset)
    return (runbook.window.start + offset).strftime("%H:%M")


def _owner(runbook: Runbook, role: str | None) -> str:
    if role is None:
        return "-"
    users = runbook.roles[role].users if role in runbook.roles else []
    return f"{role} ({', '.join(users)})" if users else role


def render_outline(runbook: Runbook) -> str:
    """The runbook as Markdown a Release Manager can read out at a CAB meeting.

    The same text is the DAG's ``doc_md`` in Airflow and the output of ``gonogo plan``.
    """
    timing = time_plan(runbook)
    slots = timing.by_id()
    change = runbook.change
    lines = [
        f"# {runbook.title}",
        "",
        f"- **Runbook:** `{runbook.runbook}`",
        f"- **Change:** {change.id} ({change.type})",
        f"- **Service:** {runbook.service} in {runbook.environment}",
    ]
    if runbook.window is not None:
        lines.append(
            f"- **Window:** {runbook.window.start.isoformat()} to {runbook.window.end.isoformat()}"
        )
    if runbook.description:
        lines += ["", runbook.description.strip()]
    if runbook.roles:
        lines += ["", "## Roles", ""]
        for name, role in runbook.roles.items():
            contact = f", contact {role.contact}" if role.contact else ""
            lines.append(f"- **{name}**: {', '.join(role.users) or '(nobody)'}{contact}")
    lines += ["", "## Plan", ""]
    for number, item in enumerate(runbook.phases, start=1):
        starts = [slots[item.gate]] if isinstance(item, Gate) else [slots[s.id] for s in item.steps]
        at = _clock(runbook, min(s.start for s in starts))
        if isinstance(item, Gate):
            lines.append(
                f"### {number}. GO/NOGO gate `{item.gate}`: {item.title or item.gate} ({at})"
            )
            lines.append("")
            lines.append(f"- Sign-off: {', '.join(_owner(runbook, r) for r in item.sign_off)}")
            if item.opens is not None:
                lines.append(f"- Opens: {item.opens} ({_clock(runbook, item.opens.offset)})")
            if isinstance(item.decide_by, At):
                decide_at = _clock(runbook, item.decide_by.offset)
                lines.append(f"- Decide by: {item.decide_by} ({decide_at}); no answer is NOGO")
            else:
                wait = item.timeout or item.decide_by
                timeout = format_duration(wait) if wait else "none (waits)"
                lines.append(f"- Timeout: {timeout}; no answer in time is NOGO")
            if item.on_nogo == "reask":
                lines.append("- On NOGO: the rejecting role is asked again")
            for check in item.checks:
                required = "required" if check.required else "for information"
                lines.append(f"- Check `{check.id}` ({required}): {describe(check)}")
            if item.checklist:
                lines.append("- Checklist:")
                lines += [f"  - [ ] {entry}" for entry in item.checklist]
            lines.append("")
            continue
        lines.append(f"### {number}. Phase `{item.id}`: {item.title or item.id} ({at})")
        lines.append("")
        lines.append("| # | at | step | owner | planned | does | undo |")
        lines.append("|---|---|---|---|---|---|---|")
        for index, step in enumerate(item.steps, start=1):
            slot = slots[step.id]
            planned = format_duration(step.planned) if step.planned else "-"
            undo = describe(step.rollback) if step.rollback is not None else "-"
            title = step.title or step.id
            lines.append(
                f"| {number}.{index} | {_clock(runbook, slot.start)} | {title} (`{step.id}`) | "
                f"{_owner(runbook, step.owner)} | {planned} | {describe(step)} | {undo} |"
            )
        lines.append("")
    plan = rollback_if_last_fails(runbook)
    mode = runbook.rollback.mode
    lines += [f"Planned finish: {_clock(runbook, timing.finish)}.", ""]
    lines += ["## Rollback", "", f"Mode: {mode}."]
    budget = timing.rollback_budget
    lines.append(
        f"Budget: undoing everything takes {format_duration(budget) if budget else '0s'} by plan."
    )
    if runbook.window is not None:
        last_safe = runbook.window.end - budget - runbook.window.start
        lines.append(
            f"Last safe moment to start a full rollback: {_clock(runbook, last_safe)}; "
            f"on overrun: {on_overrun(runbook)}."
        )
    if runbook.rollback.approve:
        lines.append(f"Before it starts, GO from: {', '.join(runbook.rollback.approve)}.")
    lines += ["", "If the last step failed, rollback would run, in this order:", ""]
    order = [f"undo `{s}`" for s in plan.compensate]
    order += [f"`{g.id}`: {g.title or describe(g)}" for g in runbook.rollback.steps]
    lines += [f"{n}. {entry}" for n, entry in enumerate(order, start=1)] or ["(nothing to run)"]
    if plan.not_undone:
        lines += [
            "",
            f"Not undone (no rollback defined): {', '.join(f'`{s}`' for s in plan.not_undone)}",
        ]
    return "\n".join(lines) + "\n"
