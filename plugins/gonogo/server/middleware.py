"""gonogo's rules in front of Airflow's REST API and UI: for gonogo's DAGs, only what a rollout needs.

An ASGI middleware in the API server (registered by the plugin as a root
middleware, so the UI's calls pass through it too). It finds the Airflow route a
request is for the way Airflow itself does (the app's own routes, path
parameters parsed by pydantic), and reads the body with the route's own request
model, so every spelling Airflow accepts means the same here.

Every write route of Airflow's API is classified in :data:`ROUTES`, and a route
that is not there is refused: an Airflow upgrade that adds one is refused until
someone decides (``tests/dag/test_routes.py`` fails on it first). For a DAG that
carries gonogo's marker tag, only these writes pass:

- **answers** (``PATCH …/hitlDetails``): refused for a NOGO, Failed or Continue
  without a comment that says something, a ``params_input`` that is not exactly
  the request's form (every field, each of its type and, for a drop-down, one of
  its values), a meeting's decision log with a decision that lacks its text or
  owner (:func:`gonogo.core.earlylife.meetinglog.log_refusal`), an answer from the
  person who triggered the run (four-eyes, by user id and name) at a gate or to the
  incident report of its failed rollback, a second role's answer from the same
  person at one gate, and an answer within ten seconds of the request opening (425;
  see below). After
  a final NOGO it withdraws the gate's other open requests.
- **triggers**: refused while the lock pool is missing or has more than one slot,
  or when the conf sets one of gonogo's own keys; the API server records who
  triggered (user id and name from the token), signed (:mod:`gonogo.core.runs.stamp`),
  and ``before_start`` refuses a run without a valid stamp.
- **pausing** by an admin (one who may change Airflow's configuration).
- **reads** sent as POST, and **dry runs** (as Airflow reads ``dry_run``).

Everything else that names a gonogo DAG, in the path, in the body or through
``~``, is refused: marks, clears, deletes, notes, the task state store, XCom
writes, backfills. A write whose DAGs cannot be known (``~`` without a DAG per
entity) is refused too. REST writes of the Variables gonogo keeps its records in
(``gonogo_*``) are refused for any DAG.

Identity is Airflow's: the first bearer token, else the ``_token`` cookie, read
by Airflow's own code. A request with two Authorization or two Cookie headers,
or whose token and cookie name different users, is refused (400).

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
from typing import Any

from gonogo.core import naming
from gonogo.core.earlylife import incident, names
from gonogo.core.earlylife.meetinglog import log_refusal
from gonogo.core.runs import stamp, states
from gonogo.core.runs.decisions import missing_reason
from gonogo.core.runs.gates import four_eyes_refusal
from gonogo.core.settings import SETTLE_SECONDS
from gonogo.dag.stamp import SETTING, stamp_secret
from gonogo.server import records, rules

#: The task states in which a request takes an answer: it waits for a person (or is opening).
WAITING_STATES = frozenset({states.AWAITING_INPUT, states.DEFERRED, states.RUNNING})

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
    route: Any = None

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
        if found is None:  # a mounted app (the Execution API, login, plugins) or Airflow's 404
            await self.app(scope, receive, send)
            return
        route, params = found
        body = await _read_body(receive)
        if body is None:
            await _reply(scope, send, Refuse(413, "request body too large"))
            return
        handler = ROUTES.get(route.name, on_unclassified)
        try:
            outcome = identity_refusal(scope) or await handler(Incoming(scope, body, params, route))
        except Unreadable as exc:
            outcome = Refuse(422, f"gonogo cannot read this request ({exc}); nothing was changed")
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


def match_route(scope: Scope) -> tuple[Any, dict[str, Any]] | None:
    """The Airflow route a request is for (an endpoint with a name) and its path parameters.

    None for a mounted app (the Execution API, the auth manager's login, plugins'
    own apps) and for a path Airflow does not know.
    """
    from starlette.routing import Match

    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, child = route.matches(scope)
        if match == Match.FULL:
            if getattr(route, "name", None) and hasattr(route, "endpoint"):
                return route, dict(child.get("path_params", {}))
            return None
    return None


def map_index(raw: Any) -> int:
    """Parse ``map_index`` as FastAPI does for Airflow's route (pydantic, lax)."""
    from pydantic import TypeAdapter

    return TypeAdapter(int).validate_python(raw)


class Unreadable(ValueError):
    pass


def read_body(route: Any, body: bytes) -> Any:
    """The body as Airflow's own request model for the route reads it (None: the route has none).

    FastAPI validates a JSON body in pydantic's lax mode, so ``"dry_run": "false"``
    is False to Airflow; reading it with the same model makes it False here too.
    """
    from pydantic import TypeAdapter, ValidationError

    field = getattr(route, "body_field", None)
    if field is None:
        return None
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise Unreadable("the body is not JSON") from exc
    if data is None:
        return None
    try:
        return TypeAdapter(field.field_info.annotation).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the body"
        raise Unreadable(f"{where}: {first.get('msg')}") from exc


def named_dags(path_dag: Any, body: Any) -> set[str] | None:
    """Every DAG a request names in its path and body; None when it cannot be known.

    ``~`` in the path stands for any DAG: then each entity of the body must name
    its own, or the DAGs it reaches are unknown.
    """
    from pydantic import BaseModel

    wildcard = path_dag in (None, "~")
    found: set[str] = set() if wildcard else {str(path_dag)}
    unknown = False

    def visit(value: Any, entity: bool) -> None:
        nonlocal unknown
        if isinstance(value, BaseModel):
            fields = type(value).model_fields
            if "dag_id" in fields:
                dag = getattr(value, "dag_id", None) or (None if wildcard else path_dag)
                if dag in (None, "~"):
                    unknown = True
                else:
                    found.add(str(dag))
            for name in fields:
                visit(getattr(value, name), name == "entities")
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str) and entity and wildcard:
                    unknown = True  # a bare id under ``~``: of which DAG?
                visit(item, False)

    visit(body, False)
    if wildcard and not found:
        unknown = True
    return None if unknown else found


# -- who is asking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    id: str
    name: str
    user: Any = field(default=None, compare=False, repr=False)


class BadToken(Exception):
    pass


class TwoUsers(Exception):
    pass


def identity_refusal(scope: Scope) -> Refuse | None:
    """400 for a request with more than one Authorization or Cookie header.

    Airflow reads the first of each and gonogo would have to guess the same; with
    one of each there is nothing to guess.
    """
    for name in (b"authorization", b"cookie"):
        count = sum(1 for k, _ in scope.get("headers", []) if k.lower() == name)
        if count > 1:
            header = name.decode().title()
            return Refuse(400, f"send one {header} header, not {count}; nothing was changed")
    return None


async def caller(scope: Scope) -> Caller | None:
    """The user behind the request: the one Airflow's own ``get_user`` returns for it.

    It is called here with the request as Airflow's route sees it (the first
    Authorization header through ``HTTPBearer``, the UI's ``_token`` cookie through
    starlette's lenient parser, the user ``JWTRefreshMiddleware`` already built from
    that cookie), so gonogo's caller is Airflow's caller. None when Airflow finds no
    valid session either: Airflow then answers 401 itself. :class:`BadToken` for a
    bearer token Airflow refuses, and :class:`TwoUsers` when the token and the cookie
    belong to different users: which of them acted would depend on who reads it.
    """
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
    from fastapi import HTTPException
    from starlette.requests import Request

    request = Request(scope)
    credentials = await bearer_scheme(request)
    bearer = credentials is not None and credentials.scheme.lower() == "bearer"
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:
        if bearer:
            raise BadToken from exc
        return None
    found = Caller(str(user.get_id()), str(user.get_name()), user)
    if bearer:
        session = await _session_user(request)
        if session is not None and str(session.get_id()) != found.id:
            raise TwoUsers
    return found


async def _session_user(request: Any) -> Any:
    """The user of the request's session cookie, as Airflow's ``get_user`` reads it without a token.

    None without a cookie, or with one Airflow would refuse: beside a good token,
    a stale cookie changes nothing (Airflow uses the token).
    """
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import HTTPException

    try:
        return await get_user(request, None, None)
    except HTTPException:
        return None


async def _who(scope: Scope) -> Caller | Refuse | None:
    """The caller, or the refusal of a request whose identity is ambiguous or invalid.

    Every check that depends on who asks goes through here: two Authorization or
    Cookie headers (:func:`identity_refusal`), a token and a cookie of different
    users (400), a bearer token Airflow refuses (401).
    """
    refusal = identity_refusal(scope)
    if refusal is not None:
        return refusal
    try:
        return await caller(scope)
    except BadToken:
        return Refuse(401, "your session is not valid; log in again")
    except TwoUsers:
        return Refuse(
            400,
            "the Authorization header and the session cookie belong to different users; "
            "send one of them; nothing was changed",
        )


def _is_admin(who: Caller) -> bool:
    """An admin of the installation: one who may change Airflow's configuration."""
    from airflow.api_fastapi.app import get_auth_manager

    return bool(get_auth_manager().is_authorized_configuration(method="PUT", user=who.user))


def _is_browser(scope: Scope) -> bool:
    return any(k.lower() == b"sec-fetch-mode" for k, _ in scope.get("headers", []))


# -- the handlers ------------------------------------------------------------------------------


async def _gonogo(dag_id: Any) -> bool:
    return isinstance(dag_id, str) and await asyncio.to_thread(records.is_gonogo_dag, dag_id)


async def _reaches_gonogo(request: Incoming, body: Any) -> bool:
    """Whether a write reaches a gonogo DAG; True when the DAGs it reaches cannot be known."""
    dags = named_dags(request.params.get("dag_id"), body)
    if dags is None:
        return True
    for dag_id in dags:
        if await _gonogo(dag_id):
            return True
    return False


def _body(request: Incoming) -> Any:
    return read_body(request.route, request.body)


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
    record = await asyncio.to_thread(records.hitl_request, dag_id, run_id, task_id, index)
    if record is None:
        return Forward()  # Airflow answers 404
    asked = record.request
    if asked.state not in WAITING_STATES:
        return Refuse(
            409,
            f"this request is closed (its task is {asked.state or 'not running'}): the gate "
            "was decided, withdrawn or timed out; nothing was recorded",
        )
    comment = answer["params_input"].get(naming.COMMENT)
    reason = missing_reason(answer["chosen_options"], comment, asked.form)
    if reason:
        return Refuse(422, reason)
    reason = rules.form_refusal(answer["params_input"], asked.form) or rules.only_with_refusal(
        answer["chosen_options"], answer["params_input"], asked.form
    )
    if reason:
        return Refuse(422, reason)
    if names.runbook_of_dag(dag_id) and names.parse_log_task(task_id) is not None:
        reason = log_refusal(answer["chosen_options"], answer["params_input"])
        if reason:
            return Refuse(422, reason)
    who = await _who(request.scope)
    if isinstance(who, Refuse):
        return who
    gate = naming.parse_gate_task(task_id)
    if who is not None and gate is not None and gate.role is not None:
        trigger_id = (record.trigger or {}).get("id")
        reason = four_eyes_refusal(who.id, who.name, trigger_id, record.triggered_by)
        if reason:
            return Refuse(403, reason)
        answered = await asyncio.to_thread(records.gate_answers, dag_id, run_id, gate.gate)
        reason = rules.second_role_refusal(who.id, task_id, answered)
        if reason:
            return Refuse(409, reason)
    elif who is not None and incident.is_report_task(task_id, bool(names.runbook_of_dag(dag_id))):
        trigger_id = (record.trigger or {}).get("id")
        reason = four_eyes_refusal(who.id, who.name, trigger_id, record.triggered_by)
        if reason:
            return Refuse(403, reason)
    if asked.answer is None and asked.created_at is not None:
        age = (datetime.now(UTC) - asked.created_at).total_seconds()
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


async def on_trigger(request: Incoming) -> Refuse | Forward:
    dag_id = request.params.get("dag_id")
    if not await _gonogo(dag_id):
        return Forward()
    body = _body(request)
    if body is None:
        raise Unreadable("a trigger needs a JSON body")
    reserved = sorted(k for k in (body.conf or {}) if str(k).startswith(naming.CONF_RESERVED))
    if reserved:
        return Refuse(
            422,
            f"conf key {', '.join(reserved)} is gonogo's own (who started the run, signed by "
            "the API server); leave it out and trigger again",
        )
    problem = await asyncio.to_thread(records.lock_pool_problem)
    if problem:
        return Refuse(409, f"not started: {problem}")
    who = await _who(request.scope)
    if isinstance(who, Refuse):
        return who
    if who is None:
        return Forward()  # Airflow answers 401
    secret = await asyncio.to_thread(stamp_secret)
    if not secret:
        return Refuse(503, f"not started: gonogo signs who started a run with {SETTING}; set it")
    data = json.loads(request.body)
    run_id = body.dag_run_id or _new_run_id()  # as Airflow reads it: "" is no run id either
    data["dag_run_id"] = run_id
    conf = data.get("conf") if isinstance(data.get("conf"), dict) else {}
    data["conf"] = {
        **conf,
        naming.CONF_TRIGGER: stamp.stamp(secret, str(dag_id), run_id, who.id, who.name),
    }
    return Forward(body=json.dumps(data).encode())


def _new_run_id() -> str:
    """A run id of Airflow's manual kind, fixed here so the stamp can sign it."""
    return f"manual__{datetime.now(UTC).isoformat()}"


async def on_pause(request: Incoming) -> Refuse | Forward:
    """PATCH one DAG or many: only ``is_paused`` exists in the body; for gonogo, by an admin."""
    _body(request)  # a body Airflow cannot read is refused here too
    path_dag = request.params.get("dag_id")
    if path_dag is not None and not await _gonogo(path_dag):
        return Forward()
    who = await _who(request.scope)
    if isinstance(who, Refuse):
        return who
    if who is None:
        return Forward()  # Airflow answers 401
    if await asyncio.to_thread(_is_admin, who):
        return Forward()
    if path_dag is None:
        return Refuse(
            403,
            "pausing DAGs by a pattern may reach gonogo's DAGs, which only an admin pauses; "
            "pause other DAGs one at a time",
        )
    return Refuse(403, "only an admin pauses or unpauses a gonogo DAG")


async def on_clear(request: Incoming) -> Refuse | Forward:
    """Clears: a dry run (as Airflow reads ``dry_run``) only counts, so it passes."""
    body = _body(request)
    if getattr(body, "dry_run", True) is True:
        return Forward()
    if not await _reaches_gonogo(request, body):
        return Forward()
    return Refuse(403, f"a gonogo run is never cleared: its answers and undos stand; {AGAIN}")


def refused_for_gonogo(reason: str) -> Handler:
    """A write that a rollout never needs: refused where it reaches a gonogo DAG."""

    async def handler(request: Incoming) -> Refuse | Forward:
        body = _body(request)
        if await _reaches_gonogo(request, body):
            return Refuse(403, reason)
        return Forward()

    return handler


async def on_unclassified(request: Incoming) -> Refuse | Forward:
    return Refuse(
        403,
        f"gonogo has not classified Airflow's route {request.route.name}, so it refuses "
        "every write through it; see gonogo.server.middleware.ROUTES",
    )


async def allowed(request: Incoming) -> Refuse | Forward:
    return Forward()


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


#: What to do instead, in every refusal of a write to a gonogo run.
AGAIN = "answer NOGO at a gate to stop a rollout; start a new run to try again"
_STATE = (
    "a gonogo run's tasks, states and notes follow its answers and its own tasks, never a "
    f"hand edit; {AGAIN}"
)

#: Every write route of Airflow's API, classified. A route that is not here is refused
#: (tests/dag/test_routes.py fails on any such route of the installed Airflow).
ROUTES: dict[str, Handler] = {
    # What a rollout needs.
    "trigger_dag_run": on_trigger,
    "update_hitl_detail": on_answer,
    "patch_dag": on_pause,
    "patch_dags": on_pause,
    # Reads that are POSTs, and dry runs that only count what they would change.
    "get_list_dag_runs_batch": allowed,
    "get_task_instances_batch": allowed,
    "patch_task_instance_dry_run": allowed,
    "patch_task_group_instances_dry_run": allowed,
    "create_backfill_dry_run": allowed,
    # Clears: refused for gonogo unless a dry run.
    "post_clear_task_instances": on_clear,
    "clear_dag_run": on_clear,
    "clear_dag_runs": on_clear,
    "clear_dag_run_partitions": on_clear,
    # Writes that never reach a DAG's runs: logins, connections, pools (the lock pool is
    # checked at every trigger), assets (gonogo DAGs neither produce nor consume any),
    # favourites, a re-parse of a file, backfills already made (gonogo's are refused).
    **dict.fromkeys(
        (
            "generate_token",
            "post_connection",
            "patch_connection",
            "delete_connection",
            "bulk_connections",
            "create_default_connections",
            "test_connection",
            "enqueue_connection_test",
            "post_pool",
            "patch_pool",
            "delete_pool",
            "bulk_pools",
            "create_asset_event",
            "materialize_asset",
            "delete_asset_queued_events",
            "clear_asset_state_store",
            "delete_asset_state_store",
            "set_asset_state_store",
            "delete_dag_asset_queued_events",
            "delete_dag_asset_queued_event",
            "favorite_dag",
            "unfavorite_dag",
            "reparse_dag_file",
            "cancel_backfill",
            "pause_backfill",
            "unpause_backfill",
        ),
        allowed,
    ),
    # gonogo's records in Variables: refused by key, for any DAG.
    "post_variable": on_variable,
    "patch_variable": on_variable,
    "delete_variable": on_variable,
    "bulk_variables": on_variable,
    # Everything else that names a DAG: refused where it reaches a gonogo DAG.
    "delete_dag": refused_for_gonogo(
        "a gonogo DAG is not deleted through the API: its runs are the decision history and "
        "the approval and promotion evidence; remove the runbook file, and keep the history"
    ),
    "delete_dag_run": refused_for_gonogo(
        "a gonogo run is not deleted: it is the record of what was decided and done"
    ),
    "patch_dag_run": refused_for_gonogo(
        "a gonogo run's state follows its outcome and its note is the decision summary "
        f"gonogo writes; neither is set by hand; {AGAIN}"
    ),
    "bulk_dag_runs": refused_for_gonogo(_STATE),
    "patch_task_instance": refused_for_gonogo(
        "a task of a gonogo run is not marked by hand: gates are decided only by answers on "
        f"the Required Actions page, steps only by running; {AGAIN}"
    ),
    "delete_task_instance": refused_for_gonogo(_STATE),
    "bulk_task_instances": refused_for_gonogo(_STATE),
    "patch_task_group_instances": refused_for_gonogo(
        "a task group of a gonogo run cannot be marked by hand; gates are decided only by "
        "answers on the Required Actions page, and rollback and the outcome only by gonogo"
    ),
    **dict.fromkeys(
        (
            "set_task_state_store",
            "patch_task_state_store",
            "delete_task_state_store",
            "clear_task_state_store",
        ),
        refused_for_gonogo(
            "a gonogo task's state store holds its crash marks (a command that was started) "
            "and is written only by the task itself"
        ),
    ),
    **dict.fromkeys(
        ("create_xcom_entry", "update_xcom_entry", "delete_xcom_entry"),
        refused_for_gonogo(
            "a gonogo run's records (XCom) are written only by its tasks, never by hand"
        ),
    ),
    "create_backfill": refused_for_gonogo(
        "a gonogo rollout is started by a person with a trigger, not by a backfill"
    ),
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
