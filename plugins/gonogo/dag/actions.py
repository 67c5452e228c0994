"""One registry of runbook actions: bash, exec, http, python and manual.

Every place a runbook says what to run goes through here: forward steps,
undo actions, global rollback steps, gate checks and guided retries. So the
quoting of templates, the environment, the working directory, timeouts and the
error raised on failure are the same everywhere and cannot drift apart.

An action is used in one of two ways:

- :meth:`Actions.operator` builds the Airflow task for it when what runs is
  known when the DAG is built (forward steps, global rollback steps):
  BashOperator for bash, PythonOperator for exec, http and python, a HITL
  request for manual.
- :meth:`Actions.spec` turns it into plain data, and :func:`run_action` runs that
  inside a task that decides at run time what to run (undo slots, guided steps,
  gate checks), with the same command, environment and logging.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.operator import BaseOperator

from gonogo.core.runbook import templating
from gonogo.core.runbook.expect import check_response
from gonogo.core.runbook.model import Activity, Http, Runbook
from gonogo.core.runbook.shell import as_written, param_variable
from gonogo.core.runs.gates import literal
from gonogo.core.settings import DEFAULT_DECIDE_TIMEOUT, python_prefixes
from gonogo.core.timing.timeplan import TimePlan, time_plan
from gonogo.dag.hitl import ManualStepOperator
from gonogo.dag.hooks import Hook, Hooked, hooked
from gonogo.dag.journal import (
    ENDED,
    REASK_DELAY,
    RESERVED_TRIES,
    Interruptible,
    earlier_mark,
    final_failure,
    run_marked,
)
from gonogo.dag.states import Rehearsable, is_rehearsal
from gonogo.dag.window import bound_to_window
from gonogo.errors import StepError

log = logging.getLogger(__name__)

BODY_SHOWN = 2000
RETRY_PAUSE_SECONDS = 5


class CommandStep(Hooked, Interruptible):
    """A task whose command a crash can cut off: the next try asks a person (gonogo.dag.journal).

    :attr:`policy_retries` is the runbook's retries; the task has one more for the
    try that asks, which a usual failure does not spend.
    """

    policy_retries: int = 0

    def execute(self, context: Any) -> Any:
        mark = earlier_mark(context)
        if mark is not None:
            self.ask_after_interruption(context, mark)
        return self.run_command(context)

    def run_command(self, context: Any) -> Any:
        command = super().execute  # type: ignore[misc]  # BashOperator's or PythonOperator's
        try:
            return run_marked(context, self.what, lambda: command(context))
        except ENDED as exc:  # a timeout too: the reserved retry is for a crash only
            final = final_failure(context, self.policy_retries, exc)
            if final is exc:
                raise
            raise final from exc

    def run_again(self, context: Any) -> Any:
        return self.run_command(context)


class StepBashOperator(Rehearsable, CommandStep, BashOperator):
    """BashOperator that first logs the rendered command and where it runs, as one plain line."""

    def execute(self, context: Any) -> Any:
        if self.rehearsed is None:
            log.info("bash step: %s", str(self.bash_command).strip())
            log.info("working directory: %s", self.cwd)
        return super().execute(context)


class StepPythonOperator(Rehearsable, CommandStep, PythonOperator):
    """PythonOperator for http and python steps, which a rehearsal can stand in for."""


def rehearse_instead(spec: Mapping[str, Any] | None, step_id: str) -> Hook:
    """A pre_execute hook: in a rehearsal run, run ``spec`` (the rehearse action) instead, or nothing."""

    def hook(context: Any) -> None:
        task = context["task"]
        if not is_rehearsal(context):
            return
        if spec is None:
            log.info("rehearsal: step %s has no rehearse action, so nothing runs", step_id)
            task.rehearsed = (None,)
            return
        log.info("rehearsal: running the rehearse action of %s instead of the step", step_id)
        task.rehearsed = (run_action(spec, context, task.render_template),)

    return hook


class Actions:
    """Builds tasks and action specs for one runbook."""

    def __init__(self, runbook: Runbook, runbooks_dir: Path) -> None:
        self.runbook = runbook
        self.runbooks_dir = str(runbooks_dir.resolve())
        self.window_end = runbook.window.end.isoformat() if runbook.window else None
        self.deciders = deciders(runbook)
        self.decide_timeout = runbook.rollback.timeout or DEFAULT_DECIDE_TIMEOUT

    @cached_property
    def plan(self) -> TimePlan:
        """The runbook's time plan, made once per build: every gate and wait reads its begin."""
        return time_plan(self.runbook)

    def env(self, step_id: str, extra: Mapping[str, str]) -> dict[str, str]:
        """The environment of a bash or exec action: what the run is, every param, its own.

        Every value here is a template Airflow renders: it reaches the command
        as data and never passes through a shell.
        """
        runbook = self.runbook
        env = {
            "GONOGO_RUNBOOK": runbook.runbook,
            "GONOGO_SERVICE": runbook.service,
            "GONOGO_ENVIRONMENT": runbook.environment,
            "GONOGO_CHANGE_ID": runbook.change.id,
            "GONOGO_STEP": step_id,
            "GONOGO_RUN_ID": "{{ run_id }}",
            "GONOGO_TRIGGERED_BY": "{{ dag_run.triggering_user_name or '' }}",
        }
        for name in runbook.params:
            env[param_variable(name)] = (
                f"{{{{ params[{name!r}] if params[{name!r}] is not none else '' }}}}"
            )
        env.update(extra)
        return env

    def hooks(self, hook: Hook | None, *, in_window: bool) -> Hook | None:
        """``hook``, then (for work bound to the change window) the window check."""
        hooks = [h for h in (hook,) if h is not None]
        if in_window and self.window_end:
            hooks.append(bound_to_window(self.window_end))
        if not hooks:
            return None
        return hooks[0] if len(hooks) == 1 else chain(*hooks)

    def users(self, role: str) -> list[str]:
        return list(self.runbook.roles[role].users)

    def operator(
        self,
        task_id: str,
        action: Activity,
        *,
        step_id: str,
        owner: str | None,
        timeout: timedelta | None = None,
        retries: int = 0,
        before: Hook | None = None,
        after: Hook | None = None,
        in_window: bool = True,
        title: str | None = None,
        **kwargs: Any,
    ) -> BaseOperator:
        """The Airflow task for one action.

        ``in_window``: the task may only run inside the change window. Rollback
        tasks are not bound to it: undoing a change is never too late.
        """
        common: dict[str, Any] = {
            "task_id": task_id,
            "retries": retries,
            "execution_timeout": timeout,
            "doc_md": step_doc(step_id, owner),
            # Airflow's owner column shows the role; `gonogo decisions` reads it for manual steps.
            **({"owner": owner} if owner else {}),
            **kwargs,
        }
        hook = self.hooks(before, in_window=in_window)
        if action.manual is None:
            return hooked(
                self._command(action, step_id, title or step_id, retries, common), hook, after
            )
        assert action.manual is not None and owner is not None  # the rules guarantee both
        common.pop("execution_timeout")
        manual = ManualStepOperator(
            instruction=literal(action.manual),
            role=owner,
            users=self.users(owner),
            subject=literal(f"{self.runbook.title}: {title or step_id}"),
            response_timeout=timeout,
            **common,
        )
        return hooked(manual, hook, after)

    def _command(
        self, action: Activity, step_id: str, what: str, retries: int, common: dict[str, Any]
    ) -> StepBashOperator | StepPythonOperator:
        """A bash, http or python task, with a retry in reserve for a try a crash cuts off."""
        common["retries"] = retries + RESERVED_TRIES
        common.setdefault("retry_delay", REASK_DELAY)
        task: StepBashOperator | StepPythonOperator
        if action.bash is not None:
            task = StepBashOperator(
                bash_command=as_written(action.bash),
                env=self.env(step_id, action.env),
                append_env=True,
                cwd=self.runbooks_dir,
                skip_on_exit_code=None,
                **common,
            )
        elif action.exec is not None:
            task = StepPythonOperator(
                python_callable=run_exec,
                op_kwargs={
                    "argv": [templating.with_filter(a, None) for a in action.exec],
                    "values": value_arguments(action.exec),
                    "env": self.env(step_id, action.env),
                    "cwd": self.runbooks_dir,
                },
                **common,
            )
        elif action.http is not None:
            task = StepPythonOperator(
                python_callable=run_http, op_kwargs={"spec": http_spec(action.http)}, **common
            )
        else:
            assert action.python is not None
            task = StepPythonOperator(
                python_callable=run_python,
                op_kwargs={
                    "target": action.python.callable,
                    "kwargs": dict(action.python.kwargs),
                    "prefixes": list(python_prefixes()),
                    "runbooks_dir": self.runbooks_dir,
                },
                **common,
            )
        task.what = f"step {what}"
        task.policy_retries = retries
        task.deciders = self.deciders
        task.decide_timeout = self.decide_timeout
        return task

    def spec(self, step_id: str, action: Activity, owner: str | None) -> dict[str, Any]:
        """An action as plain data, for a task that decides at run time what it runs."""
        timeout = getattr(action, "timeout", None)
        spec: dict[str, Any] = {
            "kind": action.kind,
            "step": step_id,
            "retries": getattr(action, "retries", 0),
            "timeout": timeout.total_seconds() if timeout else None,
        }
        if action.bash is not None:
            spec.update(
                bash=as_written(action.bash),
                env=self.env(step_id, action.env),
                cwd=self.runbooks_dir,
            )
        elif action.exec is not None:
            spec.update(
                exec=[templating.with_filter(a, None) for a in action.exec],
                values=value_arguments(action.exec),
                env=self.env(step_id, action.env),
                cwd=self.runbooks_dir,
            )
        elif action.http is not None:
            spec["http"] = http_spec(action.http)
        elif action.python is not None:
            spec.update(
                callable=action.python.callable,
                kwargs=dict(action.python.kwargs),
                prefixes=list(python_prefixes()),
                runbooks_dir=self.runbooks_dir,
            )
        else:
            assert owner is not None  # the rules guarantee a manual action has an owner
            # Rendered as a template when the undo runs: literal, so it shows as written.
            spec.update(manual=literal(action.manual or ""), role=owner, users=self.users(owner))
        return spec


def deciders(runbook: Runbook) -> list[str]:
    """Who decides after a failure or a crash: decide_by, else the first sign-off role; their users."""
    roles = list(runbook.rollback.decide_by)
    if not roles and runbook.gates:
        roles = [runbook.gates[0].sign_off[0]]
    return sorted({u for r in roles for u in runbook.roles[r].users})


def http_spec(http: Http) -> dict[str, Any]:
    """An http action as plain data, durations in seconds, each template encoded for its place.

    The spec is rendered as a template just before the request: URL templates
    are URL-encoded, body templates JSON-encoded, and every other string
    (headers, expectations) keeps its templates as plain strings with the
    text around them literal (:mod:`gonogo.core.runbook.templating`).
    """
    spec: dict[str, Any] = _literal_strings(
        http.model_dump(by_alias=True, exclude_none=True, mode="json")
    )
    spec["url"] = templating.url_parts(http.url)  # each value apart, checked for its place
    if http.body is not None:
        spec["body"] = templating.json_body(http.body)
    if http.connection is not None:  # never rendered: a value must not choose the credentials
        spec["connection"] = literal(http.connection)
    spec["request_timeout"] = http.request_timeout.total_seconds()
    if http.until is not None:
        spec["until"] = {
            "interval": http.until.interval.total_seconds(),
            "timeout": http.until.timeout.total_seconds(),
        }
    return spec


def _literal_strings(value: Any) -> Any:
    """Every string in ``value`` with its templates kept and the text around them literal."""
    if isinstance(value, str):
        return templating.with_filter(value, None)
    if isinstance(value, dict):
        return {k: _literal_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_strings(v) for v in value]
    return value


def step_doc(step_id: str, owner: str | None) -> str:
    return f"`{step_id}`" + (f", owner: {owner}" if owner else "")


def chain(*hooks: Hook) -> Hook:
    """One pre_execute hook that runs ``hooks`` in order."""

    def run(context: Any) -> None:
        for hook in hooks:
            hook(context)

    return run


# -- running a spec inside a task --------------------------------------------------------------

Render = Callable[[Any, Any], Any]


def run_action(spec: Mapping[str, Any], context: Any, render: Render) -> Any:
    """Run a technical action spec with its own retries. ``render`` is the task's template renderer.

    Raises :class:`~gonogo.errors.StepError` when the last attempt fails.
    """
    run = RUNNERS[spec["kind"]]
    attempts = int(spec.get("retries", 0)) + 1
    for attempt in range(1, attempts + 1):
        try:
            return run(spec, context, render)
        except Exception as exc:
            if attempt == attempts:
                if isinstance(exc, StepError):
                    raise
                raise StepError(str(exc) or repr(exc)) from exc
            log.warning(
                "attempt %d of %d failed (%s); trying again in %ss",
                attempt,
                attempts,
                exc,
                RETRY_PAUSE_SECONDS,
            )
            time.sleep(RETRY_PAUSE_SECONDS)
    return None


def _run_bash(spec: Mapping[str, Any], context: Any, render: Render) -> Any:
    command = str(render(spec["bash"], context)).strip()
    log.info("bash: %s", command)
    return run_program(["bash", "-c", command], _rendered_env(spec, context, render), spec)


def _run_exec(spec: Mapping[str, Any], context: Any, render: Render) -> Any:
    argv = [str(render(a, context)) for a in spec["exec"]]
    env = _rendered_env(spec, context, render)
    return run_exec(argv, env, spec["cwd"], spec.get("timeout"), spec.get("values", []))


def _rendered_env(spec: Mapping[str, Any], context: Any, render: Render) -> dict[str, str]:
    return {k: str(render(v, context)) for k, v in spec["env"].items()}


def value_arguments(argv: Sequence[str]) -> list[int]:
    """The arguments that are a template alone, before any ``--``: a value there could be an option."""
    found = []
    for index, argument in enumerate(argv):
        if argument == "--":
            break
        if templating.templates(argument) and _WHOLE_TEMPLATE.fullmatch(argument):
            found.append(index)
    return found


_WHOLE_TEMPLATE = re.compile(r"\s*{{.*}}\s*", re.S)


def run_exec(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str,
    timeout: float | None = None,
    values: Sequence[int] = (),
) -> str:
    """An exec action: ``argv`` run without a shell, each element one argument as rendered.

    ``values``: the arguments that are a template alone (:func:`value_arguments`);
    one that renders to text starting with ``-`` would be read as an option
    (``--to-command=…``), so the step fails instead, naming the argument.
    """
    for index in values:
        if argv[index].startswith("-"):
            raise StepError(
                f"argument {index} of exec would start with '-' and be read as an option; "
                "put -- before the values in exec:, or give the param a pattern"
            )
    log.info("exec: %s", shlex.join(argv))
    return run_program(argv, env, {"cwd": cwd, "timeout": timeout})


def run_program(argv: list[str], env: Mapping[str, str], spec: Mapping[str, Any]) -> str:
    """Run ``argv`` in its own process group, log its output, and kill the group on timeout.

    ``env`` comes on top of the task's own environment. The program is looked up
    as POSIX does, relative to the working directory when it names a path.
    """
    what = "bash" if argv[:2] == ["bash", "-c"] else argv[0]
    log.info("working directory: %s", spec["cwd"])
    timeout = spec.get("timeout")
    try:
        process = subprocess.Popen(
            argv,
            cwd=spec["cwd"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except OSError as exc:  # no such program, not executable
        raise StepError(f"cannot run {what}: {exc.strerror or exc}") from None
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise StepError(f"{what} did not finish within {timeout:g}s and was killed") from None
    except BaseException:  # the task itself is being stopped: take the command down with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    for line in output.splitlines():
        log.info("%s", line)
    last = (output.strip().splitlines() or [""])[-1]
    if process.returncode != 0:
        raise StepError(f"{what} exited with {process.returncode}: {last}")
    return last


def _run_http(spec: Mapping[str, Any], context: Any, render: Render) -> Any:
    return run_http(render(spec["http"], context))


def _run_python(spec: Mapping[str, Any], context: Any, render: Render) -> Any:
    return run_python(
        spec["callable"],
        render(spec["kwargs"], context),
        spec["prefixes"],
        spec["runbooks_dir"],
        **context,
    )


RUNNERS: dict[str, Callable[[Mapping[str, Any], Any, Render], Any]] = {
    "bash": _run_bash,
    "exec": _run_exec,
    "http": _run_http,
    "python": _run_python,
}


class ActionRunner:
    """A mixin for operators that run an action spec they pick at run time."""

    # ``render_template`` comes from BaseOperator, which every user of this mixin also is.
    render_template: Any

    def run_action(self, spec: Mapping[str, Any], context: Any) -> Any:
        return run_action(spec, context, self.render_template)


# -- what http and python actions do on the worker --------------------------------------------


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


def _request_url(spec: Mapping[str, Any], base: str) -> str:
    """The URL to request: a connection's credentials go only to its own host.

    Raises :class:`~gonogo.errors.StepError` when a value would choose the host
    or leave its path segment (:func:`gonogo.core.runbook.templating.joined_url`).
    """
    url = templating.joined_url(spec["url"])
    connection = spec.get("connection")
    if not connection:
        return url
    if not url.startswith("/") or url.startswith("//"):
        raise StepError(
            f"with connection {connection!r} the url must be a path starting with '/'; "
            "the host comes from the connection"
        )
    if not base:
        raise StepError(f"connection {connection!r} has no host for the url's path")
    return base.rstrip("/") + url


def run_http(spec: Mapping[str, Any], **_context: Any) -> dict[str, Any]:
    """Make the request; with ``until``, poll until the expectation holds or time runs out."""
    import requests

    base, auth, conn_headers = _connection_auth(spec.get("connection"))
    url = _request_url(spec, base)
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
