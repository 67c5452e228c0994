"""``gonogo early-life``: the early-life status of a runbook as a file, like ``gonogo report``.

It reads the same JSON the Early life page renders (:mod:`gonogo.server.pages`)
and writes Markdown, the page as one HTML file, or the JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote


def early_life_command(args: argparse.Namespace) -> int:
    from gonogo.client.commands import _client
    from gonogo.core.documents.earlylife import support_html, support_markdown
    from gonogo.core.earlylife.agenda import agenda_html, agenda_markdown

    params = {"run_id": args.run_id} if args.run_id else {}
    path = f"/early-life/{quote(args.runbook, safe='')}" + ("/agenda" if args.agenda else "")
    data = _client().gonogo(path, **params)
    if args.format == "json":
        text = json.dumps(data, indent=2) + "\n"
    elif args.agenda:
        text = agenda_html(data) if args.format == "html" else agenda_markdown(data, data["title"])
    elif args.format == "html":
        text = support_html(data, refresh=None)
    else:
        text = support_markdown(data)
    print(text, end="")
    return 0


def add_early_life_command(commands: Any) -> None:
    early = commands.add_parser(
        "early-life", help="print the early-life status after go-live: areas by rounds, colours"
    )
    early.add_argument("runbook", help="the runbook id (or its .early_life DAG id)")
    early.add_argument("--run-id", default=None, help="an early-life run (default: the latest)")
    early.add_argument(
        "--agenda", action="store_true", help="the next leadership meeting's agenda instead"
    )
    early.add_argument("--format", choices=["md", "html", "json"], default="md")
    early.set_defaults(func=early_life_command)
