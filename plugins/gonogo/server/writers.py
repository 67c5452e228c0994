"""One write request at a time through the API server when the metadata database is SQLite.

SQLite lets one connection write at a time; the others wait for it, up to the
busy timeout. Airflow 3.3's API server can wait for it on its event loop, and
then deadlocks itself: the audit-log entry of every write request is written by
an ``async`` dependency (``action_logging`` in
``airflow/api_fastapi/logging/decorators.py``) that commits through a synchronous
session, on the loop's thread. When another request of the same server has
written and not yet committed, it commits when its session dependency closes,
and that step is scheduled by the blocked loop. Nothing in the API server moves
until the busy timeout (30 s in gonogo's stacks) fails the audit write with
``database is locked``; every client's request times out, and another process
that waited as long for the same lock fails too. The scheduler fails in its own
commit and exits. Twenty triggers at once did this every time.

This middleware lets one write request (POST, PUT, PATCH, DELETE; the Execution
API's included) into Airflow at a time, from its body to its last response byte,
so the loop never waits for a request of its own server. SQLite serialises those
writes anyway. Reads pass at once: in WAL mode, which Airflow sets for SQLite, a
reader never waits for a writer. On any other database it passes everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def database_is_sqlite() -> bool:
    from airflow.configuration import conf

    return conf.get("database", "sql_alchemy_conn", fallback="").startswith("sqlite")


class OneWriterMiddleware:
    """See the module docstring. ``one_at_a_time`` is decided from Airflow's config unless given."""

    def __init__(self, app: ASGIApp, *, one_at_a_time: bool | None = None) -> None:
        self.app = app
        if one_at_a_time is None:
            one_at_a_time = database_is_sqlite()
        self._turn = asyncio.Lock() if one_at_a_time else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._turn is None or scope.get("type") != "http" or scope.get("method") not in WRITES:
            await self.app(scope, receive, send)
            return
        # The body is read before the turn is taken: a slow client holds up no one else.
        first = await _whole_body(receive)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        async with self._turn:
            await self.app(scope, replay, send)


async def _whole_body(receive: Receive) -> Message:
    """The request's body as one message (or the disconnect that came instead)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return message
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
