"""What an approver reads in a gate request: the decision basis."""

from __future__ import annotations

from gonogo.model import Gate, Runbook, format_duration


def _escape(text: str) -> str:
    """Runbook text is shown as written, never evaluated as a template."""
    return text.replace("{{", "{{ '{{' }}").replace("{%", "{{ '{%' }}")


def gate_body(runbook: Runbook, gate: Gate, role: str) -> str:
    """Markdown for the Required Actions page. Rendered by Airflow when the request opens."""
    lines = [
        f"**{_escape(runbook.title)}**",
        "",
        f"- Runbook: `{runbook.runbook}`",
        f"- Change: {_escape(runbook.change.id)} ({runbook.change.type})",
        f"- Service: {_escape(runbook.service)} in **{_escape(runbook.environment)}**",
        "- Run: `{{ run_id }}`, started by {{ dag_run.triggering_user_name or 'the scheduler' }}",
        f"- You answer for the role **{role}**. Every role in {', '.join(gate.sign_off)} must say GO.",
    ]
    if gate.timeout is not None:
        lines.append(f"- No answer within {format_duration(gate.timeout)} counts as NOGO.")
    if gate.checklist:
        lines += ["", "**Checklist**", ""]
        lines += [f"- [ ] {_escape(entry)}" for entry in gate.checklist]
    lines += ["", "A NOGO needs a comment that says what must be fixed."]
    return "\n".join(lines)
