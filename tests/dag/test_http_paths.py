"""On the worker: an http step's values stay in their path segment, credentials at their host.

Each url is rendered by the task's own Airflow renderer and requested by the
worker's runner against real HTTP servers on 127.0.0.1; the connection is an
Airflow connection read from the environment, as a worker reads it.
"""

from __future__ import annotations

import base64
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.model import Http
from gonogo.dag.actions import Actions, http_spec, run_action, run_http
from gonogo.dag.builder import build_dag
from gonogo.errors import StepError

RUNBOOK = """\
runbook: paths
title: Paths
service: svc
environment: test
change: {id: CHG1, type: standard}
params:
  item: {type: string, default: x}
  q: {type: string, default: x}
phases:
  - id: p
    steps:
      - id: get
        http:
          url: "/api/items/{{ params.item }}/status?q={{ params.q }}"
          connection: it_api
        rollback:
          http: {url: "/api/items/{{ params.item }}/undo", connection: it_api, method: POST}
"""

PASSWORD = "pw-s3cret-value"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[int, str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.server.server_address[1], self.path, self.headers["Authorization"]))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The connection's server and another one; the connection it_api names the first."""
    api, api_url = _serve()
    other, other_url = _serve()
    _Recorder.seen.clear()
    monkeypatch.setenv("AIRFLOW_CONN_IT_API", api_url.replace("://", f"://deployer:{PASSWORD}@"))
    yield api_url, other_url
    for server in (api, other):
        server.shutdown()
        server.server_close()


_RUNBOOK, _ = load_text(RUNBOOK)
_DAG = build_dag(_RUNBOOK, Path(tempfile.gettempdir()))
_TASK = _DAG.get_task("p.get")


def rendered(spec: dict[str, Any], **params: str) -> dict[str, Any]:
    result: dict[str, Any] = _TASK.render_template(
        spec, {"params": {"item": "x", "q": "x", **params}}
    )
    return result


def test_a_normal_value_reaches_its_path_encoded_with_the_connections_credentials(
    servers: tuple[str, str],
) -> None:
    api, _ = servers
    assert run_http(rendered(_TASK.op_kwargs["spec"], item="release 4.2", q="a/../b&c"))
    basic = "Basic " + base64.b64encode(f"deployer:{PASSWORD}".encode()).decode()
    port = int(api.rsplit(":", 1)[1])
    assert _Recorder.seen == [(port, "/api/items/release%204.2/status?q=a/../b%26c", basic)]


@pytest.mark.parametrize(
    "value", ["../../admin", "..", "%2e%2e", "..%2Fadmin", "a%3fb", "a%23b", "a\\b", "."]
)
def test_a_value_that_would_leave_its_segment_fails_the_step_before_any_request(
    servers: tuple[str, str], value: str
) -> None:
    with pytest.raises(StepError, match=r"^\{\{ params\.item \}\} "):
        run_http(rendered(_TASK.op_kwargs["spec"], item=value))
    assert _Recorder.seen == []


def test_an_undo_refuses_the_same_values_through_the_one_registry(
    servers: tuple[str, str],
) -> None:
    step = _RUNBOOK.phases[0].steps[0]  # type: ignore[union-attr]
    assert step.rollback is not None
    spec = Actions(_RUNBOOK, Path(tempfile.gettempdir())).spec("get", step.rollback, None)
    context = {"params": {"item": "../../admin", "q": "x"}}
    with pytest.raises(StepError, match=r"\{\{ params\.item \}\} in the url's path holds '/'"):
        run_action(spec, context, _TASK.render_template)
    run_action(spec, {"params": {"item": "x", "q": "x"}}, _TASK.render_template)
    assert [path for _, path, _ in _Recorder.seen] == ["/api/items/x/undo"]


def test_a_full_url_beside_a_connection_gets_no_credentials(servers: tuple[str, str]) -> None:
    # A runbook that skipped validation: the worker refuses it on its own.
    _, other = servers
    spec = http_spec(Http.model_validate({"url": f"{other}/collect", "connection": "it_api"}))
    with pytest.raises(StepError, match="with connection 'it_api' the url must be a path"):
        run_http(rendered(spec))
    assert _Recorder.seen == []


def test_a_value_naming_the_host_is_refused_on_the_worker(servers: tuple[str, str]) -> None:
    _, other = servers
    spec = http_spec(Http.model_validate({"url": "{{ params.item }}/collect"}))
    for value in (other, other.removeprefix("http://"), ""):
        with pytest.raises(StepError, match=r"^\{\{ params\.item \}\} "):
            run_http(rendered(spec, item=value))
    assert _Recorder.seen == []
