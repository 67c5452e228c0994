"""Server-side rule for answers: a NOGO (and a Failed or Continue) must say why.

Airflow's HITL API makes the comment optional, and the approver's client cannot
be trusted to insist. This ASGI middleware runs in the API server, in front of
the REST API and the UI alike. It reads the body of ``PATCH …/hitlDetails``,
refuses a blank comment with 422 and a message the approver can act on, and
otherwise replays the body untouched. Airflow then stores nothing for the
refused answer, so the request stays open and can be answered again.

It also holds back an answer that comes within ten seconds of the request
opening (425, with Retry-After). Airflow 3.3 resumes the task under the same
try number, and if the worker's exit event for the parked attempt is processed
after the resume was queued, the scheduler marks the task failed ("state changed
externally"), losing a GO. No person answers that fast; scripts do, and
:class:`gonogo.client.AirflowClient` retries on 425.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NEEDS_REASON = frozenset({"NOGO", "Failed", "Continue"})
_HITL_PATH = re.compile(
    r"/api/v2/dags/[^/]+/dagRuns/[^/]+/taskInstances/[^/]+/-?\d+/hitlDetails/?$"
)
MAX_BODY = 1024 * 1024
SETTLE_SECONDS = 10.0


def refusal(body: bytes) -> str | None:
    """Why this answer is refused, or None. Pure: tested without a server."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None  # let Airflow answer malformed JSON with its own 422
    if not isinstance(payload, dict):
        return None
    chosen = payload.get("chosen_options") or []
    needing = [o for o in chosen if o in NEEDS_REASON] if isinstance(chosen, list) else []
    if not needing:
        return None
    params = payload.get("params_input") or {}
    comment = params.get("comment") if isinstance(params, dict) else None
    if isinstance(comment, str) and comment.strip():
        return None
    return (
        f"{needing[0]} needs a comment that says why and what must be fixed; nothing was recorded"
    )


class RequireReasonMiddleware:
    """Refuse NOGO/Failed/Continue answers without a comment, before Airflow stores them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "PATCH"
            or not _HITL_PATH.search(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _reply(send, 413, "request body too large")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        reason = refusal(body)
        if reason:
            await _reply(send, 422, reason)
            return
        age = await asyncio.to_thread(request_age, scope.get("path", ""))
        if age is not None and age < SETTLE_SECONDS:
            wait = max(1, round(SETTLE_SECONDS - age + 0.5))
            await _reply(
                send,
                425,
                f"the request is still opening; answer again in {wait}s",
                headers=[(b"retry-after", str(wait).encode())],
            )
            return
        replayed = False
        status: list[int] = []

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, replay, watch)
        if status and status[0] == 200 and ends_gate(scope.get("path", ""), body):
            await asyncio.to_thread(withdraw_siblings, scope.get("path", ""))


def _path_parts(path: str) -> tuple[str, str, str, int]:
    from urllib.parse import unquote

    parts = path.rstrip("/").split("/")
    dag_id, run_id, task_id, map_index = (unquote(parts[i]) for i in (-7, -5, -3, -2))
    return dag_id, run_id, task_id, int(map_index)


def ends_gate(path: str, body: bytes) -> bool:
    """A NOGO at a gate's final round: the gate is decided, whatever the other roles say."""
    from gonogo.gates import is_final_round

    try:
        _, _, task_id, _ = _path_parts(path)
        chosen = json.loads(body).get("chosen_options") or []
    except (ValueError, IndexError, AttributeError):
        return False
    return task_id.startswith("gate__") and "NOGO" in chosen and is_final_round(task_id)


def withdraw_siblings(path: str) -> list[str]:
    """End the gate's other open requests as skipped: their answers would change nothing."""
    try:
        dag_id, run_id, task_id, _ = _path_parts(path)
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        group = task_id.partition(".")[0] + "."
        withdrawn = []
        with create_session() as session:
            siblings = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id.startswith(group),
                    TaskInstance.task_id != task_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            ).all()
            for ti in siblings:
                ti.set_state(TaskInstanceState.SKIPPED, session=session)
                withdrawn.append(ti.task_id)
        return withdrawn
    except Exception:  # the gate is decided either way; never fail the answer itself
        import logging

        logging.getLogger("gonogo").exception("could not withdraw the other requests of %s", path)
        return []


def request_age(path: str) -> float | None:
    """Seconds since the HITL request at ``path`` opened, or None if unknown."""
    try:
        dag_id, run_id, task_id, map_index = _path_parts(path)
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            created = session.scalar(
                select(HITLDetail.created_at)
                .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
                .where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.map_index == int(map_index),
                )
            )
    except Exception:  # never block an answer because the check itself failed
        return None
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (datetime.now(UTC) - created).total_seconds()


async def _reply(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
