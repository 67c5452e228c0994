"""gonogo's rules in front of Airflow's REST API and UI, for gonogo's own DAGs only.

An ASGI middleware in the API server (registered by the plugin as a root
middleware, so the UI's calls pass through it too). It finds the Airflow route a
request is for the way Airflow itself does (the app's own routes, path
parameters parsed by pydantic), so every spelling Airflow accepts is matched.
For a DAG that carries gonogo's marker tag it then:

- **answers** (``PATCH …/hitlDetails``): refuses a NOGO, Failed or Continue
  without a comment that says something, a ``params_input`` that is not exactly
  the request's form, an answer from the person who triggered the run (four-eyes,
  by user id and name), a second role's answer from the same person at one gate,
  and an answer within ten seconds of the request opening (425; see below). After
  a final NOGO it withdraws the gate's other open requests.
- **state edits**: refuses marking, clearing or deleting gate, manual, rollback,
  lock and outcome tasks, changing the run's state, and writing gonogo's XCom
  records by hand: decisions come only from answers.
- **triggers**: refuses a trigger while the lock pool is missing or has more than
  one slot, and records who triggered (user id and name from the token) in the
  run's conf, which the DAG's preflight checks.
- **ledgers**: refuses REST writes of the Variables gonogo keeps its records in
  (``gonogo_*``: plan approvals, successful runs, notifications sent), for any DAG.

It fails closed: when a check cannot be made (say the database is unreachable),
the request is refused with 503 and nothing is changed.

Every refusal is ``{"detail": "<what to do>"}``. REST clients get the usual
status (422, 403, 409, 425). A browser gets status 449, which Airflow's UI does
not map to a fixed text, so its toast shows the body, and with it the reason.

The 425: Airflow 3.3 resumes an answered task under the same try number, and if
the worker's exit event for the parked attempt is processed after the resume
was queued, the scheduler fails the task ("state changed externally"), losing
the answer. No person answers within ten seconds; scripts do, and
:class:`gonogo.client.api.AirflowClient` retries on 425.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any

from gonogo.core import naming
from gonogo.core.settings import SETTLE_SECONDS
from gonogo.server import records, rules

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1024 * 1024
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The status a browser gets for a refusal, so Airflow's UI shows the reason (see the module doc).
BROWSER_STATUS = 449


@dataclass
class Refuse:
    status: int
    detail: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Forward:
    """Let the request through, maybe with a new body, and run ``after`` on a 2xx response."""

    body: bytes | None = None
    after: Callable[[bytes], None] | None = None


@dataclass
class Incoming:
    scope: Scope
    body: bytes
    params: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


Handler = Callable[[Incoming], Awaitable[Refuse | Forward]]


class GonogoMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") not in MUTATING:
            await self.app(scope, receive, send)
            return
        found = match_route(scope)
        handler = HANDLERS.get(found[0]) if found else None
        if found is None or handler is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _reply(scope, send, Refuse(413, "request body too large"))
            return
        try:
            outcome = await handler(Incoming(scope, body, found[1]))
        except Exception:
            log.exception("gonogo: could not check %s %s", scope.get("method"), scope.get("path"))
            outcome = Refuse(
                503, "gonogo could not check this request, so nothing was changed; try again"
            )
        if isinstance(outcome, Refuse):
            await _reply(scope, send, outcome)
            return
        await self._forward(scope, receive, send, outcome, body)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, outcome: Forward, body: bytes
    ) -> None:
        sent = outcome.body if outcome.body is not None else body
        replayed = False
        status: list[int] = []
        response: list[bytes] = []

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": sent, "more_body": False}
            return await receive()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body" and outcome.after is not None:
                response.append(message.get("body", b""))
            await send(message)

        if outcome.body is not None:
            scope = dict(scope)
            scope["headers"] = [
                (k, str(len(sent)).encode() if k.lower() == b"content-length" else v)
                for k, v in scope.get("headers", [])
            ]
        await self.app(scope, replay, watch)
        if outcome.after is not None and status and 200 <= status[0] < 300:
            try:
                await asyncio.to_thread(outcome.after, b"".join(response))
            except Exception:  # the change is made; a follow-up must never turn it into an error
                log.exception("gonogo: follow-up of %s failed", scope.get("path"))


# -- finding the route -------------------------------------------------------------------------


def match_route(scope: Scope) -> tuple[str, dict[str, Any]] | None:
    """The name of the Airflow route (its endpoint function) and its path parameters."""
    from starlette.routing import Match

    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, child = route.matches(scope)
        if match == Match.FULL:
            name = getattr(route, "name", None)
            return (name, dict(child.get("path_params", {}))) if name else None
    return None


def map_index(raw: Any) -> int:
    """Parse ``map_index`` as FastAPI does for Airflow's route (pydantic, lax)."""
    from pydantic import TypeAdapter

    return TypeAdapter(int).validate_python(raw)


# -- who is asking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    id: str
    name: str


class BadToken(Exception):
    pass


async def caller(scope: Scope) -> Caller | None:
    """The user behind the request's token (header or the UI's cookie); None without a token."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    token = None
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    elif b"cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(headers[b"cookie"].decode("latin-1"))
        if "_token" in cookie:
            token = cookie["_token"].value
    if not token:
        return None
    from airflow.api_fastapi.app import get_auth_manager

    try:
        user = await get_auth_manager().get_user_from_token(token)
    except Exception as exc:
        raise BadToken from exc
    return Caller(str(user.get_id()), str(user.get_name()))


def _is_browser(scope: Scope) -> bool:
    return any(k.lower() == b"sec-fetch-mode" for k, _ in scope.get("headers", []))


# -- the handlers ------------------------------------------------------------------------------


async def _gonogo(dag_id: Any) -> bool:
    return isinstance(dag_id, str) and await asyncio.to_thread(records.is_gonogo_dag, dag_id)


async def on_answer(request: Incoming) -> Refuse | Forward:
    params = request.params
    dag_id, run_id, task_id = params["dag_id"], params["dag_run_id"], params["task_id"]
    if not await _gonogo(dag_id):
        return Forward()
    try:
        index = map_index(params.get("map_index", -1))
    except ValueError:
        return Refuse(422, f"map_index {params.get('map_index')!r} is not a whole number")
    try:
        answer = rules.parse_answer(request.body)
    except ValueError as exc:
        return Refuse(422, f"{exc}; nothing was recorded")
    reason = rules.refusal(answer)
    if reason:
        return Refuse(422, reason)
    record = await asyncio.to_thread(records.hitl_request, dag_id, run_id, task_id, index)
    if record is None:
        return Forward()  # Airflow answers 404
    reason = rules.form_refusal(answer["params_input"], record.form)
    if reason:
        return Refuse(422, reason)
    try:
        who = await caller(request.scope)
    except BadToken:
        return Refuse(401, "your session is not valid; log in again")
    gate = naming.parse_gate_task(task_id)
    if who is not None and gate is not None and gate.role is not None:
        reason = rules.four_eyes_refusal(who.id, who.name, record.trigger, record.triggered_by)
        if reason:
            return Refuse(403, reason)
        answered = await asyncio.to_thread(records.gate_answers, dag_id, run_id, gate.gate)
        reason = rules.second_role_refusal(who.id, task_id, answered)
        if reason:
            return Refuse(409, reason)
    if not record.response_received:
        age = (datetime.now(UTC) - record.created_at).total_seconds()
        if age < SETTLE_SECONDS:
            wait = max(1, round(SETTLE_SECONDS - age + 0.5))
            return Refuse(
                425,
                f"the request is still opening; answer again in {wait}s",
                [(b"retry-after", str(wait).encode())],
            )
    if naming.NOGO in answer["chosen_options"] and naming.is_final_round(task_id):
        return Forward(after=lambda _: _withdraw(dag_id, run_id, task_id))
    return Forward()


def _withdraw(dag_id: str, run_id: str, task_id: str) -> None:
    withdrawn = records.withdraw_siblings(dag_id, run_id, task_id)
    if withdrawn:
        log.info("gonogo: %s decided NOGO; withdrew %s", task_id, ", ".join(withdrawn))


def _flag(body: dict[str, Any], name: str) -> bool:
    return bool(body.get(name))


async def on_task_state(request: Incoming) -> Refuse | Forward:
    """PATCH or DELETE one task instance."""
    params = request.params
    dag_id, run_id, task_id = params["dag_id"], params["dag_run_id"], params["task_id"]
    if not await _gonogo(dag_id):
        return Forward()
    body = request.json() if request.body else {}
    if not isinstance(body, dict):
        return Refuse(422, "the body must be a JSON object")
    deleting = request.scope.get("method") == "DELETE"
    if not deleting and body.get("new_state") is None:
        return Forward()  # a note
    kinds = await asyncio.to_thread(records.task_types, dag_id, run_id, [task_id])
    widened = _flag(body, "include_upstream") or _flag(body, "include_downstream")
    reason = rules.state_change_refusal(kinds.items(), widened=widened)
    if reason:
        return Refuse(403, reason)
    if body.get("new_state") == "success":
        index = map_index(params.get("map_index", -1))
        return Forward(after=lambda _: records.record_marked_finish(dag_id, run_id, task_id, index))
    return Forward()


async def on_bulk_task_states(request: Incoming) -> Refuse | Forward:
    params = request.params
    body = request.json()
    actions = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(actions, list):
        return Refuse(422, "could not read the bulk request")
    for action in actions:
        entities = action.get("entities") if isinstance(action, dict) else None
        if not isinstance(entities, list):
            return Refuse(422, "could not read the bulk request")
        for entity in entities:
            item = entity if isinstance(entity, dict) else {"task_id": entity}
            dag_id = item.get("dag_id") or params.get("dag_id")
            run_id = item.get("dag_run_id") or params.get("dag_run_id")
            if dag_id in (None, "~") or not await _gonogo(dag_id):
                if dag_id in (None, "~"):
                    return Refuse(422, "name the DAG of every task instance in a bulk change")
                continue
            if action.get("action") != "delete" and item.get("new_state") is None:
                continue
            task_id = str(item.get("task_id"))
            kinds = await asyncio.to_thread(
                records.task_types, dag_id, None if run_id == "~" else run_id, [task_id]
            )
            widened = _flag(item, "include_upstream") or _flag(item, "include_downstream")
            reason = rules.state_change_refusal(kinds.items(), widened=widened)
            if reason:
                return Refuse(403, reason)
    return Forward()


async def on_group_state(request: Incoming) -> Refuse | Forward:
    if not await _gonogo(request.params.get("dag_id")):
        return Forward()
    body = request.json()
    if isinstance(body, dict) and body.get("new_state") is None:
        return Forward()
    return Refuse(
        403,
        "a task group of a gonogo run cannot be marked by hand; gates are decided only by "
        "answers on the Required Actions page, and rollback and the outcome only by gonogo",
    )


async def on_clear_tasks(request: Incoming) -> Refuse | Forward:
    dag_id = request.params.get("dag_id")
    if not await _gonogo(dag_id):
        return Forward()
    body = request.json()
    if not isinstance(body, dict):
        return Refuse(422, "the body must be a JSON object")
    if body.get("dry_run", True):
        return Forward()
    names = body.get("task_ids")
    if not names:
        return Refuse(403, rules.state_change_refusal([], whole_run=True) or "")
    task_ids = [n if isinstance(n, str) else str(n[0]) for n in names]
    kinds = await asyncio.to_thread(
        records.task_types, str(dag_id), body.get("dag_run_id"), task_ids
    )
    widened = _flag(body, "include_upstream") or _flag(body, "include_downstream")
    reason = rules.state_change_refusal(kinds.items(), widened=widened)
    return Refuse(403, reason) if reason else Forward()


async def on_run_state(request: Incoming) -> Refuse | Forward:
    if not await _gonogo(request.params.get("dag_id")):
        return Forward()
    body = request.json()
    if isinstance(body, dict) and body.get("state") is None:
        return Forward()  # a note
    return Refuse(
        403,
        "a gonogo run's state follows its outcome and cannot be set by hand; "
        "gates are decided on the Required Actions page",
    )


async def on_bulk_runs(request: Incoming) -> Refuse | Forward:
    body = request.json()
    actions = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(actions, list):
        return Refuse(422, "could not read the bulk request")
    for action in actions:
        for entity in (action.get("entities") or []) if isinstance(action, dict) else []:
            item = entity if isinstance(entity, dict) else {}
            dag_id = item.get("dag_id") or request.params.get("dag_id")
            if dag_id in (None, "~"):
                return Refuse(422, "name the DAG of every run in a bulk change")
            if await _gonogo(dag_id) and (
                action.get("action") == "delete" or item.get("state") is not None
            ):
                return Refuse(403, "the state of a gonogo run follows its outcome")
    return Forward()


async def on_clear_runs(request: Incoming) -> Refuse | Forward:
    if not await _gonogo(request.params.get("dag_id")):
        return Forward()
    body = request.json() if request.body else {}
    if isinstance(body, dict) and body.get("dry_run", True):
        return Forward()
    return Refuse(403, rules.state_change_refusal([], whole_run=True) or "")


async def on_xcom(request: Incoming) -> Refuse | Forward:
    if not await _gonogo(request.params.get("dag_id")):
        return Forward()
    return Refuse(403, "a gonogo run's records (XCom) are written only by its tasks, never by hand")


def _keys(value: Any) -> list[str]:
    """Every Variable key a variables request names: path, body, bulk entities."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [k for item in value for k in _keys(item)]
    if isinstance(value, dict):
        found = [value["key"]] if isinstance(value.get("key"), str) else []
        return found + _keys(value.get("entities") or []) + _keys(value.get("actions") or [])
    return []


async def on_variable(request: Incoming) -> Refuse | Forward:
    try:
        body = request.json() if request.body else {}
    except ValueError:
        body = {}  # Airflow answers 422
    keys = _keys(request.params.get("variable_key")) + _keys(body)
    if any(k.startswith(naming.LEDGER_PREFIX) for k in keys):
        return Refuse(
            403,
            f"Variables named {naming.LEDGER_PREFIX}* are gonogo's records (plan approvals, "
            "successful runs, notifications sent) and are written only by its tasks; "
            "to revoke an approval, trigger the runbook's .approval DAG with revoke",
        )
    return Forward()


async def on_trigger(request: Incoming) -> Refuse | Forward:
    dag_id = request.params.get("dag_id")
    if not await _gonogo(dag_id):
        return Forward()
    problem = await asyncio.to_thread(records.lock_pool_problem)
    if problem:
        return Refuse(409, f"not started: {problem}")
    try:
        who = await caller(request.scope)
    except BadToken:
        return Refuse(401, "your session is not valid; log in again")
    body = request.json()
    if who is None or not isinstance(body, dict):
        return Forward()  # Airflow answers 401 or 422
    given = body.get("conf")
    conf: dict[str, Any] = given if isinstance(given, dict) else {}
    body["conf"] = {**conf, naming.CONF_TRIGGER: {"id": who.id, "name": who.name}}
    return Forward(body=json.dumps(body).encode())


HANDLERS: dict[str, Handler] = {
    "update_hitl_detail": on_answer,
    "patch_task_instance": on_task_state,
    "delete_task_instance": on_task_state,
    "bulk_task_instances": on_bulk_task_states,
    "patch_task_group_instances": on_group_state,
    "post_clear_task_instances": on_clear_tasks,
    "patch_dag_run": on_run_state,
    "bulk_dag_runs": on_bulk_runs,
    "clear_dag_run": on_clear_runs,
    "clear_dag_runs": on_clear_runs,
    "clear_dag_run_partitions": on_clear_runs,
    "create_xcom_entry": on_xcom,
    "update_xcom_entry": on_xcom,
    "delete_xcom_entry": on_xcom,
    "trigger_dag_run": on_trigger,
    "post_variable": on_variable,
    "patch_variable": on_variable,
    "delete_variable": on_variable,
    "bulk_variables": on_variable,
}


# -- plumbing ----------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _reply(scope: Scope, send: Send, refusal: Refuse) -> None:
    status = BROWSER_STATUS if _is_browser(scope) and refusal.status != 503 else refusal.status
    payload = json.dumps({"detail": refusal.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *refusal.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
