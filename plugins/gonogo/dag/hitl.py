"""gonogo's human-in-the-loop requests, on Airflow's own HITLOperator.

Every request gonogo opens (a gate role's sign-off, a manual step, a manual
undo, a guided-failure decision, a rollback approval) has the same form (one
``comment`` field), builds its assignees the same way, and reads the answer
into one :class:`~gonogo.core.runs.records.Answer`.

Approvals are written and checked by Airflow's HITL API: an answer from a user
who is not assigned is refused with 403 on the server, never in this code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.hitl import HITLUser

from gonogo.core.naming import COMMENT, DONE, FAILED
from gonogo.core.runs.decisions import comment_schema
from gonogo.core.runs.records import Answer
from gonogo.dag.hooks import Hooked
from gonogo.dag.notify import RequestNotifier
from gonogo.dag.states import Rehearsable

log = logging.getLogger(__name__)


def comment_form(
    kwargs: dict[str, Any], description: str, reason_for: Iterable[str]
) -> dict[str, Any]:
    """The request's form: only a comment field, not the DAG params Airflow passes in.

    The field declares which options need a reason (:func:`gonogo.core.runs.decisions.reason_for`).
    """
    kwargs.pop("params", None)
    return {COMMENT: Param("", description=description, **comment_schema(reason_for))}


def assignees(users: Iterable[str]) -> list[HITLUser]:
    """The users a request is assigned to, as Airflow's HITL API expects them."""
    return [HITLUser(id=u, name=u) for u in users]


class Request(Hooked, HITLOperator):
    """A gonogo HITL request: a comment form, and the answer read as one :class:`Answer`."""

    #: The event told once the request is open (gonogo.core.runbook.model.Event), if any.
    event: str | None = None

    # No __init__ of its own: Airflow merges default arguments (deep-copying the DAG's
    # params) once per class that defines one, which made every request a third dearer
    # to parse. Subclasses pass their arguments through :meth:`_request` instead.
    def _request(
        self, kwargs: dict[str, Any], comment_help: str, reason_for: Iterable[str] = ()
    ) -> dict[str, Any]:
        """The HITLOperator arguments every gonogo request shares, added to ``kwargs``.

        ``reason_for``: the options whose answer must carry a comment.
        """
        kwargs["params"] = comment_form(kwargs, comment_help, reason_for)
        # A retry would upsert the request again and wipe its answer.
        kwargs.setdefault("retries", 0)
        if self.event is not None:
            kwargs.setdefault("notifiers", [RequestNotifier(self.event)])
        return kwargs

    def answer(self, context: Any, event: dict[str, Any]) -> Answer:
        """The answer in ``event``; Airflow's own checks of it first, unless it timed out.

        A form answered with some of its fields keeps the default of the others:
        Airflow checks a given form against every field, and would fail the task
        for a field the answer left out (an API client that knows an older form).
        """
        given = event.get("params_input")
        if given:
            form = self.serialized_params
            missing = {k: f.get("value") for k, f in form.items() if k not in given}
            event = {**event, "params_input": {**missing, **given}}
        if event.get("error_type") != "timeout":
            super().execute_complete(context, event)
        return Answer.from_event(event)


class ManualStepOperator(Rehearsable, Request):
    """A manual activity: the owner role's members confirm Done, or report Failed with a comment."""

    def __init__(self, *, instruction: str, role: str, users: Sequence[str], **kwargs: Any) -> None:
        self.role = role
        self.users = list(users)
        super().__init__(
            subject=kwargs.pop("subject", instruction[:80]),
            body=instruction,
            options=[DONE, FAILED],
            assigned_users=assignees(self.users),
            **self._request(kwargs, "What you did or saw; required when it failed", [FAILED]),
        )

    def execute(self, context: Any) -> Any:
        log.info("manual step for role %s (%s): %s", self.role, ", ".join(self.users), self.body)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        given = self.answer(context, event)
        if given.timed_out:
            raise AirflowFailException(f"nobody from {self.role} confirmed the manual step in time")
        log.info(
            "%s answered %s%s",
            given.by,
            given.option,
            f": {given.comment}" if given.comment else "",
        )
        if given.option == FAILED:
            raise AirflowFailException(
                f"{given.by} reported the manual step failed: {given.comment or '(no comment)'}"
            )
        return {"chosen_options": [given.option], "by": given.by, "comment": given.comment}
