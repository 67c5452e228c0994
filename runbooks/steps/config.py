"""A stand-in configuration store kept as JSON under $GONOGO_STATE_DIR.

The functions take plain keyword arguments from the runbook; gonogo adds
``context`` (the Airflow task context) when the function accepts it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _store() -> Path:
    root = Path(os.environ.get("GONOGO_STATE_DIR") or Path(os.environ.get("TMPDIR", "/tmp"), "gonogo-state"))
    folder = root / os.environ.get("GONOGO_SERVICE", "demo")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "config.json"


def _read() -> dict[str, Any]:
    path = _store()
    return json.loads(path.read_text()) if path.exists() else {}


def set_value(key: str, value: Any) -> dict[str, Any]:
    """Set one value, keeping the old one so restore_value can put it back."""
    config = _read()
    config.setdefault("_previous", {})[key] = config.get(key)
    config[key] = value
    _store().write_text(json.dumps(config, indent=2))
    print(f"set {key} = {value!r} (was {config['_previous'][key]!r})")
    return {"key": key, "value": value}


def restore_value() -> None:
    """Put back every value set_value changed."""
    config = _read()
    for key, old in config.pop("_previous", {}).items():
        if old is None:
            config.pop(key, None)
        else:
            config[key] = old
        print(f"restored {key} = {old!r}")
    _store().write_text(json.dumps(config, indent=2))


def expect_value(key: str, value: Any) -> None:
    """Fail unless the store holds ``value`` for ``key``."""
    actual = _read().get(key)
    if str(actual) != str(value):
        raise ValueError(f"{key} is {actual!r}, expected {value!r}")
    print(f"{key} is {actual!r} as expected")
