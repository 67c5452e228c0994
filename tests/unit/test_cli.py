"""The ``gonogo`` command line: exit codes, located messages, the plan and the schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import EHR, EXAMPLES, ROOT, RUNBOOKS

from gonogo.client.cli import main
from gonogo.core.runbook.schema import schema_text
from gonogo.core.runbook.source import parse_yaml

SCHEMA = ROOT / "schema" / "runbook.schema.json"
MODELINE = "# yaml-language-server: $schema=../schema/runbook.schema.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def without_gates(text: str) -> str:
    return re.sub(r"  - gate: go_nogo_\d.*?(?=  - id: )", "", text, flags=re.S)


EHR_TYPO = ("sign_off: [release_manager, hospital]", "sign_off: [release_manger, hospital]")
EHR_CYCLE = ("      - id: stop_app\n", "      - id: stop_app\n        depends_on: [start_app]\n")

BROKEN: dict[str, tuple[Callable[[str], str], str]] = {
    "key-typo": (
        lambda t: t.replace("\ntitle: EHR", "\ntitel: EHR"),
        "titel: unknown key; did you mean 'title'?",
    ),
    "duplicate-key": (
        lambda t: t.replace("service: ehr\n", "service: ehr\nservice: lab\n"),
        "service: duplicate key; it is already set on line",
    ),
    "unknown-role": (
        lambda t: t.replace(*EHR_TYPO),
        "unknown role 'release_manger'; did you mean 'release_manager'?",
    ),
    "dependency-cycle": (
        lambda t: t.replace(*EHR_CYCLE),
        "dependency cycle (each waits for the next): stop_app -> start_app",
    ),
    "bad-duration": (
        lambda t: t.replace("planned: 20m", "planned: 20 min", 1),
        "expected a duration like 90s, 30m, 2h, 1h30m or 14d, got '20 min'",
    ),
    "normal-change-without-gate": (
        without_gates,
        "change.type: a normal change needs at least one GO/NOGO gate",
    ),
    "invalid-yaml": (
        lambda t: t.replace("type: normal}", "type: normal"),
        "invalid YAML: while parsing a flow mapping",
    ),
}


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path, ehr_text: str) -> tuple[Path, str]:
    """A copy of the EHR runbook with one mistake, and the message that must point at it."""
    mutate, message = BROKEN[request.param]
    text = mutate(ehr_text)
    assert text != ehr_text, "the mutation must change the runbook"
    path = tmp_path / f"{request.param}.yaml"
    path.write_text(text)
    return path, message


# -- validate ----------------------------------------------------------------------------------


def test_validate_accepts_the_example_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "validate", str(RUNBOOKS))
    assert code == 0
    assert (
        f"{len(EXAMPLES)} runbook(s) checked: {len(EXAMPLES)} valid, 0 invalid, 0 error(s)" in err
    )


@pytest.mark.parametrize("broken", sorted(BROKEN), indirect=True)
def test_validate_refuses_a_broken_runbook_with_a_located_message(
    capsys: pytest.CaptureFixture[str], broken: tuple[Path, str]
) -> None:
    path, message = broken
    code, out, _err = run(capsys, "validate", str(path))
    assert code == 1
    located = [line for line in out.splitlines() if message in line]
    assert located, out
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", located[0]), located[0]


@pytest.mark.parametrize("broken", ["key-typo"], indirect=True)
def test_json_report_still_lists_the_good_runbook_next_to_a_broken_one(
    capsys: pytest.CaptureFixture[str], broken: tuple[Path, str], ehr_text: str
) -> None:
    path, message = broken
    good = path.with_name("good.yaml")
    good.write_text(ehr_text)

    code, out, _err = run(capsys, "validate", "--format", "json", str(path.parent))

    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert {f["file"]: f["valid"] for f in report["files"]} == {str(path): False, str(good): True}
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert {p["file"] for p in errors} == {str(path)}
    assert [f"{p['path']}: {p['message']}" for p in errors if p["path"] == "titel"] == [message]
    for problem in report["problems"]:
        assert set(problem) == {"file", "line", "column", "path", "message", "severity"}
        assert problem["line"] >= 1 and problem["column"] >= 1


USAGE_ERRORS = {
    "unknown-option": ["validate", "--strict", "runbooks"],
    "missing-path": ["validate", "no/such/folder"],
    "bad-format": ["validate", "--format", "xml"],
    "plan-without-file": ["plan"],
    "plan-missing-file": ["plan", "no/such/runbook.yaml"],
    "no-command": [],
}


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert err.strip(), "a usage error says what is wrong"


def test_an_empty_folder_is_not_a_success(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = run(capsys, "validate", str(tmp_path))
    assert code == 1
    assert "no runbook files" in err


def command() -> list[str]:
    """The installed console script, as a user runs it; ``python -m`` if there is none."""
    script = Path(sys.executable).with_name("gonogo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gonogo.client.cli"]


@pytest.mark.parametrize("broken", ["duplicate-key"], indirect=True)
def test_the_installed_command_exits_0_for_good_and_1_for_broken_runbooks(
    broken: tuple[Path, str],
) -> None:
    path, message = broken

    good = subprocess.run(
        [*command(), "validate", "runbooks"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    bad = subprocess.run(
        [*command(), "validate", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: {re.escape(message)}", bad.stdout, re.M)
    assert "Traceback" not in bad.stderr


# -- plan --------------------------------------------------------------------------------------


@pytest.fixture
def ehr_plan(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _err = run(capsys, "plan", str(EHR))
    assert code == 0
    return out


def test_plan_lists_phases_and_gates_in_runbook_order(ehr_plan: str) -> None:
    headings = re.findall(r"^### (\d+)\. (?:Phase|GO/NOGO gate) `(\w+)`", ehr_plan, re.M)
    assert headings == [
        ("1", "preflight"),
        ("2", "go_nogo_2"),
        ("3", "install"),
        ("4", "production_test"),
        ("5", "go_nogo_3"),
        ("6", "open"),
    ]


@pytest.mark.parametrize(
    "row",
    [
        # The window opens at 22:00; the preparation comes half an hour before it.
        "| 1.1 | 21:30 | Smoke test before the change (`smoke_before`) | service_owner (svcowner, "
        "svcowner2) | 5m |",
        "| 3.2 | 22:05 | Back up the EHR database (`backup_db`) | dba (dba) | 20m | "
        "`scripts/db.sh backup` | `scripts/db.sh restore` |",
        "| 3.5 | 23:00 | Start the application servers (`start_app`) | service_owner (svcowner, "
        "svcowner2) | 5m |",
        "| 4.2 | 23:10 | Ward view shows patient lists (`ward_view_works`) | "
        "hospital (wardrep) | 15m | Open the ward view",
    ],
)
def test_plan_shows_each_step_with_its_time_owner_and_undo(ehr_plan: str, row: str) -> None:
    assert row in ehr_plan


def test_plan_shows_the_window_the_planned_finish_and_the_last_safe_moment(ehr_plan: str) -> None:
    assert "- **Window:** 2027-01-12T22:00:00+01:00 to 2027-01-13T02:00:00+01:00\n" in ehr_plan
    assert "### 3. Phase `install`: Technical installation (22:00)\n" in ehr_plan
    assert "Planned finish: 23:30.\n" in ehr_plan
    assert "Last safe moment to start a full rollback: 01:00; on overrun: decide.\n" in ehr_plan


def test_the_readme_shows_the_ehr_plan_as_gonogo_plan_prints_it(ehr_plan: str) -> None:
    section = (ROOT / "README.md").read_text().split("\n## The plan in time\n")[1]
    shown = section.split("```text\n")[1].split("```")[0].splitlines()
    assert len(shown) > 5
    assert [line for line in shown if line not in ehr_plan.splitlines()] == []


def test_the_readme_shows_the_ehr_rehearsal_as_gonogo_rehearse_prints_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _err = run(capsys, "rehearse", str(EHR))
    assert code == 0
    section = (ROOT / "README.md").read_text().split("\n## The plan in time\n")[1]
    shown = section.split("```text\n")[2].split("```")[0].splitlines()
    assert len(shown) > 3
    assert [line for line in shown if line not in out.splitlines()] == []


def test_plan_shows_gates_with_who_signs_off_and_the_checklist(ehr_plan: str) -> None:
    gate = ehr_plan.split("### 2. ")[1].split("### 3. ")[0]
    # Planned when the preparation is done; it may not open before T-30m.
    assert gate.startswith("GO/NOGO gate `go_nogo_2`: GO/NOGO 2, 30 minutes before start (21:40)")
    signers = "release_manager (relman), service_owner (svcowner, svcowner2), hospital (wardrep)"
    assert f"- Sign-off: {signers}\n" in gate
    assert "- Opens: T-30m (21:30)\n" in gate
    assert "- Timeout: 30m; no answer in time is NOGO" in gate
    assert "  - [ ] Every resource is present as planned\n" in gate


def test_plan_shows_the_rollback_order(ehr_plan: str) -> None:
    rollback = ehr_plan.split("## Rollback")[1]
    assert re.findall(r"^\d+\. (.*)$", rollback, re.M) == [
        "undo `start_app`",
        "undo `install_app`",
        "undo `backup_db`",
        "undo `stop_app`",
        "undo `announce_start`",
        "`announce_rollback`: Tell users the change was rolled back",
    ]
    assert (
        "Not undone (no rollback defined): `ward_view_works`, `smoke_after`, `migrate_db`"
        in rollback
    )


@pytest.mark.parametrize("broken", ["bad-duration"], indirect=True)
def test_plan_of_a_broken_runbook_exits_1_with_the_problem(
    capsys: pytest.CaptureFixture[str], broken: tuple[Path, str]
) -> None:
    path, message = broken
    code, out, err = run(capsys, "plan", str(path))
    assert code == 1
    assert out == ""
    assert f"{path}:" in err and message in err


# -- schema ------------------------------------------------------------------------------------


def test_committed_schema_is_what_gonogo_schema_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "schema")
    assert code == 0
    assert out == SCHEMA.read_text(), "schema/runbook.schema.json is stale; run `make schema`"


def test_schema_is_draft_07_for_yaml_language_server() -> None:
    assert json.loads(schema_text())["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in schema_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runbook_starts_with_the_schema_modeline(path: Path) -> None:
    assert path.read_text().splitlines()[0] == MODELINE


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runbook_satisfies_the_committed_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = parse_yaml(path.read_text(), path.name).data  # YAML 1.2 keys, as an editor reads them
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(data)


def test_committed_schema_refuses_a_key_typo(ehr_text: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = parse_yaml(ehr_text.replace("\ntitle: EHR", "\ntitel: EHR"), "rb.yaml").data
    errors = list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(data))
    assert any("'titel' was unexpected" in e.message for e in errors)
