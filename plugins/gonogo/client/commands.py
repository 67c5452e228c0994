"""``gonogo trigger``, ``watch``, ``decisions``, ``gates``, ``answer``: the REST API as the caller.

``trigger`` starts a run through ``POST /api/v2/dags/{dag}/dagRuns`` with the
caller's token, so gonogo's API-server middleware records who started it exactly
as for a run started in the UI (four-eyes then applies at every gate). ``watch``
reads the run view's JSON, the one the pages render, and prints it as text.

Connection settings come from the environment (``GONOGO_AIRFLOW_URL``,
``GONOGO_USERNAME``, ``GONOGO_PASSWORD``) or from a config file
(``$GONOGO_CONFIG``, default ``~/.config/gonogo/client.ini``)::

    [airflow]
    url = http://localhost:8080
    username = relman
    password = …

There is deliberately no ``--password`` option: a password on the command line
ends up in shell history and in the process list.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shlex
import stat
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gonogo.client.api import UNREACHABLE_PATIENCE, AirflowClient
from gonogo.client.arguments import load_runbook, param_pair
from gonogo.client.runs import owners, read_run
from gonogo.core import naming
from gonogo.core.documents.board import RUN_ROUTE
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs.decisions import decisions, table, to_json
from gonogo.core.settings import LOCK_POOL
from gonogo.errors import ApprovalRefused, ClientError, RehearsalError, Unreachable


def _settings() -> tuple[str, str, str]:
    path = Path(
        os.environ.get("GONOGO_CONFIG") or Path.home() / ".config" / "gonogo" / "client.ini"
    )
    file: dict[str, str] = {}
    if path.exists():
        parser = configparser.ConfigParser()
        parser.read(path)
        file = dict(parser["airflow"]) if parser.has_section("airflow") else {}
        if "password" in file and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            print(
                f"gonogo: warning: {path} holds a password and is readable by others; chmod 600 it",
                file=sys.stderr,
            )
    url = os.environ.get("GONOGO_AIRFLOW_URL") or file.get("url") or "http://localhost:8080"
    username = os.environ.get("GONOGO_USERNAME") or file.get("username")
    password = os.environ.get("GONOGO_PASSWORD") or file.get("password")
    if not username or not password:
        raise ClientError(
            f"no credentials: set GONOGO_USERNAME and GONOGO_PASSWORD, or write them to {path}"
        )
    return url, username, password


def _client() -> AirflowClient:
    return AirflowClient(*_settings())


def run_link(base_url: str, dag_id: str, run_id: str) -> str:
    """The run's gonogo view inside the Airflow UI."""
    return (
        f"{base_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plugin/{RUN_ROUTE}"
    )


def trigger_conf(runbook: Runbook, given: list[tuple[str, str]], rehearsal: bool) -> dict[str, Any]:
    """The run conf for ``--param`` values, read and checked as ``gonogo rehearse`` reads them.

    Only the params given are sent (Airflow fills in the defaults). Raises
    :class:`RehearsalError` for an unknown param, one given twice or a value the
    param refuses.
    """
    from gonogo.core.runs.rehearse import param_values

    names = [name for name, _ in given]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RehearsalError(f"param {', '.join(twice)} given more than once")
    if naming.REHEARSAL_PARAM in names:
        raise RehearsalError(
            f"{naming.REHEARSAL_PARAM!r} is gonogo's own param: use --rehearsal instead"
        )
    values = param_values(runbook, dict(given))
    conf = {name: values[name] for name in names}
    if rehearsal:
        conf[naming.REHEARSAL_PARAM] = True
    return conf


def _trigger(args: argparse.Namespace) -> int:
    runbook = load_runbook(args.runbook, "trigger")
    if isinstance(runbook, int):
        return runbook
    try:
        conf = trigger_conf(runbook, args.param, args.rehearsal)
    except RehearsalError as exc:
        print(f"gonogo trigger: {exc}", file=sys.stderr)
        return 2
    client = _client()
    dag_id = runbook.runbook
    run_id = client.trigger(dag_id, conf)
    kind = "rehearsal" if args.rehearsal else "run"
    print(run_id)
    print(
        f"started {kind} of {dag_id} as {client.username}: {run_link(client.base_url, dag_id, run_id)}"
    )
    print(f"follow it: gonogo watch {shlex.quote(dag_id)} {shlex.quote(run_id)}")
    return 0


#: Clears a terminal and puts the cursor top left, before each frame of ``gonogo watch``.
_CLEAR = "\033[H\033[2J"


def _watch(args: argparse.Namespace) -> int:
    """Print the run view as text until the run ends: 0 if it succeeded, else 1.

    On a terminal each refresh redraws the screen; into a pipe or a file a frame
    is printed only when it changed. ``--once`` prints one frame: 0 unless the
    run has ended other than succeeded.
    """
    from gonogo.core.documents.watch import finished, succeeded, watch_frame

    client = _client()
    path = f"/runs/{quote(args.dag_id, safe='')}/{quote(args.run_id, safe='')}"
    live = sys.stdout.isatty() and not args.once
    shown: str | None = None
    unreachable_since: float | None = None
    while True:
        try:
            data = client.gonogo(path)
        except Unreachable as exc:
            # The API server may be restarting mid-rollout: keep watching for a while.
            unreachable_since = unreachable_since or time.monotonic()
            if args.once or time.monotonic() - unreachable_since > UNREACHABLE_PATIENCE:
                raise
            if live:
                print(f"{exc}; trying again", file=sys.stderr)
            time.sleep(args.every)
            continue
        unreachable_since = None
        frame = watch_frame(data)
        if live:
            footer = f"updated {datetime.now().strftime('%H:%M:%S')}, every {args.every:g}s"
            sys.stdout.write(_CLEAR + frame + footer + ("\n" if finished(data) else ""))
        elif frame != shown:
            sys.stdout.write(("\n" if shown is not None else "") + frame)
        sys.stdout.flush()
        shown = frame
        if finished(data):
            return 0 if succeeded(data) else 1
        if args.once:
            return 0
        time.sleep(args.every)


def _every(text: str) -> float:
    value = float(text)
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected seconds from 1 to 3600")
    return value


def _decisions(args: argparse.Namespace) -> int:
    """The run's decision log and events, read as the pages and the run note read them."""
    client = _client()
    record = read_run(client, args.dag_id, args.run_id)
    rows = decisions(record.requests, owners(client, args.dag_id))
    events = [e.data for e in record.events]
    preflight = client.xcom(args.dag_id, args.run_id, naming.PREFLIGHT_TASK) or {}
    show = to_json if args.format == "json" else table
    print(show(rows, events, preflight))
    return 0


def _gates(args: argparse.Namespace) -> int:
    client = _client()
    waiting = [
        d
        for d in client.hitl_details(pending=True)
        if any(u.get("id") == client.username for u in d.get("assigned_users") or [])
    ]
    if args.format == "json":
        print(json.dumps(waiting, indent=2, default=str))
        return 0
    if not waiting:
        print(f"Nothing is waiting for {client.username}.")
    for d in waiting:
        ti = d["task_instance"]
        print(f"{ti['dag_id']}  {ti['dag_run_id']}  {ti['task_id']}  {d['subject']}")
    return 0


def _answer(args: argparse.Namespace) -> int:
    client = _client()
    pending = [
        d
        for d in client.hitl_details(args.dag_id, args.run_id, pending=True)
        if (gate := naming.parse_gate_task(d["task_instance"]["task_id"])) is not None
        and gate.gate == args.gate
        and gate.role == args.role
    ]
    if not pending:
        raise ClientError(
            f"no open request for role {args.role!r} at gate {args.gate!r} in {args.run_id}"
        )
    task_id = pending[0]["task_instance"]["task_id"]
    option = naming.GO if args.go else naming.NOGO
    try:
        client.answer_or_raise(args.dag_id, args.run_id, task_id, option, args.comment)
    except ApprovalRefused as exc:
        raise ApprovalRefused(f"Airflow refused the answer: {exc}") from None
    print(f"{option} recorded for {args.role} at {args.gate} by {client.username}.")
    return 0


def _confirm(args: argparse.Namespace) -> int:
    """Answer a manual step (Done or Failed), as the Required Actions page would."""
    option = naming.DONE if args.done else naming.FAILED
    if option in naming.NEEDS_REASON and not (args.comment or "").strip():
        raise ApprovalRefused(f"{option} needs a comment that says what went wrong")
    client = _client()
    pending = [
        d
        for d in client.hitl_details(args.dag_id, args.run_id, pending=True)
        if naming.parse_gate_task(task_id := d["task_instance"]["task_id"]) is None
        and args.step in (task_id, task_id.rpartition(".")[2])
    ]
    if not pending:
        raise ClientError(f"no open request for step {args.step!r} in {args.run_id}")
    task_id = pending[0]["task_instance"]["task_id"]
    try:
        client.answer_or_raise(args.dag_id, args.run_id, task_id, option, args.comment)
    except ApprovalRefused as exc:
        raise ApprovalRefused(f"Airflow refused the answer: {exc}") from None
    print(f"{option} recorded for {task_id} by {client.username}.")
    return 0


def _report(args: argparse.Namespace) -> int:
    """The run's report, from the same data the report page shows."""
    from gonogo.core.documents.report import report_html, report_json, report_markdown

    client = _client()
    data = client.gonogo(f"/report/{quote(args.dag_id, safe='')}/{quote(args.run_id, safe='')}")
    base = client.base_url + "/"
    if args.format == "json":
        text = report_json(data)
    elif args.format == "html":
        text = report_html(data, base)
    else:
        text = report_markdown(data, base)
    print(text, end="")
    return 0


def _setup(args: argparse.Namespace) -> int:
    """Create, or repair, the one-slot pool inside which rollout locks are claimed."""
    client = _client()
    found = client.request("GET", f"/pools/{LOCK_POOL}")
    description = "gonogo: one rollout lock claim at a time; keep exactly 1 slot"
    if found.status_code == 404:
        client.call(
            "POST", "/pools", json={"name": LOCK_POOL, "slots": 1, "description": description}
        )
        print(f"created the pool {LOCK_POOL} with 1 slot")
    elif found.status_code >= 400:
        raise ClientError(f"could not read the pool {LOCK_POOL}: {found.status_code}")
    elif found.json().get("slots") != 1:
        client.call(
            "PATCH",
            f"/pools/{LOCK_POOL}",
            json={
                "name": LOCK_POOL,
                "slots": 1,
                "description": description,
                "include_deferred": bool(found.json().get("include_deferred")),
            },
        )
        print(f"the pool {LOCK_POOL} had {found.json().get('slots')} slots; it has 1 now")
    else:
        print(f"the pool {LOCK_POOL} is in place with 1 slot")
    return 0


def add_client_commands(commands: Any) -> None:
    setup = commands.add_parser(
        "setup", help="create the lock pool gonogo needs in Airflow (an admin's credentials)"
    )
    setup.set_defaults(func=_setup)

    trigger = commands.add_parser(
        "trigger", help="start a rollout of a runbook as me, as the UI would"
    )
    trigger.add_argument("runbook", metavar="RUNBOOK", help="the runbook file")
    trigger.add_argument(
        "--param",
        type=param_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for one of the runbook's params (repeatable; default: the param's default)",
    )
    trigger.add_argument(
        "--rehearsal", action="store_true", help="steps run their rehearse actions"
    )
    trigger.set_defaults(func=_trigger)

    watch = commands.add_parser(
        "watch",
        help="follow a run: activity, who is awaited, forecast; exit 0 if it succeeded, else 1",
    )
    watch.add_argument("dag_id", metavar="DAG")
    watch.add_argument("run_id", metavar="RUN")
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    watch.add_argument(
        "--every", type=_every, default=5.0, metavar="SECONDS", help="refresh interval (5)"
    )
    watch.set_defaults(func=_watch)

    show = commands.add_parser("decisions", help="print a run's decision log")
    show.add_argument("dag_id")
    show.add_argument("run_id")
    show.add_argument("--format", choices=["table", "json"], default="table")
    show.set_defaults(func=_decisions)

    gates = commands.add_parser("gates", help="list the gate requests waiting for me")
    gates.add_argument("--format", choices=["table", "json"], default="table")
    gates.set_defaults(func=_gates)

    answer = commands.add_parser("answer", help="answer a gate for one role")
    answer.add_argument("dag_id")
    answer.add_argument("run_id")
    answer.add_argument("gate")
    answer.add_argument("--role", required=True)
    choice = answer.add_mutually_exclusive_group(required=True)
    choice.add_argument("--go", action="store_true")
    choice.add_argument("--nogo", action="store_true")
    answer.add_argument("--comment", default=None, help="why; required with --nogo")
    answer.set_defaults(func=_answer)

    confirm = commands.add_parser("confirm", help="answer a manual step: Done or Failed")
    confirm.add_argument("dag_id")
    confirm.add_argument("run_id")
    confirm.add_argument("step", help="the step id (or its task id, phase.step)")
    done = confirm.add_mutually_exclusive_group(required=True)
    done.add_argument("--done", action="store_true")
    done.add_argument("--failed", action="store_true")
    confirm.add_argument(
        "--comment", default=None, help="what you did or saw; required with --failed"
    )
    confirm.set_defaults(func=_confirm)

    report = commands.add_parser("report", help="print a run's report")
    report.add_argument("dag_id")
    report.add_argument("run_id")
    report.add_argument("--format", choices=["md", "html", "json"], default="md")
    report.set_defaults(func=_report)
