"""Param values and other template values reach commands only as data.

Shell text runs as written: a template anywhere in it is refused with the
spelling to use (:mod:`gonogo.core.runbook.shell`); values reach bash as environment
variables and ``exec:`` as single arguments. These tests pin the located
errors and warnings, and (with hypothesis and a real bash) that no value
ever runs as code and no template in shell text ever validates.
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

from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.model import Phase
from gonogo.core.runbook.rules import code_arguments
from gonogo.core.runbook.shell import as_written, evaluated, templates_in
from gonogo.core.runbook.templating import json_body, quoted_in_json, url
from gonogo.core.runs.gates import gate_body, literal
from gonogo.errors import RunbookError

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


def warnings_of(text: str) -> list[str]:
    _, problems = load_text(text, "r.yaml")
    return [str(p) for p in problems if p.severity == "warning"]


def steps(*commands: str) -> str:
    lines = ["phases:", "  - id: p", "    steps:"]
    for i, command in enumerate(commands):
        lines += [f"      - id: s{i}", f"        bash: {command}", "        read_only: true"]
    return HEAD + "\n".join(lines) + "\n"


# -- no template in shell text -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "install.sh {{ params.msg }}",
        'echo "Deploying {{ params.msg }} now"',
        "for (( i=0; i<{{ params.msg }}; i++ )); do :; done",
        "echo $[ {{ params.msg }} + 1 ]",
        "[ -v {{ params.msg }} ]",
        "run() { eval {{ params.msg }}; }; run",
        "bash <<< {{ params.msg }}",
        "echo {{ params.msg }} | sh",
        "x {% if true %}y{% endif %}",
        "x {{ params.msg",
    ],
)
def test_a_template_anywhere_in_shell_text_is_refused(command: str) -> None:
    assert templates_in(command)
    with pytest.raises(RunbookError):
        load_text(steps(repr(command)), "r.yaml")


def test_a_param_in_shell_text_is_a_located_error_with_the_spelling_to_use() -> None:
    text = steps("'echo \"Deploying {{ params.msg }} now\"'")
    assert problems_of(text) == [
        "r.yaml:14:15: phases[0].steps[0].bash: {{ params.msg }} in shell text: write "
        '"$GONOGO_PARAM_MSG" instead (every param is in the environment; a value is never '
        'shell text), or use exec: [program, …, "{{ params.msg }}"]'
    ]


def test_every_kind_of_shell_command_is_checked() -> None:
    text = (
        HEAD
        + """\
phases:
  - gate: g
    sign_off: [rm]
    checks:
      - {id: c, bash: "test {{ params.msg }}"}
  - id: p
    steps:
      - id: s
        bash: run {{ params.msg }}
        rollback: {bash: "undo {{ params.msg }}"}
        rehearse: {bash: "dry {{ params.msg }}"}
rollback:
  steps:
    - {id: g1, bash: "echo {{ run_id }}"}
"""
    )
    found = problems_of(text)
    assert [p.split(": ", 2)[1] for p in found] == [
        "phases[0].checks[0].bash",
        "phases[1].steps[0].bash",
        "phases[1].steps[0].rollback.bash",
        "phases[1].steps[0].rehearse.bash",
        "rollback.steps[0].bash",
    ]
    assert 'set it in env: (RUN_ID: "{{ run_id }}") and write "$RUN_ID"' in found[-1]


def test_the_spelled_out_forms_validate_and_run_the_value_as_data() -> None:
    text = (
        HEAD
        + """\
phases:
  - id: p
    steps:
      - id: s
        bash: printf '%s|%s' "$GONOGO_PARAM_MSG" "$RUN"
        env: {RUN: "{{ run_id }}"}
        read_only: true
      - id: e
        exec: [printf, "%s", "{{ params.msg }}"]
        read_only: true
"""
    )
    runbook, problems = load_text(text, "r.yaml")
    assert [p for p in problems if p.severity == "error"] == []
    assert runbook.phases[0].steps[1].exec == ["printf", "%s", "{{ params.msg }}"]  # type: ignore[union-attr]


def test_the_rest_of_a_command_renders_exactly_as_written() -> None:
    command = "echo ${#a[@]} {#"
    assert jinja2.Environment().from_string(as_written(command)).render() == command
    assert as_written("scripts/app.sh").endswith(".sh ")  # not read as a template file


# -- where the runbook's own shell runs a value's variable as code: a warning ------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ('for (( i=0; i<"$GONOGO_PARAM_MSG"; i++ )); do :; done', "arithmetic"),
        ("echo $(( GONOGO_PARAM_MSG + 1 ))", "arithmetic"),
        ('echo $[ "$GONOGO_PARAM_MSG" + 1 ]', "arithmetic"),
        ('[[ 1 -eq "$GONOGO_PARAM_MSG" ]]', "arithmetic"),
        ('[ -v "$GONOGO_PARAM_MSG" ]', "arithmetic"),
        ('echo "${a[$GONOGO_PARAM_MSG]}"', "arithmetic"),
        ('run() { eval "$GONOGO_PARAM_MSG"; }', "passed to eval"),
        ("$'eval' \"$GONOGO_PARAM_MSG\"", "passed to eval"),
        ('/bin/sh -c "$GONOGO_PARAM_MSG"', "passed to sh"),
        ('find . -exec sh -c "$GONOGO_PARAM_MSG" \\;', "passed to find"),
        ('bash <<< "$GONOGO_PARAM_MSG"', "here-string into bash"),
        ('echo "$GONOGO_PARAM_MSG" | sh', "piped into sh"),
        ('source <(printf %s "$GONOGO_PARAM_MSG")', "source <(…)"),
        ('time -p eval "$GONOGO_PARAM_MSG"', "passed to time"),
        ('echo "${GONOGO_PARAM_MSG@P}"', "prompt"),
        ('echo "${!GONOGO_PARAM_MSG}"', "variable name"),
        ('echo "${v:$GONOGO_PARAM_MSG}"', "arithmetic"),
        ("a[$GONOGO_PARAM_MSG]=1", "arithmetic"),
        ("bash <<EOF\necho $GONOGO_PARAM_MSG\nEOF", "here-document"),
        ('"$GONOGO_PARAM_MSG" --version', "run as the program"),
        ('echo "$GONOGO_PARAM_MSG" | cat | sh', "piped into sh"),
        ('docker exec c sh -c "$GONOGO_PARAM_MSG"', "sh -c"),
    ],
)
def test_a_value_variable_evaluated_as_code_is_found(command: str, says: str) -> None:
    found = evaluated(command, ["GONOGO_PARAM_MSG"])
    assert any(says in line for line in found), found


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ('{BASH_ENV: "{{ params.msg }}"}', True),
        ('{"BASH_FUNC_echo%%": "() { x; }"}', True),
        ('{LD_PRELOAD: "{{ params.msg }}"}', True),
        ('{PATH: "{{ params.msg }}"}', True),
        ('{PYTHONSTARTUP: "{{ params.msg }}"}', True),
        ('{TOKEN: "{{ params.msg }}"}', False),
        ("{BASH_ENV: /etc/profile.d/ours.sh}", False),  # the runbook's own text, not a value
    ],
)
def test_a_value_from_a_template_never_sets_a_variable_programs_read(
    env: str, refused: bool
) -> None:
    text = HEAD.replace("default: hi}", "default: hi, pattern: '^[a-z]+$'}") + (
        f"phases: [{{id: p, steps: [{{id: s, bash: 'echo ok', env: {env}, read_only: true}}]}}]\n"
    )
    if not refused:
        load_text(text, "r.yaml")
        return
    (problem,) = problems_of(text)
    assert "phases[0].steps[0].env." in problem


def test_a_value_variable_used_as_data_is_not_flagged() -> None:
    assert (
        evaluated('scripts/app.sh install "$GONOGO_PARAM_MSG" | tee log', ["GONOGO_PARAM_MSG"])
        == []
    )


def test_validate_warns_where_a_variable_is_evaluated_and_for_a_free_form_string() -> None:
    found = warnings_of(steps("'eval \"$GONOGO_PARAM_MSG\"'"))
    assert any("passed to eval" in w and "phases[0].steps[0].bash" in w for w in found), found
    assert any("param 'msg' reaches a command" in w and "pattern or an enum" in w for w in found)
    constrained = HEAD.replace("default: hi}", "default: hi, pattern: '^[a-z]+$'}")
    found = warnings_of(constrained + steps("'echo \"$GONOGO_PARAM_MSG\"'").removeprefix(HEAD))
    assert not any("reaches a command" in w for w in found), found


# -- exec: one argument each, never the program or code ----------------------------------------


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["scripts/app.sh", "install", "{{ params.msg }}"], []),
        (["{{ params.msg }}", "x"], [0]),
        (["bash", "-c", "{{ params.msg }}"], [2]),
        (["bash", "scripts/x.sh", "{{ params.msg }}"], []),
        (["python3", "-c", "{{ params.msg }}"], [2]),
        (["ssh", "host", "run", "{{ params.msg }}"], [3]),
        (["sudo", "-u", "app", "sh", "-c", "{{ params.msg }}"], [5]),
        (["timeout", "30", "{{ params.msg }}"], [2]),
        (["env", "A={{ params.msg }}", "scripts/x.sh"], []),
        (["docker", "exec", "c", "sh", "-c", "{{ params.msg }}"], [5]),
        (["kubectl", "exec", "pod", "--", "bash", "-c", "{{ params.msg }}"], [6]),
        (["find", ".", "-exec", "sh", "-c", "{{ params.msg }}", ";"], [5]),
        (["/usr/bin/python3.11", "-c", "{{ params.msg }}"], [2]),
        (["sed", "-n", "{{ params.msg }}", "file"], [2]),
        (["env", "-S{{ params.msg }}"], [1]),
        (["busybox", "sh", "-c", "{{ params.msg }}"], [3]),
        (["scripts/app.sh", "--version={{ params.msg }}"], []),
        # A program whose name only ends like a shell's is no shell; each shell is one.
        (["publish", "{{ params.msg }}"], []),
        (["refresh", "{{ params.msg }}"], []),
        (["mksh", "-c", "{{ params.msg }}"], [2]),
        (["fish", "-c", "{{ params.msg }}"], [2]),
    ],
)
def test_an_exec_template_is_an_argument_never_the_program_or_code(
    argv: list[str], refused: list[int]
) -> None:
    assert [i for i, _ in code_arguments(argv)] == refused


def test_an_exec_template_as_code_is_a_located_error() -> None:
    text = (
        HEAD
        + 'phases: [{id: p, steps: [{id: s, exec: [sh, -c, "{{ params.msg }}"], read_only: true}]}]\n'
    )
    (problem,) = problems_of(text)
    assert (
        "phases[0].steps[0].exec[2]" in problem and "the code, script or an option of sh" in problem
    )


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

NASTY = st.sampled_from(
    ["$(touch X)", "`touch X`", "'; touch X; '", '"; touch X; "', "{{ 7*7 }}", "{% if %}", "\n"]
)
VALUES = st.lists(
    st.one_of(NASTY, st.text(st.characters(blacklist_characters="\x00", codec="utf-8"))),
    max_size=4,
).map("".join)
#: Shell text with a template put anywhere in it: every one must be refused.
SHELL_TEXT = st.text(st.sampled_from(list("ab $;|&'\"`(){}[]<>\\#=\n-")), max_size=12)
TEMPLATE = st.sampled_from(
    [
        "{{ params.msg }}",
        "{{params.msg|shquote}}",
        "{{ run_id }}",
        "{%- raw %}",
        "{{- params.msg -}}",
    ]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=SHELL_TEXT, template=TEMPLATE, after=SHELL_TEXT)
def test_a_template_anywhere_in_random_shell_text_never_validates(
    before: str, template: str, after: str
) -> None:
    command = before + template + after
    text = (
        HEAD
        + f"phases: [{{id: p, steps: [{{id: s, bash: {json_string(command)}, read_only: true}}]}}]\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_text(text, "r.yaml")
    assert any("in shell text" in str(p) or "template block" in str(p) for p in caught.value.errors)


def json_string(text: str) -> str:
    import json

    return json.dumps(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_no_value_runs_as_code_in_bash_or_exec(value: str) -> None:
    jinja = jinja2.Environment()
    with tempfile.TemporaryDirectory() as folder:
        for argv in (
            ["bash", "-c", jinja.from_string(as_written('printf %s "$GONOGO_PARAM_MSG"')).render()],
            [
                jinja.from_string(a).render(params={"msg": value})
                for a in ["printf", "%s", "{{ params.msg }}"]
            ],
        ):
            result = subprocess.run(
                argv,
                cwd=folder,
                env={**os.environ, "GONOGO_PARAM_MSG": value},
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


# -- ShellCheck, as warnings in `gonogo validate` ----------------------------------------------


def test_validate_reports_shellcheck_findings_located_on_the_command(tmp_path: Path) -> None:
    from gonogo.core.runbook.loader import load_files
    from gonogo.core.runbook.shellcheck import shellcheck_problems

    file = tmp_path / "r.yaml"
    file.write_text(steps("'cd /srv && rm -rf \"$dir\"/*'", "'echo fine'"))
    (item,) = load_files([file])
    assert item.runbook is not None and item.source is not None
    found = [str(p) for p in shellcheck_problems([(item.runbook, item.source)])]
    assert any("phases[0].steps[0].bash: ShellCheck SC2115" in p for p in found), found
    assert not any("steps[1]" in p for p in found)
    assert all(": warning: " in p for p in found)
