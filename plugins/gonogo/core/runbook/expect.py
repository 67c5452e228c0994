"""Whether an HTTP response meets a runbook's ``expect``: pure, shared by http steps and checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


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
