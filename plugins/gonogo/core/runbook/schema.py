"""The runbook JSON Schema, draft-07 flavoured so yaml-language-server can use it."""

from __future__ import annotations

import json
from typing import Any

from gonogo.core.runbook.model import Runbook

SCHEMA_ID = "https://gonogo.invalid/schema/runbook.schema.json"


def _draft07(node: Any) -> Any:
    """Rewrite pydantic's 2020-12 references (``$defs``) into draft-07 ``definitions``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = value.replace("#/$defs/", "#/definitions/")
            elif key == "discriminator":
                continue  # an OpenAPI keyword, not JSON Schema
            else:
                out["definitions" if key == "$defs" else key] = _draft07(value)
        return out
    if isinstance(node, list):
        return [_draft07(item) for item in node]
    return node


def _python_shorthand(schema: dict[str, Any]) -> None:
    """``python:`` also takes the short form ``"pkg.module:function"``."""
    for definition in schema.get("definitions", {}).values():
        prop = definition.get("properties", {}).get("python")
        if prop is not None:
            pattern = schema["definitions"]["Python"]["properties"]["callable"]["pattern"]
            choices = prop.get("anyOf", [prop])
            prop.clear()
            prop["anyOf"] = [{"type": "string", "pattern": pattern}, *choices]


def runbook_schema() -> dict[str, Any]:
    schema = _draft07(Runbook.model_json_schema(by_alias=True, mode="validation"))
    _python_shorthand(schema)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        **schema,
    }


def schema_text() -> str:
    return json.dumps(runbook_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
