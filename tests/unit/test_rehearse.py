"""The offline rehearsal: the timeline, what a NOGO or a failure undoes, and every command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gonogo import load_file
from gonogo.client.cli import main
from gonogo.core.runbook.model import Runbook
from gonogo.core.runs import states
from gonogo.core.runs.rehearse import Command, Rehearsal, rehearsal_text, rehearse
from gonogo.core.runs.rollback import StepRecord, plan_rollback
from gonogo.errors import RehearsalError, TimePlanError

#: Not imported from tests.conftest, so that a bare `pytest` (no rootdir on sys.path) runs this too.
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
EHR = RUNBOOKS / "ehr-upgrade.yaml"
T = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
EHR_UNDO_ALL = ["start_app", "install_app", "backup_db", "stop_app", "announce_start"]


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


@pytest.fixture(scope="module")
def ehr() -> Runbook:
    return load_file(EHR)[0]


def with_window(runbook: Runbook, hours: float) -> Runbook:
    window = {"start": T, "end": T + timedelta(hours=hours)}
    return Runbook.model_validate({**runbook.model_dump(by_alias=True), "window": window})


def without_window(runbook: Runbook) -> Runbook:
    return Runbook.model_validate({**runbook.model_dump(by_alias=True), "window": None})


def runbook(phases: list[dict[str, Any]], **more: Any) -> Runbook:
    """A runbook built without the whole-runbook checks: the rehearsal needs only its shape."""
    data = {
        "runbook": "r",
        "title": "R",
        "service": "app",
        "environment": "prod",
        "change": {"id": "CHG1", "type": "standard"},
        "phases": phases,
        **more,
    }
    return Runbook.model_validate(data)


def step(step_id: str, planned: int | None = 10, undo: bool = True, **more: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": step_id, "bash": f"do {step_id}", **more}
    if planned is not None:
        found["planned"] = f"{planned}m" if planned else None
    if undo:
        found["rollback"] = {"bash": f"undo {step_id}"}
    return {k: v for k, v in found.items() if v is not None}


def undone(result: Rehearsal) -> list[str]:
    assert result.scenario is not None
    return [u.id for u in result.scenario.undo if not u.global_step]


def by_label(result: Rehearsal) -> dict[str, Command]:
    return {c.label: c for c in result.commands}


# -- the scenario --------------------------------------------------------------------------------


def test_a_nogo_undoes_every_completed_step_newest_first_then_the_global_steps(
    ehr: Runbook,
) -> None:
    scenario = rehearse(ehr, nogo="go_nogo_3").scenario
    assert scenario is not None
    assert [u.id for u in scenario.undo] == [*EHR_UNDO_ALL, "announce_rollback"]
    assert scenario.undo[-1].global_step
    assert scenario.not_undone == ["ward_view_works", "smoke_after", "migrate_db", "smoke_before"]
    assert scenario.reasons == ["gate go_nogo_3: NOGO or no answer from role release_manager"]


def test_a_nogo_at_the_first_gate_undoes_only_the_preparation(ehr: Runbook) -> None:
    result = rehearse(ehr, nogo="go_nogo_2")
    assert result.scenario is not None
    assert [a.id for a in result.scenario.completed] == ["smoke_before", "announce_start"]
    assert undone(result) == ["announce_start"]


def test_a_failed_step_is_not_undone_and_nothing_after_it_runs(ehr: Runbook) -> None:
    result = rehearse(ehr, fail="install_app")
    assert result.scenario is not None
    completed = [a.id for a in result.scenario.completed]
    assert completed == ["smoke_before", "announce_start", "stop_app", "backup_db", "migrate_db"]
    assert undone(result) == ["backup_db", "stop_app", "announce_start"]
    assert result.scenario.reasons == ["step install.install_app failed"]


def test_the_rollback_runs_each_planned_duration_in_turn_from_the_failure(ehr: Runbook) -> None:
    scenario = rehearse(ehr, fail="install_app").scenario
    assert scenario is not None
    assert scenario.at == scenario.rollback_start == minutes(60)  # install_app's planned end
    assert [(u.start, u.duration) for u in scenario.undo] == [
        (minutes(60), minutes(20)),
        (minutes(80), minutes(5)),
        (minutes(85), minutes(5)),
        (minutes(90), timedelta(0)),
    ]
    assert scenario.rollback_end == minutes(90)


def test_a_parallel_step_still_running_is_waited_for_and_undone() -> None:
    rb = runbook(
        [
            {
                "id": "install",
                "steps": [
                    step("backup", 20),
                    step("app_a", 30, depends_on=[]),
                    step("app_b", 15, depends_on=["backup"]),
                    step("verify", 5, depends_on=["app_a", "app_b"]),
                ],
            }
        ]
    )
    scenario = rehearse(rb, fail="backup").scenario
    assert scenario is not None
    assert [a.id for a in scenario.completed] == ["app_a"]  # app_b and verify never start
    assert scenario.rollback_start == minutes(30)  # app_a's end, not the failure at 20m
    assert [u.id for u in scenario.undo] == ["app_a"]
    assert "still running: rollback waits for it" in rehearsal_text(rehearse(rb, fail="backup"))


# -- the window ----------------------------------------------------------------------------------


def test_the_plan_and_the_rollback_are_measured_against_the_window(ehr: Runbook) -> None:
    result = rehearse(with_window(ehr, 2), nogo="go_nogo_3")
    assert result.start == T
    assert result.window_end == timedelta(hours=2)
    text = rehearsal_text(result)
    assert "Planned finish: T+1h30m (Sat 22:30); inside the window, 30m to spare." in text
    assert "Rollback ends T+2h20m (Sat 23:20); 20m AFTER the window ends." in text


def test_start_moves_t_inside_the_window(ehr: Runbook) -> None:
    result = rehearse(with_window(ehr, 2), start="2026-12-05T21:30:00+00:00")
    assert result.start == T + minutes(30)
    assert result.window_end == minutes(90)


def test_a_start_outside_the_window_is_refused(ehr: Runbook) -> None:
    with pytest.raises(TimePlanError, match="outside the window"):
        rehearse(with_window(ehr, 2), start="2026-12-06T21:30:00+00:00")


def test_without_window_or_start_times_are_relative_to_t(ehr: Runbook) -> None:
    unplanned = without_window(ehr)
    result = rehearse(unplanned)
    assert result.start is None
    assert "T: not set" in rehearsal_text(result)
    assert "Sat" in rehearsal_text(rehearse(unplanned, start="2026-12-05T21:00:00+00:00"))


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nogo": "go_nogo_4"}, "no gate 'go_nogo_4' in the runbook; did you mean 'go_nogo_3'?"),
        ({"nogo": "stop_app"}, "'stop_app' is a step"),
        ({"fail": "go_nogo_2"}, "'go_nogo_2' is a gate"),
        ({"fail": "instal_app"}, "did you mean 'install_app'?"),
        ({"params": {"verison": "1"}}, "unknown param 'verison'; did you mean 'version'?"),
        ({"params": {"version": "x.1"}}, "does not match the pattern"),
        ({"nogo": "go_nogo_2", "fail": "stop_app"}, "not both"),
    ],
)
def test_an_unknown_param_gate_or_step_is_refused_naming_what_there_is(
    ehr: Runbook, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(RehearsalError) as caught:
        rehearse(ehr, **kwargs)
    assert message in str(caught.value)
    if "nogo" in kwargs and "fail" not in kwargs:
        assert "(its gates: go_nogo_2, go_nogo_3)" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [("50", "below the minimum"), ("many", "must be of type integer"), ("true", "of type")],
)
def test_a_param_value_airflow_would_refuse_is_refused(value: str, message: str) -> None:
    hotfix, _ = load_file(RUNBOOKS / "hotfix.yaml")
    with pytest.raises(RehearsalError, match=message):
        rehearse(hotfix, {"queue_size": value})


# -- the commands --------------------------------------------------------------------------------


def test_a_bash_command_shows_the_shell_text_its_environment_and_what_it_runs(
    ehr: Runbook,
) -> None:
    command = by_label(rehearse(ehr, {"version": "4.2.1"}))["rehearse install_app"]
    assert command.text == 'scripts/app.sh check "$GONOGO_PARAM_VERSION"'
    assert command.env == {"GONOGO_PARAM_VERSION": "4.2.1"}
    assert command.runs == "scripts/app.sh check 4.2.1"


def test_without_a_given_value_the_default_is_used(ehr: Runbook) -> None:
    assert by_label(rehearse(ehr))["step migrate_db"].runs == "scripts/db.sh migrate 4.2.0"


def test_a_value_reaches_the_shell_as_one_quoted_word() -> None:
    rb = runbook(
        [{"id": "p", "steps": [step("s", bash='echo "$GONOGO_PARAM_MSG"')]}],
        params={"msg": {"default": "hi"}},
    )
    command = by_label(rehearse(rb, {"msg": "$(rm -rf /); x"}))["step s"]
    assert command.runs == "echo '$(rm -rf /); x'"


def test_python_kwargs_are_rendered_as_airflow_renders_them() -> None:
    hotfix, _ = load_file(RUNBOOKS / "hotfix.yaml")
    command = by_label(rehearse(hotfix, {"queue_size": "700"}))["step write_config"]
    assert command.text == "steps.config:set_value(key='queue_size', value='700')"


def test_an_http_request_is_shown_with_its_values_url_encoded() -> None:
    http = {"method": "POST", "url": "https://h/api/{{ params.q }}", "body": "{{ params.q }}"}
    rb = runbook(
        [{"id": "p", "steps": [{"id": "call", "http": http}]}],
        params={"q": {"default": "a b&c"}},
    )
    command = by_label(rehearse(rb))["step call"]
    assert command.text == "POST https://h/api/a%20b%26c"
    assert command.body == '"a b\\u0026c"'


def test_what_only_a_run_knows_stays_as_written() -> None:
    env = {"TOKEN": "{{ conn.vault.password }}", "RUN": "{{ run_id }}"}
    rb = runbook([{"id": "p", "steps": [{"id": "s", "bash": 'deploy "$RUN"', "env": env}]}])
    command = by_label(rehearse(rb))["step s"]
    assert command.env == env
    assert (command.text, command.runs) == ('deploy "$RUN"', None)


def test_an_argument_list_is_shown_with_its_values_as_single_arguments() -> None:
    rb = runbook(
        [{"id": "p", "steps": [{"id": "s", "exec": ["scripts/x.sh", "{{ params.msg }}"]}]}],
        params={"msg": {"default": "hi"}},
    )
    command = by_label(rehearse(rb, {"msg": "a b; c"}))["step s"]
    assert (command.kind, command.text) == ("exec", "scripts/x.sh '{{ params.msg }}'")
    assert command.runs == "scripts/x.sh 'a b; c'"


def test_every_action_is_shown_with_the_rehearse_action_and_the_manual_instruction() -> None:
    rb = runbook(
        [
            {
                "id": "p",
                "steps": [
                    step("s", rehearse={"bash": "do s --dry-run"}),
                    {"id": "look", "owner": "ops", "manual": "Look at the ward view."},
                ],
            },
            {"gate": "g", "sign_off": ["ops"], "checks": [{"id": "up", "bash": "curl -f h"}]},
        ],
        rollback={"steps": [{"id": "tell", "bash": "tell users"}]},
    )
    shown = {c.label: c.text for c in rehearse(rb).commands}
    assert shown == {
        "step s": "do s",
        "rehearse s": "do s --dry-run",
        "undo s": "undo s",
        "step look": "Look at the ward view.",
        "check g.up": "curl -f h",
        "rollback tell": "tell users",
    }


# -- the planner decides the order ---------------------------------------------------------------


@st.composite
def runbooks(draw: st.DrawFn) -> Runbook:
    """Phases of steps with random durations, parallel branches and undo actions; random gates."""
    phases: list[dict[str, Any]] = []
    number = 0
    for p in range(draw(st.integers(1, 3))):
        if p and draw(st.booleans()):
            phases.append({"gate": f"g{p}", "sign_off": ["ops"]})
        steps: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 4))):
            earlier = [s["id"] for s in steps]
            some = st.lists(st.sampled_from(earlier), unique=True) if earlier else st.just([])
            depends = draw(st.none() | some)
            undo = draw(st.none() | st.integers(0, 30))
            found = step(
                f"s{number}",
                draw(st.none() | st.integers(0, 30)),
                undo=undo is not None,
                depends_on=depends,
            )
            if undo:
                found["rollback"]["planned"] = f"{undo}m"
            steps.append(found)
            number += 1
        phases.append({"id": f"p{p}", "steps": steps})
    return runbook(phases, rollback={"steps": [{"id": "tell", "bash": "tell", "planned": "5m"}]})


@settings(max_examples=300, deadline=None)
@given(runbooks(), st.data())
def test_the_undo_order_is_the_planners_for_the_simulated_completion_times(
    rb: Runbook, data: st.DataObject
) -> None:
    ids = [s.id for _, s in rb.steps()] + [g.gate for g in rb.gates]
    target = data.draw(st.sampled_from(ids))
    is_gate = target in {g.gate for g in rb.gates}
    result = rehearse(rb, **({"nogo": target} if is_gate else {"fail": target}), start=T)
    scenario = result.scenario
    assert scenario is not None
    done = {a.id: a for a in scenario.completed}
    records = [
        StepRecord(
            s.id,
            states.SUCCESS if s.id in done else states.FAILED if s.id == target else "none",
            T + done[s.id].end if s.id in done else None,
            s.rollback is not None,
            position,
        )
        for position, (_, s) in enumerate(rb.steps())
    ]
    assert undone(result) == plan_rollback(records).compensate
    # Newest finished first; every undo after the step ended; then the global steps.
    ends = [done[s].end for s in undone(result)]
    assert ends == sorted(ends, reverse=True)
    assert all(end <= scenario.rollback_start for end in ends)
    assert [u.id for u in scenario.undo if u.global_step] == ["tell"]
    # Whatever comes before the target in an earlier phase completed; nothing in a later one ran.
    order = [item.id for item in rb.phases]
    phase_of = {s.id: p.id for p, s in rb.steps()}
    where = order.index(target if is_gate else phase_of[target])
    for s_id, phase in phase_of.items():
        if order.index(phase) < where:
            assert s_id in done
        if order.index(phase) > where or s_id == target:
            assert s_id not in done


# -- the command line ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rehearse", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_compensations_in_order_and_the_rendered_params(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, str(EHR), "--nogo", "go_nogo_3", "--param", "version=4.2.7")
    assert code == 0
    rollback = out[out.index("Rollback (automatic)") : out.index("Commands")]
    positions = [rollback.index(f"undo {s} ") for s in EHR_UNDO_ALL]
    assert positions == sorted(positions)
    assert rollback.index("announce_rollback (global rollback step)") > positions[-1]
    assert "runs scripts/app.sh install 4.2.7" in out
    assert "env  GONOGO_PARAM_VERSION=4.2.7" in out


def test_the_command_shows_a_failure_against_the_given_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, str(EHR), "--fail", "migrate_db", "--start", "2027-01-12T22:30:00+01:00"
    )
    assert code == 0
    assert "If step migrate_db fails (at its planned end, T+40m (Tue 23:10)):" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nogo", "go_nogo_9"], "no gate 'go_nogo_9' in the runbook"),
        (["--fail", "nope"], "(its steps: smoke_before, announce_start, stop_app,"),
        (["--param", "colour=red"], "unknown param 'colour' (its params: version, fail_step)"),
        (["--param", "version"], "expected NAME=VALUE"),
        (["--start", "tomorrow"], "--start: planned_start 'tomorrow' is not a time"),
    ],
)
def test_a_bad_argument_is_a_usage_error_that_names_what_there_is(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, str(EHR), *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_an_invalid_runbook_is_refused_like_plan_refuses_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ehr_text: str
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(ehr_text.replace("\ntitle: EHR", "\ntitel: EHR"))
    code, out, err = run(capsys, str(broken), "--nogo", "go_nogo_2")
    assert (code, out) == (1, "")
    assert "titel: unknown key; did you mean 'title'?" in err
