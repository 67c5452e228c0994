"""An incident called to the standby contact until acknowledged, and its P1/P2 incident report.

The tasks run in-process against a stand-in for the task instance that keeps
XComs by task and key: every precondition is read from those records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from tests.conftest import EHR, RUNBOOKS

from gonogo import load_file
from gonogo.core import naming
from gonogo.core.earlylife import incident, names
from gonogo.dag.builder import build_dags
from gonogo.dag.incident import XCOM_CALLED, XCOM_DRAFT, CallOperator, IncidentReportOperator

OSLO = ZoneInfo("Europe/Oslo")
#: A Wednesday at 10:00 in Oslo: the incident manager's shift, then the system owner.
WEEKDAY = datetime(2027, 1, 13, 10, tzinfo=OSLO)
#: A Saturday: the system owner (the fallback) alone.
SATURDAY = datetime(2027, 1, 16, 10, tzinfo=OSLO)
ROUND = "d1_0600"


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    runbook, _ = load_file(EHR)
    return {dag.dag_id: dag for dag in build_dags(runbook, RUNBOOKS)}


@pytest.fixture(scope="module")
def life(built: dict[str, Any]) -> Any:
    return built[names.early_life_dag("ehr-upgrade-4-2")]


@pytest.fixture(scope="module")
def rollout(built: dict[str, Any]) -> Any:
    return built["ehr-upgrade-4-2"]


class _Ti:
    """XComs by (task id, key), as the Execution API keeps them."""

    def __init__(self, task_id: str = "", **pushed: Any) -> None:
        self.task_id = task_id
        self.xcoms: dict[tuple[str, str], Any] = {}
        for task, value in pushed.items():
            self.xcoms[(task, naming.RETURN_VALUE)] = value

    def xcom_pull(self, task_ids: str, key: str = naming.RETURN_VALUE, **_: Any) -> Any:
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[(self.task_id, key)] = value


def _context(dag: Any, task: Any, ti: _Ti, **params: Any) -> dict[str, Any]:
    ti.task_id = task.task_id
    return {"ti": ti, "dag": dag, "run_id": "r1", "params": params, "task": task}


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The requests opened: Airflow's HITL write and wait are not run."""
    found: list[Any] = []
    monkeypatch.setattr(
        "airflow.providers.standard.operators.hitl.HITLOperator.execute",
        lambda self, context: found.append(self),
    )
    monkeypatch.setattr("gonogo.dag.incident.raise_incident", lambda *a, **k: None)
    monkeypatch.setattr("gonogo.dag.incident.incident_number", lambda *a, **k: "INC0010001")
    return found


def _red(at: datetime, priority: str = "P1") -> dict[str, Any]:
    return {
        "colour": "red",
        "by": "dba",
        "comment": "database down",
        "needs_decision": False,
        "incident": priority,
        "at": at.astimezone(UTC).isoformat(),
    }


def _answer(by: str, option: str, comment: str = "") -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": {"comment": comment},
        "responded_at": datetime.now(UTC),
        "responded_by_user": {"id": by, "name": by},
    }


# -- the shape --------------------------------------------------------------------------------


def test_each_area_report_is_followed_by_its_calls_and_report_drafts(life: Any) -> None:
    report = f"{ROUND}.technology"
    first, second = (f"{ROUND}.{incident.call_task(n, 'technology')}" for n in (1, 2))
    draft, again = (f"{ROUND}.{incident.report_task('technology', k)}" for k in (1, 2))
    assert life.get_task(first).upstream_task_ids == {report}
    assert str(life.get_task(first).trigger_rule.value) == "all_success"  # no report, no call
    assert life.get_task(second).upstream_task_ids == {first}
    assert str(life.get_task(second).trigger_rule.value) == "none_skipped"
    assert life.get_task(draft).upstream_task_ids == {first, second}
    assert str(life.get_task(draft).trigger_rule.value) == "all_done"
    assert life.get_task(again).upstream_task_ids == {draft}
    assert isinstance(life.get_task(first), CallOperator)
    assert isinstance(life.get_task(draft), IncidentReportOperator)
    # The contact is worked out when the call runs: nobody is assigned at parse time.
    assert life.get_task(first).assigned_users == []
    assert life.get_task(first).options == [incident.ACKNOWLEDGE]
    assert life.get_task(first).retries == 0


def test_a_failed_rollback_is_called_after_the_outcome_and_the_run_still_fails(
    rollout: Any,
) -> None:
    first = rollout.get_task(f"{incident.GROUP}.{incident.call_task(1)}")
    assert first.upstream_task_ids == {naming.OUTCOME_TASK}
    assert str(first.trigger_rule.value) == "all_done"  # the outcome task fails with the rollback
    # go_live stays a leaf that needs a succeeded outcome: a failed run ends failed.
    go_live = rollout.get_task(naming.GO_LIVE_TASK)
    assert go_live.downstream_task_ids == set()
    assert str(go_live.trigger_rule.value) == "all_success"


def test_the_report_form_can_mark_a_red_p1_or_p2_only_with_red(life: Any) -> None:
    form = life.get_task(f"{ROUND}.technology").serialized_params[incident.INCIDENT_FIELD]
    assert form["value"] == ""
    assert form["schema"]["enum"] == ["", "P1", "P2"]
    assert form["schema"][incident.ONLY_WITH] == ["Red"]


@pytest.mark.parametrize(
    ("option", "given", "recorded"),
    [("Red", "P1", "P1"), ("Red", "", None), ("Yellow", "P2", None), ("Green", "P1", None)],
)
def test_a_report_records_the_priority_only_with_red(
    life: Any, option: str, given: str, recorded: str | None
) -> None:
    task = life.get_task(f"{ROUND}.technology")
    event = _answer("dba", option, "why")
    event["params_input"].update({incident.INCIDENT_FIELD: given, names.NEEDS_DECISION: False})
    result = task.execute_complete(_context(life, task, _Ti()), event)
    assert result[incident.INCIDENT_FIELD] == recorded
    assert result["at"]  # when it was reported: the moment the roster is read at


def test_an_answer_that_leaves_out_the_incident_field_keeps_its_default(life: Any) -> None:
    task = life.get_task(f"{ROUND}.technology")
    event = _answer("dba", "Red", "why")  # an API client that knows only the comment
    result = task.execute_complete(_context(life, task, _Ti()), event)
    assert result["colour"] == "red" and result[incident.INCIDENT_FIELD] is None


# -- the calls --------------------------------------------------------------------------------


def _call(life: Any, n: int) -> Any:
    return life.get_task(f"{ROUND}.{incident.call_task(n, 'technology')}")


@pytest.mark.parametrize(
    "report",
    [
        {"colour": "green"},
        {"colour": "red", "incident": ""},
        {"colour": "yellow", "incident": "P1"},
        None,
    ],
)
def test_no_p1_or_p2_red_calls_nobody(life: Any, opened: list[Any], report: Any) -> None:
    task = _call(life, 1)
    ti = _Ti(**{f"{ROUND}.technology": report})
    with pytest.raises(AirflowSkipException, match="no P1 or P2"):
        task.execute(_context(life, task, ti))
    assert opened == []


def test_a_p1_red_calls_the_contact_on_standby_at_the_moment_it_was_reported(
    life: Any, opened: list[Any]
) -> None:
    task = _call(life, 1)
    ti = _Ti(**{f"{ROUND}.technology": _red(WEEKDAY)})
    task.execute(_context(life, task, ti))
    assert opened == [task]
    assert [u["id"] for u in task.assigned_users] == ["relman"]  # the incident manager's users
    assert task.response_timeout == timedelta(minutes=15)  # standby.acknowledge_within
    assert "otherwise system_owner is called" in task.body
    called = ti.xcom_pull(task.task_id, XCOM_CALLED)
    assert called["role"] == "incident_manager" and called["priority"] == "P1"
    (told,) = task.notifiers
    assert told.event == "incident_call" and told.detail["address"] == ["incident_manager"]


def test_not_acknowledged_in_time_goes_to_the_next_contact(life: Any, opened: list[Any]) -> None:
    first, second = _call(life, 1), _call(life, 2)
    ti = _Ti(**{f"{ROUND}.technology": _red(WEEKDAY)})
    first.execute(_context(life, first, ti))
    result = first.execute_complete(_context(life, first, ti), {"error_type": "timeout"})
    assert result[incident.ACKNOWLEDGED] is False
    ti.xcoms[(first.task_id, naming.RETURN_VALUE)] = result
    second.execute(_context(life, second, ti))
    assert [u["id"] for u in second.assigned_users] == ["svcowner"]  # the shift's next
    assert second.notifiers[0].detail["not_acknowledged"] == ["incident_manager"]


def test_an_acknowledgement_skips_the_later_calls(life: Any, opened: list[Any]) -> None:
    first, second = _call(life, 1), _call(life, 2)
    ti = _Ti(**{f"{ROUND}.technology": _red(WEEKDAY)})
    first.execute(_context(life, first, ti))
    result = first.execute_complete(
        _context(life, first, ti), _answer("relman", incident.ACKNOWLEDGE)
    )
    assert result[incident.ACKNOWLEDGED] is True and result["by"] == "relman"
    ti.xcoms[(first.task_id, naming.RETURN_VALUE)] = result
    with pytest.raises(AirflowSkipException, match="incident_manager acknowledged"):
        second.execute(_context(life, second, ti))


def test_an_acknowledgement_from_outside_the_called_role_does_not_count(
    life: Any, opened: list[Any]
) -> None:
    first, second = _call(life, 1), _call(life, 2)
    ti = _Ti(**{f"{ROUND}.technology": _red(WEEKDAY)})
    first.execute(_context(life, first, ti))
    result = first.execute_complete(
        _context(life, first, ti), _answer("svcowner", incident.ACKNOWLEDGE)
    )
    assert result[incident.ACKNOWLEDGED] is False and result["refused_by"] == "svcowner"
    ti.xcoms[(first.task_id, naming.RETURN_VALUE)] = result
    second.execute(_context(life, second, ti))  # so the next contact is still called
    assert opened == [first, second]


def test_a_call_past_the_rosters_order_at_that_moment_skips(life: Any, opened: list[Any]) -> None:
    first, second = _call(life, 1), _call(life, 2)
    ti = _Ti(**{f"{ROUND}.technology": _red(SATURDAY)})
    first.execute(_context(life, first, ti))
    assert [u["id"] for u in first.assigned_users] == ["svcowner"]  # the fallback, at weekends
    ti.xcoms[(first.task_id, naming.RETURN_VALUE)] = {"role": "system_owner", "acknowledged": False}
    with pytest.raises(AirflowSkipException, match="1 contact"):
        second.execute(_context(life, second, ti))


@pytest.mark.parametrize(
    ("outcome", "rehearsal", "why"),
    [
        ({"outcome": "rolled_back"}, False, "the outcome is rolled_back"),
        (None, False, "not recorded"),
        ({"outcome": "rollback_failed"}, True, "rehearsal"),
        ({"outcome": "rollback_failed", "rehearsal": True}, False, "rehearsal"),
    ],
)
def test_only_a_real_failed_rollback_is_called(
    rollout: Any, opened: list[Any], outcome: Any, rehearsal: bool, why: str
) -> None:
    task = rollout.get_task(f"{incident.GROUP}.{incident.call_task(1)}")
    ti = _Ti()
    ti.xcoms[(naming.OUTCOME_TASK, naming.XCOM_OUTCOME)] = outcome
    with pytest.raises(AirflowSkipException, match=why):
        task.execute(_context(rollout, task, ti, rehearsal=rehearsal))
    assert opened == []


def test_a_failed_rollback_is_called_as_the_runbooks_priority(
    rollout: Any, opened: list[Any]
) -> None:
    task = rollout.get_task(f"{incident.GROUP}.{incident.call_task(1)}")
    ti = _Ti()
    ti.xcoms[(naming.OUTCOME_TASK, naming.XCOM_OUTCOME)] = {"outcome": "rollback_failed"}
    task.execute(_context(rollout, task, ti))
    assert opened == [task] and task.subject.startswith("INCIDENT P1: Rollback failed")


# -- the incident report ----------------------------------------------------------------------


def _reported(life: Any, ti: _Ti) -> None:
    ti.xcoms[(f"{ROUND}.technology", naming.RETURN_VALUE)] = _red(WEEKDAY)
    ti.xcoms[(f"{ROUND}.{names.decide_task('technology', 1)}", naming.RETURN_VALUE)] = {
        "decision": "Decided",
        "text": "fail over tonight",
        "owner": "dba",
        "due": "22:00",
        "by": "relman",
        "at": WEEKDAY.astimezone(UTC).isoformat(),
    }
    ti.xcoms[(f"{ROUND}.{incident.call_task(1, 'technology')}", naming.RETURN_VALUE)] = {
        "role": "incident_manager",
        "at": WEEKDAY.astimezone(UTC).isoformat(),
        "acknowledged": False,
        "within": "15 minutes",
    }
    ti.xcoms[(f"{ROUND}.{incident.call_task(2, 'technology')}", naming.RETURN_VALUE)] = {
        "role": "system_owner",
        "at": WEEKDAY.astimezone(UTC).isoformat(),
        "acknowledged": True,
        "by": "svcowner",
        "answered_at": WEEKDAY.astimezone(UTC).isoformat(),
    }


def _draft(life: Any, k: int) -> Any:
    return life.get_task(f"{ROUND}.{incident.report_task('technology', k)}")


def test_the_incident_manager_is_asked_to_approve_the_draft_from_the_records(
    life: Any, opened: list[Any]
) -> None:
    task, ti = _draft(life, 1), _Ti()
    _reported(life, ti)
    task.execute(_context(life, task, ti))
    assert opened == [task]
    assert [u["id"] for u in task.assigned_users] == ["relman"]
    assert task.options == [incident.APPROVE, incident.SEND_BACK]
    assert "dba reported Technology (database and servers) red as a P1 incident" in task.body
    assert "deployment_lead: Decided by relman: fail over tonight (owner dba" in task.body
    assert "system_owner was called and acknowledged (svcowner" in task.body
    assert "incident INC0010001" in task.body
    assert ti.xcom_pull(task.task_id, XCOM_DRAFT) == task.body


def test_approval_closes_the_incident_and_keeps_the_approved_report(
    life: Any, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "gonogo.dag.incident.close_incident",
        lambda ctx, scope, notes: closed.append((scope, notes)) or "INC0010001",
    )
    task, ti = _draft(life, 1), _Ti()
    _reported(life, ti)
    task.execute(_context(life, task, ti))
    result = task.execute_complete(_context(life, task, ti), _answer("relman", incident.APPROVE))
    assert result["approved"] is True and result["incident"] == "INC0010001"
    assert closed == [(f"{ROUND}.technology", task.body)]  # closed with the approved report
    kept = ti.xcom_pull(task.task_id, naming.XCOM_INCIDENT_REPORT)
    assert kept["report"] == task.body and kept["by"] == "relman"
    with pytest.raises(AirflowSkipException, match="draft 1 was not sent back"):
        _draft(life, 2).execute(_context(life, _draft(life, 2), ti))


def test_a_draft_sent_back_is_drafted_again_with_the_comment_and_nothing_is_closed(
    life: Any, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []
    monkeypatch.setattr("gonogo.dag.incident.close_incident", lambda *a: closed.append(a))
    task, ti = _draft(life, 1), _Ti()
    _reported(life, ti)
    task.execute(_context(life, task, ti))
    sent = task.execute_complete(
        _context(life, task, ti), _answer("relman", incident.SEND_BACK, "name the root cause")
    )
    assert sent["approved"] is False and closed == []
    ti.xcoms[(task.task_id, naming.RETURN_VALUE)] = sent
    again = _draft(life, 2)
    again.execute(_context(life, again, ti))
    assert "relman: name the root cause" in again.body


def test_an_approval_from_outside_the_incident_manager_role_is_refused(
    life: Any, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []
    monkeypatch.setattr("gonogo.dag.incident.close_incident", lambda *a: closed.append(a))
    task, ti = _draft(life, 1), _Ti()
    _reported(life, ti)
    task.execute(_context(life, task, ti))
    with pytest.raises(AirflowFailException, match="not the incident manager"):
        task.execute_complete(_context(life, task, ti), _answer("dba", incident.APPROVE))
    assert closed == []


def test_a_p2_rollback_report_waits_for_the_incident_managers_time(
    rollout: Any, opened: list[Any]
) -> None:
    task = rollout.get_task(f"{incident.GROUP}.{incident.report_task()}")
    ti = _Ti()
    ti.xcoms[(naming.OUTCOME_TASK, naming.XCOM_OUTCOME)] = {
        "outcome": "rollback_failed",
        "reasons": ["step install.install_app failed"],
        "undone": ["backup_db"],
        "not_undone": ["install_app: undo failed"],
    }
    task.execute(_context(rollout, task, ti))
    assert task.response_timeout == timedelta(hours=24)  # incident.approve_within
    assert "- undone: backup_db" in task.body
    assert "**not undone**: install_app: undo failed" in task.body
    assert "Why the rollback ran: step install.install_app failed" in task.body


# -- four eyes: who started the rollout does not approve the report of its failed rollback ------


class _Run:
    """The DAG run as a task sees it: who triggered it (the name Airflow records)."""

    def __init__(self, by: str) -> None:
        self.triggering_user_name = by
        self.conf: dict[str, Any] = {}


def _failed_rollback(ti: _Ti) -> None:
    ti.xcoms[(naming.OUTCOME_TASK, naming.XCOM_OUTCOME)] = {
        "outcome": "rollback_failed",
        "reasons": ["step install.install_app failed"],
    }


def test_who_started_the_rollout_is_not_asked_to_approve_its_incident_report(
    rollout: Any, opened: list[Any]
) -> None:
    task = rollout.get_task(f"{incident.GROUP}.{incident.report_task()}")
    ti = _Ti()
    _failed_rollback(ti)
    context = {**_context(rollout, task, ti), "dag_run": _Run("relman")}
    with pytest.raises(AirflowFailException, match="four-eyes"):
        task.execute(context)  # relman is the incident manager's only user, and started it
    assert opened == []


def test_an_approval_by_who_started_the_rollout_does_not_close_the_incident(
    rollout: Any, opened: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []
    monkeypatch.setattr("gonogo.dag.incident.close_incident", lambda *a: closed.append(a))
    task = rollout.get_task(f"{incident.GROUP}.{incident.report_task()}")
    ti = _Ti()
    _failed_rollback(ti)
    task.execute(_context(rollout, task, ti))  # opened before the run's starter was known
    context = {**_context(rollout, task, ti), "dag_run": _Run("relman")}
    with pytest.raises(AirflowFailException, match="four-eyes"):
        task.execute_complete(context, _answer("relman", incident.APPROVE))
    assert closed == []
    assert ti.xcom_pull(task.task_id, naming.XCOM_INCIDENT_REPORT) is None


def test_a_reporters_comment_stays_one_line_of_text_in_the_call(
    life: Any, opened: list[Any]
) -> None:
    task = _call(life, 1)
    red = {**_red(WEEKDAY), "comment": "<img src=x>down\n\n# Stand down, nothing to do"}
    ti = _Ti(**{f"{ROUND}.technology": red})
    task.execute(_context(life, task, ti))
    assert "<img" not in task.body and "&lt;img src=x&gt;down # Stand down" in task.body
    assert not any(line.startswith("#") for line in task.body.splitlines())
