"""Every name two parts of gonogo must agree on, defined once.

Task ids, XCom keys, answer options and the run-note marker are read by the DAG
builder, the tasks at run time, the API-server middleware, the scheduler
listener and the CLI. A literal repeated in two of those would drift, so each
lives here, the way Airflow keeps its states in ``TaskInstanceState``.

The shape of a gonogo DAG's task ids::

    before_start, wait_for_window, acquire_lock, [begin]
    gate__freeze_exception.grant                an emergency change in a freeze: the exception
    wait_for_start                              technical work waits for T after a clocked gate
    forecast                                    watches the forecast; asks on forecast_overrun
    <phase>.<step>                              a forward step
    gate__<gate>.opens                          waits for the gate's time (opens: T-30m)
    gate__<gate>.checks                         evidence before a gate opens
    gate__<gate>.<role>                         one role's sign-off (on_nogo: stop)
    gate__<gate>.<role>__round_<n>              round n of it (on_nogo: reask)
    gate__<gate>.watch, gate__<gate>.result
    rollback.start, rollback.approve__<role>, rollback.approved
    rollback.undo_<n>                           the n-th compensation, newest first
    rollback.<global step>
    release_lock, outcome, [go_live]            go_live: with early_life, once it succeeded
"""

from __future__ import annotations

from typing import NamedTuple

# -- fixed tasks and groups -------------------------------------------------------------------

PREFLIGHT_TASK = "before_start"
WINDOW_TASK = "wait_for_window"
LOCK_TASK = "acquire_lock"
RELEASE_TASK = "release_lock"
OUTCOME_TASK = "outcome"
BEGIN_TASK = "begin"  # checks the change record and tells people the run started
START_TASK = "wait_for_start"  # technical work after a gate with `opens` waits for T
FORECAST_TASK = "forecast"  # recomputes the forecast; raises forecast_overrun
GO_LIVE_TASK = "go_live"  # after a succeeded outcome: starts early-life support (an asset event)
ROLLBACK_GROUP = "rollback"
ROLLBACK_START = f"{ROLLBACK_GROUP}.start"
#: The rollout's group of incident tasks after the outcome (gonogo.core.earlylife.incident).
INCIDENT_GROUP = "incident"
APPROVED_JOIN = "approved"

GATE_PREFIX = "gate__"
#: Top-level names gonogo uses itself; a phase may not take one.
RESERVED_IDS = frozenset(
    {
        PREFLIGHT_TASK,
        WINDOW_TASK,
        LOCK_TASK,
        RELEASE_TASK,
        OUTCOME_TASK,
        BEGIN_TASK,
        START_TASK,
        FORECAST_TASK,
        GO_LIVE_TASK,
        ROLLBACK_GROUP,
        INCIDENT_GROUP,
    }
)
CHECKS = "checks"
OPENS = "opens"  # a gate's wait for its time
WATCH = "watch"
RESULT = "result"
ROUND_SEPARATOR = "__round_"

#: With ``on_nogo: reask`` a role is asked at most this many more times.
REASKS = 3

# -- XCom keys --------------------------------------------------------------------------------

RETURN_VALUE = "return_value"
XCOM_FINISHED_AT = "finished_at"  # a forward step's end, for the rollback order
XCOM_DEADLINE = "deadline"  # a gate request's deadline, shared by its rounds
XCOM_CHECKS = "checks"  # a gate's check results
XCOM_EVENTS = "events"  # gate_expiring, rollback_failed, …
STEP_INTERRUPTED = "step_interrupted"  # an event: a try was lost mid-command (gonogo.dag.journal)
XCOM_OUTCOME = "outcome"  # the run's one outcome and its record
XCOM_REFUSAL = "refusal"  # why before_start or begin refused the run, in their own words
XCOM_PLAN = "plan"  # the rollback plan, pushed once by rollback.start
XCOM_UNDONE_STEP = "step"  # which step an undo slot undid
XCOM_DECISIONS = "decisions"  # a guided step's decisions
XCOM_STARTED_AT = "started_at"  # a forward step's start, for the forecast
XCOM_FORECAST = "forecast"  # the forecast history, pushed by the forecast task
XCOM_NOTICES = "notices"  # notifications and change-record updates that failed, for the note
XCOM_INCIDENT_REPORT = "incident_report"  # an approved P1/P2 incident report, for the pages
XCOM_CALENDAR = "calendar"  # before_start: what the change calendar said about the run's times

# -- the change calendar ----------------------------------------------------------------------

#: The gate an emergency change in a freeze passes before its first step: one member of
#: the freeze's exception roles grants the exception (its task: ``gate__freeze_exception.grant``).
FREEZE_GATE = "freeze_exception"
FREEZE_ROLE = "grant"

# -- answer options ---------------------------------------------------------------------------

GO, NOGO = "GO", "NOGO"
DONE, FAILED = "Done", "Failed"
RETRY, ROLL_BACK, CONTINUE = "Retry", "Roll back", "Continue"
ROLL_BACK_NOW = "Roll back now"  # the answer to forecast_overrun that starts rollback
#: Answers that must carry a comment saying why.
NEEDS_REASON = frozenset({NOGO, FAILED, CONTINUE})
#: The form field every gonogo request has.
COMMENT = "comment"

#: The trigger-form field that sets the planned start T inside the window.
PLANNED_START_PARAM = "planned_start"
#: The role asked on forecast_overrun when the runbook defines it (else the first sign-off role).
RELEASE_MANAGER_ROLE = "release_manager"
#: The event raised when the forecast runs past the window or the last safe moment nears.
FORECAST_OVERRUN = "forecast_overrun"

#: The first line of every run note gonogo writes.
NOTE_MARKER = "<!-- gonogo run note -->"
#: The DAG tag that marks a DAG as gonogo's: the server acts on such DAGs only.
DAG_MARKER_TAG = "gonogo:runbook"
#: The run conf key under which the API server records who triggered the run ({id, name}).
CONF_TRIGGER = "gonogo_triggered_by"
#: Run conf keys that start so are gonogo's own: a trigger that sets one is refused.
CONF_RESERVED = "gonogo_"
#: The trigger-form param that makes a run a rehearsal: steps run their ``rehearse:`` action.
REHEARSAL_PARAM = "rehearsal"
#: Preflight XComs: the plan's fingerprint, and the earlier run the promotion guard found.
XCOM_FINGERPRINT = "fingerprint"
XCOM_PROMOTION = "promotion"

# -- plan approval ----------------------------------------------------------------------------

#: The approval DAG of runbook ``x`` is ``x.approval``; a runbook id may not end so.
APPROVAL_SUFFIX = ".approval"
#: The gate id inside an approval DAG, and the task that records the approval.
APPROVAL_GATE = "cab"
APPROVAL_RECORD = "record"
#: The approval DAG's trigger-form params.
REVOKE_PARAM = "revoke"
REASON_PARAM = "reason"
#: Airflow Variables gonogo keeps its ledgers in; REST edits of them are refused.
LEDGER_PREFIX = "gonogo_"


def approval_dag(runbook_id: str) -> str:
    return f"{runbook_id}{APPROVAL_SUFFIX}"


def approved_runbook(dag_id: str) -> str | None:
    """The runbook id whose plan approval DAG ``dag_id`` would be; None for any other id."""
    runbook_id = dag_id.removesuffix(APPROVAL_SUFFIX)
    return runbook_id if runbook_id and runbook_id != dag_id else None


def approvals_key(runbook_id: str) -> str:
    """The Variable that lists the approved (and revoked) fingerprints of one runbook."""
    return f"{LEDGER_PREFIX}approvals__{runbook_id}"


def successes_key(work: str) -> str:
    """The Variable that lists the successful runs of one plan of work (promotion guard)."""
    return f"{LEDGER_PREFIX}succeeded__{work[:32]}"


# -- task ids ---------------------------------------------------------------------------------


def step_task(phase_id: str, step_id: str) -> str:
    """A forward step's task id: ``<phase>.<step>``."""
    return f"{phase_id}.{step_id}"


def gate_group(gate_id: str) -> str:
    return f"{GATE_PREFIX}{gate_id}"


def gate_task(gate_id: str, part: str) -> str:
    """A task inside a gate's group: ``gate__<gate>.<part>``."""
    return f"{gate_group(gate_id)}.{part}"


def round_ids(role: str, reask: bool) -> list[str]:
    """The part after ``gate__<g>.`` of every round that may ask ``role``.

    ``<role>`` when a NOGO stops the gate; ``<role>__round_1`` … ``__round_<REASKS+1>``
    with ``on_nogo: reask``. The last one is final.
    """
    if not reask:
        return [role]
    return [f"{role}{ROUND_SEPARATOR}{n}" for n in range(1, REASKS + 2)]


class GatePart(NamedTuple):
    """A gate task id taken apart."""

    gate: str
    part: str  # checks, watch, result, or a role's round
    role: str | None  # for a role's round
    round: int  # 1-based; 1 when the gate does not reask


def parse_gate_task(task_id: str) -> GatePart | None:
    """``gate__g.role__round_2`` is ``GatePart('g', 'role__round_2', 'role', 2)``; others None."""
    group, dot, part = task_id.partition(".")
    if not dot or not group.startswith(GATE_PREFIX):
        return None
    gate = group.removeprefix(GATE_PREFIX)
    if part in (CHECKS, WATCH, RESULT, OPENS):
        return GatePart(gate, part, None, 1)
    role, _, number = part.partition(ROUND_SEPARATOR)
    return GatePart(gate, part, role, int(number) if number.isdigit() else 1)


def is_final_round(task_id: str) -> bool:
    """Whether a NOGO on this gate task ends the gate (stop mode, or the last reask round)."""
    parsed = parse_gate_task(task_id)
    if parsed is None or parsed.role is None:
        return False
    if ROUND_SEPARATOR not in parsed.part:
        return True
    return parsed.round == REASKS + 1


def undo_slot(position: int) -> str:
    """The id inside the rollback group of the slot for the n-th compensation (1-based)."""
    return f"undo_{position}"


def undo_slot_task(position: int) -> str:
    return f"{ROLLBACK_GROUP}.{undo_slot(position)}"


def approval_task(role: str) -> str:
    return f"approve__{role}"


def rollback_task(part: str) -> str:
    """A task in the rollback group, e.g. a global step: ``rollback.<part>``."""
    return f"{ROLLBACK_GROUP}.{part}"


def is_rollback_task(task_id: str) -> bool:
    return task_id.startswith(f"{ROLLBACK_GROUP}.")


# -- notifications ----------------------------------------------------------------------------

#: Airflow Variables that record a notification or ITSM update as done start with this.
SENT_PREFIX = "gonogo_sent__"


def sent_key(dag_id: str, run_id: str, event: str, scope: str, target: str) -> str:
    """The Variable that records one event of one run as delivered to one target.

    Variables outlive task retries and clears (a task's own XComs do not), so a
    retried task or a restarted scheduler finds the record and sends nothing twice.
    The key is a digest: run ids and DAG ids together can exceed a key's length.
    """
    import hashlib

    digest = hashlib.sha256("\x1f".join((dag_id, run_id, event, scope, target)).encode())
    return f"{SENT_PREFIX}{digest.hexdigest()[:32]}"
