"""The change-type policy: its defaults, an installation's overrides, and what the loader does with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gonogo import RunbookError
from gonogo.core.change.policy import (
    CHANGE_TYPES,
    DEFAULTS,
    ApprovalNeed,
    PolicyError,
    Rule,
    current_policy,
    parse_policy,
)
from gonogo.core.runbook.loader import load_text
from gonogo.core.settings import POLICY_ENV, PYTHON_PREFIXES_ENV

NEEDS: tuple[ApprovalNeed, ...] = ("required", "retrospective", "none")


@pytest.fixture(autouse=True)
def _no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.delenv(PYTHON_PREFIXES_ENV, raising=False)


# -- the defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change_type", "approval", "min_gates"),
    [("standard", "none", 0), ("normal", "required", 1), ("emergency", "retrospective", 1)],
)
def test_defaults_follow_the_hospital_process(
    change_type: str, approval: ApprovalNeed, min_gates: int
) -> None:
    assert DEFAULTS[change_type] == Rule(approval, min_gates)
    assert current_policy().rule(change_type, "prod") == Rule(approval, min_gates)


def test_without_a_setting_the_policy_is_the_defaults() -> None:
    policy = current_policy()
    assert policy.rules == DEFAULTS
    assert policy.environments == {}
    assert policy.source == "the defaults"


@pytest.mark.parametrize("text", ["", "# nothing set\n", "{}"])
def test_an_empty_policy_is_the_defaults(text: str) -> None:
    policy = parse_policy(text, "policy.yaml")
    assert policy.rules == DEFAULTS
    assert policy.environments == {}
    assert policy.source == "policy.yaml"


# -- overrides ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "change_type", "expected"),
    [
        ("normal: {min_gates: 2}", "normal", Rule("required", 2)),
        ("normal: {approval: none}", "normal", Rule("none", 1)),
        ("emergency: {approval: required, min_gates: 0}", "emergency", Rule("required", 0)),
        ("standard: {approval: required}", "standard", Rule("required", 0)),
    ],
)
def test_an_override_changes_only_the_fields_it_names(
    text: str, change_type: str, expected: Rule
) -> None:
    policy = parse_policy(text, "policy.yaml")
    assert policy.rules == {**DEFAULTS, change_type: expected}


def test_an_environment_inherits_the_top_level_overrides() -> None:
    policy = parse_policy(
        "normal: {min_gates: 2}\n"
        "emergency: {approval: required}\n"
        "environments:\n"
        "  test: {normal: {approval: none}}\n",
        "policy.yaml",
    )
    assert policy.rule("normal", "test") == Rule("none", 2)
    assert policy.rule("emergency", "test") == Rule("required", 1)
    assert policy.rule("standard", "test") == DEFAULTS["standard"]


def test_an_environment_not_named_gets_the_top_level_rules() -> None:
    policy = parse_policy(
        "normal: {min_gates: 2}\nenvironments: {test: {normal: {min_gates: 0}}}",
        "policy.yaml",
    )
    assert policy.rule("normal", "prod") == Rule("required", 2)
    assert policy.rule("normal", "test") == Rule("required", 0)


def test_an_environment_with_nothing_set_gets_the_top_level_rules() -> None:
    policy = parse_policy("normal: {min_gates: 3}\nenvironments: {test: }", "policy.yaml")
    assert policy.environments == {"test": {**DEFAULTS, "normal": Rule("required", 3)}}


@given(
    change_type=st.sampled_from(CHANGE_TYPES),
    approval=st.sampled_from(NEEDS),
    min_gates=st.integers(min_value=0, max_value=1000),
    env_gates=st.integers(min_value=0, max_value=1000),
)
def test_any_valid_override_is_taken_as_written(
    change_type: str, approval: ApprovalNeed, min_gates: int, env_gates: int
) -> None:
    text = yaml.safe_dump(
        {
            change_type: {"approval": approval, "min_gates": min_gates},
            "environments": {"test": {change_type: {"min_gates": env_gates}}},
        }
    )
    policy = parse_policy(text, "policy.yaml")
    assert policy.rules == {**DEFAULTS, change_type: Rule(approval, min_gates)}
    assert policy.rule(change_type, "test") == Rule(approval, env_gates)
    assert policy.rule(change_type, "prod") == Rule(approval, min_gates)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "minor: {min_gates: 1}",
            "policy.yaml: unknown change type 'minor'; use standard, normal, emergency",
            id="unknown change type",
        ),
        pytest.param(
            "normal: {gates: 2}",
            "policy.yaml: normal: expected {approval, min_gates}",
            id="unknown field",
        ),
        pytest.param(
            "normal: {approval: maybe}",
            "policy.yaml: normal.approval: expected one of required, retrospective, none, "
            "got 'maybe'",
            id="bad approval",
        ),
        pytest.param(
            "normal: {min_gates: -1}",
            "policy.yaml: normal.min_gates: expected a whole number >= 0",
            id="negative min_gates",
        ),
        pytest.param(
            "normal: {min_gates: true}",
            "policy.yaml: normal.min_gates: expected a whole number >= 0",
            id="bool min_gates",
        ),
        pytest.param(
            "- normal\n- emergency",
            "policy.yaml: expected a mapping of change types",
            id="a list",
        ),
        pytest.param("42", "policy.yaml: expected a mapping of change types", id="a number"),
        pytest.param(
            "environments: [test]",
            "policy.yaml: environments: expected a mapping of environment names",
            id="environments a list",
        ),
        pytest.param(
            "environments: {test: 3}",
            "policy.yaml: environments.test: expected a mapping of change types",
            id="environment not a mapping",
        ),
        pytest.param(
            "environments: {test: {minor: {}}}",
            "policy.yaml: environments.test: unknown change type 'minor'; use standard, "
            "normal, emergency",
            id="unknown change type in an environment",
        ),
        pytest.param(
            "environments: {test: {normal: {approval: yes}}}",
            "policy.yaml: environments.test.normal.approval: expected one of required, "
            "retrospective, none, got True",
            id="bad approval in an environment",
        ),
        pytest.param(
            "environments: {test: {normal: {min_gates: -1}}}",
            "policy.yaml: environments.test.normal.min_gates: expected a whole number >= 0",
            id="negative min_gates in an environment",
        ),
        pytest.param(
            "environments: {test: {normal: {min_gates: false}}}",
            "policy.yaml: environments.test.normal.min_gates: expected a whole number >= 0",
            id="bool min_gates in an environment",
        ),
    ],
)
def test_bad_policy_is_refused_naming_the_source_and_path(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "policy.yaml")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("normal: {gates: 2}", "normal"),
        ("normal: {approval: maybe}", "normal.approval"),
        ("normal: {min_gates: -1}", "normal.min_gates"),
        ("normal: {min_gates: true}", "normal.min_gates"),
        ("normal: {min_gates: 1.5}", "normal.min_gates"),
        ("normal: {min_gates: '2'}", "normal.min_gates"),
    ],
)
def test_a_bad_field_names_the_source_and_its_path(text: str, path: str) -> None:
    with pytest.raises(PolicyError, match=r"^policy\.yaml\b") as info:
        parse_policy(text, "policy.yaml")
    assert f"{path}: expected" in str(info.value)


def test_invalid_yaml_is_refused_naming_the_source() -> None:
    with pytest.raises(PolicyError, match=r"^policy\.yaml: not valid YAML: ") as info:
        parse_policy("normal: {approval: required", "policy.yaml")
    assert "line 1" in str(info.value)


def test_a_policy_error_is_a_value_error() -> None:
    # The loader and the CLI catch it as such.
    assert issubclass(PolicyError, ValueError)


# -- GONOGO_POLICY ------------------------------------------------------------------------------


def test_the_setting_names_a_policy_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# the hospital's policy\nnormal: {min_gates: 2}\n")
    monkeypatch.setenv(POLICY_ENV, str(path))
    policy = current_policy()
    assert policy.source == str(path)
    assert policy.rule("normal", "prod") == Rule("required", 2)


@pytest.mark.parametrize(
    "setting",
    [
        "normal: {min_gates: 2}\nenvironments: {test: {normal: {min_gates: 0}}}\n",
        "{normal: {min_gates: 2}, environments: {test: {normal: {min_gates: 0}}}}",
        "normal: {min_gates: 2}",
    ],
    ids=["block", "flow", "one line"],
)
def test_the_setting_may_be_the_yaml_itself(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv(POLICY_ENV, setting)
    policy = current_policy()
    assert policy.source == POLICY_ENV
    assert policy.rule("normal", "prod") == Rule("required", 2)


def test_an_environment_override_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "environments: {test: {normal: {approval: none}}}")
    assert current_policy().rule("normal", "test") == Rule("none", 1)
    assert current_policy().rule("normal", "prod") == Rule("required", 1)


def test_a_missing_policy_file_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.yaml"
    monkeypatch.setenv(POLICY_ENV, str(missing))
    with pytest.raises(PolicyError) as info:
        current_policy()
    assert str(info.value) == f"{POLICY_ENV}={missing}: cannot read it: No such file or directory"


def test_a_bad_policy_file_is_refused_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("environments: {test: {normal: {min_gates: -1}}}\n")
    monkeypatch.setenv(POLICY_ENV, str(path))
    with pytest.raises(PolicyError) as info:
        current_policy()
    assert str(info.value) == (
        f"{path}: environments.test.normal.min_gates: expected a whole number >= 0"
    )


def test_bad_inline_policy_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "environments: {test: {minor: {}}}")
    with pytest.raises(PolicyError, match=rf"^{POLICY_ENV}: environments\.test: unknown change"):
        current_policy()


# -- what the loader does with it ---------------------------------------------------------------

NORMAL = """\
runbook: demo
title: Demo change
service: demo
environment: ENV
change: {id: CHG1, type: normal}
roles:
  ops: {users: [alice]}
APPROVAL\
phases:
GATE\
  - id: work
    steps:
      - id: deploy
        owner: ops
        bash: echo deploy
        rollback: {bash: echo undo}
"""
ONE_GATE = "  - gate: go\n    sign_off: [ops]\n"


def runbook_text(environment: str, gate: str = "", approval: str = "") -> str:
    return NORMAL.replace("ENV", environment).replace("GATE", gate).replace("APPROVAL", approval)


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as info:
        load_text(text, "rb.yaml")
    return [str(p) for p in info.value.errors]


def test_the_policy_raises_the_gates_a_normal_change_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = runbook_text("prod", gate=ONE_GATE)
    load_text(text, "rb.yaml")  # one gate is enough by default
    monkeypatch.setenv(POLICY_ENV, "normal: {min_gates: 2}\n")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith("change:"))
    column = text.splitlines()[line - 1].index("normal") + 1
    assert problems_of(text) == [
        f"rb.yaml:{line}:{column}: change.type: a normal change needs at least 2 GO/NOGO "
        f"gates in phases, and this runbook has 1 (change policy for prod: {POLICY_ENV})"
    ]


def test_an_environment_may_need_no_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    text = runbook_text("test", approval="approval: {sign_off: [ops]}\n")
    assert problems_of(text)[0].endswith(
        "change.type: a normal change needs at least one GO/NOGO gate in phases, and this "
        "runbook has 0 (change policy for test: the defaults)"
    )
    monkeypatch.setenv(POLICY_ENV, "environments: {test: {normal: {min_gates: 0}}}")
    _runbook, problems = load_text(text, "rb.yaml")
    assert [p for p in problems if p.severity == "error"] == []
    # prod keeps the top-level rule
    assert "needs at least one GO/NOGO gate" in problems_of(runbook_text("prod", approval=""))[0]


def test_a_gateless_change_that_needs_approval_must_name_its_cab(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With no gate there is no first gate whose roles could approve the plan.
    monkeypatch.setenv(POLICY_ENV, "environments: {test: {normal: {min_gates: 0}}}")
    assert [re.sub(r"^rb\.yaml:\d+:\d+: ", "", p) for p in problems_of(runbook_text("test"))] == [
        "change.type: a normal change needs its plan approved: name the CAB roles in "
        "approval.sign_off"
    ]


def test_a_gateless_change_needing_no_approval_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "environments: {test: {normal: {min_gates: 0, approval: none}}}")
    _runbook, problems = load_text(runbook_text("test"), "rb.yaml")
    assert [p for p in problems if p.severity == "error"] == []


def test_an_unreadable_policy_is_a_located_problem_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(POLICY_ENV, str(tmp_path / "nowhere.yaml"))
    [problem] = problems_of(runbook_text("prod", gate=ONE_GATE))
    assert re.match(r"^rb\.yaml:\d+:\d+: change\.type: the change policy: ", problem)
    assert "nowhere.yaml: cannot read it" in problem
