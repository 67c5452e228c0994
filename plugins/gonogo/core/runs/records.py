"""A run as Airflow recorded it, as typed data: its tasks, its requests and answers, its events.

Every view of a run reads these types and nothing else: the pages, the board
and the report (:func:`gonogo.core.runs.run.progress`), the run note, the decision
log of ``gonogo decisions``, and the middleware's checks of an answer. Two
places fill them, each from its own side of Airflow: the server's reader from
the metadata database (:mod:`gonogo.server.rundata`) and the client's mapper
from the REST API (:mod:`gonogo.client.runs`). Both go through the functions
here (:meth:`Request.from_detail`, :func:`events_in_order`), so they cannot read
the same run two ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gonogo.core import naming

#: The XCom keys whose values are a run's events, in every view of it: the events gonogo's
#: tasks record (gate_expiring, step_interrupted, forecast_overrun, rollback_failed) and the
#: notifications and change-record updates that failed.
EVENT_KEYS = (naming.XCOM_EVENTS, naming.XCOM_NOTICES)
#: The name of an event recorded without one: a failed notification or change-record update.
NOTICE = "notice"


def moment(value: Any) -> datetime | None:
    """A time as either side records it: a datetime, or ISO 8601 text (the REST API's ``Z`` too).

    A time without a zone is UTC, as Airflow stores every time.
    """
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    """One answer to one HITL request."""

    option: str | None  # None: nobody answered (a timeout)
    by: str  # the user's name, as Airflow recorded it
    by_id: str  # the user's id, which assignments use
    comment: str
    inputs: Mapping[str, Any] = field(default_factory=dict)  # the whole form as answered

    @property
    def timed_out(self) -> bool:
        return self.option is None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Answer:
        """From the event a resumed HITL task receives in ``execute_complete``."""
        if event.get("error_type") == "timeout":
            return cls(None, "", "", "")
        chosen = event.get("chosen_options") or [None]
        return cls._make(chosen[0], event.get("responded_by_user"), event.get("params_input"))

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> Answer:
        """From a HITL detail, as the REST API returns it."""
        chosen = (
            (detail.get("chosen_options") or [None]) if detail.get("response_received") else [None]
        )
        return cls._make(chosen[0], detail.get("responded_by_user"), detail.get("params_input"))

    @classmethod
    def _make(cls, option: Any, user: Any, params: Any) -> Answer:
        user = user if isinstance(user, Mapping) else {}
        params = params if isinstance(params, Mapping) else {}
        comment = params.get(naming.COMMENT)
        return cls(
            option=str(option) if option is not None else None,
            by=str(user.get("name") or ""),
            by_id=str(user.get("id") or ""),
            comment=comment.strip() if isinstance(comment, str) else "",
            inputs=dict(params),
        )


@dataclass(frozen=True)
class Request:
    """One HITL request of a run (a gate's role, a manual step, a decision) and its answer."""

    task_id: str
    state: str | None  # its task's state: a request is open only while its task waits
    try_number: int = 1
    subject: str = ""
    created_at: datetime | None = None
    ended_at: datetime | None = None  # its task's end: when a timeout or a withdrawal happened
    assignees: tuple[tuple[str, str], ...] = ()  # (id, name) of each assigned user
    form: Mapping[str, Any] = field(default_factory=dict)  # the request's serialized params
    answer: Answer | None = None  # None: no answer was received
    answered_at: datetime | None = None

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> Request:
        """From a HITL detail in the shape the REST API returns it (and the reader builds)."""
        ti = detail.get("task_instance") or {}
        received = bool(detail.get("response_received"))
        return cls(
            task_id=str(ti.get("task_id") or ""),
            state=None if ti.get("state") is None else str(ti["state"]),
            try_number=int(ti.get("try_number") or 1),
            subject=str(detail.get("subject") or ""),
            created_at=moment(detail.get("created_at")),
            ended_at=moment(ti.get("end_date")),
            assignees=tuple(
                (str(u.get("id") or ""), str(u.get("name") or u.get("id") or ""))
                for u in detail.get("assigned_users") or []
                if isinstance(u, Mapping)
            ),
            form=dict(detail.get("params") or {}),
            answer=Answer.from_detail(detail) if received else None,
            answered_at=moment(detail.get("responded_at")),
        )


@dataclass(frozen=True)
class Event:
    """One thing a task recorded for people to read, as its task recorded it, named."""

    task_id: str
    recorded_at: datetime | None  # when its task pushed it (the XCom's timestamp)
    data: Mapping[str, Any]  # always with an "event": a failed notice is named NOTICE

    @property
    def name(self) -> str:
        return str(self.data["event"])


def events_in_order(pushed: Iterable[tuple[str, Any, Any]]) -> tuple[Event, ...]:
    """The events of a run from its XComs of :data:`EVENT_KEYS`: (task id, timestamp, value).

    Each value is a list of events. They come in the order their tasks recorded
    them (then by task, then as listed), whichever order the database or the
    REST API returned the XComs in. A failed notification, recorded without a
    name, is named :data:`NOTICE`, so every view calls it the same.
    """
    found = [
        (
            moment(at) or datetime.min.replace(tzinfo=UTC),
            task_id,
            index,
            Event(task_id, moment(at), e if e.get("event") else {"event": NOTICE, **e}),
        )
        for task_id, at, value in pushed
        if isinstance(value, list)
        for index, e in enumerate(value)
        if isinstance(e, Mapping)
    ]
    return tuple(event for *_, event in sorted(found, key=lambda row: row[:3]))


@dataclass(frozen=True)
class TaskRecord:
    """One task instance: what the report needs of it."""

    task_id: str
    state: str | None
    start: datetime | None = None
    end: datetime | None = None
    try_number: int = 1


@dataclass(frozen=True)
class RunRecord:
    """Airflow's records of one DAG run, as typed data."""

    dag_id: str
    run_id: str
    state: str
    start: datetime | None = None
    end: datetime | None = None
    triggered_by: str = ""
    tasks: Mapping[str, TaskRecord] = field(default_factory=dict)
    requests: Sequence[Request] = ()
    outcome: Mapping[str, Any] | None = None  # the outcome task's XCom
    events: Sequence[Event] = ()
    forecast: Mapping[str, Any] | None = None  # the forecast task's latest forecast
    planned_start: str | None = None  # the trigger's planned_start param, as the run was given it
    #: The P1/P2 incident reports the incident manager approved (each report task's XCom).
    incident_reports: Sequence[Mapping[str, Any]] = ()


def approved_reports(pushed: Iterable[tuple[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """The approved incident reports among (task id, value) XComs, in task order, each once."""
    return tuple(
        {**value, "task_id": task_id}
        for task_id, value in sorted(pushed, key=lambda row: row[0])
        if isinstance(value, Mapping) and value.get("approved") is True and value.get("report")
    )


def given_start(conf: Any) -> str | None:
    """The ``planned_start`` a run was triggered with (its conf), or None when it was left empty."""
    value = conf.get(naming.PLANNED_START_PARAM) if isinstance(conf, Mapping) else None
    return str(value) if value else None


def latest_forecast(history: Any) -> Mapping[str, Any] | None:
    """The forecast task's latest forecast, from its history (the XCom it pushes), or None."""
    made = (
        [e for e in history if isinstance(e, Mapping) and e.get("finish")]
        if isinstance(history, list)
        else []
    )
    return max(made, key=lambda e: str(e.get("at", ""))) if made else None
