"""The public API is what ``gonogo.__all__`` says, and importing it stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import gonogo

PURE_CORE = [
    "gonogo",
    "gonogo.errors",
    "gonogo.model",
    "gonogo.loader",
    "gonogo.checks",
    "gonogo.plan",
    "gonogo.schema",
    "gonogo.cli",
]


def public_definitions() -> set[str]:
    """Public classes and functions in the package namespace that come from gonogo itself."""
    return {
        name
        for name, value in vars(gonogo).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.split(".")[0] == "gonogo"
    }


def test_every_name_in_all_exists() -> None:
    missing = [name for name in gonogo.__all__ if not hasattr(gonogo, name)]
    assert missing == []


def test_all_is_sorted_without_duplicates() -> None:
    assert gonogo.__all__ == sorted(set(gonogo.__all__))


def test_every_public_class_and_function_is_in_all() -> None:
    assert public_definitions() - set(gonogo.__all__) == set()


def test_importing_the_pure_core_does_not_import_airflow() -> None:
    code = (
        f"import {', '.join(PURE_CORE)}; import sys; "
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
