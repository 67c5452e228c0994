"""The areas' reports read back, the latest per area, what is overdue, and the overall colour.

Reports are Airflow's HITL records of the early-life DAG (who answered which
colour, with which comment, when), read the same way from the REST API and the
database: :func:`report_from_detail`. The overall colour follows seed 003's
reading of the areas, the worst one counts:

- **red**: any area's latest report is red;
- **yellow**: any area's latest report is yellow, or an area is overdue or has
  not reported at all (its state is not known, so it cannot count as green);
- **green**: every area's latest report is green.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gonogo.core.earlylife import names
from gonogo.core.earlylife.incident import parse_part
from gonogo.core.earlylife.meetinglog import logged
from gonogo.core.earlylife.rounds import Round, rounds
from gonogo.core.runbook.model import EarlyLife
from gonogo.core.runs.records import Answer, Request
from gonogo.core.runs.status import GREEN, RED, YELLOW, Status


@dataclass(frozen=True)
class Report:
    """One area's answer in one round; ``colour`` None while it is not answered."""

    area: str
    round: str  # the round's group, d2_0600
    colour: str | None
    comment: str
    by: str
    at: str  # when it was answered
    needs_decision: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def report_from_detail(detail: Mapping[str, Any]) -> Report | None:
    """The report in one HITL detail of an early-life DAG (REST shape); None for another task."""
    return report_from_request(Request.from_detail(detail))


def report_from_request(request: Request) -> Report | None:
    """The report in one request of an early-life run; None for another task's request."""
    group, _, area = request.task_id.partition(".")
    if names.parse_round(group) is None or area in (names.OPENS, names.CHASE, ""):
        return None
    if names.parse_decide(area) is not None or parse_part(area) is not None:
        return None  # a decision, or an incident's call or report
    given = request.answer or Answer(None, "", "", "")
    flag = given.inputs.get(names.NEEDS_DECISION)
    return Report(
        area=area,
        round=group,
        colour=names.colour_of(given.option),
        comment=given.comment,
        by=given.by,
        at=_when(request) if given.option else "",
        needs_decision=flag is True or str(flag).lower() == "true",
    )


def _when(request: Request) -> str:
    return request.answered_at.isoformat() if request.answered_at else ""


@dataclass(frozen=True)
class Decision:
    """A row of the decision log: a forum's answer to a red, or a decision a meeting logged."""

    area: str  # "" for a meeting's decision
    round: str  # the round's group, or the meeting's (m1_1000)
    forum: str  # the role asked, or names.MEETING_FORUM
    decision: str  # Decided, Escalate; "" while open
    text: str  # what was decided, or why it goes on
    owner: str
    due: str
    by: str
    at: str
    escalated_to: str  # the next forum's role when escalated

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decision_from_detail(detail: Mapping[str, Any], forums: Sequence[str]) -> Decision | None:
    """The decision in one HITL detail of an early-life DAG (REST shape); None for another."""
    return decision_from_request(Request.from_detail(detail), forums)


def decision_from_request(request: Request, forums: Sequence[str]) -> Decision | None:
    """The decision in one request of an early-life run; None for any other request."""
    group, _, part = request.task_id.partition(".")
    found = names.parse_decide(part) if names.parse_round(group) else None
    if found is None:
        return None
    area, forum = found
    given = request.answer or Answer(None, "", "", "")
    escalated = given.option == names.ESCALATE and forum < len(forums)
    return Decision(
        area=area,
        round=group,
        forum=forums[forum - 1] if forum <= len(forums) else "",
        decision=given.option or "",
        text=given.comment,
        owner=str(given.inputs.get(names.OWNER) or ""),
        due=str(given.inputs.get(names.DUE) or ""),
        by=given.by,
        at=_when(request) if given.option else "",
        escalated_to=forums[forum] if escalated else "",
    )


def decisions_from_request(request: Request, forums: Sequence[str]) -> list[Decision]:
    """The decision log's rows in one request of an early-life run: a forum's answer to a red
    (one row, also while it waits), a meeting's logged decisions (one row each), or none."""
    found = decision_from_request(request, forums)
    if found is not None:
        return [found]
    meeting = names.parse_log_task(request.task_id)
    given = request.answer
    if meeting is None or given is None or given.option is None:
        return []
    group = names.meeting_group(meeting.day, meeting.at)
    return [
        Decision(
            area="",
            round=group,
            forum=names.MEETING_FORUM,
            decision=given.option,
            text=row[names.LOG_DECISION],
            owner=row[names.LOG_OWNER],
            due=row[names.LOG_DUE],
            by=given.by,
            at=_when(request),
            escalated_to=row[names.LOG_ESCALATED],
        )
        for row in logged(given.inputs)
    ]


def overall(latest: Mapping[str, str | None], overdue: Iterable[str] = ()) -> Status:
    """The overall colour from each area's latest colour (None: no report yet)."""
    late = sorted(set(overdue))
    reds = sorted(a for a, c in latest.items() if c == RED)
    yellows = sorted(a for a, c in latest.items() if c == YELLOW)
    unknown = sorted(a for a, c in latest.items() if c is None and a not in late)
    reasons = [f"{a} is red" for a in reds] + [f"{a} is yellow" for a in yellows]
    reasons += [f"{a} is overdue" for a in late] + [f"{a} has not reported" for a in unknown]
    if reds:
        return Status(RED, tuple(reasons))
    if reasons:
        return Status(YELLOW, tuple(reasons))
    return Status(GREEN)


@dataclass(frozen=True)
class Support:
    """Early-life support of one go-live as the status page, the file and the board show it."""

    start: datetime
    end: datetime
    rounds: list[Round]  # the rounds that have opened, oldest first
    areas: list[str]
    reports: dict[tuple[str, str], Report]  # (round, area)
    latest: dict[str, Report | None]
    overdue: list[tuple[str, str]]  # (round, area), oldest first
    status: Status


def support(
    section: EarlyLife,
    start: datetime,
    reports: Sequence[Report],
    now: datetime,
    zone: ZoneInfo | None = None,
) -> Support:
    """What support that started at ``start`` looks like at ``now``, from its reports."""
    zone = zone or section.timezone
    opened = [r for r in rounds(section.reports, start, section.lasts, zone) if r.at <= now]
    by_key = {(r.round, r.area): r for r in reports}
    areas = [a.id for a in section.areas]
    latest: dict[str, Report | None] = {}
    overdue: list[tuple[str, str]] = []
    for area in areas:
        latest[area] = None
        for item in opened:
            group = names.round_group(item.slot.day, item.slot.at)
            found = by_key.get((group, area))
            if found is not None and found.colour is not None:
                latest[area] = found
            elif now >= item.at + section.report_within:
                overdue.append((group, area))
    late = {area for group, area in overdue if _unanswered_since(latest[area], group)}
    status = overall({a: r.colour if r else None for a, r in latest.items()}, late)
    return Support(
        start=start,
        end=start + section.lasts,
        rounds=opened,
        areas=areas,
        reports=by_key,
        latest=latest,
        overdue=overdue,
        status=status,
    )


def _unanswered_since(latest: Report | None, group: str) -> bool:
    """Whether an overdue round is still the area's newest news (not answered by a later round)."""
    if latest is None:
        return True
    return _order(group) > _order(latest.round)


def _order(group: str) -> tuple[int, int]:
    found = names.parse_round(group)
    return (found.day, found.at.hour * 60 + found.at.minute) if found else (0, 0)
