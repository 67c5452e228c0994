"""An incident gonogo raises, called to the standby contact, and its P1/P2 incident report.

Two places raise one (seed 004): the rollout, when its rollback fails (the
``incident`` group after ``outcome``), and an early-life round, when an area
reports red and marks it a P1 or P2 (``<round>.call__<area>__<n>``). Both build
the same tasks here, from a :class:`Source` that says where the incident's
record is::

    call__1 -> call__2 -> call__3        the contacts of call_order(), one at a time
    [calls] -> report -> report__2       the incident manager approves the draft

Each call is a HITL request ("Acknowledge") to the users of one role: the role
on standby at the moment the incident was raised, then that shift's ``next``,
then the fallback (:func:`gonogo.core.earlylife.roster.call_order`), each once.
The contact is worked out when the call runs, from the moment in the records;
the DAG holds as many calls as the roster's longest order, so its shape never
depends on when it was parsed, and a call with no contact at that moment skips.
A call waits ``standby.acknowledge_within``; unacknowledged, the next one runs;
acknowledged by a member of the called role, the later calls skip. Airflow
refuses an answer from anyone not assigned; the call checks the answer's
author against the role again, and an answer from outside it does not count.

Every task checks its own preconditions from durable records, never from what
started it: the outcome's XCom (``rollback_failed``, not a rehearsal) or the
area report's XCom (red, with P1 or P2), and the earlier calls' XComs.

For a P1 or P2, the report task drafts the incident report from the run's
records (:mod:`gonogo.core.documents.incident`) and asks the incident manager
(``incident.manager``) to approve it or send it back with a comment; a draft
sent back is drafted once more with the comment. On approval, the change
record's incident is closed with the report as its close notes (with an
``itsm:`` section), and the approved report is kept as the task's
``incident_report`` XCom, which the run's pages read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from airflow.sdk import Param, TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.core import naming
from gonogo.core.documents.incident import IncidentFacts, incident_markdown
from gonogo.core.documents.text import md_line
from gonogo.core.earlylife import incident as names
from gonogo.core.earlylife.names import DECIDED, RED_OPTION, START_TASK, decide_task
from gonogo.core.earlylife.roster import call_order, most_calls
from gonogo.core.runbook.model import Area, EarlyLife, Runbook
from gonogo.core.runs.gates import eligible, started_the_run
from gonogo.core.runs.records import moment
from gonogo.core.runs.rollback import ROLLBACK_FAILED
from gonogo.core.timing.clock import in_words
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.notify import RequestNotifier, close_incident, incident_number, raise_incident
from gonogo.dag.preflight import role_users
from gonogo.dag.states import is_rehearsal, run_trigger

log = logging.getLogger(__name__)

#: A call's own record while it waits: whom it called and when.
XCOM_CALLED = "called"
#: A report task's draft, as the incident manager was shown it.
XCOM_DRAFT = "draft"


class Raised(NamedTuple):
    """An incident as its record shows it."""

    priority: str
    what: str
    at: datetime
    scope: str  # tells the run's incidents apart: "" for the failed rollback


class Source:
    """Where an incident's record is, and what the report says about it."""

    def __init__(self, runbook: Runbook, group: str, area: Area | None = None) -> None:
        self.runbook = runbook
        self.group = group
        self.area = area

    def task_id(self, part: str) -> str:
        return f"{self.group}.{part}"

    def call_id(self, n: int) -> str:
        return self.task_id(names.call_task(n, self.area.id if self.area else None))

    def report_id(self, draft: int) -> str:
        return self.task_id(names.report_task(self.area.id if self.area else None, draft))

    def raised(self, context: Any) -> Raised:
        """The incident, from its record; skips the task when the record shows none."""
        raise NotImplementedError

    def on_change(self, context: Any, raised: Raised) -> None:
        """Raise the change record's incident, where the event itself does not."""

    def facts(self, context: Any, raised: Raised) -> dict[str, Any]:
        """What happened, the decisions, the timeline, what was undone: the report's body."""
        raise NotImplementedError

    def report_within(self, context: Any) -> timedelta | None:
        """How long the incident manager has to approve the report."""
        return self.runbook.incident.approve_within

    def _first_call_at(self, context: Any) -> datetime | None:
        called = context["ti"].xcom_pull(task_ids=self.call_id(1), key=XCOM_CALLED)
        return moment(called.get("at")) if isinstance(called, Mapping) else None


class RollbackFailed(Source):
    """The rollout's failed rollback: the outcome task's record says so."""

    def __init__(self, runbook: Runbook) -> None:
        super().__init__(runbook, names.GROUP)

    def _outcome(self, context: Any) -> dict[str, Any]:
        found = context["ti"].xcom_pull(task_ids=naming.OUTCOME_TASK, key=naming.XCOM_OUTCOME)
        return found if isinstance(found, dict) else {}

    def raised(self, context: Any) -> Raised:
        outcome = self._outcome(context)
        if outcome.get("outcome") != ROLLBACK_FAILED:
            raise AirflowSkipException(
                f"the outcome is {outcome.get('outcome') or 'not recorded'}: no incident"
            )
        if is_rehearsal(context) or outcome.get("rehearsal"):
            raise AirflowSkipException("a rehearsal's rollback changed nothing real: no incident")
        return Raised(
            self.runbook.incident.priority,
            f"Rollback failed: {self.runbook.title}",
            self._first_call_at(context) or datetime.now(UTC),
            "",
        )

    def facts(self, context: Any, raised: Raised) -> dict[str, Any]:
        ti = context["ti"]
        outcome = self._outcome(context)
        happened = [
            f"The rollback of change {self.runbook.change.id} failed in run {context['run_id']}.",
            *(f"Why the rollback ran: {r}" for r in outcome.get("reasons") or []),
            *(f"Failed: {f}" for f in outcome.get("failed") or []),
        ]
        timeline: list[tuple[str, str]] = []
        for phase, step in self.runbook.steps():
            task = naming.step_task(phase.id, step.id)
            at = ti.xcom_pull(task_ids=task, key=naming.XCOM_FINISHED_AT)
            if at:
                timeline.append((str(at), f"step {step.id} finished"))
        decisions = []
        for gate in self.runbook.gates:
            for role in gate.sign_off:
                for part in naming.round_ids(role, gate.on_nogo == "reask"):
                    said = ti.xcom_pull(task_ids=naming.gate_task(gate.gate, part))
                    if not isinstance(said, Mapping) or not said.get("answer"):
                        continue
                    who = said.get("by") or "nobody (no answer in time)"
                    line = f"{gate.title or gate.gate}: {said['answer']} for {role} by {who}"
                    if said.get("comment"):
                        line += f": {said['comment']}"
                    decisions.append(line)
                    if said.get("at"):
                        timeline.append((str(said["at"]), line))
        return {
            "happened": happened,
            "decisions": decisions,
            "timeline": timeline,
            "undone": [*(outcome.get("undone") or []), *(outcome.get("global_done") or [])],
            "not_undone": list(outcome.get("not_undone") or []),
        }


class RedReport(Source):
    """An area's red report in an early-life round, marked a P1 or P2 incident."""

    def __init__(self, runbook: Runbook, group: str, area: Area) -> None:
        super().__init__(runbook, group, area)

    @property
    def _area(self) -> Area:
        assert self.area is not None
        return self.area

    @property
    def _title(self) -> str:
        return self._area.title or self._area.id

    def _report(self, context: Any) -> dict[str, Any]:
        found = context["ti"].xcom_pull(task_ids=self.task_id(self._area.id))
        return found if isinstance(found, dict) else {}

    def _reported(self, report: Mapping[str, Any], priority: str) -> str:
        """The report as one sentence: the change record's incident and the draft both say it."""
        return (
            f"{report.get('by')} reported {self._title} red as a {priority} incident: "
            f"{report.get('comment')}"
        )

    def raised(self, context: Any) -> Raised:
        report = self._report(context)
        priority = names.red_incident(report)
        if priority is None:
            raise AirflowSkipException(
                f"{self._area.id} reported no P1 or P2 incident in this round"
            )
        return Raised(
            priority,
            f"{self._title} reported red ({report.get('comment') or 'no comment'})",
            moment(report.get("at")) or self._first_call_at(context) or datetime.now(UTC),
            self.task_id(self._area.id),
        )

    def report_within(self, context: Any) -> timedelta | None:
        """Until support ends: the early-life run lasts no longer."""
        support = context["ti"].xcom_pull(task_ids=START_TASK) or {}
        end = moment(support.get("end")) if isinstance(support, Mapping) else None
        if end is None:
            return self.runbook.incident.approve_within
        return max(end - datetime.now(UTC), timedelta(minutes=1))

    def on_change(self, context: Any, raised: Raised) -> None:
        report = self._report(context)
        raise_incident(
            context,
            raised.scope,
            raised.priority,
            f"{raised.priority} after go-live: {self._title} ({self.runbook.change.id})",
            [self._reported(report, raised.priority), f"Early-life run: {context['run_id']}"],
        )

    def facts(self, context: Any, raised: Raised) -> dict[str, Any]:
        ti = context["ti"]
        report = self._report(context)
        section = self.runbook.early_life
        assert section is not None
        line = self._reported(report, raised.priority)
        timeline = [(str(report.get("at") or ""), line)]
        decisions = []
        for forum, role in enumerate(section.escalate_to, start=1):
            said = ti.xcom_pull(task_ids=self.task_id(decide_task(self._area.id, forum)))
            if not isinstance(said, Mapping):
                continue
            text = f"{role}: {said.get('decision')} by {said.get('by')}: {said.get('text')}"
            if said.get("decision") == DECIDED and said.get("owner"):
                text += f" (owner {said.get('owner')}, due {said.get('due') or 'not set'})"
            decisions.append(text)
            if said.get("at"):
                timeline.append((str(said["at"]), text))
        return {
            "happened": [line],
            "decisions": decisions,
            "timeline": timeline,
            "undone": [],
            "not_undone": [],
        }


def incident_field() -> Param:
    """The area report's field that marks a red as a P1 or P2 incident; only with Red."""
    schema: dict[str, Any] = {
        "type": "string",
        "enum": list(names.INCIDENT_CHOICES),
        names.ONLY_WITH: [RED_OPTION],
    }
    return Param(
        names.NO_INCIDENT,
        description="Only with Red: the red is a P1 or P2 incident, called to the contact on "
        "standby at once",
        **schema,
    )


def reported_incident(option: str | None, params: Mapping[str, Any]) -> str | None:
    """The priority an answer marks, or None; a priority given with another colour is ignored.

    The API server refuses such an answer (:func:`gonogo.server.rules.only_with_refusal`);
    this is the second line, for an answer that reached Airflow another way.
    """
    given = params.get(names.INCIDENT_FIELD)
    if given not in names.REPORTABLE:
        return None
    if option != RED_OPTION:
        log.warning("%s was given with %s, not Red: ignored, no incident is raised", given, option)
        return None
    return str(given)


class CallOperator(Request):
    """The n-th call about an incident: the contact at that place in the call order acknowledges."""

    def __init__(
        self,
        *,
        source: Source,
        n: int,
        section: EarlyLife,
        users: Mapping[str, Sequence[str]],
        **kwargs: Any,
    ) -> None:
        self.source = source
        self.n = n
        self.section = section
        self.users = {role: list(ids) for role, ids in users.items()}
        kwargs = self._request(kwargs, "What you are doing about it (optional)")
        super().__init__(
            subject=f"Incident: call {n}",
            body="An incident is called to the contact on standby.",
            options=[names.ACKNOWLEDGE],
            assigned_users=[],
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        raised = self.source.raised(context)
        standby = self.section.standby
        order = call_order(standby, raised.at, self.section.timezone)
        if self.n > len(order):
            raise AirflowSkipException(
                f"the roster has {len(order)} contact(s) for {raised.at.isoformat()}: no call {self.n}"
            )
        earlier = [
            context["ti"].xcom_pull(task_ids=self.source.call_id(k)) for k in range(1, self.n)
        ]
        done = names.acknowledged_by(earlier)
        if done is not None:
            raise AirflowSkipException(f"{done.get('role')} acknowledged ({done.get('by')})")
        role = order[self.n - 1]
        members = self.users.get(role, [])
        now = datetime.now(UTC)
        called = {
            "role": role,
            "users": members,
            "at": now.isoformat(),
            "raised_at": raised.at.isoformat(),
            "priority": raised.priority,
            "within": in_words(standby.acknowledge_within),
        }
        context["ti"].xcom_push(key=XCOM_CALLED, value=called)
        if self.n == 1:
            self.source.on_change(context, raised)
        if not members:
            log.error("the role %s on standby has no users: nobody can acknowledge", role)
            return {**called, names.ACKNOWLEDGED: False, "why": "the role has no users"}
        after = order[self.n] if self.n < len(order) else None
        then = f"otherwise {after} is called" if after else "there is nobody after you"
        self.subject = f"INCIDENT {raised.priority}: {raised.what}"[:200]
        self.body = (
            f"**{md_line(raised.what)}** ({raised.priority}, raised "
            f"{raised.at:%Y-%m-%d %H:%M} UTC).\n\n"
            f"You are called as **{role}**, on standby by the roster. Acknowledge within "
            f"{in_words(standby.acknowledge_within)}: {then}."
        )
        self.assigned_users = assignees(members)
        self.response_timeout = standby.acknowledge_within
        deadline = now + standby.acknowledge_within
        self.notifiers = [
            RequestNotifier(
                "incident_call",
                {
                    "what": raised.what,
                    "priority": raised.priority,
                    "role": role,
                    "users": members,
                    "deadline": deadline.isoformat(),
                    "not_acknowledged": order[: self.n - 1],
                    "address": [role],
                },
            )
        ]
        log.info("calling %s (%s) about: %s", role, ", ".join(members), raised.what)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        called = context["ti"].xcom_pull(task_ids=self.task_id, key=XCOM_CALLED) or {}
        given = self.answer(context, event)
        record = {**called, names.ACKNOWLEDGED: False}
        if given.timed_out:
            log.warning(
                "%s did not acknowledge in time: the next contact is called", called.get("role")
            )
            return record
        if not names.counts(given.by_id, self.users.get(str(called.get("role")), [])):
            log.error(
                "%s acknowledged but is not in the role %s: it does not count",
                given.by,
                called.get("role"),
            )
            return {**record, "refused_by": given.by}
        answered = event.get("responded_at")
        log.info("%s acknowledged for %s", given.by, called.get("role"))
        return {
            **record,
            names.ACKNOWLEDGED: True,
            "by": given.by,
            "comment": given.comment,
            "answered_at": answered.isoformat()
            if isinstance(answered, datetime)
            else str(answered or datetime.now(UTC).isoformat()),
        }


class IncidentReportOperator(Request):
    """The incident manager approves the P1/P2 incident report gonogo drafted, or sends it back."""

    def __init__(
        self,
        *,
        source: Source,
        draft: int,
        calls: int,
        manager: str,
        users: Sequence[str],
        **kwargs: Any,
    ) -> None:
        self.source = source
        self.draft = draft
        self.calls = calls
        self.manager = manager
        self.users = list(users)
        kwargs = self._request(
            kwargs, "What is missing or wrong; required to send it back", [names.SEND_BACK]
        )
        super().__init__(
            subject="Incident report to approve",
            body="gonogo drafts the incident report from the run's records.",
            options=[names.APPROVE, names.SEND_BACK],
            assigned_users=assignees(self.users),
            **kwargs,
        )

    def _sent_back(self, context: Any) -> list[str]:
        """The comments of the earlier drafts, each sent back; skips when one was not."""
        comments = []
        for k in range(1, self.draft):
            said = context["ti"].xcom_pull(task_ids=self.source.report_id(k))
            if not isinstance(said, Mapping) or said.get("approved") is not False:
                raise AirflowSkipException(f"draft {k} was not sent back")
            comments.append(f"{said.get('by')}: {said.get('comment')}")
        return comments

    def execute(self, context: Any) -> Any:
        raised = self.source.raised(context)
        if raised.priority not in names.REPORTABLE:
            raise AirflowSkipException(f"a {raised.priority} incident needs no incident report")
        sent_back = self._sent_back(context)
        if not self.users:
            raise AirflowFailException(
                f"the incident manager role {self.manager!r} has no users to approve the report"
            )
        trigger_id, trigger_name = run_trigger(context)
        approvers = eligible(self.users, trigger_id, trigger_name)
        if not approvers:
            raise AirflowFailException(
                f"{trigger_name or trigger_id} started this run and is the only user of the "
                f"incident manager role {self.manager!r}: the report of its incident needs "
                "another approver (four-eyes rule); add one to the role"
            )
        calls = [
            context["ti"].xcom_pull(task_ids=self.source.call_id(n))
            for n in range(1, self.calls + 1)
        ]
        runbook = self.source.runbook
        facts = IncidentFacts(
            title=runbook.title,
            change_id=runbook.change.id,
            run_id=str(context["run_id"]),
            what=raised.what,
            priority=raised.priority,
            raised_at=raised.at.isoformat(),
            number=incident_number(context, raised.scope),
            calls=[c for c in calls if isinstance(c, Mapping)],
            sent_back=sent_back,
            **self.source.facts(context, raised),
        )
        draft = incident_markdown(facts)
        context["ti"].xcom_push(key=XCOM_DRAFT, value=draft)
        self.subject = f"Incident report {raised.priority} to approve: {raised.what}"[:200]
        self.body = draft
        self.assigned_users = assignees(approvers)
        within = self.source.report_within(context)
        self.response_timeout = within
        deadline = datetime.now(UTC) + within if within else None
        self.notifiers = [
            RequestNotifier(
                "incident_report",
                {
                    "what": raised.what,
                    "priority": raised.priority,
                    "role": self.manager,
                    "users": approvers,
                    "deadline": deadline.isoformat() if deadline else None,
                    "address": [self.manager],
                },
            )
        ]
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowSkipException(
                "the incident report was not approved in time: the incident stays open"
            )
        if not names.counts(given.by_id, self.users):
            raise AirflowFailException(
                f"{given.by} answered but is not the incident manager ({self.manager}): "
                "the report is not approved and the incident stays open"
            )
        if started_the_run([given.by_id, given.by], *run_trigger(context)):
            raise AirflowFailException(
                f"{given.by} started this run and may not answer for the report of its "
                "incident (four-eyes rule): the report is not approved and the incident "
                "stays open"
            )
        if given.option == names.SEND_BACK:
            log.info("%s sent the report back: %s", given.by, given.comment)
            return {"approved": False, "by": given.by, "comment": given.comment}
        draft = str(context["ti"].xcom_pull(task_ids=self.task_id, key=XCOM_DRAFT) or "")
        raised = self.source.raised(context)
        number = close_incident(context, raised.scope, draft)
        approved = {
            "approved": True,
            "by": given.by,
            "comment": given.comment,
            "at": datetime.now(UTC).isoformat(),
            "priority": raised.priority,
            "what": raised.what,
            "incident": number,
            "report": draft,
        }
        context["ti"].xcom_push(key=naming.XCOM_INCIDENT_REPORT, value=approved)
        log.info(
            "%s approved the incident report%s", given.by, f"; {number} is closed" if number else ""
        )
        return approved


def build_incident_tasks(
    source: Source,
    after: BaseOperator,
    *,
    first_rule: str,
) -> list[BaseOperator]:
    """The calls and the report drafts for ``source``'s incident, downstream of ``after``.

    Call 1 runs by ``first_rule`` after ``after``; each later call runs unless the one
    before it was skipped (an acknowledgement, or no incident, skips the rest). The
    report's first draft runs once every call has ended, however it ended.
    """
    runbook = source.runbook
    section = runbook.early_life
    assert section is not None
    users = role_users(runbook)
    calls: list[BaseOperator] = []
    previous = after
    for n in range(1, most_calls(section.standby) + 1):
        call = CallOperator(
            task_id=source.call_id(n).split(".", 1)[1],
            source=source,
            n=n,
            section=section,
            users=users,
            trigger_rule=first_rule if n == 1 else "none_skipped",
            doc_md=f"Call {n} about an incident: the contact at place {n} in the call order.",
        )
        previous >> call
        previous = call
        calls.append(call)
    drafts: list[BaseOperator] = []
    for k in range(1, names.REPORT_ROUNDS + 1):
        report = IncidentReportOperator(
            task_id=source.report_id(k).split(".", 1)[1],
            source=source,
            draft=k,
            calls=len(calls),
            manager=runbook.incident.manager,
            users=users.get(runbook.incident.manager, []),
            trigger_rule="all_done" if k == 1 else "all_success",
            doc_md="The P1/P2 incident report: the incident manager approves it or sends it back.",
        )
        if k == 1:
            calls >> report
        else:
            drafts[-1] >> report
        drafts.append(report)
    return [*calls, *drafts]


def rollback_incident_group(runbook: Runbook, outcome: BaseOperator) -> list[BaseOperator]:
    """The rollout's ``incident`` group: a failed rollback is called and reported."""
    with TaskGroup(group_id=names.GROUP, tooltip="A failed rollback: calls and the report"):
        return build_incident_tasks(
            RollbackFailed(runbook),
            outcome,
            first_rule="all_done",  # the outcome task fails when the rollback did
        )
