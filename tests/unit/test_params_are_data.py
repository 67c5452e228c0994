"""Param values and other template values reach shell commands only as data.

The scanner in :mod:`gonogo.core.shell` turns each whole-word ``{{ … }}`` into a
quoted environment variable and refuses every other place; these tests pin
each accepted and refused form, the located validation errors, and (with
hypothesis and a real bash) that no value ever runs as code.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gonogo.core.gates import gate_body, literal
from gonogo.core.loader import load_text
from gonogo.core.model import Phase
from gonogo.core.shell import scan, to_environment, unsafe_templates
from gonogo.core.templating import json_body, quoted_in_json, url
from gonogo.errors import RunbookError

# -- accepted forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("install.sh {{ params.v }}", 'install.sh "$GONOGO_PARAM_V"'),
        ("x {{ params['app-v'] }}", 'x "$GONOGO_PARAM_APP_V"'),
        ("x {{ params.v | shquote }}", 'x "$GONOGO_PARAM_V"'),
        ("a;b {{ params.v }}|c>{{ params.v }}", 'a;b "$GONOGO_PARAM_V"|c>"$GONOGO_PARAM_V"'),
        ("(cd d && run {{ params.v }})", '(cd d && run "$GONOGO_PARAM_V")'),
        ("echo $(date) `id` {{ params.v }}", 'echo $(date) `id` "$GONOGO_PARAM_V"'),
        ("if true; then echo {{ params.v }}; fi", 'if true; then echo "$GONOGO_PARAM_V"; fi'),
        ("echo 'it''s' \"q\" {{ params.v }}", "echo 'it''s' \"q\" \"$GONOGO_PARAM_V\""),
        ("A=1 run {{ params.v }}", 'A=1 run "$GONOGO_PARAM_V"'),
        ("echo hi # {{ params.v }}", 'echo hi # "$GONOGO_PARAM_V"'),
        ("bash x.sh {{ params.v }}", 'bash x.sh "$GONOGO_PARAM_V"'),
        ("tee <<< {{ params.v }}", 'tee <<< "$GONOGO_PARAM_V"'),
    ],
)
def test_a_whole_word_template_becomes_a_quoted_variable(command: str, expected: str) -> None:
    assert unsafe_templates(command) == []
    assert to_environment(command)[0] == expected


def test_any_other_expression_moves_into_the_environment_once() -> None:
    command, env = to_environment("run {{ run_id }} {{ var.value.x }} {{run_id}}")
    assert command == 'run "$GONOGO_VALUE_1" "$GONOGO_VALUE_2" "$GONOGO_VALUE_1"'
    assert env == {"GONOGO_VALUE_1": "{{ run_id }}", "GONOGO_VALUE_2": "{{ var.value.x }}"}


def test_the_rest_of_a_command_renders_exactly_as_written() -> None:
    command = "echo ${#a[@]} {% raw %} {{ params.v }}"
    text, _ = to_environment(command)
    rendered = jinja2.Environment().from_string(text).render()
    assert rendered == 'echo ${#a[@]} {% raw %} "$GONOGO_PARAM_V"'


# -- refused forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ('echo "Deploying {{ params.v }} now"', "inside double quotes"),
        ("echo 'tag {{ params.v }}'", "inside single quotes"),
        ("run --v={{ params.v }}", "part of a larger word"),
        ("run {{ params.v }}.tar", "part of a larger word"),
        ("cat <<EOF\n{{ params.v }}\nEOF", "in a heredoc"),
        ("echo `echo {{ params.v }}`", "inside backticks"),
        ("echo $(echo {{ params.v }})", "inside $( … )"),
        ("echo ${x:-{{ params.v }}}", "inside ${ … }"),
        ("echo $'{{ params.v }}'", "inside $'…' quotes"),
        ("echo $(( {{ params.v }} + 1 ))", "arithmetic"),
        ("(( {{ params.v }} > 1 ))", "arithmetic"),
        ("[[ {{ params.v }} -eq 1 ]]", "inside [[ … ]]"),
        ("{{ params.v }} --help", "as the command itself"),
        ("true; {{ params.v }}", "as the command itself"),
        ("eval {{ params.v }}", "as an argument of eval"),
        ("sudo {{ params.v }}", "as an argument of sudo"),
        ("bash -c {{ params.v }}", "bash -c"),
        ("echo {{- params.v }}", "whitespace control"),
        ("case x in a) echo {{ params.v }};; esac", "after case"),
        ("echo 'open {{ params.v }}", "inside single quotes"),
    ],
)
def test_a_template_that_cannot_be_a_safe_word_is_refused(command: str, reason: str) -> None:
    found = unsafe_templates(command)
    assert len(found) == 1
    assert found[0].unsafe is not None and reason in found[0].unsafe
    with pytest.raises(ValueError, match=r"GONOGO_PARAM_V|cannot be used"):
        to_environment(command)


def test_scan_finds_every_template_with_its_place() -> None:
    found = scan("a {{ params.v }} '{{ run_id }}'")
    assert [(f.expression, f.unsafe) for f in found] == [
        ("params.v", None),
        ("run_id", "inside single quotes"),
    ]


HEAD = """\
runbook: data
title: Data
service: svc
environment: test
change: {id: CHG1, type: standard}
roles:
  rm: {users: [a]}
params:
  msg: {type: string, default: hi}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        load_text(text, "r.yaml")
    return [str(p) for p in caught.value.errors]


def test_a_quoted_param_in_a_step_is_a_located_error_with_the_safe_spelling() -> None:
    text = (
        HEAD
        + """\
phases:
  - id: p
    steps:
      - id: s
        bash: echo "Deploying {{ params.msg }} now"
        read_only: true
"""
    )
    assert problems_of(text) == [
        'r.yaml:14:15: phases[0].steps[0].bash: write "$GONOGO_PARAM_MSG" instead of '
        "{{ params.msg }} inside double quotes"
    ]


def test_every_kind_of_command_is_checked() -> None:
    text = (
        HEAD
        + """\
phases:
  - gate: g
    sign_off: [rm]
    checks:
      - {id: c, bash: "test '{{ params.msg }}'"}
  - id: p
    steps:
      - id: s
        bash: run --m={{ params.msg }}
        rollback: {bash: "undo `{{ params.msg }}`"}
rollback:
  steps:
    - {id: g1, bash: "echo \\"{{ run_id }}\\""}
"""
    )
    found = problems_of(text)
    assert [p.split(": ", 2)[1] for p in found] == [
        "phases[0].checks[0].bash",
        "phases[1].steps[0].bash",
        "phases[1].steps[0].rollback.bash",
        "rollback.steps[0].bash",
    ]
    assert 'write "$RUN_ID" with env: {RUN_ID: "{{ run_id }}"}' in found[-1]


def test_a_template_quoted_inside_a_json_body_is_refused() -> None:
    text = (
        HEAD
        + """\
phases:
  - id: p
    steps:
      - id: s
        http: {url: "https://x/api", method: POST, body: '{"v": "{{ params.msg }}"}'}
        read_only: true
"""
    )
    assert "without quotes around it" in problems_of(text)[0]


def test_an_undeclared_param_in_brackets_is_refused() -> None:
    text = HEAD + "phases: [{id: p, steps: [{id: s, bash: \"run {{ params['nope'] }}\"}]}]\n"
    assert "{{ params.nope }} names no declared param" in problems_of(text)[0]


def test_params_that_would_share_a_variable_are_refused() -> None:
    text = HEAD.replace("params:\n", "params:\n  a-b: {}\n  a_b: {}\n") + (
        "phases: [{id: p, steps: [{id: s, bash: run, read_only: true}]}]\n"
    )
    assert "would share the environment variable GONOGO_PARAM_A_B" in problems_of(text)[0]


# -- http --------------------------------------------------------------------------------------


def test_http_values_are_encoded_for_their_place() -> None:
    render = jinja2.Environment().from_string
    value = 'a b?x=1&y"#{#'
    assert render(url("http://h:1/p/{{ v }}")).render(v=value) == (
        "http://h:1/p/a%20b%3Fx%3D1%26y%22%23%7B%23"
    )
    assert render(json_body('{"v": {{ v }}}')).render(v=value) == ('{"v": "a b?x=1\\u0026y\\"#{#"}')
    assert quoted_in_json('{"a": "x{{ v }}", "b": {{ v }}}') == ["v"]


# -- every value stays data, whatever it holds -------------------------------------------------

COMMANDS = {
    "step": "printf '%s' {{ params.msg }}",
    "check": "printf %s {{ params.msg | shquote }}",
    "undo": "cd . && printf '%s' {{ params.msg ~ '' }}",
}

NASTY = st.sampled_from(
    ["$(touch X)", "`touch X`", "'; touch X; '", '"; touch X; "', "{{ 7*7 }}", "{% if %}", "\n"]
)
VALUES = st.lists(
    st.one_of(NASTY, st.text(st.characters(blacklist_characters="\x00", codec="utf-8"))),
    max_size=4,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_no_value_runs_as_code_in_a_step_a_check_or_an_undo(value: str) -> None:
    jinja = jinja2.Environment()
    context = {"params": {"msg": value}}
    for command in COMMANDS.values():
        text, values = to_environment(command)
        rendered = jinja.from_string(text).render(**context)
        env = {k: jinja.from_string(v).render(**context) for k, v in values.items()}
        env["GONOGO_PARAM_MSG"] = value
        with tempfile.TemporaryDirectory() as folder:
            result = subprocess.run(
                ["bash", "-c", rendered],
                cwd=folder,
                env={**os.environ, **env},
                capture_output=True,
                check=True,
            )
            assert result.stdout.decode("utf-8", "surrogateescape") == value
            assert list(Path(folder).iterdir()) == []


# -- runbook text is shown literally -----------------------------------------------------------


def test_template_syntax_in_titles_and_checklists_validates_and_shows_literally() -> None:
    text = (
        HEAD.replace("title: Data", "title: 'Upgrade {{ 7*7 }}'")
        + """\
phases:
  - gate: g
    title: "GO {{ x }}"
    sign_off: [rm]
    checklist: ["{# not a comment", "{% if %} odd"]
  - id: p
    steps: [{id: s, manual: "Type {{ params.msg }} {#", owner: rm}]
"""
    )
    runbook, _ = load_text(text)
    jinja = jinja2.Environment()
    gate = runbook.gates[0]
    body = jinja.from_string(gate_body(runbook, gate, "rm")).render(
        run_id="r", dag_run={"triggering_user_name": "u"}
    )
    assert "**Upgrade {{ 7*7 }}**" in body
    assert "- [ ] {# not a comment" in body and "- [ ] {% if %} odd" in body
    subject = f"{gate.title}: {runbook.title} (rm)"
    assert jinja.from_string(literal(subject)).render() == subject
    phase = runbook.phases[1]
    assert isinstance(phase, Phase)
    manual = phase.steps[0].manual or ""
    assert jinja.from_string(literal(manual)).render() == manual


@pytest.mark.parametrize(
    ("runbook_id", "refused"),
    [("__file__", True), ("__x", True), ("x__", True), ("build_all", False), ("a__b", False)],
)
def test_a_runbook_id_python_could_misread_is_refused(runbook_id: str, refused: bool) -> None:
    text = HEAD.replace("runbook: data", f"runbook: {runbook_id}") + (
        "phases: [{id: p, steps: [{id: s, bash: run, read_only: true}]}]\n"
    )
    if refused:
        assert "could be misread" in problems_of(text)[0]
        assert problems_of(text)[0].startswith("r.yaml:1:10: runbook:")
    else:
        load_text(text)


def test_a_role_name_with_a_space_is_refused_at_its_key() -> None:
    text = HEAD.replace("  rm: {users: [a]}", "  rm: {users: [a]}\n  release manager: {users: [b]}")
    text += "phases: [{id: p, steps: [{id: s, bash: run, read_only: true}]}]\n"
    assert problems_of(text) == [
        "r.yaml:8:3: roles.release manager: role name 'release manager' is not a valid id: "
        "letters, digits, '_' and '-', starting with a letter, digit or '_'"
    ]
