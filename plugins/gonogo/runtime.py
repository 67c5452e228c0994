"""What gonogo's tasks do when they run on a worker.

The compiler wires these into Airflow's own operators (PythonOperator for http and
python steps). They log what they do, so a task log shows the request or the
callable and its result, and they raise :class:`~gonogo.errors.StepError` with a
readable reason when an expectation is not met.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.errors import StepError

log = logging.getLogger("gonogo")

BODY_SHOWN = 2000


# -- http ----------------------------------------------------------------------------------------


def _json_path(document: Any, path: str) -> Any:
    current = document
    for part in path.split("."):
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            raise KeyError(path)
    return current


def check_response(status: int, text: str, expect: Mapping[str, Any]) -> list[str]:
    """Every way the response misses the expectation; empty when it meets it."""
    misses = []
    wanted = expect.get("status", 200)
    allowed = wanted if isinstance(wanted, list) else [wanted]
    if status not in allowed:
        misses.append(f"status {status}, expected {' or '.join(map(str, allowed))}")
    if expect.get("contains") and expect["contains"] not in text:
        misses.append(f"the body does not contain {expect['contains']!r}")
    for path, value in (expect.get("json") or {}).items():
        try:
            actual = _json_path(json.loads(text), path)
        except (ValueError, KeyError):
            misses.append(f"the JSON body has no {path!r}")
            continue
        if actual != value and str(actual) != str(value):
            misses.append(f"{path} is {actual!r}, expected {value!r}")
    return misses


def _connection_auth(conn_id: str | None) -> tuple[str, Any, dict[str, str]]:
    """Base URL, auth and headers from an Airflow connection; the password is masked by Airflow."""
    if not conn_id:
        return "", None, {}
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    base = ""
    if conn.host:
        scheme = conn.schema or conn.conn_type if conn.conn_type in ("http", "https") else "https"
        base = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
        if conn.port:
            base = f"{base}:{conn.port}"
    auth = (conn.login, conn.password) if conn.login else None
    extra = conn.extra_dejson or {}
    headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
    return base, auth, headers


def run_http(spec: Mapping[str, Any], **_context: Any) -> dict[str, Any]:
    """Make the request; with ``until``, poll until the expectation holds or time runs out."""
    import requests

    base, auth, conn_headers = _connection_auth(spec.get("connection"))
    url = spec["url"]
    if base and "://" not in url:
        url = base.rstrip("/") + "/" + url.lstrip("/")
    headers = {**conn_headers, **(spec.get("headers") or {})}
    method = spec.get("method", "GET")
    expect = spec.get("expect") or {}
    until = spec.get("until")
    deadline = time.monotonic() + until["timeout"] if until else None
    attempt = 0
    log.info("http step: %s %s (expect %s)", method, url, json.dumps(expect, default=str))
    while True:
        attempt += 1
        try:
            response = requests.request(
                method,
                url,
                headers=headers,
                json=spec.get("json"),
                data=spec.get("body"),
                auth=auth,
                timeout=spec.get("request_timeout", 30),
                verify=spec.get("verify", True),
            )
            status, text = response.status_code, response.text
            misses = check_response(status, text, expect)
            log.info("attempt %d: HTTP %d, %d bytes", attempt, status, len(text))
            log.info("body: %s", text[:BODY_SHOWN] + (" …" if len(text) > BODY_SHOWN else ""))
        except requests.RequestException as exc:
            status, misses = 0, [f"request failed: {exc.__class__.__name__}: {exc}"]
            log.info("attempt %d: %s", attempt, misses[0])
        if not misses:
            log.info("expectation met")
            return {"status": status, "attempts": attempt}
        if until is None or deadline is None or time.monotonic() + until["interval"] > deadline:
            waited = f" after {attempt} attempts" if until else ""
            raise StepError(f"{method} {url}{waited}: {'; '.join(misses)}")
        log.info("not yet (%s); trying again in %ss", "; ".join(misses), until["interval"])
        time.sleep(until["interval"])


# -- python --------------------------------------------------------------------------------------


def import_callable(target: str, prefixes: tuple[str, ...], runbooks_dir: str) -> Any:
    """Import ``pkg.module:function``, only from the allowed module prefixes."""
    module_name, _, attr = target.partition(":")
    if not any(module_name == p or module_name.startswith(p + ".") for p in prefixes):
        raise StepError(
            f"module {module_name!r} is not under an allowed prefix ({', '.join(prefixes)})"
        )
    if runbooks_dir not in sys.path:
        sys.path.insert(0, runbooks_dir)
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def run_python(
    target: str, kwargs: Mapping[str, Any], prefixes: list[str], runbooks_dir: str, **context: Any
) -> Any:
    """Call a runbook's python step, passing ``context`` only when the function asks for it."""
    func = import_callable(target, tuple(prefixes), runbooks_dir)
    call_kwargs = dict(kwargs)
    if "context" in inspect.signature(func).parameters:
        call_kwargs["context"] = context
    log.info("python step: %s(%s)", target, ", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
    result = func(**call_kwargs)
    log.info("returned: %r", result)
    return result


# -- window --------------------------------------------------------------------------------------


def bound_to_window(window_end: str | None) -> Any:
    """A pre_execute hook: the task may run only until the window ends."""

    def hook(context: Mapping[str, Any]) -> None:
        if not window_end:
            return
        from airflow.sdk.exceptions import AirflowFailException

        end = datetime.fromisoformat(window_end)
        remaining = end - datetime.now(UTC)
        if remaining <= timedelta(0):
            raise AirflowFailException(f"the change window ended at {window_end}; not starting")
        task = context["task"]
        if task.execution_timeout is None or task.execution_timeout > remaining:
            task.execution_timeout = remaining

    return hook
