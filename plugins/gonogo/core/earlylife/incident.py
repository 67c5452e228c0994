"""An incident gonogo raises, as names and rules: who is called, when a call counts, the report.

Two things raise an incident (seed 004): a rollout whose rollback failed, and an
area that reports red and says it is a P1 or P2 incident. Either is called to
the contact on standby at that moment by the roster
(:func:`gonogo.core.earlylife.roster.call_order`); a contact who does not
acknowledge within ``standby.acknowledge_within`` is passed over for the next.
For a P1 or P2, the incident manager then approves the incident report gonogo
drafts (:mod:`gonogo.core.documents.incident`) before the change record's
incident is closed.

Task ids, in the rollout DAG (group ``incident``) and in an early-life round::

    incident.call__<n>                     the n-th contact is called (a HITL request)
    incident.report[__<k>]                 the incident report, k-th draft
    <round>.call__<area>__<n>              the same for an area's P1/P2 red
    <round>.report__<area>[__<k>]

Pure: no Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from gonogo.core.naming import INCIDENT_GROUP

#: The rollout DAG's group of incident tasks, after the outcome.
GROUP = INCIDENT_GROUP
CALL_PREFIX = "call__"
REPORT_PREFIX = "report"
#: How many drafts the incident manager may see: a draft sent back is drafted once more.
REPORT_ROUNDS = 2

ACKNOWLEDGE = "Acknowledge"
APPROVE, SEND_BACK = "Approve", "Send back"
#: The area report form's field that says the red is an incident, and its values.
INCIDENT_FIELD = "incident"
NO_INCIDENT = ""
REPORTABLE = ("P1", "P2")
INCIDENT_CHOICES = (NO_INCIDENT, *REPORTABLE)
#: The JSON-schema key by which a form field declares the options it may go with: the
#: API server refuses an answer that sets the field with another option.
ONLY_WITH = "x-gonogo-only-with"

#: What a call's XCom says, and the report's.
ACKNOWLEDGED = "acknowledged"


def call_task(n: int, area: str | None = None) -> str:
    """The part after the group of the n-th call (from 1): ``call__3``, ``call__tech__1``."""
    return f"{CALL_PREFIX}{area}__{n}" if area else f"{CALL_PREFIX}{n}"


def report_task(area: str | None = None, draft: int = 1) -> str:
    """The part after the group of the k-th draft of the incident report."""
    base = f"{REPORT_PREFIX}__{area}" if area else REPORT_PREFIX
    return base if draft == 1 else f"{base}__{draft}"


class Part(NamedTuple):
    kind: str  # "call" or "report"
    area: str | None
    n: int


def parse_part(part: str) -> Part | None:
    """``call__tech__2`` is ``Part("call", "tech", 2)``; None for a part that is no incident task."""
    if part.startswith(CALL_PREFIX):
        rest = part.removeprefix(CALL_PREFIX)
        area, _, n = rest.rpartition("__")
        if n.isdigit():
            return Part("call", area or None, int(n))
        return None
    if part == REPORT_PREFIX:
        return Part("report", None, 1)
    if part.startswith(f"{REPORT_PREFIX}__"):
        pieces = part.removeprefix(f"{REPORT_PREFIX}__").split("__")
        if len(pieces) == 1:
            return (
                Part("report", None, int(pieces[0]))
                if pieces[0].isdigit()
                else Part("report", pieces[0], 1)
            )
        if len(pieces) == 2 and pieces[1].isdigit():
            return Part("report", pieces[0], int(pieces[1]))
    return None


def is_report_task(task_id: str, early_life: bool) -> bool:
    """Whether ``task_id`` is a draft of an incident report, which the four-eyes rule covers.

    In a rollout only the ``incident`` group holds one (a phase may not take that
    name); in an early-life DAG every round's group may.
    """
    group, dot, part = task_id.partition(".")
    if not dot or (group != GROUP and not early_life):
        return False
    found = parse_part(part)
    return found is not None and found.kind == "report"


def red_incident(report: Any) -> str | None:
    """The priority of the incident an area's report raises: P1 or P2 on a red, else None.

    ``report`` is the report task's XCom (what the answer recorded). A priority
    given with another colour raises nothing: the form refuses it, and this is the
    second line.
    """
    if not isinstance(report, Mapping) or report.get("colour") != "red":
        return None
    priority = report.get(INCIDENT_FIELD)
    return str(priority) if priority in REPORTABLE else None


def acknowledged_by(calls: Iterable[Any]) -> Mapping[str, Any] | None:
    """The earlier call that was acknowledged by a member of the called role, if any."""
    for call in calls:
        if isinstance(call, Mapping) and call.get(ACKNOWLEDGED) is True:
            return call
    return None


def counts(by_id: str, members: Iterable[str]) -> bool:
    """An acknowledgement counts only from a member of the role that was called."""
    return bool(by_id) and by_id in set(members)
