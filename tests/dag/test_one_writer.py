"""On SQLite the API server lets one write request into Airflow at a time (gonogo.server.writers).

The app behind the middleware here is a plain ASGI app that counts how many
requests are inside it at once; the burst against a real Airflow is in
tests/integration/test_burst.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gonogo.server.plugin import GonogoPlugin
from gonogo.server.writers import OneWriterMiddleware


class CountingApp:
    """Holds each request a moment and records the most that were inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await asyncio.sleep(0.02)
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def request(method: str, *chunks: bytes, before: asyncio.Event | None = None) -> tuple[Any, ...]:
    scope = {"type": "http", "method": method, "path": "/api/v2/dags/d/dagRuns"}
    pending = list(chunks)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if before is not None and len(pending) == 1:
            await before.wait()  # the last chunk arrives only when the test says so
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    return scope, receive, send, sent


async def burst(middleware: OneWriterMiddleware, method: str, count: int) -> None:
    await asyncio.gather(
        *(middleware(*request(method, b'{"n": %d}' % n)[:3]) for n in range(count))
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_reach_airflow_one_at_a_time_on_sqlite(method: str) -> None:
    app = CountingApp()
    asyncio.run(burst(OneWriterMiddleware(app, one_at_a_time=True), method, 10))
    assert app.most == 1
    assert sorted(app.bodies) == sorted(b'{"n": %d}' % n for n in range(10))


def test_reads_are_not_held_on_sqlite() -> None:
    app = CountingApp()
    asyncio.run(burst(OneWriterMiddleware(app, one_at_a_time=True), "GET", 10))
    assert app.most == 10


def test_other_databases_pass_writes_at_once() -> None:
    app = CountingApp()
    asyncio.run(burst(OneWriterMiddleware(app, one_at_a_time=False), "POST", 10))
    assert app.most == 10


def test_a_body_in_chunks_reaches_airflow_whole() -> None:
    app = CountingApp()
    scope, receive, send, sent = request("POST", b'{"conf": ', b"{}}")
    asyncio.run(OneWriterMiddleware(app, one_at_a_time=True)(scope, receive, send))
    assert app.bodies == [b'{"conf": {}}']
    assert sent[0]["status"] == 200


def test_a_slow_upload_holds_up_no_other_write() -> None:
    app = CountingApp()
    middleware = OneWriterMiddleware(app, one_at_a_time=True)

    async def both() -> tuple[list[Any], list[Any]]:
        arrived = asyncio.Event()
        slow = request("POST", b'{"slow": ', b"1}", before=arrived)
        fast = request("POST", b'{"fast": 1}')
        slow_task = asyncio.create_task(middleware(*slow[:3]))
        await asyncio.wait_for(middleware(*fast[:3]), timeout=5)
        done_before = list(slow[3])
        arrived.set()
        await asyncio.wait_for(slow_task, timeout=5)
        return done_before, slow[3]

    done_before, slow_sent = asyncio.run(both())
    assert done_before == []  # the slow one had not finished when the fast one had
    assert app.bodies == [b'{"fast": 1}', b'{"slow": 1}']
    assert slow_sent[0]["status"] == 200


def test_the_plugin_puts_gonogo_checks_in_front_of_the_one_writer() -> None:
    # Airflow adds root middlewares in list order, each around the ones before, so the
    # first is innermost: a request gonogo refuses never waits for the turn.
    names = [m["middleware"].__name__ for m in GonogoPlugin.fastapi_root_middlewares]
    assert names == ["OneWriterMiddleware", "GonogoMiddleware"]
