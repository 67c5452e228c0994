"""The public API is what ``gonogo.__all__`` says."""

from __future__ import annotations

import inspect

import gonogo


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
