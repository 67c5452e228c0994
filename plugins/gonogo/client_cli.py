"""``gonogo decisions``, ``gonogo gates`` and ``gonogo answer``: the REST API as the caller.

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
import stat
import sys
from pathlib import Path
from typing import Any

from gonogo.client import AirflowClient
from gonogo.decisions import decisions, table, to_json
from gonogo.errors import ApprovalRefused, ClientError


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


def _events(client: AirflowClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for task_id in client.task_instances(dag_id, run_id):
        if task_id.endswith(".watch"):
            found += client.xcom(dag_id, run_id, task_id, key="events") or []
    return found


def _decisions(args: argparse.Namespace) -> int:
    client = _client()
    rows = decisions(client.hitl_details(args.dag_id, args.run_id))
    events = _events(client, args.dag_id, args.run_id)
    print(to_json(rows, events) if args.format == "json" else table(rows, events))
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
    prefix = f"gate__{args.gate}.{args.role}"
    pending = [
        d
        for d in client.hitl_details(args.dag_id, args.run_id, pending=True)
        if d["task_instance"]["task_id"] == prefix
        or d["task_instance"]["task_id"].startswith(prefix + "__round_")
    ]
    if not pending:
        raise ClientError(
            f"no open request for role {args.role!r} at gate {args.gate!r} in {args.run_id}"
        )
    task_id = pending[0]["task_instance"]["task_id"]
    option = "GO" if args.go else "NOGO"
    try:
        client.answer_or_raise(args.dag_id, args.run_id, task_id, option, args.comment)
    except ApprovalRefused as exc:
        raise ApprovalRefused(f"Airflow refused the answer: {exc}") from None
    print(f"{option} recorded for {args.role} at {args.gate} by {client.username}.")
    return 0


def add_client_commands(commands: Any) -> None:
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
