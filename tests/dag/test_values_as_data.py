"""In the compiled DAG: values reach commands as data, runbook text shows as written, and the
DAG file keeps one runbook from hiding or replacing another.

Commands are rendered with the task's own Airflow renderer and run by a real bash,
the way a worker runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.templating import joined_url
from gonogo.dag.actions import Actions, _run_bash, run_exec
from gonogo.dag.builder import build_dag

RUNBOOK = """\
runbook: data
title: "Data {{ 7*7 }}"
service: svc
environment: test
change: {id: CHG1, type: standard}
roles:
  rm: {users: [a, b]}
params:
  msg: {type: string, default: hi}
phases:
  - gate: g
    title: "GO {{ x }}"
    sign_off: [rm]
    checklist: ["{# not a comment"]
    checks:
      - {id: c, bash: 'printf %s "$GONOGO_PARAM_MSG" > out.txt'}
  - id: p
    steps:
      - id: s
        bash: printf '%s' "$GONOGO_PARAM_MSG" > out.txt
        rollback: {bash: 'printf %s "$V" > out.txt', env: {V: "{{ params.msg ~ '' }}"}}
      - id: e
        exec: [python3, -c, "import sys; open('out.txt', 'w').write(sys.argv[1])", "{{ params.msg }}"]
        read_only: true
      - {id: m, manual: "Type {{ params.msg }} {% here", owner: rm, title: "{#"}
"""


def context(value: str) -> dict[str, Any]:
    return {
        "params": {"msg": value},
        "run_id": "r1",
        "dag_run": SimpleNamespace(triggering_user_name="u"),
    }


def run_spec(spec: dict[str, Any], value: str, render: Any) -> tuple[str, list[str]]:
    """Run a bash spec through the worker's own runner; what it wrote, and every file there."""
    folder = tempfile.mkdtemp()
    try:
        _run_bash({**spec, "cwd": folder}, context(value), render)
        written = Path(folder, "out.txt").read_bytes().decode("utf-8", "surrogateescape")
        return written, sorted(p.name for p in Path(folder).iterdir())
    finally:
        shutil.rmtree(folder)


def run_operator(task: Any, value: str) -> tuple[str, list[str]]:
    """Render a BashOperator's command and env as Airflow does, and run them with bash."""
    folder = tempfile.mkdtemp()
    try:
        command = task.render_template(task.bash_command, context(value))
        env = task.render_template(task.env, context(value))
        subprocess.run(["bash", "-c", command], cwd=folder, env={**os.environ, **env}, check=True)
        written = Path(folder, "out.txt").read_bytes().decode("utf-8", "surrogateescape")
        return written, sorted(p.name for p in Path(folder).iterdir())
    finally:
        shutil.rmtree(folder)


def run_exec_operator(task: Any, value: str) -> tuple[str, list[str]]:
    """Render an exec task's arguments and env as Airflow does, and run them with its runner."""
    folder = tempfile.mkdtemp()
    try:
        kwargs = task.render_template(task.op_kwargs, context(value))
        run_exec(kwargs["argv"], kwargs["env"], folder)
        written = Path(folder, "out.txt").read_bytes().decode("utf-8", "surrogateescape")
        return written, sorted(p.name for p in Path(folder).iterdir())
    finally:
        shutil.rmtree(folder)


_RUNBOOK, _ = load_text(RUNBOOK)
_DAG = build_dag(_RUNBOOK, Path(tempfile.gettempdir()))
_ACTIONS = Actions(_RUNBOOK, Path(tempfile.gettempdir()))
_CHECKS = _DAG.get_task("gate__g.checks")
_STEP = _RUNBOOK.phases[1].steps[0]  # type: ignore[union-attr]

VALUES = st.lists(
    st.one_of(
        st.sampled_from(["$(touch X)", "`touch X`", "'; touch X; '", '"', "{{ 7*7 }}", "\n{#"]),
        st.text(st.characters(blacklist_characters="\x00", codec="utf-8")),
    ),
    max_size=4,
).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_a_value_is_written_exactly_and_runs_nothing(value: str) -> None:
    render = _CHECKS.render_template
    check = _CHECKS.op_kwargs["checks"][0]
    undo = _ACTIONS.spec("s", _STEP.rollback, None)
    for written, files in (
        run_operator(_DAG.get_task("p.s"), value),
        run_exec_operator(_DAG.get_task("p.e"), value),
        run_spec(check, value, render),
        run_spec(undo, value, render),
    ):
        assert written == value
        assert files == ["out.txt"]


def test_runbook_text_in_gate_and_manual_requests_renders_as_written() -> None:
    ctx = context("v")
    gate = _DAG.get_task("gate__g.rm")
    assert gate.render_template(gate.subject, ctx) == "GO {{ x }}: Data {{ 7*7 }} (rm)"
    body = gate.render_template(gate.body, ctx)
    assert "**Data {{ 7*7 }}**" in body and "- [ ] {# not a comment" in body
    manual = _DAG.get_task("p.m")
    assert manual.render_template(manual.subject, ctx) == "Data {{ 7*7 }}: {#"
    assert manual.render_template(manual.body, ctx) == "Type {{ params.msg }} {% here"


def test_an_http_url_and_body_encode_their_values(tmp_path: Path) -> None:
    text = RUNBOOK.split("phases:")[0] + (
        "phases:\n  - id: p\n    steps:\n      - id: h\n        read_only: true\n"
        "        http: {url: 'https://h/a?v={{ params.msg }}', method: POST, "
        "body: '{\"v\": {{ params.msg }}}'}\n"
    )
    runbook, _ = load_text(text)
    task = build_dag(runbook, tmp_path).get_task("p.h")
    spec = task.render_template(task.op_kwargs["spec"], context('http://h/x?"&'))
    assert joined_url(spec["url"]) == "https://h/a?v=http%3A//h/x%3F%22%26"
    assert spec["body"] == '{"v": "http://h/x?\\"\\u0026"}'


# -- the DAG file ------------------------------------------------------------------------------

DAG_FILE = """\
# airflow dag file
from pathlib import Path
from gonogo.dag.folder import build_all
build_all(Path(__file__).with_name("runbooks"), globals())
"""


def small(runbook_id: str) -> str:
    return RUNBOOK.split("params:")[0].replace("runbook: data", f"runbook: {runbook_id}") + (
        "phases: [{id: p, steps: [{id: s, bash: run, read_only: true}]}]\n"
    )


def test_the_dag_file_keeps_its_own_names_and_refuses_both_copies_of_an_id(
    tmp_path: Path,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "loader.py").write_text(DAG_FILE)
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "a.yaml").write_text(small("twin"))
    (folder / "b.yaml").write_text(small("twin"))
    (folder / "c.yaml").write_text(small("build_all"))
    (folder / "d.yaml").write_text(small("Path"))
    (folder / "e.yaml").write_text(small("__file__"))
    bag = DagBag(dag_folder=str(tmp_path))
    assert sorted(bag.dag_ids) == ["Path", "build_all"]
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert sorted(errors) == ["a.yaml", "b.yaml", "e.yaml"]
    assert "a.yaml:1:1: runbook: runbook id 'twin' is also used by" in errors["a.yaml"]
    assert str(folder / "a.yaml") in errors["b.yaml"]
    assert "could be misread" in errors["e.yaml"]


def test_an_exec_value_that_would_be_an_option_fails_the_step(tmp_path: Path) -> None:
    import pytest

    from gonogo.dag.actions import value_arguments
    from gonogo.errors import StepError

    argv = ["tar", "-cf", "out.tar", "{{ params.msg }}"]
    assert value_arguments(argv) == [3]
    assert value_arguments(["tar", "-cf", "out.tar", "--", "{{ params.msg }}"]) == []
    with pytest.raises(StepError, match="read as an option"):
        run_exec(["tar", "-cf", "out.tar", "--to-command=touch X"], {}, str(tmp_path), None, [3])
    assert list(tmp_path.iterdir()) == []
    assert run_exec(["printf", "%s", "-x"], {}, str(tmp_path), None, []) == "-x"
