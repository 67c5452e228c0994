"""A command cut off by a crash: noticed on the next try, and a person decides.

Airflow gives a task another try when its worker dies (the heartbeat stops and
the scheduler fails the try after ``[scheduler] task_instance_heartbeat_timeout``),
but nothing in Airflow can tell whether the lost try's command ran partly,
fully, or not at all. Running it again could do a change twice; rolling back
could leave half of it in place.

So before a step, an undo or a guided retry starts its command, it writes the
mark ``gonogo_started`` in Airflow's task state store (kept per task instance
across tries), and it deletes the mark once the command has ended, well or
badly. A try that finds a mark left by an earlier try knows that try was cut off
mid-command. It runs nothing; it records a ``step_interrupted`` event (the run
note shows it) and asks the deciding roles, with Retry, Roll back and Continue
as in guided failure (:mod:`gonogo.dag.guided`). Each technical step and undo
keeps one Airflow retry in reserve for this, and uses it for nothing else: a
command that fails in the usual way fails for good once the runbook's own
retries are spent.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout, TaskAwaitingInput
from airflow.sdk.execution_time.hitl import upsert_hitl_detail

from gonogo.core.naming import (
    COMMENT,
    CONTINUE,
    RETRY,
    ROLL_BACK,
    STEP_INTERRUPTED,
    XCOM_DECISIONS,
    XCOM_EVENTS,
)
from gonogo.core.runs.decisions import comment_schema
from gonogo.core.runs.records import Answer
from gonogo.dag.hitl import assignees
from gonogo.dag.notify import request_link, tell

log = logging.getLogger(__name__)

MARK = "gonogo_started"
#: The Airflow retries a command's task has on top of the runbook's: the try that asks.
RESERVED_TRIES = 1
#: How soon the asking try starts after the lost one is failed, unless the runbook says.
REASK_DELAY = timedelta(seconds=5)
RESUME_METHOD = "resume_after_interruption"
#: The run's own failures as opposed to a lost try: these end the command's attempt.
ENDED = (Exception, AirflowTaskTimeout)


def _store(context: Mapping[str, Any]) -> Any:
    return context.get("task_state_store")


def earlier_mark(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The mark an earlier try left when it was cut off mid-command, if one did."""
    store = _store(context)
    found = store.get(MARK) if store is not None else None
    return found if isinstance(found, dict) else None


def run_marked(context: Mapping[str, Any], what: str, command: Callable[[], Any]) -> Any:
    """Run ``command`` with the mark set while it runs; it stays only if this try is lost."""
    store = _store(context)
    if store is None:  # a test calling execute() directly: no Airflow around to crash
        return command()
    ti = context["ti"]
    store.set(
        MARK,
        {
            "what": what,
            "try": ti.try_number,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        },
    )
    try:
        result = command()
    except ENDED:
        store.delete(MARK)
        raise
    store.delete(MARK)
    return result


#: Work that runs once per run (an undo's command, the outcome) and what it ended as. The task
#: state store keeps it when a task instance is cleared, so a second try says so and does nothing.
DONE = "gonogo_done"


def done_before(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an earlier try of this task in this run recorded when its once-only work ended."""
    store = _store(context)
    found = store.get(DONE) if store is not None else None
    return found if isinstance(found, dict) else None


def record_done(context: Mapping[str, Any], **what: Any) -> None:
    """Record that this task's once-only work ended, and how (``what``)."""
    store = _store(context)
    if store is not None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        store.set(DONE, {"at": at, "try": context["ti"].try_number, **what})


def clear_mark(context: Mapping[str, Any]) -> None:
    store = _store(context)
    if store is not None:
        store.delete(MARK)


def final_failure(context: Mapping[str, Any], retries: int, exc: BaseException) -> BaseException:
    """The error to raise for a command that failed: final once the runbook's retries are spent.

    The task has :data:`RESERVED_TRIES` more Airflow retries than the runbook
    asked for; a usual failure must not spend them.
    """
    if isinstance(exc, AirflowFailException) or context["ti"].try_number <= retries:
        return exc
    return AirflowFailException(str(exc) or repr(exc))


def interrupted_body(what: str, mark: Mapping[str, Any], choices: str) -> str:
    return (
        f"**{what}** was cut off: try {mark.get('try')} started its command at "
        f"{mark.get('at')} on {mark.get('host')}, and that try was lost (its worker, "
        "the scheduler or the machine died) before the command ended.\n\n"
        "The command may have run partly, fully, or not at all: gonogo cannot tell. "
        "If only that machine's network failed, it may even still be running there. "
        f"Check the system, then choose.\n\n{choices}\n\nNo answer in time counts as "
        "the safe choice: rollback."
    )


class Interruptible:
    """Mixin for a task that runs a command: asks a person when an earlier try was cut off.

    The class sets :attr:`deciders`, :attr:`decide_timeout` and :attr:`what`;
    :meth:`ask_after_interruption` parks the task in Airflow's ``awaiting_input``
    state with a request of its own, the same way HITLOperator does, so it works
    for BashOperator- and PythonOperator-based steps too.
    """

    deciders: Sequence[str] = ()
    decide_timeout: timedelta | None = None
    what: str = "the step"
    interrupted_options: Sequence[str] = (RETRY, ROLL_BACK, CONTINUE)
    #: The options of the interruption's request whose answer needs a comment.
    interrupted_reason_for: Sequence[str] = (CONTINUE,)
    interrupted_choices = (
        "- **Retry** runs the command again.\n"
        "- **Roll back** fails the step: rollback undoes the steps completed before it "
        "(not this one; undo by hand what it did).\n"
        "- **Continue** marks the step done; say what you checked."
    )

    def ask_after_interruption(self, context: Any, mark: Mapping[str, Any]) -> None:
        """Record the interruption and open the request; raises TaskAwaitingInput."""
        ti = context["ti"]
        log.error(
            "%s was cut off in try %s (started %s on %s): it may have half-run, so it is not "
            "run again; asking %s",
            self.what,
            mark.get("try"),
            mark.get("at"),
            mark.get("host"),
            ", ".join(self.deciders) or "anyone allowed to answer",
        )
        event = {"event": STEP_INTERRUPTED, "what": self.what, "task": ti.task_id, **mark}
        ti.xcom_push(key=XCOM_EVENTS, value=[event])
        subject = f"{self.what} was cut off by a crash: what now?"
        upsert_hitl_detail(
            ti_id=ti.id,
            options=list(self.interrupted_options),
            subject=subject,
            body=interrupted_body(self.what, mark, self.interrupted_choices),
            params={COMMENT: Param("", **comment_schema(self.interrupted_reason_for)).serialize()},
            assigned_users=assignees(self.deciders),
        )
        deadline = datetime.now(UTC) + self.decide_timeout if self.decide_timeout else None
        tell(
            context,
            "decision_needed",
            ti.task_id,
            subject=subject,
            options=list(self.interrupted_options),
            users=list(self.deciders),
            deadline=deadline.isoformat() if deadline else None,
            link=request_link(context),
        )
        raise TaskAwaitingInput(method_name=RESUME_METHOD, timeout=self.decide_timeout)

    def resume_after_interruption(self, context: Any, event: dict[str, Any]) -> Any:
        given = Answer.from_event(event)
        if given.option is not None and given.option not in self.interrupted_options:
            raise AirflowFailException(f"{given.option!r} is not one of the choices")
        ti = context["ti"]
        history = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_DECISIONS) or []
        history.append(
            {
                "step": self.what,
                "decision": given.option or "timeout",
                "by": given.by,
                "comment": given.comment,
                "after": "interruption",
            }
        )
        ti.xcom_push(key=XCOM_DECISIONS, value=history)
        return self.decided_after_interruption(context, given)

    def decided_after_interruption(self, context: Any, given: Answer) -> Any:
        """Act on the answer; the default serves forward steps (Retry, Roll back, Continue)."""
        if given.timed_out or given.option == ROLL_BACK:
            clear_mark(context)
            who = (
                f"{given.by} decided" if given.by else "nobody answered in time, so gonogo decided"
            )
            raise AirflowFailException(f"{who} to roll back after {self.what} was cut off")
        if given.option == CONTINUE:
            if not given.comment:
                raise AirflowFailException("Continue needs a comment: what was checked")
            clear_mark(context)
            log.info(
                "%s marked done by %s after the interruption: %s",
                self.what,
                given.by,
                given.comment,
            )
            return {"continued_by": given.by, "comment": given.comment}
        log.info("%s runs again, as %s decided after the interruption", self.what, given.by)
        return self.run_again(context)

    def run_again(self, context: Any) -> Any:
        raise NotImplementedError
