"""Guided failure (``rollback.mode: decide``): a failed step asks what to do, in the same task.

When the action fails after its own retries, the step opens a request to the
``decide_by`` roles (default: the first sign-off role) and waits, holding no
worker slot, with three options:

- **Retry** runs the action again (and asks again if it fails again);
- **Roll back** fails the step, and rollback starts as for any failure;
- **Continue** marks the step done by hand; it needs a comment.

No answer before ``rollback.timeout`` rolls back. Every decision is in the
step's log and in its ``decisions`` XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from gonogo.core.naming import CONTINUE, RETRY, ROLL_BACK, XCOM_DECISIONS
from gonogo.dag.actions import ActionRunner
from gonogo.dag.hitl import Request, assignees
from gonogo.dag.journal import REASK_DELAY, RESERVED_TRIES, Interruptible, earlier_mark, run_marked
from gonogo.dag.states import Rehearsable

log = logging.getLogger(__name__)

OUTPUT_SHOWN = 1500


class GuidedStepOperator(Rehearsable, Interruptible, ActionRunner, Request):
    """A technical step that, on failure, asks the deciding roles: Retry, Roll back or Continue."""

    event = "decision_needed"

    template_fields: Sequence[str] = ()  # the action is rendered when it runs

    def __init__(
        self,
        *,
        step_id: str,
        action: Mapping[str, Any],
        deciders: Sequence[str],
        decide_timeout: timedelta | None,
        **kwargs: Any,
    ) -> None:
        # The action retries itself; the one task retry is kept for a try a crash cuts off
        # (gonogo.dag.journal), and every failure here is final.
        kwargs["retries"] = RESERVED_TRIES
        kwargs.setdefault("retry_delay", REASK_DELAY)
        super().__init__(
            subject=f"Step {step_id} failed: retry, roll back or continue?",
            options=[RETRY, ROLL_BACK, CONTINUE],
            assigned_users=assignees(deciders),
            response_timeout=decide_timeout,
            **self._request(kwargs, "Why; required for Continue", [CONTINUE]),
        )
        self.step_id = step_id
        self.action = dict(action)
        self.deciders = list(deciders)
        self.decide_timeout = decide_timeout
        self.what = f"step {step_id}"

    def execute(self, context: Any) -> Any:
        if self.rehearsed is not None:
            return self.rehearsed[0]
        mark = earlier_mark(context)
        if mark is not None:
            self.ask_after_interruption(context, mark)
        return self._attempt(context)

    def run_again(self, context: Any) -> Any:
        return self._attempt(context)

    def _attempt(self, context: Any) -> Any:
        try:
            return run_marked(context, self.what, lambda: self.run_action(self.action, context))
        except AirflowTaskTimeout as exc:  # final, as before: the reserved retry is for a crash
            raise AirflowFailException(f"step {self.step_id} timed out: {exc}") from exc
        except Exception as exc:
            error = str(exc) or repr(exc)
        log.error(
            "step %s failed: %s; asking %s",
            self.step_id,
            error[:OUTPUT_SHOWN],
            ", ".join(self.deciders),
        )
        self.body = (
            f"Step **{self.step_id}** failed:\n\n```\n{error[-OUTPUT_SHOWN:]}\n```\n\n"
            "- **Retry** runs it again.\n- **Roll back** undoes the completed steps.\n"
            "- **Continue** marks it done by hand; say what you did.\n\n"
            "No answer in time rolls back."
        )
        return HITLOperator.execute(self, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowFailException(
                f"no decision on the failed step {self.step_id} in time: rolling back"
            )
        ti = context["ti"]
        history = ti.xcom_pull(task_ids=self.task_id, key=XCOM_DECISIONS) or []
        history.append(
            {
                "step": self.step_id,
                "decision": given.option,
                "by": given.by,
                "comment": given.comment,
            }
        )
        ti.xcom_push(key=XCOM_DECISIONS, value=history)
        log.info(
            "%s decided %s for the failed step %s%s",
            given.by,
            given.option,
            self.step_id,
            f": {given.comment}" if given.comment else "",
        )
        if given.option == ROLL_BACK:
            raise AirflowFailException(
                f"{given.by} decided to roll back after {self.step_id} failed"
            )
        if given.option == CONTINUE:
            log.info("step %s marked done by hand by %s: %s", self.step_id, given.by, given.comment)
            return {"continued_by": given.by, "comment": given.comment}
        log.info("retrying step %s as %s decided", self.step_id, given.by)
        return self._attempt(context)
