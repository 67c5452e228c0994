"""Every name the early-life DAG, its readers and the pages must agree on, defined once.

The early-life DAG of runbook ``x`` is ``x.early_life``; the rollout's ``go_live``
task starts it. Its task ids::

    start                             reads when support started (the go-live asset event)
    <round>.opens                     waits for the round's moment (round: d2_0600)
    <round>.<area>                    the area's status report, a HITL request
    <round>.chase                     reminds the late areas, then tells the standby contact
    <round>.decide__<area>[__<n>]     a red that needs a decision: forum n decides or escalates
    <meeting>.opens                   waits for the leadership meeting's moment (m2_1000)
    <meeting>.log                     the meeting's decision log, a HITL request to the coordinator
    <round>.call__<area>__<n>         a P1/P2 red called to the standby contact (incident.py)
    <round>.report__<area>[__<k>]     its incident report, for the incident manager
    end                               waits for the end of support
"""

from __future__ import annotations

from datetime import time
from typing import NamedTuple

SUFFIX = ".early_life"
START_TASK = "start"
END_TASK = "end"
OPENS = "opens"
CHASE = "chase"
#: The asset a rollout emits when it succeeds: its extra carries when and which run.
ASSET_PREFIX = "gonogo_live__"

#: ``<round>.decide__<area>``: the first forum's decision on a red that needs one;
#: ``<round>.decide__<area>__2`` the next forum's, when the first escalates.
DECIDE_PREFIX = "decide__"
DECIDED, ESCALATE = "Decided", "Escalate"
#: The decision form's fields besides the comment (the decision itself).
OWNER, DUE = "owner", "due"

#: ``<meeting>.log``: the decision log of one leadership meeting; its options.
LOG = "log"
LOGGED, NO_DECISIONS = "Logged", "No decisions"
#: How many decisions one meeting's form holds (why a fixed number: gonogo.dag.earlylife).
LOG_ROWS = 5
#: The parts of one logged decision, each a form field ``<part>_<n>``; the forum a
#: decision goes to is "none" or one of the section's ``escalate_to``.
LOG_DECISION, LOG_OWNER, LOG_DUE, LOG_ESCALATED = "decision", "owner", "due", "escalated_to"
LOG_PARTS = (LOG_DECISION, LOG_OWNER, LOG_DUE, LOG_ESCALATED)
NOT_ESCALATED = "none"
#: The forum column of a meeting's decisions in the decision log.
MEETING_FORUM = "meeting"

GREEN_OPTION, YELLOW_OPTION, RED_OPTION = "Green", "Yellow", "Red"
OPTIONS = (GREEN_OPTION, YELLOW_OPTION, RED_OPTION)
#: Yellow and red must say what is wrong (seed 003: "a short explanation").
NEEDS_REASON = frozenset({YELLOW_OPTION, RED_OPTION})
#: The report form's field for "this needs a decision by the leadership".
NEEDS_DECISION = "needs_decision"


def early_life_dag(runbook_id: str) -> str:
    return f"{runbook_id}{SUFFIX}"


def runbook_of_dag(dag_id: str) -> str | None:
    """The runbook whose early-life DAG ``dag_id`` would be; None for any other id."""
    runbook_id = dag_id.removesuffix(SUFFIX)
    return runbook_id if runbook_id and runbook_id != dag_id else None


def live_asset(runbook_id: str) -> str:
    """The name of the asset a successful rollout of the runbook emits."""
    return f"{ASSET_PREFIX}{runbook_id}"


def round_group(day: int, at: time) -> str:
    """``d2_0600``: the group of the round on day 2 of support at 06:00 local time."""
    return f"d{day}_{at:%H%M}"


def meeting_group(day: int, at: time) -> str:
    """``m2_1000``: the group of the leadership meeting on day 2 of support at 10:00 local time."""
    return f"m{day}_{at:%H%M}"


class RoundId(NamedTuple):
    day: int
    at: time


def _parse_group(group: str, prefix: str) -> RoundId | None:
    day, _, clock = group.removeprefix(prefix).partition("_")
    if not group.startswith(prefix) or not day.isdigit() or len(clock) != 4 or not clock.isdigit():
        return None
    hours, minutes = int(clock[:2]), int(clock[2:])
    if hours > 23 or minutes > 59:
        return None
    return RoundId(int(day), time(hours, minutes))


def parse_round(group: str) -> RoundId | None:
    """``d2_0600`` is ``RoundId(2, time(6, 0))``; None for anything else."""
    return _parse_group(group, "d")


def parse_meeting(group: str) -> RoundId | None:
    """``m2_1000`` is ``RoundId(2, time(10, 0))``; None for anything else."""
    return _parse_group(group, "m")


def log_task(day: int, at: time) -> str:
    return f"{meeting_group(day, at)}.{LOG}"


def parse_log_task(task_id: str) -> RoundId | None:
    """The meeting whose decision log ``task_id`` is (``m2_1000.log``); None for any other task."""
    group, _, part = task_id.partition(".")
    return parse_meeting(group) if part == LOG else None


def log_field(part: str, row: int) -> str:
    """``owner_2``: the form field of the second logged decision's owner."""
    return f"{part}_{row}"


def decide_task(area: str, forum: int) -> str:
    """The part after ``<round>.`` of forum ``forum``'s (from 1) decision on ``area``'s red."""
    return f"{DECIDE_PREFIX}{area}" + (f"__{forum}" if forum > 1 else "")


def parse_decide(part: str) -> tuple[str, int] | None:
    """``decide__tech__2`` is ``("tech", 2)``; None for any other part."""
    if not part.startswith(DECIDE_PREFIX):
        return None
    area, _, forum = part.removeprefix(DECIDE_PREFIX).partition("__")
    return area, int(forum) if forum.isdigit() else 1


def colour_of(option: str | None) -> str | None:
    """The colour an answer names: ``Red`` is ``red``."""
    return option.lower() if option in OPTIONS else None
