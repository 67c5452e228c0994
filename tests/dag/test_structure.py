"""A compiled DAG's structure, built in-process: task ids, groups, edges and trigger rules.

This is the contract between the runbook and Airflow. The integration tests show the
same DAGs running; these show their shape without starting anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EHR, RUNBOOKS

from gonogo.core.runbook.loader import load_file, load_text
from gonogo.dag.builder import build_dag
from gonogo.dag.gates import GateChecksOperator, GateRoleOperator
from gonogo.dag.guided import GuidedStepOperator
from gonogo.dag.hitl import ManualStepOperator
from gonogo.dag.rollback import RollbackApprovalOperator, RollbackStartSensor, UndoSlot

FORWARD = [
    "before_start",
    "acquire_lock",
    "forecast",
    "begin",
    "preflight.smoke_before",
    "preflight.announce_start",
    "gate__go_nogo_2.opens",
    "gate__go_nogo_2.release_manager",
    "gate__go_nogo_2.service_owner",
    "gate__go_nogo_2.hospital",
    "gate__go_nogo_2.result",
    "wait_for_start",
    "install.stop_app",
    "install.backup_db",
    "install.migrate_db",
    "install.install_app",
    "install.start_app",
    "production_test.smoke_after",
    "production_test.ward_view_works",
    "gate__go_nogo_3.release_manager",
    "gate__go_nogo_3.hospital",
    "gate__go_nogo_3.result",
    "open.announce_done",
]


@pytest.fixture(scope="module")
def ehr() -> Any:
    runbook, _ = load_file(EHR)
    return build_dag(runbook, RUNBOOKS)


def build(text: str, tmp_path: Path) -> Any:
    runbook, _ = load_text(text)
    return build_dag(runbook, tmp_path)


def rule(dag: Any, task_id: str) -> str:
    return str(dag.get_task(task_id).trigger_rule.value)


def ups(dag: Any, task_id: str) -> set[str]:
    return set(dag.get_task(task_id).upstream_task_ids)


def test_the_ehr_dag_has_exactly_the_expected_tasks(ehr: Any) -> None:
    expected = {
        *FORWARD,
        "wait_for_window",  # a wait, not work: nothing to roll back if it fails
        "gate__go_nogo_2.watch",
        "gate__go_nogo_3.watch",
        "rollback.start",
        *(f"rollback.undo_{n}" for n in range(1, 7)),
        "rollback.announce_rollback",
        "release_lock",
        "outcome",
        "go_live",  # early_life: a succeeded outcome starts support
        # early_life's roster: a failed rollback is called (standby, then next) and reported
        "incident.call__1",
        "incident.call__2",
        "incident.report",
        "incident.report__2",
    }
    assert set(ehr.task_ids) == expected


def test_phases_and_gates_are_task_groups_in_runbook_order(ehr: Any) -> None:
    groups = list(ehr.task_group.children)
    assert groups[:12] == [
        "before_start",
        "wait_for_window",
        "acquire_lock",
        "forecast",
        "begin",
        "preflight",
        "gate__go_nogo_2",
        "wait_for_start",
        "install",
        "production_test",
        "gate__go_nogo_3",
        "open",
    ]
    assert "rollback" in groups


def test_steps_follow_the_step_above_and_phases_follow_gates(ehr: Any) -> None:
    # The run waits for its planned begin (T-30m, when GO/NOGO 2 may open), then the lock.
    assert ups(ehr, "wait_for_window") == {"before_start"}
    assert ups(ehr, "acquire_lock") == {"wait_for_window"}
    # The change record is checked and people are told before the first step.
    assert ups(ehr, "begin") == {"acquire_lock"}
    assert ups(ehr, "preflight.smoke_before") == {"begin"}
    assert ups(ehr, "install.backup_db") == {"install.stop_app"}
    # GO/NOGO 2 does not open before its time, and the installation waits for T.
    assert ups(ehr, "gate__go_nogo_2.opens") == {"preflight.announce_start"}
    assert ups(ehr, "gate__go_nogo_2.hospital") == {"gate__go_nogo_2.opens"}
    # Stop mode: the next phase waits for the role requests themselves, not the result task.
    assert ups(ehr, "wait_for_start") == {
        "gate__go_nogo_2.release_manager",
        "gate__go_nogo_2.service_owner",
        "gate__go_nogo_2.hospital",
    }
    assert ups(ehr, "install.stop_app") == {"wait_for_start"}


def test_every_gate_role_is_a_request_and_manual_steps_are_requests(ehr: Any) -> None:
    assert isinstance(ehr.get_task("gate__go_nogo_3.hospital"), GateRoleOperator)
    manual = ehr.get_task("production_test.ward_view_works")
    assert isinstance(manual, ManualStepOperator)
    assert manual.subject.endswith("Ward view shows patient lists")
    assert manual.retries == 0


def test_rollback_starts_on_any_forward_failure_and_the_first_undo_follows_it_directly(
    ehr: Any,
) -> None:
    assert isinstance(ehr.get_task("rollback.start"), RollbackStartSensor)
    assert rule(ehr, "rollback.start") == "one_failed"
    assert ups(ehr, "rollback.start") == set(FORWARD)
    assert isinstance(ehr.get_task("rollback.undo_1"), UndoSlot)
    assert rule(ehr, "rollback.undo_1") == "one_failed"
    assert ups(ehr, "rollback.undo_1") == set(FORWARD)


def test_undo_slots_form_a_chain_and_global_steps_come_last(ehr: Any) -> None:
    for n in range(2, 7):
        assert ups(ehr, f"rollback.undo_{n}") == {f"rollback.undo_{n - 1}"}
        assert rule(ehr, f"rollback.undo_{n}") == "all_success"
    assert ups(ehr, "rollback.announce_rollback") == {"rollback.start", "rollback.undo_6"}
    assert rule(ehr, "rollback.announce_rollback") == "none_failed_min_one_success"


def test_the_lock_is_released_and_the_outcome_decided_whatever_happened(ehr: Any) -> None:
    assert rule(ehr, "release_lock") == "all_done"
    assert rule(ehr, "outcome") == "all_done"
    assert ups(ehr, "outcome") == {"release_lock"}
    assert ehr.get_task("release_lock").pool == "gonogo_lock"
    assert ehr.get_task("acquire_lock").pool == "gonogo_lock"


def test_params_become_the_trigger_form_and_reach_commands_as_data(ehr: Any) -> None:
    assert ehr.params["version"] == "4.2.0"
    command = ehr.get_task("open.announce_done").bash_command  # shell text: runs as written
    assert '"$GONOGO_PARAM_VERSION"' in command
    assert "params" not in command
    env = ehr.get_task("open.announce_done").env
    assert "params['version']" in env["GONOGO_PARAM_VERSION"]
    argv = ehr.get_task("install.install_app").op_kwargs["argv"]  # exec: one argument each
    assert argv == ["scripts/app.sh", "install", "{{ params.version }}"]


HEAD = """
runbook: shape
title: Shape
service: svc
environment: test
change: {id: CHG1, type: normal}
roles:
  rm: {users: [a, b]}
  so: {users: [c]}
params:
  msg: {type: string, default: hi}
"""


def test_a_gate_check_is_quoted_like_a_step(tmp_path: Path) -> None:
    dag = build(
        HEAD
        + """
phases:
  - gate: g
    sign_off: [rm]
    checks:
      - {id: c1, bash: 'echo "$GONOGO_PARAM_MSG"', required: true}
  - id: p
    steps: [{id: s, bash: "true", read_only: true}]
""",
        tmp_path,
    )
    checks = dag.get_task("gate__g.checks")
    assert isinstance(checks, GateChecksOperator)
    spec = checks.op_kwargs["checks"][0]
    assert spec["bash"] == 'echo "$GONOGO_PARAM_MSG"'
    assert "params['msg']" in spec["env"]["GONOGO_PARAM_MSG"]
    assert spec["required"] is True
    assert ups(dag, "gate__g.rm") == {"gate__g.checks"}


def test_reask_rounds_chain_and_the_next_phase_waits_for_the_result(tmp_path: Path) -> None:
    dag = build(
        HEAD
        + """
phases:
  - gate: g
    sign_off: [rm, so]
    on_nogo: reask
  - id: p
    steps: [{id: s, bash: "true", read_only: true}]
""",
        tmp_path,
    )
    assert ups(dag, "gate__g.rm__round_2") == {"gate__g.rm__round_1"}
    assert "gate__g.rm__round_4" in dag.task_ids
    assert ups(dag, "p.s") == {"gate__g.result"}


def test_rollback_approval_comes_between_start_and_the_first_undo(tmp_path: Path) -> None:
    dag = build(
        HEAD
        + """
phases:
  - gate: g
    sign_off: [rm]
  - id: p
    steps:
      - {id: s, bash: "true", rollback: {bash: "true"}}
rollback:
  approve: [so]
""",
        tmp_path,
    )
    assert isinstance(dag.get_task("rollback.approve__so"), RollbackApprovalOperator)
    assert ups(dag, "rollback.approve__so") == {"rollback.start"}
    assert ups(dag, "rollback.undo_1") == {"rollback.approve__so"}
    assert rule(dag, "rollback.undo_1") == "all_success"


def test_decide_mode_makes_technical_steps_guided(tmp_path: Path) -> None:
    dag = build(
        HEAD
        + """
phases:
  - gate: g
    sign_off: [rm]
  - id: p
    steps:
      - {id: s, bash: "true", rollback: {bash: "true"}}
      - {id: m, manual: check it, owner: so}
rollback:
  mode: decide
""",
        tmp_path,
    )
    guided = dag.get_task("p.s")
    assert isinstance(guided, GuidedStepOperator)
    assert [u["id"] for u in guided.assigned_users] == ["a", "b"]
    assert isinstance(dag.get_task("p.m"), ManualStepOperator)


def test_a_window_makes_the_lock_wait_for_its_start(tmp_path: Path) -> None:
    dag = build(
        HEAD
        + """
window: {start: "2030-01-01T22:00:00+01:00", end: "2030-01-02T02:00:00+01:00"}
phases:
  - gate: g
    sign_off: [rm]
  - id: p
    steps: [{id: s, bash: "true", read_only: true}]
""",
        tmp_path,
    )
    assert ups(dag, "acquire_lock") == {"wait_for_window"}
    assert ups(dag, "wait_for_window") == {"before_start"}
    from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

    assert isinstance(dag.get_task("wait_for_window"), DateTimeSensorAsync)


def test_a_gate_must_be_decided_by_its_decide_by(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    dag = build(
        HEAD
        + """
window: {start: "2030-01-01T22:00:00+00:00", end: "2030-01-02T02:00:00+00:00"}
phases:
  - gate: g
    sign_off: [rm]
    opens: T-30m
    decide_by: T-5m
  - gate: h
    sign_off: [so]
    decide_by: 10m
  - id: p
    steps: [{id: s, bash: "true", read_only: true}]
""",
        tmp_path,
    )
    context = {"params": {}, "dag_run": None}
    by_clock = dag.get_task("gate__g.rm")._deadline(context, None)
    assert by_clock == datetime(2030, 1, 1, 21, 55, tzinfo=UTC)
    before = datetime.now(UTC)
    by_duration = dag.get_task("gate__h.so")._deadline(context, None)
    assert (
        before + timedelta(minutes=10) <= by_duration <= datetime.now(UTC) + timedelta(minutes=10)
    )
    shared = dag.get_task("gate__h.so")._deadline(
        context, {"deadline": "2030-01-01T23:00:00+00:00"}
    )
    assert shared == datetime(2030, 1, 1, 23, 0, tzinfo=UTC)


def _hooks(hook: Any) -> list[str]:
    """The functions a pre_execute hook runs, in order, with chains taken apart."""
    if hook.__qualname__ == "chain.<locals>.run":
        return [name for part in hook.__closure__[0].cell_contents for name in _hooks(part)]
    return [hook.__qualname__]


def test_every_step_after_a_gate_checks_the_gates_answer_records_first(ehr: Any) -> None:
    before = _hooks(ehr.get_task("preflight.announce_start").run_before)
    after = _hooks(ehr.get_task("install.stop_app").run_before)
    guard = ["stop_if_failed.<locals>.guard", "unchanged.<locals>.hook"]
    assert before[:2] == guard and "verify_gates.<locals>.hook" not in before
    # After a gate: the same guard, then the check of the gate's records, then the rehearsal.
    assert after[:3] == [*guard, "verify_gates.<locals>.hook"]
    assert "rehearse_instead.<locals>.hook" in after


def test_hooks_run_from_the_tasks_own_methods_and_stay_out_of_the_serialized_dag(
    ehr: Any,
) -> None:
    from airflow.serialization.serialized_objects import DagSerialization
    from tests.conftest import EXAMPLES

    from gonogo.core import naming
    from gonogo.dag.builder import build_dags
    from gonogo.dag.rollback import record_finish

    # Airflow serializes its own pre_execute=/post_execute= arguments as source code.
    for example in EXAMPLES:
        for dag in build_dags(load_file(example)[0], RUNBOOKS):
            assert not [t for t in dag.tasks if t._pre_execute_hook or t._post_execute_hook]
    step = ehr.get_task("install.stop_app")
    assert step.run_after is record_finish
    assert "stop_if_failed.<locals>.guard" in _hooks(step.run_before)
    text = str(DagSerialization.to_dict(ehr))
    assert "stop_if_failed" not in text and "record_finish" not in text

    pushed: dict[str, Any] = {}
    ti = type("TI", (), {"xcom_push": lambda self, key, value: pushed.update({key: value})})()
    step.post_execute({"ti": ti}, result=None)  # as the task runner calls it, after execute
    assert naming.XCOM_FINISHED_AT in pushed
