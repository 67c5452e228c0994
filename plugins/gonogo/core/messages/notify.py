"""The communication plan as plain data: who hears about which event, and what they read.

Pure: no Airflow, no network. :mod:`gonogo.dag.notify` sends what this module
writes through Airflow's notifiers. Keeping the words here means a message can
be read and tested without a running Airflow, and every transport (chat,
e-mail, SMS) says the same thing.

A message reads like a person wrote it: what the change is (title, change id,
environment), what happened, what is asked of the reader and by when, in the
reader's terms ("answer by 14:30 UTC, in 24 minutes"), and the links to act on
it and to the run.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gonogo.core.runbook.model import EVENTS, Runbook
from gonogo.core.timing.clock import in_words

Severity = Literal["info", "success", "warning", "failure"]

#: Events that ask the reader to act, so their message must carry the link to the request.
ASKING = frozenset(
    {"gate_waiting", "gate_expiring", "decision_needed", "incident_call", "incident_report"}
)
#: Early-life events whose message also addresses the roles in the detail's ``address``.
EARLY_LIFE_EVENTS = frozenset({"report_overdue", "report_escalated"})
#: Events whose message addresses the roles in the detail's ``address``: the early-life
#: reminders, the contact called about an incident, the incident manager asked to approve.
ADDRESSED = EARLY_LIFE_EVENTS | {"incident_call", "incident_report"}
#: Incident priorities that wake the incident manager (seeds 004: P1/P2 go to them at once).
URGENT = frozenset({"P1", "P2"})


@dataclass(frozen=True)
class RunFacts:
    """What every message says about the run, gathered once when the event happens."""

    title: str
    change_id: str
    change_type: str
    environment: str
    service: str
    run_id: str
    run_url: str | None = None
    triggered_by: str | None = None
    #: The run asks the CAB to approve the plan (the ``<runbook>.approval`` DAG): nothing
    #: changes in it, so a decision there starts or stops no change.
    plan_approval: bool = False

    @classmethod
    def of(
        cls,
        runbook: Runbook,
        run_id: str,
        run_url: str | None = None,
        triggered_by: str | None = None,
        *,
        plan_approval: bool = False,
    ) -> RunFacts:
        return cls(
            title=runbook.title,
            change_id=runbook.change.id,
            change_type=runbook.change.type,
            environment=runbook.environment,
            service=runbook.service,
            run_id=run_id,
            run_url=run_url,
            triggered_by=triggered_by,
            plan_approval=plan_approval,
        )


@dataclass(frozen=True)
class Message:
    """One message, the same for every transport."""

    event: str
    title: str
    body: str
    severity: Severity = "info"
    links: dict[str, str] = field(default_factory=dict)

    def html(self) -> str:
        """The body as simple HTML for e-mail: paragraphs kept, links clickable."""
        out = []
        for paragraph in self.body.split("\n\n"):
            text = html.escape(paragraph)
            text = re.sub(r"(https?://[^\s<]+)", r'<a href="\1">\1</a>', text)
            out.append("<p>" + text.replace("\n", "<br>") + "</p>")
        return "\n".join(out)


@dataclass(frozen=True)
class Delivery:
    """One message to one connection, addressing these roles."""

    connection: str
    roles: tuple[str, ...]


def deadline_text(deadline: datetime, now: datetime, verb: str = "answer") -> str:
    """``answer by 14:30 UTC, in 24 minutes``; the date is named when it is not today."""
    at = deadline.astimezone(UTC)
    when = at.strftime("%H:%M UTC")
    if at.date() != now.astimezone(UTC).date():
        when = at.strftime("%a %d %b %H:%M UTC")
    left = at - now
    if left <= timedelta(0):
        return f"the time to {verb} ran out at {when}"
    return f"{verb} by {when}, in {in_words(left)}"


def _role_name(runbook: Runbook | None, role: str) -> str:
    found = runbook.roles.get(role) if runbook else None
    return found.title if found and found.title else role.replace("_", " ")


def deliveries(runbook: Runbook, event: str, detail: Mapping[str, Any]) -> list[Delivery]:
    """Which connections hear about ``event``, and whose contacts each message addresses.

    A ``gate_waiting`` for one role goes to a rule that names roles only when that
    role is among them, so each approver is called to their own request. A
    ``rollback_failed`` whose incident is P1 or P2 also addresses the incident
    manager role, on every rule that carries the event.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    found = []
    for rule in runbook.notify:
        if event not in rule.on:
            continue
        roles = list(rule.roles)
        asked = detail.get("role")
        if event == "gate_waiting" and asked:
            if roles and asked not in roles:
                continue
            roles = [asked]
        if event == "rollback_failed" and runbook.incident.priority in URGENT:
            manager = runbook.incident.manager
            if manager in runbook.roles and manager not in roles:
                roles.append(manager)
        if event in ADDRESSED:  # the late area and the standby contact; the called role
            roles += [
                r for r in detail.get("address") or () if r in runbook.roles and r not in roles
            ]
        found.append(Delivery(rule.connection, tuple(roles)))
    return found


def recipients(runbook: Runbook, roles: Sequence[str]) -> list[str]:
    """The e-mail addresses of ``roles``, for SMTP."""
    return [runbook.roles[r].email for r in roles if r in runbook.roles and runbook.roles[r].email]  # type: ignore[misc]


def _header(facts: RunFacts) -> str:
    run = "plan approval run" if facts.plan_approval else "run"
    return (
        f"{facts.title} (change {facts.change_id}, {facts.change_type}, "
        f"{facts.environment}, {run} {facts.run_id})"
    )


def _for(runbook: Runbook | None, roles: Sequence[str]) -> str:
    if not roles:
        return ""
    names = []
    for role in roles:
        found = runbook.roles.get(role) if runbook else None
        contact = f" ({found.contact})" if found and found.contact else ""
        names.append(f"{_role_name(runbook, role)}{contact}")
    return "For: " + ", ".join(names)


def render(
    event: str,
    facts: RunFacts,
    detail: Mapping[str, Any],
    now: datetime,
    *,
    runbook: Runbook | None = None,
    roles: Sequence[str] = (),
) -> Message:
    """The message for one event of one run, as a person would write it."""
    writer = _WRITERS.get(event)
    if writer is None:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    if runbook is not None and detail.get("gate") and not detail.get("gate_title"):
        titles = {g.gate: g.title or g.gate for g in runbook.gates}
        detail = {**detail, "gate_title": titles.get(str(detail["gate"]), detail["gate"])}
    title, lines, severity = writer(facts, detail, now, runbook)
    links: dict[str, str] = {}
    if detail.get("link"):
        links["request"] = str(detail["link"])
    if facts.run_url:
        links["run"] = facts.run_url
    paragraphs = [_header(facts), *[line for line in lines if line]]
    if "request" in links:
        paragraphs.append(f"Answer here: {links['request']}")
    for role, link in (detail.get("links") or {}).items():
        paragraphs.append(f"Answer for {_role_name(runbook, role)}: {link}")
    if "run" in links:
        paragraphs.append(f"The run: {links['run']}")
    addressed = _for(runbook, roles)
    if addressed:
        paragraphs.insert(0, addressed)
    return Message(event, title, "\n\n".join(paragraphs), severity, links)


# -- one writer per event ---------------------------------------------------------------------

_Written = tuple[str, list[str], Severity]


def _deadline(detail: Mapping[str, Any], now: datetime, verb: str = "answer") -> str:
    raw = detail.get("deadline")
    if not raw:
        return "There is no deadline."
    at = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    text = deadline_text(at, now, verb)
    return text[0].upper() + text[1:] + "."


def _run_started(f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None) -> _Written:
    who = f" by {f.triggered_by}" if f.triggered_by else ""
    return (
        f"Started: {f.title}",
        [
            f"The change {f.change_id} started{who} at {now.astimezone(UTC):%H:%M UTC}. "
            f"{f.service} in {f.environment} is being changed now.",
            "Nothing is asked of you; you will hear when it ends.",
        ],
        "info",
    )


def _gate_waiting(f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None) -> _Written:
    gate = d.get("gate_title") or d.get("gate")
    role = _role_name(rb, str(d.get("role") or ""))
    again = " again" if int(d.get("round") or 1) > 1 else ""
    users = ", ".join(d.get("users") or [])
    return (
        f"{gate} waits for {role}: {f.title}",
        [
            f"{gate} is open and asks the {role}{f' ({users})' if users else ''}{again} "
            "for GO or NOGO.",
            _deadline(d, now) + (" No answer in time counts as NOGO." if d.get("deadline") else ""),
            "A NOGO needs a comment that says what must be fixed.",
        ],
        "info",
    )


def _gate_expiring(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    gate = d.get("gate_title") or d.get("gate")
    silent = ", ".join(_role_name(rb, r) for r in d.get("silent_roles") or [])
    stops = "leaves the plan unapproved" if f.plan_approval else "stops the change"
    return (
        f"{gate} expires soon: {f.title}",
        [
            f"{gate} has no answer yet from: {silent}.",
            _deadline(d, now) + f" No answer in time counts as NOGO and {stops}.",
        ],
        "warning",
    )


def _gate_decided(f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None) -> _Written:
    gate = d.get("gate_title") or d.get("gate")
    if d.get("decision") == "GO":
        goes_on = (
            "The plan is approved: once the approval is recorded, the rollout may start. "
            "A change to the runbook or its files needs a new approval."
            if f.plan_approval
            else "The change goes on."
        )
        return f"{gate}: GO: {f.title}", [f"Every role said GO at {gate}. {goes_on}"], "success"
    if d.get("timed_out"):
        silent = ", ".join(_role_name(rb, r) for r in d.get("silent_roles") or [d.get("role")])
        why = f"No answer in time from {silent}: that counts as NOGO."
    else:
        role = _role_name(rb, str(d.get("role") or ""))
        why = f"{d.get('by')} said NOGO for the {role}: \u201c{d.get('comment') or ''}\u201d"
    stops = (
        "The plan is not approved: the rollout cannot start until the CAB approves a plan."
        if f.plan_approval
        else "The change stops here; what was done is rolled back."
    )
    return f"{gate}: NOGO: {f.title}", [why, stops], "failure"


def _step_failed(f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None) -> _Written:
    step = d.get("step")
    error = str(d.get("error") or "").strip()
    return (
        f"Step failed: {step}: {f.title}",
        [
            f"The step {step} failed" + (f": {error[:500]}" if error else "."),
            "Forward work stops. What happens next follows the runbook's rollback plan.",
        ],
        "failure",
    )


def _decision_needed(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    subject = d.get("subject") or "A decision"
    options = " / ".join(d.get("options") or [])
    users = ", ".join(d.get("users") or [])
    return (
        f"Decision needed: {f.title}",
        [
            f"{subject}.",
            f"Asked: {users}." if users else "",
            f"Choose {options}." if options else "",
            _deadline(d, now, "decide"),
        ],
        "warning",
    )


def _rollback_started(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    reasons = "; ".join(d.get("reasons") or []) or "a forward task failed"
    undo = ", ".join(d.get("compensate") or []) or "nothing (no completed step has an undo)"
    return (
        f"Rolling back: {f.title}",
        [f"Rollback started because: {reasons}.", f"Undoing, newest first: {undo}."],
        "warning",
    )


_OUTCOME_WORDS = {
    "succeeded": ("Done", "The change is done and succeeded.", "success"),
    "nogo_before_start": (
        "Stopped before start",
        "The change was stopped before anything changed.",
        "warning",
    ),
    "rolled_back": (
        "Rolled back",
        "The change was rolled back: the service is as it was before.",
        "warning",
    ),
    "incomplete": (
        "NOT COMPLETED",
        "Not every step and gate has a record of having run (skipped or marked by hand); "
        "nothing was undone: check the service by hand.",
        "failure",
    ),
    "rollback_failed": (
        "ROLLBACK FAILED",
        "The rollback failed: the service is only partly restored.",
        "failure",
    ),
}


def _run_finished(f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None) -> _Written:
    outcome = str(d.get("outcome"))
    word, sentence, severity = _OUTCOME_WORDS.get(
        outcome, (outcome, f"Outcome: {outcome}.", "info")
    )
    lines = [sentence]
    if d.get("reasons"):
        lines.append("Why: " + "; ".join(d["reasons"]) + ".")
    if d.get("not_undone"):
        lines.append("Not undone: " + "; ".join(d["not_undone"]) + ".")
    return f"{word}: {f.title}", lines, severity  # type: ignore[return-value]


def _rollback_failed(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    lines = [
        "The rollback failed. The service is only partly restored and needs hands now.",
    ]
    if d.get("not_undone"):
        lines.append("Not undone: " + "; ".join(d["not_undone"]) + ".")
    if d.get("incident"):
        lines.append(f"Incident {d['incident']} ({d.get('priority')}) is raised for it.")
    elif d.get("priority"):
        lines.append(f"Treat it as a {d['priority']} incident.")
    return f"ROLLBACK FAILED ({d.get('priority') or 'P2'}): {f.title}", lines, "failure"


def _forecast_overrun(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    reasons = [str(r) for r in d.get("reasons") or []]
    action = {
        "decide": "The release manager is asked to continue or roll back now.",
        "rollback": "gonogo rolls back by itself.",
    }.get(str(d.get("on_overrun")), "The change goes on; this is a warning.")
    return (
        f"Running late: {f.title}",
        [*(r[0].upper() + r[1:] + "." for r in reasons if r), action],
        "warning",
    )


def _report_overdue(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    area = d.get("area_title") or d.get("area")
    return (
        f"Status report overdue: {area}: {f.title}",
        [
            f"The {area} has not reported its status (green, yellow or red) for the round "
            f"of {d.get('round_at')}.",
            _deadline(d, now, "report") + " Then the standby contact is told.",
        ],
        "warning",
    )


def _report_escalated(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    area = d.get("area_title") or d.get("area")
    standby = _role_name(rb, str(d.get("standby") or ""))
    return (
        f"No status from {area}: {f.title}",
        [
            f"The {area} has still not reported for the round of {d.get('round_at')}, "
            "though it was reminded.",
            f"The {standby} is on standby now: please reach the area.",
        ],
        "failure",
    )


def _incident_call(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    role = _role_name(rb, str(d.get("role") or ""))
    users = ", ".join(d.get("users") or [])
    before = ", ".join(_role_name(rb, str(r)) for r in d.get("not_acknowledged") or [])
    return (
        f"INCIDENT {d.get('priority') or ''}: {d.get('what')}: {f.title}".replace("  ", " "),
        [
            f"{d.get('what')}. The {role}{f' ({users})' if users else ''} is on call for it.",
            f"Not acknowledged in time by: {before}." if before else "",
            _deadline(d, now, "acknowledge")
            + " Without an acknowledgement in time the next contact is called.",
        ],
        "failure",
    )


def _incident_report(
    f: RunFacts, d: Mapping[str, Any], now: datetime, rb: Runbook | None
) -> _Written:
    return (
        f"Incident report to approve: {d.get('what')}: {f.title}",
        [
            f"gonogo drafted the {d.get('priority')} incident report from the run's records.",
            "Approve it, or send it back with what is missing; the incident is closed "
            "only once it is approved.",
        ],
        "warning",
    )


_WRITERS = {
    "run_started": _run_started,
    "gate_waiting": _gate_waiting,
    "gate_expiring": _gate_expiring,
    "gate_decided": _gate_decided,
    "step_failed": _step_failed,
    "decision_needed": _decision_needed,
    "rollback_started": _rollback_started,
    "run_finished": _run_finished,
    "rollback_failed": _rollback_failed,
    "forecast_overrun": _forecast_overrun,
    "report_overdue": _report_overdue,
    "report_escalated": _report_escalated,
    "incident_call": _incident_call,
    "incident_report": _incident_report,
}
assert set(_WRITERS) == set(EVENTS), "every event needs a writer"
