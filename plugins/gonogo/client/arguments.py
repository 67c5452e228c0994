"""What the offline and the online commands read from their arguments the same way.

``gonogo rehearse`` and ``gonogo trigger`` both load a runbook file and take
``--param NAME=VALUE``: one reading, so a value rehearsed is the value triggered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gonogo.core.runbook.loader import load_file
from gonogo.core.runbook.model import Runbook
from gonogo.errors import RunbookError


def load_runbook(file: str, command: str) -> Runbook | int:
    """The runbook in ``file``, or the exit code after saying why there is none to use."""
    if not Path(file).exists():
        print(f"gonogo {command}: no such file: {file}", file=sys.stderr)
        return 2
    try:
        runbook, warnings = load_file(file)
    except RunbookError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in warnings:
        print(warning, file=sys.stderr)
    return runbook


def param_pair(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value
