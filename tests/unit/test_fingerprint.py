"""The plan fingerprint: what the CAB approves is what runs, whatever the YAML looks like.

A runbooks folder is built under ``tmp_path`` with a ``scripts/`` folder and a
``steps/`` package, and runbooks are loaded with the real loader, so every
test goes through :func:`gonogo.core.change.fingerprint.fingerprint` as the DAGs do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gonogo.core.change.fingerprint import (
    SHORT,
    Fingerprint,
    changes,
    fingerprint,
    referenced_files,
)
from gonogo.core.runbook.loader import load_text
from gonogo.core.runbook.model import Runbook
from gonogo.core.settings import POLICY_ENV, PYTHON_PREFIXES_ENV

BASE = """\
runbook: demo
title: Demo change
service: demo
environment: test
change: {id: CHG1, type: standard}
roles:
  ops: {users: [alice]}
params:
  version: {default: "1.0"}
  target: {default: blue}
phases:
  - id: work
    title: Work
    steps:
      - id: deploy
        owner: ops
        planned: 60m
        bash: scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback: {bash: scripts/y.sh}
      - id: configure
        owner: ops
        python: steps.mod:fn
"""

#: The same runbook as BASE, written differently. None of these may change the fingerprint.
REWRITTEN = {
    "comments and blank lines": """\
# A runbook for the demo service.
runbook: demo   # the DAG id

title: Demo change
service: demo
environment: test
change: {id: CHG1, type: standard}  # pre-approved
roles:
  # who may act
  ops: {users: [alice]}
params:
  version: {default: "1.0"}
  target: {default: blue}
phases:
  - id: work
    title: Work
    steps:
      # first the install, then the configuration
      - id: deploy
        owner: ops
        planned: 60m
        bash: scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback: {bash: scripts/y.sh}   # undo

      - id: configure
        owner: ops
        python: steps.mod:fn
""",
    "key order": """\
phases:
  - steps:
      - bash: scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback: {bash: scripts/y.sh}
        planned: 60m
        owner: ops
        id: deploy
      - python: steps.mod:fn
        id: configure
        owner: ops
    title: Work
    id: work
params:
  target: {default: blue}
  version: {default: "1.0"}
roles:
  ops: {users: [alice]}
change: {type: standard, id: CHG1}
environment: test
service: demo
title: Demo change
runbook: demo
""",
    "quoting style": """\
"runbook": 'demo'
title: "Demo change"
service: 'demo'
environment: "test"
change: {id: 'CHG1', type: "standard"}
roles:
  ops: {users: ["alice"]}
params:
  version: {default: '1.0'}
  target: {default: 'blue'}
phases:
  - id: "work"
    title: 'Work'
    steps:
      - id: 'deploy'
        owner: "ops"
        planned: '60m'
        bash: 'scripts/x.sh "$GONOGO_PARAM_VERSION"'
        rollback: {bash: 'scripts/y.sh'}
      - id: configure
        owner: ops
        python: "steps.mod:fn"
""",
    "block style": """\
runbook: demo
title: Demo change
service: demo
environment: test
change:
  id: CHG1
  type: standard
roles:
  ops:
    users:
      - alice
params:
  version:
    default: "1.0"
  target:
    default: blue
phases:
  - id: work
    title: Work
    steps:
      - id: deploy
        owner: ops
        planned: 60m
        bash: >-
          scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback:
          bash: scripts/y.sh
      - id: configure
        owner: ops
        python: steps.mod:fn
""",
    "flow style": """\
{runbook: demo, title: Demo change, service: demo, environment: test,
 change: {id: CHG1, type: standard}, roles: {ops: {users: [alice]}},
 params: {version: {default: "1.0"}, target: {default: blue}},
 phases: [{id: work, title: Work, steps: [
   {id: deploy, owner: ops, planned: 60m, bash: 'scripts/x.sh "$GONOGO_PARAM_VERSION"',
    rollback: {bash: scripts/y.sh}},
   {id: configure, owner: ops, python: "steps.mod:fn"}]}]}
""",
    "defaults written out": """\
runbook: demo
title: Demo change
service: demo
environment: test
change: {id: CHG1, type: standard}
roles:
  ops: {users: [alice], contact: null}
params:
  version: {type: string, default: "1.0"}
  target: {type: string, default: blue}
notify: []
incident: {priority: P2, manager: incident_manager}
phases:
  - id: work
    title: Work
    steps:
      - id: deploy
        owner: ops
        planned: 60m
        retries: 0
        retry_delay: 30s
        read_only: false
        env: {}
        bash: scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback: {bash: scripts/y.sh, retries: 1}
      - id: configure
        owner: ops
        retries: 0
        python: {callable: "steps.mod:fn", kwargs: {}}
rollback: {mode: automatic, steps: []}
""",
    "durations spelled differently": BASE.replace("planned: 60m", "planned: 1h"),
}

#: Edits that change where, when and by whom, not what runs: (old, new, the change reported).
CONTEXT_EDITS = {
    "environment": ("environment: test\n", "environment: prod\n", "runbook section environment"),
    "window": (
        "change: {id: CHG1, type: normal}\n",
        "change: {id: CHG1, type: normal}\n"
        "window: {start: '2030-01-01T20:00:00+00:00', end: '2030-01-01T23:00:00+00:00'}\n",
        "runbook section window",
    ),
    "roles": ("ops: {users: [alice]}", "ops: {users: [alice, bob]}", "runbook section roles"),
    "runbook id": ("runbook: demo\n", "runbook: demo-prod\n", "runbook section runbook"),
    "change record": ("id: CHG1,", "id: CHG2,", "runbook section change"),
    "title": ("title: Demo change\n", "title: Demo change in prod\n", "runbook section title"),
    "gate sign_off": ("sign_off: [ops]", "sign_off: [ops, cab]", "gate go"),
}

#: A normal change: it needs a gate, which is context too.
GATED = """\
runbook: demo
title: Demo change
service: demo
environment: test
change: {id: CHG1, type: normal}
roles:
  ops: {users: [alice]}
  cab: {users: [carol]}
params:
  version: {default: "1.0"}
phases:
  - gate: go
    sign_off: [ops]
  - id: work
    steps:
      - id: deploy
        owner: ops
        bash: scripts/x.sh "$GONOGO_PARAM_VERSION"
        rollback: {bash: scripts/y.sh}
"""


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader consults the change policy and the python prefixes: use the defaults."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.delenv(PYTHON_PREFIXES_ENV, raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A runbooks folder with two scripts and a ``steps`` package, and a file beside it."""
    root = tmp_path / "runbooks"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "x.sh").write_text("#!/bin/sh\necho x\n")
    (root / "scripts" / "y.sh").write_text("#!/bin/sh\necho y\n")
    (root / "scripts" / "z.sh").write_text("#!/bin/sh\necho z\n")
    (root / "steps" / "pkg").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    (root / "steps" / "mod.py").write_text("def fn():\n    return 1\n")
    (root / "steps" / "pkg" / "__init__.py").write_text("def fn():\n    return 2\n")
    (root / "steps" / "pkg" / "sub.py").write_text("def fn():\n    return 3\n")
    (tmp_path / "outside.sh").write_text("#!/bin/sh\necho outside\n")
    return root


def load(text: str) -> Runbook:
    runbook, _warnings = load_text(text, "rb.yaml")
    return runbook


def plan(text: str, folder: Path | str) -> Fingerprint:
    return fingerprint(load(text), folder)


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the runbook"
    return text.replace(old, new, 1)


def one_step(command: str | list[str]) -> str:
    """A runbook whose only action is the bash ``command`` (an argument list: exec)."""
    return f"""\
runbook: one
title: One step
service: demo
environment: test
change: {{id: CHG1, type: standard}}
params:
  version: {{default: "1.0"}}
phases:
  - id: work
    steps:
      - id: only
        {"exec" if isinstance(command, list) else "bash"}: {json.dumps(command)}
"""


# -- stable under rewriting ---------------------------------------------------------------------


@pytest.mark.parametrize("text", REWRITTEN.values(), ids=list(REWRITTEN))
def test_rewriting_the_yaml_keeps_the_fingerprint(text: str, folder: Path) -> None:
    before, after = plan(BASE, folder), plan(text, folder)
    assert changes(before.parts, after.parts) == []
    assert after == before


# The BASE runbook as data, to be written out in every order and style.
DOC: dict[str, Any] = {
    "runbook": "demo",
    "title": "Demo change",
    "service": "demo",
    "environment": "test",
    "change": {"id": "CHG1", "type": "standard"},
    "roles": {"ops": {"users": ["alice"]}},
    "params": {"version": {"default": "1.0"}, "target": {"default": "blue"}},
    "phases": [
        {
            "id": "work",
            "title": "Work",
            "steps": [
                {
                    "id": "deploy",
                    "owner": "ops",
                    "planned": "60m",
                    "bash": 'scripts/x.sh "$GONOGO_PARAM_VERSION"',
                    "rollback": {"bash": "scripts/y.sh"},
                },
                {"id": "configure", "owner": "ops", "python": "steps.mod:fn"},
            ],
        }
    ],
}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=st.permutations(list(DOC)),
    deploy=st.permutations(list(DOC["phases"][0]["steps"][0])),
    configure=st.permutations(list(DOC["phases"][0]["steps"][1])),
    params=st.permutations(list(DOC["params"])),
    flow=st.sampled_from([False, True, None]),
    quote=st.sampled_from([None, "'", '"']),
)
def test_any_key_order_and_style_keeps_the_fingerprint(
    folder: Path,
    top: list[str],
    deploy: list[str],
    configure: list[str],
    params: list[str],
    flow: bool | None,
    quote: str | None,
) -> None:
    doc = {key: DOC[key] for key in top}
    first, second = DOC["phases"][0]["steps"]
    steps = [{k: first[k] for k in deploy}, {k: second[k] for k in configure}]
    doc["phases"] = [{**DOC["phases"][0], "steps": steps}]
    doc["params"] = {name: DOC["params"][name] for name in params}
    text = yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=flow, default_style=quote, width=1000
    )
    assert plan(text, folder) == plan(BASE, folder)


def test_the_same_runbook_and_files_give_the_same_fingerprint(folder: Path) -> None:
    assert plan(BASE, folder) == plan(BASE, str(folder))


# -- what changes it, and how the change is named -----------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        ('bash: scripts/x.sh "$GONOGO_PARAM_VERSION"', "bash: scripts/x.sh --force", "deploy"),
        ("bash: scripts/y.sh", "bash: scripts/y.sh --all", "deploy"),
        ("python: steps.mod:fn", "python: steps.pkg:fn", "configure"),
        ("planned: 60m", "planned: 2h", "deploy"),
        ("      - id: configure\n", "      - id: configure\n        retries: 2\n", "configure"),
    ],
    ids=["command", "rollback command", "callable", "planned", "retries"],
)
def test_changing_a_step_changes_the_fingerprint_and_names_the_step(
    folder: Path, old: str, new: str, reported: str
) -> None:
    before, after = plan(BASE, folder), plan(edited(BASE, old, new), folder)
    assert after.digest != before.digest
    assert after.work != before.work
    assert f"step {reported} changed" in changes(before.parts, after.parts)


def test_changing_a_command_reports_only_that_step(folder: Path) -> None:
    before = plan(BASE, folder)
    after = plan(edited(BASE, 'scripts/x.sh "$GONOGO', 'scripts/x.sh --force "$GONOGO'), folder)
    assert changes(before.parts, after.parts) == ["step deploy changed"]


@pytest.mark.parametrize(
    "name",
    ["scripts/x.sh", "scripts/y.sh", "steps/mod.py", "steps/__init__.py"],
    ids=["bash script", "rollback script", "python module", "package init"],
)
def test_changing_a_referenced_file_changes_the_fingerprint(folder: Path, name: str) -> None:
    before = plan(BASE, folder)
    with (folder / name).open("ab") as file:
        file.write(b"# one more line\n")
    after = plan(BASE, folder)
    assert after.digest != before.digest
    assert after.work != before.work
    assert changes(before.parts, after.parts) == [f"file {name} changed"]


def test_a_script_is_hashed_by_its_bytes_not_its_text(folder: Path) -> None:
    before = plan(BASE, folder)
    (folder / "scripts" / "x.sh").write_bytes(b"#!/bin/sh\r\necho x\r\n")
    after = plan(BASE, folder)
    assert changes(before.parts, after.parts) == ["file scripts/x.sh changed"]


@pytest.mark.parametrize(
    ("callable_", "files"),
    [
        ("steps.mod:fn", ["steps/__init__.py", "steps/mod.py"]),
        ("steps.pkg:fn", ["steps/__init__.py", "steps/pkg/__init__.py"]),
        ("steps.pkg.sub:fn", ["steps/__init__.py", "steps/pkg/__init__.py", "steps/pkg/sub.py"]),
    ],
)
def test_a_python_callable_brings_its_module_and_packages(
    folder: Path, callable_: str, files: list[str]
) -> None:
    runbook = load(edited(BASE, "python: steps.mod:fn", f"python: {callable_}"))
    assert referenced_files(runbook, folder) == sorted(["scripts/x.sh", "scripts/y.sh", *files])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rollback: {bash: scripts/y.sh}", "rollback: {bash: scripts/z.sh}"),
        (
            "        python: steps.mod:fn\n",
            "        python: steps.mod:fn\n        rehearse: {bash: scripts/z.sh --dry-run}\n",
        ),
        (
            "phases:\n",
            "phases:\n  - gate: go\n    sign_off: [ops]\n"
            "    checks:\n      - {id: ready, bash: scripts/z.sh}\n",
        ),
        (
            "python: steps.mod:fn\n",
            "python: steps.mod:fn\nrollback:\n  steps:\n    - {id: tidy, bash: scripts/z.sh}\n",
        ),
    ],
    ids=["step rollback", "rehearsal", "gate check", "global rollback step"],
)
def test_scripts_of_every_kind_of_action_are_part_of_the_plan(
    folder: Path, old: str, new: str
) -> None:
    text = edited(BASE, old, new)
    before = plan(text, folder)
    assert "file:scripts/z.sh" in before.parts
    (folder / "scripts" / "z.sh").write_text("#!/bin/sh\necho changed\n")
    assert changes(before.parts, plan(text, folder).parts) == ["file scripts/z.sh changed"]


@pytest.mark.parametrize(
    "command",
    [
        "scripts/x.sh",
        "./scripts/x.sh --yes",
        "bash scripts/x.sh",
        "'scripts/x.sh' \"$GONOGO_PARAM_VERSION\"",
        ["scripts/x.sh", "{{ params.version }}"],
        "scripts/x.sh && echo done",
        pytest.param(
            "scripts/x.sh; echo done",
        ),
        pytest.param(
            "scripts/x.sh&&echo done",
        ),
        pytest.param(
            "scripts/x.sh|tee /tmp/log",
        ),
        pytest.param(
            "scripts/x.sh>/tmp/log",
        ),
    ],
)
def test_a_script_named_in_a_command_is_found(folder: Path, command: str | list[str]) -> None:
    runbook = load(one_step(command))
    assert referenced_files(runbook, folder) == ["scripts/x.sh"]


def test_a_path_in_a_shell_comment_is_not_part_of_the_plan(folder: Path) -> None:
    runbook = load(one_step("echo done  # then scripts/x.sh"))
    assert referenced_files(runbook, folder) == []


# -- what is left out ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["/bin/true", "../outside.sh", "/bin/sh ../outside.sh", "scripts/../../outside.sh"],
)
def test_files_outside_the_runbooks_folder_are_not_part_of_the_plan(
    folder: Path, command: str
) -> None:
    assert (folder / ".." / "outside.sh").is_file()  # it exists: only its place keeps it out
    text = one_step(command)
    before = plan(text, folder)
    assert referenced_files(load(text), folder) == []
    assert not [part for part in before.parts if part.startswith("file:")]
    (folder.parent / "outside.sh").write_text("#!/bin/sh\necho changed\n")
    assert plan(text, folder) == before


def test_a_folder_named_in_a_command_is_not_a_file_of_the_plan(folder: Path) -> None:
    assert referenced_files(load(one_step("ls scripts steps")), folder) == []


def test_template_words_are_ignored(folder: Path) -> None:
    # A file named like the unrendered template exists; the template still names no file.
    (folder / "{{params.version}}").write_text("not a script\n")
    runbook = load(one_step(["scripts/x.sh", "{{params.version}}"]))
    assert referenced_files(runbook, folder) == ["scripts/x.sh"]


def test_words_inside_a_spaced_template_are_ignored(folder: Path) -> None:
    (folder / "params.version").write_text("not a script\n")
    runbook = load(one_step(["scripts/x.sh", "{{ params.version }}"]))
    assert referenced_files(runbook, folder) == ["scripts/x.sh"]


# -- work and digest ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "reported"), CONTEXT_EDITS.values(), ids=list(CONTEXT_EDITS)
)
def test_context_changes_the_digest_but_not_the_work(
    folder: Path, old: str, new: str, reported: str
) -> None:
    before, after = plan(GATED, folder), plan(edited(GATED, old, new), folder)
    assert after.work == before.work
    assert after.digest != before.digest
    assert changes(before.parts, after.parts) == [f"{reported} changed"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version: {default: "1.0"}', 'version: {default: "2.0"}'),
        (
            "rollback: {bash: scripts/y.sh}\n",
            "rollback: {bash: scripts/y.sh}\nrollback: {mode: decide}\n",
        ),
        ("  - id: work\n", "  - id: install\n"),
    ],
    ids=["param default", "rollback mode", "phase id"],
)
def test_what_runs_changes_the_work(folder: Path, old: str, new: str) -> None:
    before, after = plan(GATED, folder), plan(edited(GATED, old, new), folder)
    assert after.work != before.work
    assert after.digest != before.digest


def test_moving_a_step_changes_only_the_order(folder: Path) -> None:
    deploy = BASE[BASE.index("      - id: deploy") : BASE.index("      - id: configure")]
    configure = BASE[BASE.index("      - id: configure") :]
    swapped = BASE.replace(deploy + configure, configure + deploy)
    assert swapped != BASE
    before, after = plan(BASE, folder), plan(swapped, folder)
    assert after.work != before.work
    assert changes(before.parts, after.parts) == ["the order of phases, steps and gates changed"]


def test_adding_and_removing_steps_is_named(folder: Path) -> None:
    added = BASE + "      - id: verify\n        owner: ops\n        bash: echo ok\n"
    before, after = plan(BASE, folder), plan(added, folder)
    assert changes(before.parts, after.parts) == [
        "step verify added",
        "the order of phases, steps and gates changed",
    ]
    assert changes(after.parts, before.parts) == [
        "step verify removed",
        "the order of phases, steps and gates changed",
    ]


def test_dropping_a_python_step_names_its_files_first(folder: Path) -> None:
    without = BASE[: BASE.index("      - id: configure")]
    before, after = plan(BASE, folder), plan(without, folder)
    assert changes(before.parts, after.parts) == [
        "file steps/__init__.py removed",
        "file steps/mod.py removed",
        "step configure removed",
        "the order of phases, steps and gates changed",
    ]


def test_changes_lists_files_then_steps_then_gates_then_sections() -> None:
    before = {
        "runbook:window": "1",
        "runbook:order": "1",
        "gate:go": "1",
        "step:gone": "1",
        "step:same": "1",
        "file:a.sh": "1",
    }
    after = {
        "runbook:window": "2",
        "runbook:order": "2",
        "gate:go": "2",
        "step:new": "1",
        "step:same": "1",
        "file:a.sh": "2",
        "file:b.sh": "1",
    }
    assert changes(before, after) == [
        "file a.sh changed",
        "file b.sh added",
        "step gone removed",
        "step new added",
        "gate go changed",
        "the order of phases, steps and gates changed",
        "runbook section window changed",
    ]


def test_a_fingerprint_survives_its_dict_form(folder: Path) -> None:
    found = plan(BASE, folder)
    assert Fingerprint.from_dict(found.as_dict()) == found
    assert found.short == found.digest[:SHORT]
    assert len(found.digest) == len(found.work) == 64
