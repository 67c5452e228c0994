"""What ``gonogo validate`` says about a runbook's ``early_life:`` section.

The shape of each piece is the model's; these checks need the whole runbook:
the roles it names exist (and the incident manager, who approves an incident
report), area ids are unique, no day of support is planned by
two entries, no two standby shifts cover the same moment, and someone hears
about a late report and about an incident called to standby.
"""

from __future__ import annotations

from gonogo.core.earlylife import names
from gonogo.core.earlylife.roster import overlapping
from gonogo.core.runbook.model import Rounds, Runbook
from gonogo.core.runbook.model import format_days as days_text
from gonogo.core.runbook.source import Loc, Source, did_you_mean
from gonogo.errors import Problem

_SECTION = "early_life"


def early_life_problems(runbook: Runbook, source: Source) -> list[Problem]:
    problems: list[Problem] = []
    if runbook.runbook.endswith(names.SUFFIX):
        problems.append(
            source.problem(
                ("runbook",),
                f"a runbook id may not end with {names.SUFFIX!r}: "
                "gonogo names each runbook's early-life DAG so",
            )
        )
    section = runbook.early_life
    if section is None:
        return problems

    def known(role: str, loc: Loc) -> None:
        if role not in runbook.roles:
            hint = did_you_mean(role, runbook.roles)
            defined = ", ".join(sorted(runbook.roles)) or "none"
            problems.append(
                source.problem(
                    (_SECTION, *loc), f"unknown role {role!r}{hint} (defined roles: {defined})"
                )
            )

    known(section.coordinator, ("coordinator",))
    seen: dict[str, int] = {}
    for i, area in enumerate(section.areas):
        known(area.role, ("areas", i, "role"))
        if area.id in seen:
            problems.append(
                source.problem(
                    (_SECTION, "areas", i, "id"),
                    f"area id {area.id!r} is already used by areas[{seen[area.id]}]",
                )
            )
        seen.setdefault(area.id, i)
    for j, role in enumerate(section.escalate_to):
        known(role, ("escalate_to", j))
    known(section.standby.fallback, ("standby", "fallback"))
    for i, shift in enumerate(section.standby.shifts):
        known(shift.role, ("standby", "shifts", i, "role"))
        if shift.next is not None:
            known(shift.next, ("standby", "shifts", i, "next"))
    for i, j in overlapping(section.standby):
        problems.append(
            source.problem(
                (_SECTION, "standby", "shifts", j),
                f"this shift covers some of the same times as shifts[{i}]: at every moment "
                "exactly one contact is on standby",
            )
        )
    manager = runbook.incident.manager
    if manager not in runbook.roles:
        problems.append(
            source.problem(
                ("incident", "manager") if "incident" in runbook.model_fields_set else (_SECTION,),
                f"the role {manager!r} approves the P1/P2 incident report of a failed rollback "
                "or a red reported as P1/P2, and is not defined; add it under roles or name "
                "another in incident.manager",
                warning=True,
            )
        )
    problems += _day_ranges(section.reports, ("reports",), source)
    problems += _day_ranges(section.meetings, ("meetings",), source)
    if not any("report_overdue" in rule.on for rule in runbook.notify):
        problems.append(
            source.problem(
                (_SECTION, "report_within"),
                "no notify rule carries report_overdue, so nobody is reminded of a late report",
                warning=True,
            )
        )
    if not any("incident_call" in rule.on for rule in runbook.notify):
        problems.append(
            source.problem(
                (_SECTION, "standby"),
                "no notify rule carries incident_call, so the contact on standby hears of an "
                "incident only on the Required Actions page",
                warning=True,
            )
        )
    return problems


def _day_ranges(entries: list[Rounds], loc: Loc, source: Source) -> list[Problem]:
    """Each day of support is planned by one entry: a second one would never be used."""
    problems = []
    for j, later in enumerate(entries):
        for i, earlier in enumerate(entries[:j]):
            if _overlap(earlier.days, later.days):
                problems.append(
                    source.problem(
                        (_SECTION, *loc, j, "days"),
                        f"days {days_text(later.days)} overlap days {days_text(earlier.days)} "
                        f"of {loc[-1]}[{i}]; each day of support is planned by one entry",
                    )
                )
                break
    return problems


def _overlap(a: tuple[int, int | None], b: tuple[int, int | None]) -> bool:
    a_last = a[1] if a[1] is not None else float("inf")
    b_last = b[1] if b[1] is not None else float("inf")
    return a[0] <= b_last and b[0] <= a_last
