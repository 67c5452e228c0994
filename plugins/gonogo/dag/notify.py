"""Telling people, through Airflow's own notifiers, and keeping the change record current.

One entry point, :func:`tell`, is called where something happens (a run starts,
a gate opens, a step fails, the outcome is known). It never raises: delivery
must not break the rollout. For each ``notify`` rule that carries the event it
renders the message (:mod:`gonogo.core.messages.notify`, pure) and sends it with the
Apprise provider's hook (chat, SMS gateways, webhooks) or the SMTP provider's
notifier (e-mail), whichever type the rule's connection has. With an ``itsm:``
section it also writes the work note, closes the change or raises the incident.

Exactly once, per run and event:

- each delivery first claims an Airflow Variable named by
  :func:`gonogo.core.naming.sent_key`. A retried or cleared task, or a task run
  again after a scheduler restart, finds the claim and sends nothing. (A claim
  whose sending crashed half-way is not sent again either: a missing message is
  recorded, a duplicate call to an approver at night is not undone.)
- a transport failure is retried :data:`ATTEMPTS` times, then written to the
  claim and to the task's ``notices`` XCom, which the run note shows as
  "notification to X failed: why".

Secrets stay in connections: the Apprise service URLs are masked in logs, and a
failure is described by the transport's error without the URL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote, urlparse

from airflow.sdk.bases.notifier import BaseNotifier

from gonogo.core import naming
from gonogo.core.messages.itsm import CLOSE_CODES, ChangeRecord, refusal, work_note
from gonogo.core.messages.notify import Delivery, Message, RunFacts, deliveries, recipients, render
from gonogo.core.runbook.model import Runbook

log = logging.getLogger(__name__)

#: Where the builder leaves the runbook on the DAG, for tasks to find at run time.
DAG_ATTRIBUTE = "gonogo_runbook"
#: Tries per delivery, and the pause before the n-th retry (n times BACKOFF seconds).
ATTEMPTS = 3
BACKOFF = 2.0


def attach(dag: Any, runbook: Runbook) -> None:
    """Leave the runbook on the DAG: the worker parses the DAG file, so tasks find it there.

    Both of a runbook's DAGs carry it: the rollout, and the approval DAG, whose
    gate tells the CAB by the same rules.
    """
    setattr(dag, DAG_ATTRIBUTE, runbook)


def runbook_of(context: Mapping[str, Any]) -> Runbook | None:
    found = getattr(context.get("dag"), DAG_ATTRIBUTE, None)
    return found if isinstance(found, Runbook) else None


def base_url() -> str:
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")


def run_url(context: Mapping[str, Any]) -> str | None:
    """The run's page in the Airflow UI."""
    base = base_url()
    if not base:
        return None
    return f"{base}/dags/{context['dag'].dag_id}/runs/{quote(context['run_id'], safe='')}"


def request_link(context: Mapping[str, Any], task_id: str | None = None) -> str | None:
    """The open request's page, as Airflow's HITLOperator builds it (``api.base_url``)."""
    from types import SimpleNamespace

    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        if task_id is None:
            return HITLOperator.generate_link_to_ui_from_context(context=context)  # type: ignore[arg-type]
        task = context["dag"].get_task(task_id)
        ti = SimpleNamespace(
            dag_id=context["dag"].dag_id, run_id=context["run_id"], task_id=task_id, map_index=-1
        )
        return str(task.generate_link_to_ui(task_instance=ti))
    except Exception as exc:  # a missing link must not cost the message
        log.warning("no link to the request: %s", exc)
        return None


# -- the one entry point ----------------------------------------------------------------------


def tell(context: Mapping[str, Any], event: str, scope: str = "", /, **detail: Any) -> None:
    """Tell everyone the runbook names about ``event``; update the change record. Never raises.

    ``scope`` tells apart events that happen more than once in a run (a gate's name,
    a role, a step); the same event with the same scope is delivered once.
    """
    try:
        _tell(context, event, scope, detail)
    except Exception:
        log.exception("gonogo: telling people about %s failed; the run goes on", event)


def _tell(context: Mapping[str, Any], event: str, scope: str, detail: dict[str, Any]) -> None:
    runbook = runbook_of(context)
    if runbook is None or (not runbook.notify and runbook.itsm is None):
        return
    dag_run = context.get("dag_run")
    facts = RunFacts.of(
        runbook,
        context["run_id"],
        run_url(context),
        getattr(dag_run, "triggering_user_name", None),
        plan_approval=context["dag"].dag_id == naming.approval_dag(runbook.runbook),
    )
    if runbook.itsm is not None:
        _record_on_change(context, runbook, event, scope, detail)
    now = datetime.now(UTC)
    for delivery in deliveries(runbook, event, detail):
        message = render(event, facts, detail, now, runbook=runbook, roles=delivery.roles)
        once(
            context,
            event,
            scope,
            f"notify:{delivery.connection}",
            what="notification",
            to=delivery.connection,
            action=partial(_send, delivery, message, runbook, context),
        )


def once(
    context: Mapping[str, Any],
    event: str,
    scope: str,
    target: str,
    *,
    what: str,
    to: str,
    action: Callable[[], Any],
    attempts: int = ATTEMPTS,
) -> Any:
    """Run ``action`` once per run, event, scope and target; retry it, record a failure.

    Returns what the action returned (also when an earlier try of the task did it),
    or None when it failed.
    """
    from airflow.sdk import Variable

    key = naming.sent_key(context["dag"].dag_id, context["run_id"], event, scope, target)
    done = Variable.get(key, default=None, deserialize_json=True)
    if isinstance(done, dict):
        log.info("%s of %s to %s was already %s; not again", what, event, to, done.get("status"))
        if done.get("status") == "failed":
            _note_failure(context, done)
        return done.get("result")
    record: dict[str, Any] = {
        "what": what,
        "event": event,
        "scope": scope,
        "to": to,
        "dag_id": context["dag"].dag_id,
        "run_id": context["run_id"],
        "status": "sending",
        "at": datetime.now(UTC).isoformat(),
    }
    Variable.set(key, record, description=f"gonogo: {what} of {event}", serialize_json=True)
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            result = action()
        except Undeliverable as exc:  # retrying cannot help: say so at once
            error = _why(exc)
            break
        except Exception as exc:
            error = _why(exc)
            log.warning(
                "%s of %s to %s failed (try %d of %d): %s",
                what,
                event,
                to,
                attempt,
                attempts,
                error,
            )
            if attempt < attempts:
                time.sleep(BACKOFF * attempt)
            continue
        record.update(status="sent", result=result)
        Variable.set(key, record, serialize_json=True)
        log.info("%s of %s sent to %s", what, event, to)
        return result
    record.update(status="failed", why=error)
    Variable.set(key, record, serialize_json=True)
    log.error("%s to %s failed: %s (the run goes on)", what, to, error)
    _note_failure(context, record)
    return None


class Undeliverable(Exception):
    """A delivery that no retry can help, such as a connection that does not exist."""


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _note_failure(context: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Add the failure to this task's ``notices`` XCom, which the run note lists."""
    ti = context["ti"]
    notices = ti.xcom_pull(task_ids=ti.task_id, key=naming.XCOM_NOTICES) or []
    entry = {k: record.get(k) for k in ("what", "event", "to", "why", "at")}
    if entry not in notices:
        notices.append(entry)
        ti.xcom_push(key=naming.XCOM_NOTICES, value=notices)


# -- transports -------------------------------------------------------------------------------


def _send(
    delivery: Delivery, message: Message, runbook: Runbook, context: Mapping[str, Any]
) -> None:
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(delivery.connection)
    except Exception as exc:
        raise Undeliverable(f"no Airflow connection {delivery.connection!r}: {_why(exc)}") from None
    if conn.conn_type in ("smtp", "email"):
        _send_mail(delivery, message, runbook, conn, context)
    else:
        _send_apprise(delivery.connection, message, conn)


def _send_mail(
    delivery: Delivery, message: Message, runbook: Runbook, conn: Any, context: Mapping[str, Any]
) -> None:
    """Through the SMTP provider's notifier, to the addressed roles' e-mail (else the connection's ``to``)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    to = recipients(runbook, delivery.roles) or (conn.extra_dejson or {}).get("to")
    if not to:
        raise ValueError(
            "no address: give the rule's roles an email, or set 'to' in the connection's extra"
        )
    notifier = SmtpNotifier(
        to=to,
        subject=message.title,
        html_content=message.html(),
        smtp_conn_id=delivery.connection,
    )
    # notify(), not __call__: the message is final text and must not be rendered as a template.
    notifier.notify(context)  # type: ignore[arg-type]


_APPRISE_TYPES = {"info": "info", "success": "success", "warning": "warning", "failure": "failure"}


def _send_apprise(conn_id: str, message: Message, conn: Any) -> None:
    """Through the Apprise provider's hook; a service that refuses the message is an error.

    The provider's notifier drops Apprise's result, so a refused message would pass
    unnoticed; this asks the hook for the same configuration and checks the result.
    """
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook
    from airflow.sdk.log import mask_secret

    hook = AppriseHook(apprise_conn_id=conn_id)
    config = hook.get_config_from_conn(conn)
    paths = [c["path"] for c in (config if isinstance(config, list) else [config])]
    for path in paths:
        mask_secret(path)
    target = apprise.Apprise()
    hook.set_config_from_conn(conn=conn, apprise_obj=target)
    with _apprise_words(paths) as said:
        ok = target.notify(
            body=message.body,
            title=message.title,
            notify_type=apprise.NotifyType(_APPRISE_TYPES[message.severity]),
            body_format=apprise.NotifyFormat.TEXT,
        )
    if not ok:
        raise RuntimeError("; ".join(said) or "Apprise could not deliver the message")


@contextlib.contextmanager
def _apprise_words(secrets: list[str]) -> Iterator[list[str]]:
    """Apprise reports a refusal in its log, not its result: keep its words, minus any secret."""
    said: list[str] = []
    hidden = [s for s in secrets if s]
    for secret in list(hidden):
        parts = urlparse(secret)
        hidden += [p for p in (parts.password, parts.query, parts.path) if p and len(p) > 3]

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            for secret in sorted(hidden, key=len, reverse=True):
                text = text.replace(secret, "***")
            said.append(text.strip())

    handler = _Keep(level=logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


# -- the change record ------------------------------------------------------------------------


def _system(runbook: Runbook) -> Any:
    from gonogo.dag.itsm import change_system

    assert runbook.itsm is not None
    return change_system(runbook.itsm.kind, runbook.itsm.connection)


def check_change(context: Mapping[str, Any]) -> ChangeRecord | None:
    """Before the first step: the change exists, is approved, is in its window. Raises if not.

    The checks are those ``itsm.checks`` names for the change's type. The refusal
    quotes the ITSM; nothing has changed yet, so the run ends ``nogo_before_start``.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from gonogo.errors import ItsmError

    runbook = runbook_of(context)
    if runbook is None or runbook.itsm is None:
        return None
    system = _system(runbook)
    number = runbook.change.id
    try:
        change = system.find_change(number)
    except ItsmError as exc:
        raise AirflowFailException(f"the change record could not be checked: {exc}") from None
    checks = runbook.itsm.checks.get(runbook.change.type, ["exists"])
    why = refusal(system.name, number, change, checks, datetime.now(UTC))
    if why:
        raise AirflowFailException(f"NOGO before start: {why}")
    log.info(
        "%s change %s: %s, %s; checks passed: %s",
        system.name,
        number,
        change.state if change else "",
        change.approval if change else "",
        ", ".join(checks),
    )
    return change  # type: ignore[no-any-return]


def _record_on_change(
    context: Mapping[str, Any], runbook: Runbook, event: str, scope: str, detail: dict[str, Any]
) -> None:
    """Work notes during the run, the close code after it, one incident if rollback failed."""
    text = work_note(event, detail, context["run_id"])
    wanted = text is not None or event in ("run_finished", "rollback_failed")
    if not wanted:
        return
    system = _system(runbook)
    change = system.find_change(runbook.change.id)
    if change is None:
        log.warning(
            "%s has no change %s; the change record is not updated", system.name, runbook.change.id
        )
        return
    to = f"{system.name} {runbook.change.id}"
    if text is not None:
        once(
            context,
            event,
            scope,
            "itsm:note",
            what="work note",
            to=to,
            action=lambda: system.add_work_note(change, text),
        )
    if event == "run_finished" and detail.get("outcome") in CLOSE_CODES:
        code = CLOSE_CODES[str(detail["outcome"])]
        once(
            context,
            event,
            scope,
            "itsm:close",
            what="closing the change",
            to=to,
            action=lambda: system.close_change(change, code, text or str(detail.get("outcome"))),
        )
    if event == "rollback_failed":
        priority = runbook.incident.priority
        detail["incident"] = _raise(
            context,
            event,
            runbook,
            system,
            change,
            "",
            priority,
            f"Rollback failed: {runbook.title} ({runbook.change.id})",
            [
                f"The rollback of change {runbook.change.id} failed in run {context['run_id']}.",
                *(f"Not undone: {line}" for line in detail.get("not_undone") or []),
                f"Run: {run_url(context) or context['run_id']}",
            ],
        )
        detail["priority"] = priority


def incident_key(context: Mapping[str, Any], scope: str) -> str:
    """The run's key of the incident raised for ``scope`` ("" for a failed rollback)."""
    return naming.sent_key(context["dag"].dag_id, context["run_id"], "incident", scope, "itsm")


def _raise(
    context: Mapping[str, Any],
    event: str,
    runbook: Runbook,
    system: Any,
    change: ChangeRecord,
    scope: str,
    priority: str,
    title: str,
    lines: list[str],
) -> str | None:
    key = incident_key(context, scope)

    def raise_once() -> str:
        # The Variable keeps a retried task from asking; the ITSM's own record of the
        # key keeps even a lost Variable write from raising a second incident.
        found: str | None = system.find_incident(key)
        if found:
            return found
        return str(system.raise_incident(change, priority, title, "\n".join(lines), key))

    number: str | None = once(
        context,
        event,
        scope,
        "itsm:incident",
        what="raising the incident",
        to=f"{system.name} {runbook.change.id}",
        action=raise_once,
    )
    return number


def raise_incident(
    context: Mapping[str, Any], scope: str, priority: str, title: str, lines: list[str]
) -> str | None:
    """Raise one incident linked to the change (once per run and scope); its number, or None.

    None without an ``itsm:`` section, or when the change is not found or the ITSM
    refused (then the failure is in the run note). Never raises.
    """
    runbook = runbook_of(context)
    if runbook is None or runbook.itsm is None:
        return None
    try:
        system = _system(runbook)
        change = system.find_change(runbook.change.id)
    except Exception as exc:
        log.error("the change record could not be read to raise the incident: %s", _why(exc))
        return None
    if change is None:
        log.warning("%s has no change %s: no incident is raised", system.name, runbook.change.id)
        return None
    return _raise(context, "incident", runbook, system, change, scope, priority, title, lines)


def incident_number(context: Mapping[str, Any], scope: str) -> str | None:
    """The number of the incident raised for ``scope`` in this run, as the ITSM holds it."""
    runbook = runbook_of(context)
    if runbook is None or runbook.itsm is None:
        return None
    try:
        found: str | None = _system(runbook).find_incident(incident_key(context, scope))
    except Exception as exc:
        log.warning("the incident could not be looked up: %s", _why(exc))
        return None
    return found


def close_incident(context: Mapping[str, Any], scope: str, notes: str) -> str | None:
    """Close the incident raised for ``scope`` with ``notes``; its number, or None if none was.

    The incident is found by the run's key in the ITSM itself, not by what a task
    said. Never raises: a refusal is retried, then recorded in the run note.
    """
    runbook = runbook_of(context)
    if runbook is None or runbook.itsm is None:
        return None
    try:
        system = _system(runbook)
        number = system.find_incident(incident_key(context, scope))
    except Exception as exc:
        log.error("the incident could not be looked up: %s", _why(exc))
        return None
    if not number:
        log.warning("no incident was raised for this run in %s: none to close", system.name)
        return None
    once(
        context,
        "incident_closed",
        scope,
        "itsm:incident_close",
        what="closing the incident",
        to=f"{system.name} {number}",
        action=lambda: system.close_incident(number, notes),
    )
    return str(number)


# -- hooks for the DAG code -------------------------------------------------------------------


def begin(**context: Any) -> dict[str, Any]:
    """The ``begin`` task: the change record may start (or the run stops here), then run_started."""
    change = check_change(context)
    tell(context, "run_started")
    return {"change": change.number if change else None, "state": change.state if change else None}


def begin_task(runbook: Runbook) -> Any:
    """The ``begin`` task, only when there is a change record to check or someone to tell.

    It is forward work: when the ITSM refuses, it fails before any step ran, and
    the run ends ``nogo_before_start``.
    """
    if runbook.itsm is None and not runbook.notify:
        return None
    from airflow.providers.standard.operators.python import PythonOperator

    from gonogo.dag.preflight import recording_refusal

    return PythonOperator(
        task_id=naming.BEGIN_TASK,
        python_callable=recording_refusal(begin),
        retries=0,
        doc_md="Checks the change record (exists, approved, in its window) and says the run started.",
    )


def asking(
    context: Mapping[str, Any], gate: str, rounds: Mapping[str, list[str]], silent: list[str]
) -> dict[str, Any]:
    """For ``gate_expiring``: the gate's deadline and a link to each silent role's open request."""
    from gonogo.core.runs import states
    from gonogo.dag.states import run_states

    task_states = run_states(context)
    links = {}
    for role in silent:
        ids = [naming.gate_task(gate, part) for part in rounds.get(role, [])]
        open_ = [t for t in ids if task_states.get(t) in states.OPEN] or ids[:1]
        link = request_link(context, open_[0]) if open_ else None
        if link:
            links[role] = link
    first = [naming.gate_task(gate, parts[0]) for parts in rounds.values() if parts]
    deadlines = [context["ti"].xcom_pull(task_ids=t, key=naming.XCOM_DEADLINE) for t in first]
    known = sorted(d for d in deadlines if d)
    return {"links": links, "deadline": known[0] if known else None}


class RequestNotifier(BaseNotifier):
    """Called by a HITL request once it is written: tells the asked roles, with the link. Never raises.

    ``detail`` adds to what is read off the task (an incident's priority and whom it
    addresses), and wins where both name a field.
    """

    template_fields = ()

    def __init__(self, event: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.event = event
        self.detail = dict(detail or {})

    def notify(self, context: Any) -> None:
        task = context["task"]
        deadline = None
        timeout = getattr(task, "response_timeout", None)
        if timeout:
            deadline = (datetime.now(UTC) + timeout).isoformat()
        detail: dict[str, Any] = {
            "subject": task.subject,
            "options": list(task.options),
            "users": [
                u.get("id") if isinstance(u, dict) else u.id for u in task.assigned_users or []
            ],
            "deadline": deadline,
            "link": request_link(context),
        }
        gate = getattr(task, "gate_id", None)
        if gate:
            detail.update(
                gate=gate,
                gate_title=getattr(task, "gate_title", gate),
                role=task.role,
                round=getattr(task, "round_no", 0) + 1,
            )
        tell(context, self.event, task.task_id, **{**detail, **self.detail})


def step_failed(context: Any) -> None:
    """``on_failure_callback`` of forward steps: the step failed for good (its retries are spent)."""
    task = context["task"]
    error = context.get("exception")
    tell(
        context, "step_failed", task.task_id, step=task.task_id, error=_why(error) if error else ""
    )
