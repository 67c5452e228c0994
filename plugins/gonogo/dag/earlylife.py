"""Early-life support after go-live: the ``<runbook>.early_life`` DAG and what starts it.

A rollout that succeeds emits an Airflow Asset event (``go_live``, the last task
of a runbook with an ``early_life:`` section); the early-life DAG is scheduled
on that asset, so it starts when the rollout succeeds and never otherwise. An
Asset rather than a TriggerDagRunOperator, because the event is Airflow's own
durable record that the change went live (its time, its run): it is shown in
the UI's asset view, it waits for the early-life DAG if that is paused, and the
rollout does not reach into another DAG's runs. A rehearsal's ``go_live`` skips
itself, and a skipped task emits no event.

The early-life run::

    start -> d1_0600.opens -> d1_1000.opens -> ...      one chain: one wait at a time
             d1_0600.opens -> d1_0600.<area> ...        each area's report (HITL)
             d1_0600.opens -> d1_0600.chase             reminds, then tells the standby contact
             d1_0600.<area> -> call__<area>__<n> ...    a P1/P2 red: :mod:`gonogo.dag.incident`
    start -> end                                        waits for the end of support

``start`` checks the event against the records before anything is asked: it
must come from this runbook's ``go_live`` task, in a run whose outcome was
``succeeded`` (an asset event posted through the REST API by hand starts
nothing). The DAG holds every slot support can reach (:mod:`gonogo.core.earlylife.rounds`);
a slot before the go-live or after the end of support skips its round.

Each report is a HITL request to the area's role: Green / Yellow / Red, a
comment required for Yellow and Red (declared in the form, so the API server
refuses an answer without one, :mod:`gonogo.server.middleware`), and a "needs a
decision" box. It stays open until the next round opens; unanswered by then,
it is skipped ("no report"). The round's ``chase`` waits until the report is
due, reminds each late area (``report_overdue``, addressed to the area's role),
waits ``standby_after`` more and tells the contact on standby by the roster
(``report_escalated``) about those still silent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, Asset, Param, TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from gonogo.core import naming
from gonogo.core.earlylife import incident, names
from gonogo.core.earlylife.meetinglog import log_form, log_refusal, logged
from gonogo.core.earlylife.roster import on_standby
from gonogo.core.earlylife.rounds import Slot, rounds, slots
from gonogo.core.runbook.model import Area, EarlyLife, Runbook
from gonogo.core.runs import states
from gonogo.core.runs.status import COLOURS
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.incident import RedReport, build_incident_tasks, incident_field, reported_incident
from gonogo.dag.notify import attach, tell
from gonogo.dag.preflight import role_users
from gonogo.dag.states import is_rehearsal

log = logging.getLogger(__name__)

#: A placeholder moment for the waits, fixed so the serialized DAG is stable between parses.
_PLACEHOLDER = datetime(2000, 1, 1, tzinfo=UTC)


def live_asset(runbook: Runbook) -> Asset:
    return Asset(name=names.live_asset(runbook.runbook))


# -- the rollout's side -----------------------------------------------------------------------


def _go_live(runbook_id: str, **context: Any) -> dict[str, Any]:
    if is_rehearsal(context):
        raise AirflowSkipException("a rehearsal went nowhere live: no early-life support")
    went_live = datetime.now(UTC).isoformat()
    facts = {"runbook": runbook_id, "run_id": context["run_id"], "went_live": went_live}
    context["outlet_events"][Asset(name=names.live_asset(runbook_id))].extra = facts
    log.info("the change is live at %s: early-life support starts", went_live)
    return facts


def go_live_task(runbook: Runbook) -> BaseOperator:
    """The rollout's last task: after a succeeded outcome, it emits the go-live asset event."""
    return PythonOperator(
        task_id=naming.GO_LIVE_TASK,
        python_callable=partial(_go_live, runbook.runbook),
        outlets=[live_asset(runbook)],
        doc_md="The change is live: starts early-life support (its own DAG).",
    )


# -- the early-life run's start ---------------------------------------------------------------


def _support_of(context: Mapping[str, Any]) -> dict[str, Any]:
    found = context["ti"].xcom_pull(task_ids=names.START_TASK)
    if not isinstance(found, dict) or not found.get("start"):
        raise AirflowFailException("support has no start: the start task recorded none")
    return found


def _start(runbook: Runbook, **context: Any) -> dict[str, Any]:
    """When support started: from the go-live event, checked against the rollout's outcome."""
    events = context["triggering_asset_events"].get(live_asset(runbook)) or []
    if not events:
        raise AirflowFailException(
            f"early-life support starts when a rollout of {runbook.runbook} succeeds; "
            "this run was not started by one"
        )
    event = events[-1]
    if event.source_dag_id != runbook.runbook or event.source_task_id != naming.GO_LIVE_TASK:
        raise AirflowFailException(
            f"the go-live event did not come from {runbook.runbook}'s {naming.GO_LIVE_TASK} task "
            f"(it came from {event.source_dag_id or 'outside Airflow'}): no support is started"
        )
    outcome = context["ti"].xcom_pull(
        dag_id=runbook.runbook,
        run_id=event.source_run_id,
        task_ids=naming.OUTCOME_TASK,
        key=naming.XCOM_OUTCOME,
    )
    if not isinstance(outcome, dict) or outcome.get("outcome") != "succeeded":
        raise AirflowFailException(
            f"the rollout run {event.source_run_id} has no succeeded outcome: no support is started"
        )
    start = event.timestamp.astimezone(UTC)
    section = _section(runbook)
    planned = rounds(section.reports, start, section.lasts, section.timezone)
    log.info(
        "support of %s from %s to %s: %d status rounds",
        runbook.runbook,
        start.isoformat(),
        (start + section.lasts).isoformat(),
        len(planned),
    )
    return {
        "start": start.isoformat(),
        "end": (start + section.lasts).isoformat(),
        "rollout_run_id": event.source_run_id,
        "rounds": [r.at.isoformat() for r in planned],
    }


def _section(runbook: Runbook) -> EarlyLife:
    assert runbook.early_life is not None
    return runbook.early_life


#: What recurs: the areas' status rounds, or the leadership's meetings (EarlyLife's fields).
REPORTS, MEETINGS = "reports", "meetings"


class _Round:
    """One slot's round (or meeting) as a task sees it at run time: when it opens, when the
    next one does."""

    def __init__(
        self, section: EarlyLife, slot: Slot, context: Mapping[str, Any], kind: str = REPORTS
    ) -> None:
        support = _support_of(context)
        start = datetime.fromisoformat(support["start"])
        entries = section.meetings if kind == MEETINGS else section.reports
        planned = rounds(entries, start, section.lasts, section.timezone)
        here = next((i for i, r in enumerate(planned) if r.slot == slot), None)
        if here is None:
            what = "meeting" if kind == MEETINGS else "round"
            raise AirflowSkipException(
                f"no {what} on day {slot.day} at {slot.at:%H:%M}: support started "
                f"{support['start']} and lasts {section.lasts}"
            )
        self.at = planned[here].at
        end = start + section.lasts
        self.closes = planned[here + 1].at if here + 1 < len(planned) else end
        self.due = self.at + section.report_within


class RoundOpensSensor(DateTimeSensorAsync):
    """Waits, deferred, for its round's (or meeting's) moment; skips it when support does not
    reach it, or when a cron entry does not name its date."""

    def __init__(
        self, *, section: EarlyLife, slot: Slot, kind: str = REPORTS, **kwargs: Any
    ) -> None:
        super().__init__(target_time=_PLACEHOLDER.isoformat(), **kwargs)
        self.section = section
        self.slot = slot
        self.kind = kind

    def execute(self, context: Any) -> Any:
        found = _Round(self.section, self.slot, context, self.kind)
        if found.at <= datetime.now(UTC):
            return None  # a deferral that resumes at once can hit Airflow's resume race
        log.info("the round opens at %s", found.at.isoformat())
        self.target_time = found.at.isoformat()
        return super().execute(context)


class SupportEndSensor(DateTimeSensorAsync):
    """Waits, deferred, until support ends: the run lasts as long as support."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(target_time=_PLACEHOLDER.isoformat(), **kwargs)

    def execute(self, context: Any) -> Any:
        end = datetime.fromisoformat(_support_of(context)["end"])
        if end <= datetime.now(UTC):
            return None
        self.target_time = end.isoformat()
        return super().execute(context)


# -- the reports ------------------------------------------------------------------------------


def report_body(area: Area) -> str:
    """What the reporter reads: what each colour means for this area, and what to write."""
    lines = [
        f"Report the status of **{area.title or area.id}** for this round.",
        "",
        *(f"- **{c.capitalize()}**: {area.meaning(c)}" for c in COLOURS),
        "",
        "Yellow and red need a short explanation: how the area is affected right now. "
        'Tick "needs a decision" when the leadership must decide something.',
    ]
    return "\n".join(lines)


class AreaReportOperator(Request):
    """One area's status report in one round: Green / Yellow / Red, a comment, needs a decision."""

    def __init__(
        self, *, section: EarlyLife, slot: Slot, area: Area, users: list[str], **kwargs: Any
    ) -> None:
        self.section = section
        self.slot = slot
        self.area = area
        kwargs = self._request(
            kwargs, "How the area is affected now; required for yellow and red", names.NEEDS_REASON
        )
        kwargs["params"][names.NEEDS_DECISION] = Param(
            False, type="boolean", description="The leadership must decide something"
        )
        kwargs["params"][incident.INCIDENT_FIELD] = incident_field()
        super().__init__(
            subject=f"Status of {area.title or area.id}, day {slot.day} {slot.at:%H:%M}",
            body=report_body(area),
            options=list(names.OPTIONS),
            assigned_users=assignees(users),
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        found = _Round(self.section, self.slot, context)
        self.response_timeout = max(found.closes - datetime.now(UTC), timedelta(minutes=1))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowSkipException(f"{self.area.id} did not report before the next round")
        params = event.get("params_input") or {}
        flag = params.get(names.NEEDS_DECISION) is True
        log.info("%s reported %s%s", given.by, given.option, ": needs a decision" if flag else "")
        return {
            "colour": names.colour_of(given.option),
            "by": given.by,
            "comment": given.comment,
            names.NEEDS_DECISION: flag,
            incident.INCIDENT_FIELD: reported_incident(given.option, params),
            "at": datetime.now(UTC).isoformat(),
        }


class DecisionRequestOperator(Request):
    """A red that needs a decision, put to a forum (DSL, then LGV): decided, or escalated on.

    The coordinator role keeps the decision log (seed 003), so its members may
    record the forum's decision too. The answer is the log's row: the decision
    (the comment), its owner, when it is due, and whether it goes to the next forum.
    """

    event = "decision_needed"

    def __init__(
        self,
        *,
        section: EarlyLife,
        slot: Slot,
        area: Area,
        forum: int,
        users: list[str],
        **kwargs: Any,
    ) -> None:
        self.section = section
        self.slot = slot
        self.area = area
        self.forum = forum
        last = forum == len(section.escalate_to)
        options = [names.DECIDED] if last else [names.DECIDED, names.ESCALATE]
        kwargs = self._request(kwargs, "The decision, or why it goes to the next forum", options)
        kwargs["params"][names.OWNER] = Param("", type="string", description="Who carries it out")
        kwargs["params"][names.DUE] = Param("", type="string", description="By when")
        super().__init__(
            subject=f"Decision needed: {area.title or area.id} is red "
            f"(day {slot.day} {slot.at:%H:%M}), for {section.escalate_to[forum - 1]}",
            body=f"**{area.title or area.id}** reported red and asks for a decision.",
            options=options,
            assigned_users=assignees(users),
            **kwargs,
        )

    def _asked(self, context: Any) -> str:
        """What the forum is asked about; skips when nothing needs deciding here."""
        group = names.round_group(self.slot.day, self.slot.at)
        if self.forum == 1:
            found = context["ti"].xcom_pull(task_ids=f"{group}.{self.area.id}") or {}
            if found.get("colour") != "red" or not found.get(names.NEEDS_DECISION):
                raise AirflowSkipException(f"{self.area.id} needs no decision in this round")
            return f"{found.get('by')} reported: {found.get('comment')}"
        before = names.decide_task(self.area.id, self.forum - 1)
        found = context["ti"].xcom_pull(task_ids=f"{group}.{before}") or {}
        if found.get("decision") != names.ESCALATE:
            raise AirflowSkipException(f"{self.section.escalate_to[self.forum - 2]} decided")
        return (
            f"{self.section.escalate_to[self.forum - 2]} escalated it ({found.get('by')}): "
            f"{found.get('text')}"
        )

    def execute(self, context: Any) -> Any:
        self.body = f"{self.body}\n\n{self._asked(context)}"
        end = datetime.fromisoformat(_support_of(context)["end"])
        self.response_timeout = max(end - datetime.now(UTC), timedelta(minutes=1))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowSkipException("nobody recorded a decision before support ended")
        params = event.get("params_input") or {}
        return {
            "decision": given.option,
            "text": given.comment,
            names.OWNER: str(params.get(names.OWNER) or ""),
            names.DUE: str(params.get(names.DUE) or ""),
            "by": given.by,
            "at": datetime.now(UTC).isoformat(),
        }


class MeetingLogOperator(Request):
    """One leadership meeting's decision log, kept by the coordinator role (seed 003).

    Opens at the meeting's moment and stays open until the next meeting, or the
    end of support after the last one; unanswered by then, it is skipped (nothing
    was logged). The answer is **Logged** with the meeting's decisions, or **No
    decisions**; the comment takes notes from the meeting.

    How several decisions fit in one answer: Airflow 3.3's Required Actions form
    (the same form as the trigger form) shows an ``array`` param whose items are
    objects, and an ``object`` param, as a raw JSON editor, and an ``array`` of
    strings as a text box with one line per item. A coordinator cannot be asked
    to type JSON during a meeting, and one line per decision would lose the
    owner, due and forum as separate, checkable values. So the form holds a fixed
    number of rows (:data:`~gonogo.core.earlylife.names.LOG_ROWS`) of plain
    fields, each row its own section (a fold-out panel in the UI): the decision
    and its owner and due as text boxes, the forum it was escalated to as a
    drop-down (an ``enum``: "none" or one of ``escalate_to``). Unused rows stay
    empty. A meeting with more decisions than rows logs the rest at the next
    meeting, whose log opens then. The rule an answer must meet (a decision and
    an owner per logged row) is :func:`gonogo.core.earlylife.meetinglog.log_refusal`:
    the API server refuses an answer that breaks it, and this task reads the
    decisions with the same code.
    """

    def __init__(self, *, section: EarlyLife, slot: Slot, users: list[str], **kwargs: Any) -> None:
        self.section = section
        self.slot = slot
        kwargs = self._request(kwargs, "Notes from the meeting (optional)")
        for name, spec in log_form(section.escalate_to).items():
            default = spec.pop("default")
            kwargs["params"][name] = Param(default, **spec)
        super().__init__(
            subject=f"Decision log of the leadership meeting, day {slot.day} {slot.at:%H:%M}",
            body=meeting_body(section),
            options=[names.LOGGED, names.NO_DECISIONS],
            assigned_users=assignees(users),
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        found = _Round(self.section, self.slot, context, MEETINGS)
        self.response_timeout = max(found.closes - datetime.now(UTC), timedelta(minutes=1))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowSkipException("nobody logged this meeting's decisions before the next")
        params = event.get("params_input") or {}
        refused = log_refusal([given.option or ""], params)
        if refused:  # the API server refuses these first; a task trusts its own check
            raise AirflowFailException(f"the decision log of {given.by} is refused: {refused}")
        found = logged(params)
        log.info("%s logged %d decision(s) of the meeting", given.by, len(found))
        return {"by": given.by, "option": given.option, "notes": given.comment, "decisions": found}


def meeting_body(section: EarlyLife) -> str:
    """What the coordinator reads: what to log, and where the agenda is."""
    forums = ", then ".join(section.escalate_to) or "nobody (no forum is named)"
    return "\n".join(
        [
            "Log the decisions of this leadership meeting: for each, **what** was decided, "
            "**who** carries it out (required), **by when**, and the forum it was "
            f"**escalated** to, if any ({forums}).",
            "",
            f"Answer **{names.LOGGED}** with the decisions, or **{names.NO_DECISIONS}** when "
            f"the meeting decided nothing. The form holds {names.LOG_ROWS} decisions; log more "
            "at the next meeting. The agenda is on the DAG's Early life tab.",
        ]
    )


class ChaseOperator(BaseOperator):
    """At the round's deadline, reminds the late areas; later, tells the standby contact."""

    def __init__(self, *, section: EarlyLife, slot: Slot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.section = section
        self.slot = slot

    def execute(self, context: Any) -> Any:
        found = _Round(self.section, self.slot, context)
        self._wait_until(found.due, "remind")
        return self.remind(context, None)

    def _wait_until(self, moment: datetime, method: str, **kwargs: Any) -> None:
        if moment > datetime.now(UTC):
            self.defer(
                trigger=DateTimeTrigger(moment=moment), method_name=method, kwargs=kwargs or None
            )

    def _silent(self, context: Any) -> list[Area]:
        group = names.round_group(self.slot.day, self.slot.at)
        ids = [f"{group}.{a.id}" for a in self.section.areas]
        found = context["ti"].get_task_states(
            dag_id=context["dag"].dag_id, task_ids=ids, run_ids=[context["run_id"]]
        )
        seen = {t: str(getattr(s, "value", s)) for t, s in found.get(context["run_id"], {}).items()}
        return [
            a
            for a, task_id in zip(self.section.areas, ids, strict=True)
            if seen.get(task_id) not in states.ENDED  # still open, or not even asked yet
        ]

    def _tell(self, context: Any, event: str, area: Area, **extra: Any) -> None:
        group = names.round_group(self.slot.day, self.slot.at)
        found = _Round(self.section, self.slot, context)
        tell(
            context,
            event,
            f"{group}.{area.id}",
            area=area.id,
            area_title=area.title or area.id,
            role=area.role,
            round_at=found.at.astimezone(self.section.timezone).strftime("%a %d %b %H:%M"),
            deadline=(found.due + self.section.standby_after).isoformat(),
            **extra,
        )

    def remind(self, context: Any, event: Any) -> Any:
        late = self._silent(context)
        for area in late:
            log.info("%s has not reported: reminded", area.id)
            self._tell(context, "report_overdue", area, address=[area.role])
        reminded = [a.id for a in late]
        if not late:
            return {"reminded": [], "standby": []}
        found = _Round(self.section, self.slot, context)
        self._wait_until(found.due + self.section.standby_after, "escalate", reminded=reminded)
        return self.escalate(context, None, reminded)

    def escalate(self, context: Any, event: Any, reminded: list[str]) -> Any:
        late = [a for a in self._silent(context) if a.id in reminded]
        standby = on_standby(self.section.standby, datetime.now(UTC), self.section.timezone)
        for area in late:
            log.info("%s still has not reported: %s (on standby) is told", area.id, standby)
            self._tell(
                context, "report_escalated", area, standby=standby, address=[area.role, standby]
            )
        return {"reminded": reminded, "standby": [a.id for a in late], "standby_role": standby}


# -- the DAG ----------------------------------------------------------------------------------


def build_early_life_dag(runbook: Runbook) -> DAG:
    """``<runbook>.early_life``: status rounds from go-live until support ends."""
    section = _section(runbook)
    users = role_users(runbook)
    dag = DAG(
        dag_id=names.early_life_dag(runbook.runbook),
        description=f"Early-life support: {runbook.title}",
        schedule=[live_asset(runbook)],
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["gonogo", naming.DAG_MARKER_TAG, "gonogo:early_life", runbook.service],
        doc_md=f"Early-life support of `{runbook.runbook}` for {section.lasts} after it goes "
        f"live: {', '.join(a.title or a.id for a in section.areas)} report each round.",
        default_args={"retries": 0},
    )
    attach(dag, runbook)  # the reminders go by the runbook's own notify rules
    with dag:
        start = PythonOperator(task_id=names.START_TASK, python_callable=partial(_start, runbook))
        start >> SupportEndSensor(task_id=names.END_TASK, trigger_rule="all_success")
        _meetings(section, start, users.get(section.coordinator, []))
        previous: BaseOperator = start
        for slot in slots(section.reports, section.lasts):
            group = names.round_group(slot.day, slot.at)
            with TaskGroup(group_id=group, tooltip=f"Day {slot.day} {slot.at:%H:%M}"):
                opens = RoundOpensSensor(
                    task_id=names.OPENS,
                    section=section,
                    slot=slot,
                    trigger_rule="none_failed",  # the chain goes on past a skipped round
                )
                for area in section.areas:
                    asked: BaseOperator = AreaReportOperator(
                        task_id=area.id,
                        section=section,
                        slot=slot,
                        area=area,
                        users=users.get(area.role, []),
                    )
                    opens >> asked
                    build_incident_tasks(
                        RedReport(runbook, group, area), asked, first_rule="all_success"
                    )
                    for forum, role in enumerate(section.escalate_to, start=1):
                        keeper = users.get(section.coordinator, [])
                        decide = DecisionRequestOperator(
                            task_id=names.decide_task(area.id, forum),
                            section=section,
                            slot=slot,
                            area=area,
                            forum=forum,
                            users=list(dict.fromkeys([*users.get(role, []), *keeper])),
                        )
                        asked >> decide
                        asked = decide
                opens >> ChaseOperator(task_id=names.CHASE, section=section, slot=slot)
            previous >> opens
            previous = opens
    return dag


def _meetings(section: EarlyLife, start: BaseOperator, keepers: list[str]) -> None:
    """The meetings' chain beside the rounds': each waits for its moment, then opens its log."""
    previous = start
    for slot in slots(section.meetings, section.lasts):
        group = names.meeting_group(slot.day, slot.at)
        with TaskGroup(
            group_id=group, tooltip=f"Leadership meeting day {slot.day} {slot.at:%H:%M}"
        ):
            opens = RoundOpensSensor(
                task_id=names.OPENS,
                section=section,
                slot=slot,
                kind=MEETINGS,
                trigger_rule="none_failed",  # the chain goes on past a skipped meeting
            )
            opens >> MeetingLogOperator(
                task_id=names.LOG, section=section, slot=slot, users=keepers
            )
        previous >> opens
        previous = opens
