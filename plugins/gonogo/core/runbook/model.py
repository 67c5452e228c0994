"""The runbook schema as pydantic models.

Pure: no Airflow import. Every model forbids unknown keys so that a typo such as
``titel`` is an error with a location, not a silently ignored line. Checks that
need the whole runbook (unique ids, known roles, cycles…) live in
:mod:`gonogo.core.runbook.rules`; this module checks the shape of each piece.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    model_validator,
)

from gonogo.core.calendar.cron import times_of_day
from gonogo.core.calendar.fields import LocalTime, TimeZone, Weekdays
from gonogo.core.runs.status import GREEN, RED, YELLOW
from gonogo.core.timing.clock import Clock, DecideBy, Duration

#: Airflow task and DAG ids allow letters, digits, ``_``, ``-`` and ``.``; gonogo
#: keeps ``.`` for TaskGroup prefixes, so runbook ids use the rest.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$"
DAG_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"

Event = Literal[
    "run_started",
    "gate_waiting",
    "gate_expiring",
    "gate_decided",
    "step_failed",
    "decision_needed",
    "rollback_started",
    "run_finished",
    "rollback_failed",
    "forecast_overrun",
    "report_overdue",
    "report_escalated",
    "incident_call",
    "incident_report",
]
#: Every event a ``notify`` rule may name, in one place: the ``Event`` type above.
#: What each one means for the reader is in :mod:`gonogo.core.messages.notify`.
EVENTS: tuple[str, ...] = get_args(Event)


Id = Annotated[str, Field(pattern=ID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(_Model):
    """The change record in the ITSM tool that authorises this runbook."""

    id: str = Field(min_length=1, description="The change id in the ITSM tool, e.g. CHG0034512")
    type: Literal["standard", "normal", "emergency"]


class Window(_Model):
    """The approved change window. Technical work waits for its start and must end before its end."""

    start: AwareDatetime
    end: AwareDatetime
    on_overrun: Literal["decide", "rollback", "continue"] | None = Field(
        default=None,
        description="When the forecast runs past the window: ask the release manager "
        "(decide), roll back by itself (rollback) or only warn (continue). Default: decide "
        "for normal and emergency changes, continue for standard ones",
    )
    margin: Duration = Field(
        default=timedelta(minutes=15),
        description="Raise forecast_overrun when the last safe moment to roll back is this close",
    )


class Role(_Model):
    """Who may act for a role: Airflow user ids (the username under SimpleAuthManager)."""

    users: list[str] = Field(default_factory=list)
    contact: str | None = None
    email: str | None = Field(default=None, description="Where SMTP notifications for the role go")
    title: str | None = None


class Param(_Model):
    """One field of the trigger form: an Airflow Param in JSON-schema terms."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    default: Any = None
    title: str | None = None
    description: str | None = None
    enum: list[Any] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    minLength: int | None = Field(default=None, ge=0)
    maxLength: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Param:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


class NotifyRule(_Model):
    """Send these events to an Airflow connection: Apprise (chat, SMS, webhooks) or SMTP.

    The connection's type picks the transport; its secrets stay in Airflow.
    """

    on: list[Event] = Field(min_length=1)
    connection: str = Field(min_length=1)
    roles: list[str] = Field(
        default_factory=list,
        description="Roles whose contacts are addressed (their email for SMTP); "
        "for gate_waiting only the asked role among them",
    )


ChangeCheck = Literal["exists", "approved", "in_window"]
ChangeType = Literal["standard", "normal", "emergency"]


def _default_change_checks() -> dict[ChangeType, list[ChangeCheck]]:
    return {
        "standard": ["exists"],
        "normal": ["exists", "approved", "in_window"],
        "emergency": ["exists", "approved"],
    }


class Itsm(_Model):
    """The change record in the ITSM tool: checked before the first step, updated during and after."""

    connection: str = Field(
        min_length=1, description="Airflow connection: base URL, login, password"
    )
    kind: Literal["servicenow"] = "servicenow"
    checks: dict[ChangeType, list[ChangeCheck]] = Field(
        default_factory=_default_change_checks,
        description="What must hold before the first step, per change type",
    )


class Incident(_Model):
    """The incident raised when rollback fails (seeds 001 §3.2 and 004)."""

    priority: Literal["P1", "P2", "P3", "P4"] = "P2"
    manager: str = Field(
        default="incident_manager",
        description="The role told at once about a P1 or P2 incident; it approves the incident report",
    )
    approve_within: Duration = Field(
        default=timedelta(hours=24),
        description="A failed rollout's P1/P2 incident report waits this long for the incident "
        "manager's approval (the rollout's next run waits with it); unapproved, the incident "
        "stays open",
    )


class Expect(_Model):
    """What an http step must see for the step to pass."""

    status: int | list[int] = 200
    json_: dict[str, Any] | None = Field(
        default=None,
        alias="json",
        description="Dotted paths into the JSON body and the value each must have",
    )
    contains: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Until(_Model):
    """Poll until the expectation holds, e.g. a health check after a restart."""

    interval: Duration = timedelta(seconds=10)
    timeout: Duration


class Http(_Model):
    """An HTTP request made with requests; TLS is verified unless ``verify: false``."""

    url: str = Field(min_length=1)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    connection: str | None = Field(
        default=None,
        description="Airflow connection whose login/password (basic auth) or extra "
        "'headers' are added to the request; its host is the base URL for a relative url",
    )
    expect: Expect = Expect()
    until: Until | None = None
    request_timeout: Duration = timedelta(seconds=30)
    verify: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _fixed_credentials(self) -> Http:
        # A value must never choose whose credentials are sent, nor the host they go to.
        if self.connection is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.connection):
            raise ValueError(
                f"connection {self.connection!r} must be a connection id as written "
                "(letters, digits, _ . -), never a template: a value must not choose whose "
                "credentials are sent"
            )
        for name, value in self.headers.items():
            if name.lower() == "host" and "{{" in value:
                raise ValueError("the Host header is fixed text, never a template")
        return self


class Python(_Model):
    """A callable imported from a dotted path, ``package.module:function``."""

    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)


def _python_shorthand(value: Any) -> Any:
    return {"callable": value} if isinstance(value, str) else value


PythonSpec = Annotated[Python, Field(description="'pkg.module:function' or {callable, kwargs}")]

_KINDS = ("bash", "exec", "http", "python", "manual")


class Activity(_Model):
    """Exactly one of bash, exec, http, python or manual."""

    bash: str | None = Field(
        default=None,
        min_length=1,
        description="A shell command, run as written: values come from the environment "
        '("$GONOGO_PARAM_VERSION", or a variable env: sets), never from a template',
    )
    exec: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="A program and its arguments, run without a shell; "
        'each template fills one argument: [scripts/app.sh, install, "{{ params.version }}"]',
    )
    http: Http | None = None
    python: PythonSpec | None = None
    manual: str | None = Field(
        default=None, min_length=1, description="An instruction that a person confirms as done"
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment for bash and exec; values may use templates "
        "such as {{ conn.x.password }}",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_python(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("python"), str):
            return {**data, "python": _python_shorthand(data["python"])}
        return data

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Activity:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise ValueError(f"needs exactly one of bash, exec, http, python or manual; {found}")
        if self.env and self.bash is None and self.exec is None:
            raise ValueError("env applies to bash and exec only")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _KINDS if getattr(self, k) is not None)


class Action(Activity):
    """An undo action: what a step's ``rollback`` runs."""

    planned: Duration | None = Field(
        default=None, description="Planned duration; without it, the step's own planned duration"
    )
    timeout: Duration | None = None
    retries: int = Field(default=1, ge=0, le=10)


class Step(Activity):
    """One activity of the runbook."""

    id: Id
    title: str | None = None
    owner: str | None = Field(default=None, description="The role responsible for this activity")
    planned: Duration | None = Field(default=None, description="Planned duration")
    timeout: Duration | None = None
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay: Duration = timedelta(seconds=30)
    depends_on: list[str] | None = Field(
        default=None,
        description="Steps this one waits for; without it a step follows the one above it",
    )
    rollback: Action | None = None
    read_only: bool = Field(
        default=False,
        description="The step changes nothing (a check), so it needs no rollback",
    )
    rehearse: Activity | None = Field(
        default=None,
        description="What a rehearsal run does instead (e.g. the command with --dry-run); "
        "without it a rehearsal skips the step",
    )


class Check(Activity):
    """Evidence collected just before a gate opens. ``required`` failures are NOGO."""

    id: Id
    title: str | None = None
    required: bool = False
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _technical_only(self) -> Check:
        if self.manual is not None or self.python is not None:
            raise ValueError("a gate check is bash or http")
        return self


class Phase(_Model):
    """A group of steps. Phases run in order; steps inside run top to bottom or per depends_on."""

    id: Id
    title: str | None = None
    steps: list[Step] = Field(min_length=1)


class Gate(_Model):
    """A GO/NOGO decision point. Every role in sign_off must answer GO."""

    gate: Id
    title: str | None = None
    sign_off: list[str] = Field(min_length=1)
    timeout: Duration | None = Field(default=None, description="No answer in time means NOGO")
    checklist: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    on_nogo: Literal["stop", "reask"] = "stop"
    opens: Clock | None = Field(
        default=None, description="When the gate opens, relative to the planned start: T-30m"
    )
    decide_by: DecideBy | None = Field(
        default=None,
        description="When the decision is due: T-5m, or a duration from opening like timeout; "
        "no answer by then means NOGO",
    )
    planned: Duration | None = Field(default=None, description="Planned duration of the meeting")

    @property
    def id(self) -> str:
        return self.gate


def _phase_or_gate(value: Any) -> str:
    if isinstance(value, dict):
        return "<gate>" if "gate" in value else "<phase>"
    return "<gate>" if isinstance(value, Gate) else "<phase>"


PhaseOrGate = Annotated[
    Annotated[Phase, Tag("<phase>")] | Annotated[Gate, Tag("<gate>")],
    Discriminator(_phase_or_gate),
]


class GlobalStep(Activity):
    """A step of the global rollback plan, run after the per-step compensations."""

    id: Id
    title: str | None = None
    owner: str | None = None
    planned: Duration | None = Field(default=None, description="Planned duration")
    timeout: Duration | None = None
    retries: int = Field(default=1, ge=0, le=10)


class Rollback(_Model):
    """How and when a rollback runs, and the global steps it ends with."""

    mode: Literal["automatic", "decide"] = "automatic"
    decide_by: list[str] = Field(
        default_factory=list,
        description="Roles asked Retry / Roll back / Continue after a failure in decide mode, "
        "and in any mode when a crash cut a command off (default: the first sign_off role)",
    )
    approve: list[str] = Field(
        default_factory=list, description="Roles that must say GO before rollback starts"
    )
    timeout: Duration | None = Field(
        default=None, description="How long decide/approve requests wait before rolling back"
    )
    steps: list[GlobalStep] = Field(default_factory=list)


class Approval(_Model):
    """Plan approval (CAB, GO/NOGO 1): the roles that approve this runbook's fingerprint."""

    sign_off: list[str] = Field(min_length=1)
    timeout: Duration | None = Field(
        default=None, description="No answer within this time means the plan is not approved"
    )


class Requires(_Model):
    """Promotion guard: the same plan must have succeeded in an earlier environment."""

    environment: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    within: Duration = Field(
        default=timedelta(days=14), description="How recent that successful run must be"
    )


# -- early-life support after go-live (seeds 000, 003, 004) ----------------------------------

_DAYS = re.compile(r"^(?P<first>[1-9]\d*)(?:(?P<dash>-)(?P<last>[1-9]\d*)?)?$")
DAYS_PATTERN = r"^[1-9][0-9]*(-([1-9][0-9]*)?)?$"


def parse_days(value: Any) -> tuple[int, int | None]:
    """Days of support, counted from 1 (the day support starts): ``1``, ``"2-4"``, ``"6-"``.

    The result is ``(first, last)``; ``last`` is None for "to the end of support".
    """
    if isinstance(value, tuple):
        return value
    text = (
        str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    )
    match = _DAYS.match(text)
    if match is None:
        raise ValueError(
            "expected days of support counted from 1 (the day support starts), like 1, "
            f'"2-4" or "6-" (to the end), got {value!r}'
        )
    first = int(match["first"])
    last = None if match["dash"] and not match["last"] else int(match["last"] or first)
    if last is not None and last < first:
        raise ValueError(f"the day range {text!r} ends before it starts")
    return first, last


def format_days(value: tuple[int, int | None]) -> str:
    first, last = value
    if last == first:
        return str(first)
    return f"{first}-{'' if last is None else last}"


SupportDays = Annotated[
    tuple[int, int | None],
    PlainValidator(parse_days),
    PlainSerializer(format_days, return_type=str),
    WithJsonSchema(
        {
            "type": ["integer", "string"],
            "pattern": DAYS_PATTERN,
            "description": 'Days of support from 1 (the day it starts): 1, "2-4" or "6-"',
        }
    ),
]

#: What each colour means for a delivery area (seed 003), shown to the reporter.
AREA_COLOURS: dict[str, str] = {
    GREEN: "No major incidents. No great impact on the delivery area or on care.",
    YELLOW: "A large incident or several smaller ones. The delivery area or care is affected.",
    RED: "A very large incident or several large ones. "
    "The delivery area or care is strongly affected.",
}
Colour = Literal["green", "yellow", "red"]


def _cron(value: str) -> str:
    times_of_day(value)  # refuses a bad expression, too many rounds a day, or too close
    return " ".join(value.split())


Cron = Annotated[
    str,
    AfterValidator(_cron),
    Field(
        description="A 5-field cron expression (minute hour day-of-month month day-of-week) "
        'on the local wall clock: "0 6-18/2 * * *"',
        examples=["0 6-18/2 * * *", "0 9,15 * * mon-fri"],
    ),
]


class Rounds(_Model):
    """When something recurs on some days of support: at set times, every so often, N times, or by cron.

    Exactly one of ``at``, ``every``, ``at_least`` or ``cron``. ``between`` bounds
    ``every`` (default: the whole day) and ``at_least`` (default 06:00-18:00, as in
    seed 003), whose rounds are spread evenly from its start to its end. ``cron``
    is read on the section's local wall clock, for the entry's day range; its
    day-of-month and day-of-week fields pick the days within that range
    (:mod:`gonogo.core.calendar.cron`).
    """

    days: SupportDays
    at: list[LocalTime] | None = Field(default=None, min_length=1, description="Local times")
    every: Duration | None = None
    at_least: int | None = Field(
        default=None, ge=1, le=48, description="This many rounds a day, spread over between"
    )
    cron: Cron | None = None
    between: tuple[LocalTime, LocalTime] | None = Field(
        default=None, description='From and to, local times: ["06:00", "18:00"]'
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Rounds:
        given = [k for k in ("at", "every", "at_least", "cron") if getattr(self, k) is not None]
        if len(given) != 1:
            found = f"found {', '.join(given)}" if given else "found none"
            raise ValueError(f"needs exactly one of at, every, at_least or cron; {found}")
        if (self.at is not None or self.cron is not None) and self.between is not None:
            raise ValueError(
                f"between applies to every and at_least, not to {given[0]}"
                + ("; write the hours in the cron expression" if self.cron else "")
            )
        if self.between is not None and self.between[1] <= self.between[0]:
            raise ValueError("between must end after it starts, on the same day")
        if self.every is not None and self.every < timedelta(minutes=5):
            raise ValueError("every must be at least 5m")
        return self


class Area(_Model):
    """A delivery area: its coordinator role reports its colour each round."""

    id: Id
    title: str | None = None
    role: str = Field(min_length=1, description="The role that reports for the area")
    colours: dict[Colour, str] = Field(
        default_factory=dict,
        description="What each colour means for this area, shown to the reporter "
        "(default: the meanings for delivery areas in seed 003)",
    )

    def meaning(self, colour: str) -> str:
        found: str = self.colours.get(colour, AREA_COLOURS[colour])  # type: ignore[call-overload]
        return found


class Shift(_Model):
    """Who is on standby on these weekdays between these local times."""

    role: str = Field(min_length=1)
    days: Weekdays
    start: LocalTime
    end: LocalTime = Field(description="At or before start: the next morning")
    next: str | None = Field(
        default=None,
        description="Who is called when this role does not acknowledge an incident "
        "in time (default: the fallback)",
    )


class Standby(_Model):
    """The standby roster ("beredskap"): contacts by time of day and day of week."""

    shifts: list[Shift] = Field(default_factory=list)
    fallback: str = Field(min_length=1, description="On standby whenever no shift is")
    acknowledge_within: Duration = Field(
        default=timedelta(minutes=15),
        description="An incident not acknowledged within this goes to the next contact",
    )


class EarlyLife(_Model):
    """Early-life support after a successful rollout: status rounds, meetings and standby."""

    lasts: Duration = Field(description="How long support lasts after the rollout succeeds")
    timezone: TimeZone = Field(default=ZoneInfo("UTC"))
    coordinator: str = Field(
        min_length=1, description="The role that leads support and keeps the decision log"
    )
    areas: list[Area] = Field(min_length=1)
    reports: list[Rounds] = Field(min_length=1, description="When the areas report, by day")
    report_within: Duration = Field(
        default=timedelta(minutes=30),
        description="A report is due this long after its round opens; then the area is reminded",
    )
    standby_after: Duration = Field(
        default=timedelta(minutes=15),
        description="Still no report this long after the reminder: the standby contact is told",
    )
    meetings: list[Rounds] = Field(
        default_factory=list, description="When the leadership meets, by day"
    )
    escalate_to: list[str] = Field(
        default_factory=list,
        description="The roles of the forums a decision is escalated to, in order (DSL, LGV)",
    )
    standby: Standby


class Runbook(_Model):
    """A deployment runbook ("kjøreplan"): one Airflow DAG."""

    runbook: str = Field(pattern=DAG_ID_PATTERN, description="The DAG id")
    title: str = Field(min_length=1)
    description: str | None = None
    service: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    environment: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    change: Change
    window: Window | None = None
    roles: dict[str, Role] = Field(default_factory=dict)
    params: dict[str, Param] = Field(default_factory=dict)
    notify: list[NotifyRule] = Field(default_factory=list)
    itsm: Itsm | None = None
    incident: Incident = Incident()
    approval: Approval | None = None
    requires: Requires | None = None
    early_life: EarlyLife | None = None
    phases: list[PhaseOrGate] = Field(min_length=1)
    rollback: Rollback = Rollback()

    @property
    def gates(self) -> list[Gate]:
        return [p for p in self.phases if isinstance(p, Gate)]

    def steps(self) -> list[tuple[Phase, Step]]:
        """Every forward step with its phase, in document order."""
        return [(p, s) for p in self.phases if isinstance(p, Phase) for s in p.steps]
