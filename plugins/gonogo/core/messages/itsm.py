"""The change record in the ITSM tool, as plain data and rules.

Pure: the adapters that talk to a real ITSM live in :mod:`gonogo.dag.itsm`;
this module holds what they share: the record they return, the interface a
new adapter implements (one module), whether a change may start, the close
code for an outcome, and the words of each work note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gonogo.errors import ItsmError

__all__ = ["CLOSE_CODES", "ChangeRecord", "ChangeSystem", "ItsmError", "refusal", "work_note"]

#: The close code for each outcome; ``nogo_before_start`` leaves the change open to be rescheduled.
CLOSE_CODES = {
    "succeeded": "successful",
    "rolled_back": "unsuccessful",
    "rollback_failed": "unsuccessful",
    "incomplete": "unsuccessful",
}


@dataclass(frozen=True)
class ChangeRecord:
    """A change as the ITSM holds it, in words a refusal can quote."""

    number: str
    ref: str  # the ITSM's own key (ServiceNow sys_id)
    state: str  # the state as the ITSM names it, e.g. "Scheduled"
    approval: str  # e.g. "approved", "requested", "rejected"
    approved: bool
    start: datetime | None
    end: datetime | None
    url: str | None = None


class ChangeSystem(Protocol):
    """What gonogo needs from an ITSM. A second adapter implements these six methods."""

    name: str

    def find_change(self, number: str) -> ChangeRecord | None:
        """The change, or None when the ITSM has no such change."""

    def add_work_note(self, change: ChangeRecord, text: str) -> None:
        """Append a work note to the change."""

    def close_change(self, change: ChangeRecord, code: str, notes: str) -> None:
        """Close the change with a close code from :data:`CLOSE_CODES`."""

    def find_incident(self, key: str) -> str | None:
        """The number of the incident raised under ``key`` (gonogo's run key), if any."""

    def raise_incident(
        self, change: ChangeRecord, priority: str, title: str, text: str, key: str
    ) -> str:
        """Raise an incident linked to the change; return its number."""

    def close_incident(self, number: str, notes: str) -> None:
        """Close the incident once its incident report is approved; ``notes`` is the report."""


def refusal(
    system: str,
    number: str,
    change: ChangeRecord | None,
    checks: Sequence[str],
    now: datetime,
) -> str | None:
    """Why the change may not start, in the ITSM's own words; None when it may."""
    if change is None:
        return f"{system} has no change {number}: the run may not start without its change record"
    if "approved" in checks and not change.approved:
        return (
            f"{system} change {number} is not approved: approval is {change.approval!r}, "
            f"state is {change.state!r}"
        )
    if "in_window" in checks:
        if change.start is None or change.end is None:
            return f"{system} change {number} has no planned start and end (state {change.state!r})"
        if not change.start <= now <= change.end:
            return (
                f"{system} change {number} is outside its implementation window: planned "
                f"{change.start.astimezone(UTC):%Y-%m-%d %H:%M} to "
                f"{change.end.astimezone(UTC):%Y-%m-%d %H:%M} UTC, now is "
                f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            )
    return None


def work_note(event: str, detail: Mapping[str, Any], run: str) -> str | None:
    """The work note an event writes on the change, or None for events the change does not log."""
    if event == "run_started":
        return f"gonogo: implementation started (run {run})."
    if event == "gate_decided":
        gate = detail.get("gate_title") or detail.get("gate")
        if detail.get("decision") == "GO":
            return f"gonogo: {gate}: GO from every role (run {run})."
        if detail.get("timed_out"):
            return f"gonogo: {gate}: NOGO, no answer in time (run {run})."
        return (
            f"gonogo: {gate}: NOGO by {detail.get('by')} for {detail.get('role')}: "
            f"{detail.get('comment')} (run {run})."
        )
    if event == "run_finished":
        lines = [f"gonogo: outcome {detail.get('outcome')} (run {run})."]
        if detail.get("reasons"):
            lines.append("Why: " + "; ".join(detail["reasons"]))
        if detail.get("not_undone"):
            lines.append("Not undone: " + "; ".join(detail["not_undone"]))
        return "\n".join(lines)
    return None
