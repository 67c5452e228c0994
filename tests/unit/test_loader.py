"""Each rule of the format, with its exact message and location."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.conftest import EHR, EXAMPLES, with_window

from gonogo import RunbookError, load_file, load_text
from gonogo.core.timing.clock import format_duration, parse_duration


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as info:
        load_text(text, "rb.yaml")
    return [str(p) for p in info.value.errors]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runbooks_are_valid(path: Path) -> None:
    runbook, _warnings = load_file(path)
    assert runbook.title


def test_typo_in_a_key_is_located_with_a_suggestion(ehr_text: str) -> None:
    text = ehr_text.replace("\ntitle: EHR", "\ntitel: EHR")
    line = line_of(text, "titel:")
    assert f"rb.yaml:{line}:1: titel: unknown key; did you mean 'title'?" in problems_of(text)


def test_typo_in_a_nested_key_suggests_from_that_level(ehr_text: str) -> None:
    text = ehr_text.replace(
        "        timeout: 40m\n        exec: [scripts/db.sh",
        "        timout: 40m\n        exec: [scripts/db.sh",
    )
    line = line_of(text, "timout:")
    assert problems_of(text) == [
        f"rb.yaml:{line}:9: phases[2].steps[2].timout: unknown key; did you mean 'timeout'?"
    ]


def test_duplicate_key_is_an_error_not_last_wins(ehr_text: str) -> None:
    text = ehr_text.replace("service: ehr\n", "service: ehr\nservice: lab\n")
    first, second = line_of(text, "service: ehr"), line_of(text, "service: lab")
    assert problems_of(text) == [
        f"rb.yaml:{second}:1: service: duplicate key; it is already set on line {first}"
    ]


def test_unknown_role_is_located_with_a_suggestion(ehr_text: str) -> None:
    text = ehr_text.replace(
        "sign_off: [release_manager, hospital]", "sign_off: [release_manger, hospital]"
    )
    line = line_of(text, "release_manger")
    assert problems_of(text) == [
        f"rb.yaml:{line}:16: phases[4].sign_off[0]: unknown role 'release_manger'; did you mean "
        "'release_manager'? (defined roles: care_leadership, dba, deployment_coordinator, deployment_lead, hospital, "
        "incident_manager, release_manager, service_owner, support_lead, system_owner)"
    ]


def test_dependency_cycle_names_the_cycle(ehr_text: str) -> None:
    text = ehr_text.replace(
        "      - id: stop_app\n", "      - id: stop_app\n        depends_on: [start_app]\n"
    )
    line = line_of(text, "depends_on: [start_app]")
    assert problems_of(text) == [
        f"rb.yaml:{line}:21: phases[2].steps[0].depends_on: dependency cycle (each waits for "
        "the next): "
        "stop_app -> start_app -> install_app -> migrate_db -> backup_db -> stop_app"
    ]


def test_depends_on_a_later_phase_is_refused(ehr_text: str) -> None:
    text = ehr_text.replace(
        "      - id: smoke_before\n", "      - id: smoke_before\n        depends_on: [stop_app]\n"
    )
    line = line_of(text, "depends_on: [stop_app]")
    assert problems_of(text) == [
        f"rb.yaml:{line}:22: phases[0].steps[0].depends_on[0]: step 'stop_app' is in the later "
        "phase 'install'; depends_on names a step of the same or an earlier phase"
    ]


def test_bad_duration_is_located(ehr_text: str) -> None:
    text = ehr_text.replace(
        "planned: 20m\n        bash: scripts/db.sh backup",
        "planned: 20 min\n        bash: scripts/db.sh backup",
    )
    line = line_of(text, "20 min")
    assert problems_of(text) == [
        f"rb.yaml:{line}:18: phases[2].steps[1].planned: expected a duration like 90s, 30m, "
        "2h, 1h30m or 14d, got '20 min'"
    ]


def test_normal_change_without_a_gate_is_refused(ehr_text: str) -> None:
    text = re.sub(r"  - gate: go_nogo_\d.*?(?=  - id: )", "", ehr_text, flags=re.S)
    line = line_of(text, "change: {id:")
    assert problems_of(text) == [
        f"rb.yaml:{line}:32: change.type: a normal change needs at least one GO/NOGO gate "
        "in phases, and this runbook has 0 (change policy for prod: the defaults)"
    ]


def test_invalid_yaml_is_located(ehr_text: str) -> None:
    text = ehr_text.replace("type: normal}", "type: normal")
    line = line_of(text, "change: {id:")
    assert problems_of(text) == [
        f"rb.yaml:{line + 1}:6: invalid YAML: while parsing a flow mapping, expected ',' or '}}', "
        "but got ':'"
    ]


def test_every_schema_error_in_a_file_is_reported_at_once(ehr_text: str) -> None:
    text = ehr_text.replace("\ntitle: EHR", "\ntitel: EHR").replace("planned: 5m", "planned: soon")
    found = problems_of(text)
    assert len([p for p in found if "got 'soon'" in p]) == ehr_text.count("planned: 5m")
    assert any("titel: unknown key" in p for p in found)


def test_every_semantic_error_in_a_file_is_reported_at_once(ehr_text: str) -> None:
    text = ehr_text.replace("owner: dba", "owner: dab").replace(
        "[release_manager, hospital]", "[rm, hospital]"
    )
    found = problems_of(text)
    assert len([p for p in found if "unknown role 'dab'" in p]) == ehr_text.count("owner: dba")
    assert len([p for p in found if "unknown role 'rm'" in p]) == 1


def test_manual_step_needs_an_owner(ehr_text: str) -> None:
    text = ehr_text.replace(
        "        owner: hospital\n        planned: 15m\n", "        planned: 15m\n"
    )
    line = line_of(text, "- id: ward_view_works")
    assert problems_of(text) == [
        f"rb.yaml:{line}:9: phases[3].steps[1]: a manual step needs an owner: the role that confirms it"
    ]


def test_template_must_name_a_declared_param(ehr_text: str) -> None:
    text = ehr_text.replace(
        'exec: [scripts/db.sh, migrate, "{{ params.version }}"]',
        'exec: [scripts/db.sh, migrate, "{{ params.verison }}"]',
    )
    line = line_of(text, "params.verison")
    assert problems_of(text) == [
        f"rb.yaml:{line}:40: phases[2].steps[2].exec[2]: {{{{ params.verison }}}} names no declared "
        "param; did you mean 'version'? (declared: fail_step, version)"
    ]


def test_role_without_users_is_refused(ehr_text: str) -> None:
    text = ehr_text.replace("dba: {users: [dba]", "dba: {users: []")
    line = line_of(text, "dba: {users: []")
    assert problems_of(text) == [f"rb.yaml:{line}:3: roles.dba: a role needs at least one user"]


def test_duplicate_ids_are_refused(ehr_text: str) -> None:
    text = ehr_text.replace("- id: start_app", "- id: stop_app")
    first, second = line_of(text, "- id: stop_app"), line_of(text, "title: Start the application")
    assert problems_of(text) == [
        f"rb.yaml:{second - 1}:13: phases[2].steps[4].id: id 'stop_app' is already used on line {first}"
    ]


def test_window_must_end_after_it_starts(ehr_text: str) -> None:
    text = with_window(
        ehr_text, '{start: "2026-12-05T22:00:00+01:00", end: "2026-12-05T21:00:00+01:00"}'
    )
    line = line_of(text, "window:")
    assert problems_of(text) == [
        f"rb.yaml:{line}:51: window.end: the window must end after it starts"
    ]


def test_window_must_have_a_timezone(ehr_text: str) -> None:
    text = with_window(ehr_text, '{start: "2026-12-05T22:00:00", end: "2026-12-06T02:00:00+01:00"}')
    assert len(problems_of(text)) == 1
    assert "window.start: input should have timezone info" in problems_of(text)[0]


def test_python_callable_outside_the_allowed_prefixes_is_refused(ehr_text: str) -> None:
    text = ehr_text.replace("bash: scripts/app.sh stop\n", "python: os:system\n")
    line = line_of(text, "python: os:system")
    assert problems_of(text) == [
        f"rb.yaml:{line}:17: phases[2].steps[0].python: module 'os' is not under an allowed "
        "prefix (steps); set GONOGO_PYTHON_PREFIXES to allow more"
    ]


def test_a_step_needs_exactly_one_kind(ehr_text: str) -> None:
    text = ehr_text.replace(
        "bash: scripts/app.sh stop\n", "bash: scripts/app.sh stop\n        manual: also this\n"
    )
    line = line_of(text, "- id: stop_app")
    assert problems_of(text) == [
        f"rb.yaml:{line}:9: phases[2].steps[0]: needs exactly one of bash, exec, http, python or "
        "manual; found bash, manual"
    ]


def test_irreversible_step_after_a_gate_is_a_warning_only(ehr_text: str) -> None:
    _runbook, warnings = load_text(ehr_text, "rb.yaml")
    line = line_of(ehr_text, "- id: migrate_db")
    assert [str(w) for w in warnings] == [
        f"rb.yaml:{line}:13: warning: phases[2].steps[2].id: step 'migrate_db' runs after a gate "
        "and has no rollback: it cannot be undone"
    ]


def test_param_default_must_satisfy_its_own_pattern(ehr_text: str) -> None:
    text = ehr_text.replace('default: "4.2.0"', 'default: "v4.2"')
    line = line_of(text, 'default: "v4.2"')
    assert problems_of(text) == [
        f"rb.yaml:{line}:14: params.version.default: the default 'v4.2' does not match the "
        "pattern '^[0-9][0-9.]*$'"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: &x [1]\nb: *x\n",
            "rb.yaml:2:4: aliases (*name) are not allowed in runbooks; write the value out",
        ),
        ("", "rb.yaml:1:1: the file is empty; expected a runbook mapping"),
        ("- 1\n", "rb.yaml:1:1: expected a mapping with 'runbook', 'title', … at the top"),
        (
            "a: !!python/object:os.system x\n",
            "rb.yaml:1:4: a: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "rb.yaml:2:1: invalid YAML: expected a single document in the stream, but found another document",
        ),
    ],
)
def test_unsafe_or_shapeless_yaml_is_refused(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


def test_files_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(RunbookError, match="larger than 1048576 bytes"):
        load_file(big)


def test_on_key_stays_text_not_a_boolean(ehr_text: str) -> None:
    text = ehr_text.replace(
        "\nnotify:\n",
        "\nnotify:\n  - on: [gate_decided, rollback_started]\n    connection: teams\n",
        1,
    )
    runbook, _ = load_text(text, "rb.yaml")
    assert runbook.notify[0].on == ["gate_decided", "rollback_started"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1h0m5s", 3605)],
)
def test_durations_parse_and_print_back(text: str, seconds: int) -> None:
    parsed = parse_duration(text)
    assert parsed.total_seconds() == seconds
    assert parse_duration(format_duration(parsed)) == parsed


@pytest.mark.parametrize("text", ["", "m", "30", "0m", "1.5h", "30 m", "-5m", "5 d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like"):
        parse_duration(text)


def test_ehr_example_has_what_the_domain_needs() -> None:
    runbook, _ = load_file(EHR)
    assert runbook.change.type == "normal"
    assert [g.gate for g in runbook.gates] == ["go_nogo_2", "go_nogo_3"]
    steps = dict((s.id, s) for _, s in runbook.steps())
    assert steps["backup_db"].rollback is not None and "restore" in (
        steps["backup_db"].rollback.bash or ""
    )
    assert steps["ward_view_works"].manual and steps["ward_view_works"].owner == "hospital"
    assert len(runbook.roles) >= 3
