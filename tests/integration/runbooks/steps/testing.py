"""Callables for the integration-test runbooks."""

from __future__ import annotations


def greet(name: str) -> str:
    print(f"hello, {name}")
    return f"greeted {name}"
