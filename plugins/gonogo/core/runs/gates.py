"""A gate's rules and texts, as pure functions: the request body, the evidence, the decision.

The HITL operators in :mod:`gonogo.dag.gates` call these at run time; the tests
call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from gonogo.core.naming import GO
from gonogo.core.runbook.model import Gate, Runbook
from gonogo.core.timing.clock import format_duration

_JINJA_OPENERS = re.compile(r"\{[{%#]")


def literal(text: str) -> str:
    """Runbook text that Airflow renders as a Jinja template, made to show exactly as written.

    Every ``{{``, ``{%`` and ``{#`` becomes an expression that prints it, so a
    title or checklist entry is never evaluated and never breaks the template.
    """
    return _JINJA_OPENERS.sub(lambda m: "{{ '" + m.group(0) + "' }}", text)


def gate_body(runbook: Runbook, gate: Gate, role: str) -> str:
    """The static part of the request: what is decided, by whom, against which checklist."""
    lines = [
        f"**{literal(runbook.title)}**",
        "",
        f"- Runbook: `{runbook.runbook}`",
        f"- Change: {literal(runbook.change.id)} ({runbook.change.type})",
        f"- Service: {literal(runbook.service)} in **{literal(runbook.environment)}**",
        "- Run: `{{ run_id }}`, started by {{ dag_run.triggering_user_name or 'the scheduler' }}",
        f"- You answer for the role **{role}**. Every role in {', '.join(gate.sign_off)} must say GO.",
    ]
    if gate.timeout is not None:
        lines.append(f"- No answer within {format_duration(gate.timeout)} counts as NOGO.")
    if isinstance(gate.decide_by, timedelta):
        lines.append(
            f"- Decide within {format_duration(gate.decide_by)}; no answer counts as NOGO."
        )
    elif gate.decide_by is not None:
        lines.append(
            f"- Decide by {gate.decide_by}, relative to the planned start T; no answer counts as NOGO."
        )
    if gate.checklist:
        lines += ["", "**Checklist**", ""]
        lines += [f"- [ ] {literal(entry)}" for entry in gate.checklist]
    lines += ["", "A NOGO needs a comment that says what must be fixed."]
    return "\n".join(lines)


def evidence(
    steps: Sequence[tuple[str, str, float | None]],
    breadcrumbs: Sequence[Mapping[str, Any]],
    checks: Sequence[Mapping[str, Any]],
) -> str:
    """Markdown of what has happened so far: each finished step against plan, and the checks.

    ``steps`` are (task_id, title, planned seconds) in runbook order. Pure.
    """
    done = {b["task_id"]: b for b in breadcrumbs}
    lines = ["", "**Steps so far**", "", "| step | result | took | planned |", "|---|---|---|---|"]
    shown = 0
    for task_id, title, planned in steps:
        crumb = done.get(task_id)
        if crumb is None:
            continue
        took = crumb.get("duration")
        took_text = format_duration(timedelta(seconds=round(took))) if took else "-"
        planned_text = format_duration(timedelta(seconds=planned)) if planned else "-"
        lines.append(f"| {title} | {crumb.get('state')} | {took_text} | {planned_text} |")
        shown += 1
    if not shown:
        lines = ["", "**Steps so far:** none yet."]
    if checks:
        lines += ["", "**Checks**", ""]
        for check in checks:
            mark = "passed" if check["passed"] else "FAILED"
            required = " (required)" if check.get("required") else ""
            lines.append(f"- `{check['id']}`{required}: {mark}. {literal(check.get('detail', ''))}")
    return "\n".join(lines)


def summarize(
    gate: str, answers: Mapping[str, Sequence[Mapping[str, Any] | None]]
) -> tuple[bool, str]:
    """The gate's decision from each role's rounds. Pure: ``answers[role]`` in round order."""
    nogo, silent, go = [], [], []
    for role, rounds in answers.items():
        final = next((a for a in reversed(rounds) if a), None)
        if final is None or final.get("answer") == "timeout":
            silent.append(role)
        elif final.get("answer") == GO:
            go.append(f"{role} ({final.get('by')})")
        else:
            nogo.append(f"{role} ({final.get('by')}): {final.get('comment')}")
    if nogo:
        return False, f"gate {gate}: NOGO from " + "; ".join(nogo)
    if silent:
        return False, f"gate {gate}: NOGO (timeout): no answer from {', '.join(silent)}"
    return True, f"gate {gate}: GO from " + ", ".join(go)


def started_the_run(names: Iterable[str], trigger_id: str | None, trigger_name: str | None) -> bool:
    """The four-eyes rule's one test: whether a person, known by any of ``names``, started the run.

    The trigger is compared by id (what assignments use) and by name (what Airflow
    records on the run), so the rule holds whichever auth manager names the users.
    The tasks (who is asked) and the API server (who may answer) both apply it.
    """
    starter = {str(t) for t in (trigger_id, trigger_name) if t}
    return any(name in starter for name in names if name)


def eligible(users: Sequence[str], trigger_id: str | None, trigger_name: str | None) -> list[str]:
    """A role's users who may answer: everyone but the person who started the rollout."""
    return [u for u in users if not started_the_run([u], trigger_id, trigger_name)]


def four_eyes_refusal(
    user_id: str, user_name: str, trigger_id: str | None, trigger_name: str | None
) -> str | None:
    """Why this person may not answer a gate of the rollout (they started it), or None."""
    if not started_the_run([user_id, user_name], trigger_id, trigger_name):
        return None
    return (
        f"{user_name} started this rollout and may not answer for it (four-eyes rule); "
        "another member of the role must answer"
    )


def gate_verdict(
    gate_id: str,
    records: Mapping[str, Sequence[Mapping[str, Any] | None]],
    role_users: Mapping[str, Sequence[str]],
    trigger_id: str | None,
    trigger_name: str | None,
) -> str | None:
    """None when the records show GO for every role, each from a different eligible member.

    ``records[role]`` are the role's rounds in order, as the gate's requests recorded
    them from Airflow's HITL answers. Anything else (a task marked success by hand
    leaves no record) is the reason the gate is not GO.
    """
    people: dict[str, str] = {}
    for role, rounds in records.items():
        final = next((r for r in reversed(rounds) if r), None)
        if final is None or final.get("answer") != GO:
            return f"gate {gate_id}: there is no recorded GO from role {role}"
        by_id, by = str(final.get("by_id") or ""), str(final.get("by") or "")
        if by_id not in eligible(role_users.get(role, ()), trigger_id, trigger_name):
            return f"gate {gate_id}: the GO for role {role} came from {by or 'nobody'}, who may not answer for it"
        if by_id in people:
            return f"gate {gate_id}: {by} answered for both {people[by_id]} and {role}"
        people[by_id] = role
    return None
