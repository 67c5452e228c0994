"""The approval DAG's own tasks: a revoked fingerprint stays revoked, an edited ledger is refused.

The Variables are a dict behind Variable's get and set (stored as JSON, as
Airflow stores them), and the task instance keeps XComs in a dict; the tasks are
gonogo's real ``record``, ``revoke`` and plan check over a real runbook. The real
runs are in tests/integration/test_approval.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from tests.dag.fakes import TaskInstance, Variables

from gonogo.core import naming
from gonogo.core.change.approval import HISTORY, broken_link
from gonogo.core.runbook.loader import load_text
from gonogo.core.runs import stamp
from gonogo.dag import approval
from gonogo.dag.approval import LedgerEdited, Plan, approval_of, approvers_of, plan_check

SECRET = "the installation's secret"
RUNBOOK = """\
runbook: plan-prod
title: Approved plan in production
service: svc
environment: prod
change: {id: CHG1, type: normal}
roles:
  cab: {users: [svcowner]}
  rm: {users: [relman]}
approval: {sign_off: [cab]}
phases:
  - gate: go
    sign_off: [rm]
  - id: work
    steps:
      - id: change
        bash: echo change
"""
KEY = naming.approvals_key("plan-prod")
DAG_ID = naming.approval_dag("plan-prod")


@pytest.fixture(autouse=True)
def variables(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("AIRFLOW__GONOGO__STAMP_SECRET", SECRET)
    monkeypatch.delenv("GONOGO_POLICY", raising=False)
    monkeypatch.setattr(Variables, "values", {}, raising=False)
    monkeypatch.setattr(approval, "Variable", Variables)
    return Variables.values


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    runbook, _ = load_text(RUNBOOK, "plan-prod.yaml")
    return Plan(runbook, tmp_path)


def context(run_id: str, plan: Plan, **params: Any) -> dict[str, Any]:
    found = plan.fingerprint().as_dict()
    answer = {"by": "svcowner", "role": "cab"}
    ti = TaskInstance(
        {
            f"{naming.PREFLIGHT_TASK}:{naming.XCOM_FINGERPRINT}": found,
            naming.gate_task(naming.APPROVAL_GATE, "cab"): answer,
        }
    )
    signed = stamp.stamp(SECRET, DAG_ID, run_id, "kari", "kari")
    return {
        "ti": ti,
        "run_id": run_id,
        "params": params,
        "dag": SimpleNamespace(dag_id=DAG_ID),
        "dag_run": SimpleNamespace(conf={naming.CONF_TRIGGER: signed}, triggering_user_name="kari"),
    }


def record(plan: Plan, run_id: str = "approve-1") -> dict[str, Any]:
    roles = approvers_of(plan.runbook)
    ctx = context(run_id, plan)
    return approval._record(plan.runbook, plan, roles, **ctx) | {"pushed": ctx["ti"].pushed}


def revoke(plan: Plan, reason: str = "the migration has a known bug") -> None:
    ctx = context("revoke-1", plan, revoke=True, reason=reason, fingerprint="")
    with pytest.raises(AirflowSkipException, match="revoked"):
        approval._revoke(ctx, plan.runbook, reason)


def test_a_record_task_run_again_after_a_revocation_fails_and_writes_nothing(
    plan: Plan, variables: dict[str, str]
) -> None:
    first = record(plan)
    assert first["digest"] == plan.fingerprint().digest
    assert first["pushed"][naming.XCOM_OUTCOME]["outcome"] == "approved"
    revoke(plan)
    written = variables[KEY]
    entries = json.loads(written)[HISTORY]
    assert [e["kind"] for e in entries] == ["approval", "revocation"]
    assert entries[1]["by"] == "kari" and entries[1]["run_id"] == "revoke-1"

    ctx = context("approve-1", plan)  # the same approval run, its record task cleared
    with pytest.raises(AirflowFailException) as refused:
        approval._record(plan.runbook, plan, approvers_of(plan.runbook), **ctx)
    message = str(refused.value)
    assert message.startswith(f"not approved: fingerprint {plan.fingerprint().short} was revoked")
    assert "by kari at " in message and ": the migration has a known bug" in message
    assert "revocation run revoke-1" in message
    assert variables[KEY] == written
    assert ctx["ti"].pushed == {}


def test_a_revocation_appends_to_the_history(plan: Plan, variables: dict[str, str]) -> None:
    record(plan)
    before = json.loads(variables[KEY])[HISTORY]
    revoke(plan)
    after = json.loads(variables[KEY])
    assert after[HISTORY][: len(before)] == before and len(after[HISTORY]) == len(before) + 1
    assert broken_link(after) is None


def edited(variables: dict[str, str], change: Any) -> str:
    ledger = json.loads(variables[KEY])
    change(ledger)
    variables[KEY] = json.dumps(ledger)
    return variables[KEY]


def drop_revocation(ledger: dict[str, Any]) -> None:
    del ledger[HISTORY][-1]


def test_an_edited_ledger_is_refused_by_every_task_and_left_as_it_is(
    plan: Plan, variables: dict[str, str]
) -> None:
    record(plan)
    revoke(plan)
    written = edited(variables, drop_revocation)
    with pytest.raises(LedgerEdited, match=f"the approvals ledger {KEY} was edited outside gonogo"):
        approval_of(context("approve-1", plan), "plan-prod", plan.fingerprint())
    with pytest.raises(LedgerEdited, match="is not what its history says"):
        record(plan, "approve-2")
    ctx = context("revoke-2", plan, revoke=True, reason="again", fingerprint="")
    with pytest.raises(LedgerEdited, match="edited outside gonogo"):
        approval._revoke(ctx, plan.runbook, "again")
    assert variables[KEY] == written


@pytest.mark.parametrize("value", ["not json{", '"a string"', "[]"])
def test_a_ledger_replaced_by_something_else_is_refused(
    plan: Plan, variables: dict[str, str], value: str
) -> None:
    variables[KEY] = value
    with pytest.raises(LedgerEdited, match=r"is not (a )?JSON"):
        approval_of(context("approve-1", plan), "plan-prod", plan.fingerprint())


def test_the_plan_check_refuses_a_run_that_needs_an_edited_ledger(
    plan: Plan, variables: dict[str, str]
) -> None:
    record(plan)
    edited(variables, drop_revocation)  # the approval itself removed from the history
    check = plan_check(plan.runbook, plan)
    with pytest.raises(AirflowFailException) as refused:
        check(context("manual__1", plan))
    assert str(refused.value).startswith(f"not started: the approvals ledger {KEY} was edited")


def test_a_rehearsal_goes_on_with_an_edited_ledger_and_says_so(
    plan: Plan, variables: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    record(plan)
    edited(variables, drop_revocation)
    found = plan_check(plan.runbook, plan)(context("manual__1", plan, rehearsal=True))
    assert found["rehearsal"] is True and found["approval"] is None
    assert "was edited outside gonogo" in caplog.text
