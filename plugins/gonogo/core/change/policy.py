"""What each change type needs before and during a rollout (seed 001 §3.4), per installation.

Pure: no Airflow import. The defaults follow the hospital process:

=========  ======================================  ===========
type       plan approval (CAB)                     gates
=========  ======================================  ===========
standard   none: pre-approved and routine          0 or more
normal     required before the rollout starts      at least 1
emergency  retrospective: runs, then flagged       at least 1
           until the CAB approves it afterwards
=========  ======================================  ===========

An installation changes them with ``GONOGO_POLICY``: a YAML file (or the YAML
itself) of the same shape, overriding any field, also per environment::

    normal: {approval: required, min_gates: 2}
    environments:
      test: {normal: {approval: none}}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from gonogo.core.settings import POLICY_ENV

ApprovalNeed = Literal["required", "retrospective", "none"]
CHANGE_TYPES = ("standard", "normal", "emergency")
_NEEDS = ("required", "retrospective", "none")


class PolicyError(ValueError):
    """The installation's policy cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Rule:
    """What one change type needs."""

    approval: ApprovalNeed
    min_gates: int


DEFAULTS: dict[str, Rule] = {
    "standard": Rule("none", 0),
    "normal": Rule("required", 1),
    "emergency": Rule("retrospective", 1),
}


@dataclass(frozen=True)
class Policy:
    rules: dict[str, Rule]
    environments: dict[str, dict[str, Rule]]
    source: str = "the defaults"

    def rule(self, change_type: str, environment: str) -> Rule:
        """The rule for a change of ``change_type`` in ``environment``."""
        return self.environments.get(environment, self.rules)[change_type]


def parse_policy(text: str, source: str) -> Policy:
    """A policy from its YAML; unknown keys and bad values are errors naming ``source``."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping of change types")
    overrides = dict(data)
    per_env = overrides.pop("environments", None) or {}
    rules = _rules(DEFAULTS, overrides, source, "")
    if not isinstance(per_env, dict):
        raise PolicyError(f"{source}: environments: expected a mapping of environment names")
    environments = {
        str(env): _rules(rules, given or {}, source, f"environments.{env}.")
        for env, given in per_env.items()
    }
    return Policy(rules, environments, source)


def _rules(base: dict[str, Rule], given: Any, source: str, path: str) -> dict[str, Rule]:
    """``base`` with the overrides in ``given``; errors say ``source: <path>field: why``."""
    at = f"{source}: {path.rstrip('.')}: " if path else f"{source}: "
    if not isinstance(given, dict):
        raise PolicyError(f"{at}expected a mapping of change types")
    rules = dict(base)
    for change_type, fields in given.items():
        where = f"{source}: {path}{change_type}"
        if change_type not in CHANGE_TYPES:
            raise PolicyError(
                f"{at}unknown change type {change_type!r}; use {', '.join(CHANGE_TYPES)}"
            )
        if not isinstance(fields, dict) or set(fields) - {"approval", "min_gates"}:
            raise PolicyError(f"{where}: expected {{approval, min_gates}}")
        rule = rules[change_type]
        if "approval" in fields:
            if fields["approval"] not in _NEEDS:
                raise PolicyError(
                    f"{where}.approval: expected one of {', '.join(_NEEDS)}, "
                    f"got {fields['approval']!r}"
                )
            rule = replace(rule, approval=cast(ApprovalNeed, fields["approval"]))
        if "min_gates" in fields:
            count = fields["min_gates"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise PolicyError(f"{where}.min_gates: expected a whole number >= 0")
            rule = replace(rule, min_gates=count)
        rules[change_type] = rule
    return rules


def current_policy() -> Policy:
    """The installation's policy: ``GONOGO_POLICY`` (a file, or the YAML itself), else the defaults."""
    return _policy(os.environ.get(POLICY_ENV, "").strip())


@lru_cache(maxsize=4)
def _policy(setting: str) -> Policy:
    if not setting:
        return Policy(dict(DEFAULTS), {})
    inline = "\n" in setting or setting.startswith("{") or ": " in setting
    if not inline:
        path = Path(setting)
        try:
            return parse_policy(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise PolicyError(f"{POLICY_ENV}={setting}: cannot read it: {exc.strerror}") from None
    return parse_policy(setting, POLICY_ENV)
