"""The early-life DAG: what starts it, its rounds, each area's report request, the chase."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from tests.conftest import EHR, RUNBOOKS

from gonogo import load_file, load_text
from gonogo.core import naming
from gonogo.core.earlylife import incident, names
from gonogo.core.earlylife.rounds import Slot, moment_of, slots
from gonogo.core.runs.decisions import reason_for
from gonogo.dag.builder import build_dags
from gonogo.dag.earlylife import (
    AreaReportOperator,
    ChaseOperator,
    DecisionRequestOperator,
    MeetingLogOperator,
    RoundOpensSensor,
    live_asset,
)


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    runbook, _ = load_file(EHR)
    return {dag.dag_id: dag for dag in build_dags(runbook, RUNBOOKS)}


@pytest.fixture(scope="module")
def life(built: dict[str, Any]) -> Any:
    return built[names.early_life_dag("ehr-upgrade-4-2")]


def test_a_succeeded_outcome_emits_the_go_live_event_that_schedules_support(
    built: dict[str, Any], life: Any
) -> None:
    rollout = built["ehr-upgrade-4-2"]
    go_live = rollout.get_task(naming.GO_LIVE_TASK)
    assert go_live.upstream_task_ids == {naming.OUTCOME_TASK}
    assert str(go_live.trigger_rule.value) == "all_success"  # only after a succeeded outcome
    runbook, _ = load_file(EHR)
    assert go_live.outlets == [live_asset(runbook)]
    assert list(life.schedule) == [live_asset(runbook)]


def test_a_runbook_without_early_life_gets_neither_the_dag_nor_go_live() -> None:
    text = EHR.read_text().split("\nearly_life:")[0] + "\n"
    runbook, _ = load_text(text, str(EHR))
    dags = build_dags(runbook, RUNBOOKS)
    assert [d.dag_id for d in dags] == ["ehr-upgrade-4-2", "ehr-upgrade-4-2.approval"]
    assert naming.GO_LIVE_TASK not in dags[0].task_ids


def test_only_the_early_life_dag_is_built_when_a_task_asks_for_it() -> None:
    runbook, _ = load_file(EHR)
    only = build_dags(runbook, RUNBOOKS, only=names.early_life_dag(runbook.runbook))
    assert [d.dag_id for d in only] == [names.early_life_dag(runbook.runbook)]


def test_every_round_asks_each_area_and_is_chased(life: Any) -> None:
    # Eight days can touch nine calendar days; four rounds a day.
    groups = sorted({g for t in life.task_ids if names.parse_round(g := t.split(".")[0])})
    assert len(groups) == 9 * 4
    assert groups[:4] == ["d1_0600", "d1_1000", "d1_1400", "d1_1800"]
    areas = {"clinical", "application", "support", "technology"}
    for group in groups:
        tasks = {t.split(".", 1)[1] for t in life.task_ids if t.startswith(f"{group}.")}
        decide = {names.decide_task(a, n) for a in areas for n in (1, 2)}  # DSL, then LGV
        calls = {incident.call_task(n, a) for a in areas for n in (1, 2)}  # standby, next
        reports = {incident.report_task(a, k) for a in areas for k in (1, 2)}
        assert tasks == {*areas, *decide, *calls, *reports, names.OPENS, names.CHASE}
        for task in {*areas, names.CHASE}:
            assert life.get_task(f"{group}.{task}").upstream_task_ids == {f"{group}.{names.OPENS}"}
        for area in areas:
            first = life.get_task(f"{group}.{names.decide_task(area, 1)}")
            assert first.upstream_task_ids == {f"{group}.{area}"}
            then = life.get_task(f"{group}.{names.decide_task(area, 2)}")
            assert then.upstream_task_ids == {first.task_id}
    # One wait at a time: each round's opening waits for the one before, past skipped ones.
    second = life.get_task("d1_1000.opens")
    assert second.upstream_task_ids == {"d1_0600.opens"}
    assert str(second.trigger_rule.value) == "none_failed"
    assert life.get_task("d1_0600.opens").upstream_task_ids == {names.START_TASK}
    assert life.get_task(names.END_TASK).upstream_task_ids == {names.START_TASK}


def test_a_report_offers_the_colours_with_their_meanings_and_needs_a_reason_for_yellow_and_red(
    life: Any,
) -> None:
    task = life.get_task("d2_0600.technology")
    assert isinstance(task, AreaReportOperator)
    assert task.options == ["Green", "Yellow", "Red"]
    assert [u["id"] for u in task.assigned_users] == ["dba"]
    assert "A very large incident or several large ones" in task.body
    assert reason_for(task.serialized_params) == {"Yellow", "Red"}
    assert task.serialized_params[names.NEEDS_DECISION]["schema"]["type"] == "boolean"
    assert task.retries == 0
    clinical = life.get_task("d2_0600.clinical")
    assert "Great impact on our clinical work" in clinical.body


class _Ti:
    def __init__(self, pulled: dict[tuple[str | None, str], Any]) -> None:
        self.pulled = pulled

    def xcom_pull(self, task_ids: str, key: str = "return_value", **where: Any) -> Any:
        return self.pulled.get((where.get("run_id"), task_ids if key == "return_value" else key))


def _event(**changes: Any) -> Any:
    base = {
        "source_dag_id": "ehr-upgrade-4-2",
        "source_task_id": naming.GO_LIVE_TASK,
        "source_run_id": "manual__1",
        "timestamp": datetime(2027, 1, 13, 1, 30, tzinfo=UTC),
    }
    return SimpleNamespace(**{**base, **changes})


def _start_context(life: Any, events: list[Any], outcome: str = "succeeded") -> dict[str, Any]:
    runbook, _ = load_file(EHR)
    return {
        "triggering_asset_events": {live_asset(runbook): events},
        "ti": _Ti({("manual__1", naming.XCOM_OUTCOME): {"outcome": outcome}}),
        "dag": life,
        "run_id": "asset_triggered__1",
    }


def _run_start(life: Any, context: dict[str, Any]) -> dict[str, Any]:
    return life.get_task(names.START_TASK).python_callable(**context)


def test_support_starts_when_the_rollout_went_live(life: Any) -> None:
    found = _run_start(life, _start_context(life, [_event()]))
    assert found["start"] == "2027-01-13T01:30:00+00:00"
    assert found["end"] == "2027-01-21T01:30:00+00:00"
    assert found["rollout_run_id"] == "manual__1"
    # 02:30 Oslo time: the first round is day 1 at 06:00, and support ends on day 9 at 02:30.
    assert found["rounds"][0] == "2027-01-13T05:00:00+00:00"
    assert len(found["rounds"]) == 8 * 4


@pytest.mark.parametrize(
    ("events", "outcome", "why"),
    [
        ([], "succeeded", "was not started by one"),
        ([_event(source_dag_id=None, source_task_id=None)], "succeeded", "outside Airflow"),
        ([_event(source_task_id="outcome")], "succeeded", "did not come from"),
        ([_event()], "rolled_back", "has no succeeded outcome"),
    ],
)
def test_support_does_not_start_without_a_succeeded_rollout(
    life: Any, events: list[Any], outcome: str, why: str
) -> None:
    with pytest.raises(AirflowFailException, match=why):
        _run_start(life, _start_context(life, events, outcome))


def _round_context(life: Any, start: datetime, states: dict[str, str] | None = None) -> Any:
    support = {"start": start.isoformat(), "end": (start + timedelta(days=8)).isoformat()}
    ti = _Ti({(None, names.START_TASK): support})
    ti.get_task_states = lambda **_: {"r": dict(states or {})}  # type: ignore[attr-defined]
    return {"ti": ti, "dag": life, "run_id": "r"}


def test_a_round_before_the_go_live_is_skipped(life: Any) -> None:
    went_live = datetime(2027, 1, 13, 12, 0, tzinfo=UTC)  # 13:00 in Oslo
    context = _round_context(life, went_live)
    with pytest.raises(AirflowSkipException, match="no round on day 1 at 10:00"):
        life.get_task("d1_1000.opens").execute(context)
    with pytest.raises(AirflowSkipException):
        life.get_task("d9_1400.opens").execute(context)  # after the end of support


def test_a_report_stays_open_until_the_next_round(life: Any, monkeypatch: Any) -> None:
    went_live = datetime.now(UTC) - timedelta(days=2)
    task = life.get_task("d3_1000.clinical")
    opened: dict[str, Any] = {}

    def parked(self: Any, context: Any) -> None:
        opened["timeout"] = self.response_timeout

    monkeypatch.setattr("gonogo.dag.hitl.Request.execute", parked)
    task.execute(_round_context(life, went_live))
    next_round = moment_of(Slot(3, time(14, 0)), went_live, ZoneInfo("Europe/Oslo"))
    expected = max(next_round - datetime.now(UTC), timedelta(minutes=1))  # at least a minute
    assert abs(opened["timeout"] - expected) < timedelta(seconds=5)


def test_the_chase_reminds_only_the_areas_that_have_not_reported(
    life: Any, monkeypatch: Any
) -> None:
    told: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "gonogo.dag.earlylife.tell", lambda ctx, event, scope, **d: told.append((event, d))
    )
    went_live = datetime.now(UTC) - timedelta(days=2)
    task = life.get_task("d1_0600.chase")
    assert isinstance(task, ChaseOperator)
    states = {
        "d1_0600.clinical": "success",
        "d1_0600.application": "awaiting_input",
        "d1_0600.support": "success",
        "d1_0600.technology": "awaiting_input",
    }
    context = _round_context(life, went_live.replace(hour=3), states)
    result = task.remind(context, None)  # past the deadline and the standby time: no deferral
    assert [e for e, _ in told] == ["report_overdue"] * 2 + ["report_escalated"] * 2
    assert [d["area"] for _, d in told[:2]] == ["application", "technology"]
    assert told[0][1]["address"] == ["service_owner"]
    standby = told[2][1]["standby"]
    assert standby in ("incident_manager", "system_owner")
    assert told[2][1]["address"] == ["service_owner", standby]
    assert result["standby"] == ["application", "technology"]


def test_a_red_that_needs_a_decision_goes_to_the_dsl_then_on_to_the_lgv(
    life: Any, monkeypatch: Any
) -> None:
    opened: list[Any] = []
    monkeypatch.setattr("gonogo.dag.hitl.Request.execute", lambda self, c: opened.append(self))
    went_live = datetime.now(UTC) - timedelta(days=2)
    context = _round_context(life, went_live)
    dsl = life.get_task("d2_0600.decide__technology")
    lgv = life.get_task("d2_0600.decide__technology__2")
    assert isinstance(dsl, DecisionRequestOperator)
    # The DSL (deployment_lead) is asked, and the coordinator who keeps the log may record it.
    assert [u["id"] for u in dsl.assigned_users] == ["relman"]
    assert dsl.options == ["Decided", "Escalate"] and lgv.options == ["Decided"]
    assert reason_for(dsl.serialized_params) == {"Decided", "Escalate"}
    assert {names.OWNER, names.DUE} <= set(dsl.serialized_params)
    report = {"colour": "red", "needs_decision": True, "by": "dba", "comment": "DB down"}
    context["ti"].pulled[(None, "d2_0600.technology")] = report
    dsl.execute(context)
    assert opened == [dsl] and "dba reported: DB down" in dsl.body
    with pytest.raises(AirflowSkipException, match="deployment_lead decided"):
        lgv.execute(context)  # the DSL has not escalated
    escalated = {"decision": "Escalate", "by": "relman", "text": "needs the care leadership"}
    context["ti"].pulled[(None, "d2_0600.decide__technology")] = escalated
    lgv.execute(context)
    assert "deployment_lead escalated it (relman): needs the care leadership" in lgv.body
    assert [u["id"] for u in lgv.assigned_users] == ["wardrep", "relman"]


@pytest.mark.parametrize(
    "report",
    [
        {"colour": "red", "needs_decision": False},
        {"colour": "yellow", "needs_decision": True},
    ],
)
def test_only_a_red_that_needs_a_decision_is_put_to_the_forum(
    life: Any, report: dict[str, Any]
) -> None:
    context = _round_context(life, datetime.now(UTC) - timedelta(days=2))
    context["ti"].pulled[(None, "d2_0600.support")] = report
    with pytest.raises(AirflowSkipException, match="needs no decision"):
        life.get_task("d2_0600.decide__support").execute(context)


# -- the meetings' decision logs --------------------------------------------------------------


def test_every_meeting_opens_its_decision_log_for_the_coordinator_in_its_own_chain(
    life: Any,
) -> None:
    groups = sorted({g for t in life.task_ids if names.parse_meeting(g := t.split(".")[0])})
    runbook, _ = load_file(EHR)
    assert runbook.early_life is not None
    planned = slots(runbook.early_life.meetings, runbook.early_life.lasts)
    assert groups == sorted(names.meeting_group(s.day, s.at) for s in planned)
    assert len(groups) == 7 + 3 * 15 + 7 + 3 * 2  # the seed's schedule by day
    for group in groups:
        tasks = {t.split(".", 1)[1] for t in life.task_ids if t.startswith(f"{group}.")}
        assert tasks == {names.OPENS, names.LOG}
        assert life.get_task(f"{group}.{names.LOG}").upstream_task_ids == {f"{group}.opens"}
    # One wait at a time, beside the rounds' chain, from the start.
    assert life.get_task("m1_0800.opens").upstream_task_ids == {names.START_TASK}
    second = life.get_task("m1_1000.opens")
    assert second.upstream_task_ids == {"m1_0800.opens"}
    assert str(second.trigger_rule.value) == "none_failed"
    task = life.get_task("m2_0700.log")
    assert isinstance(task, MeetingLogOperator)
    assert [u["id"] for u in task.assigned_users] == ["relman"]  # deployment_coordinator
    assert task.options == [names.LOGGED, names.NO_DECISIONS]
    assert task.retries == 0
    form = task.serialized_params
    assert reason_for(form) == set()
    assert form["escalated_to_3"]["schema"]["enum"] == [
        "none",
        "deployment_lead",
        "care_leadership",
    ]
    assert form["owner_5"]["schema"]["section"] == "Decision 5"
    assert form["decision_1"]["value"] == ""


def test_a_meeting_log_stays_open_until_the_next_meeting_and_skips_before_go_live(
    life: Any, monkeypatch: Any
) -> None:
    opened: dict[str, Any] = {}

    def parked(self: Any, context: Any) -> None:
        opened["timeout"] = self.response_timeout

    monkeypatch.setattr("gonogo.dag.hitl.Request.execute", parked)
    went_live = datetime.now(UTC) - timedelta(days=2)
    life.get_task("m3_1000.log").execute(_round_context(life, went_live))
    next_meeting = moment_of(Slot(3, time(11, 0)), went_live, ZoneInfo("Europe/Oslo"))
    expected = max(next_meeting - datetime.now(UTC), timedelta(minutes=1))
    assert abs(opened["timeout"] - expected) < timedelta(seconds=5)
    late = _round_context(life, datetime(2027, 1, 13, 12, 0, tzinfo=UTC))  # 13:00 in Oslo
    with pytest.raises(AirflowSkipException, match="no meeting on day 1 at 10:00"):
        life.get_task("m1_1000.opens").execute(late)


def _answered(option: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": params,
        "responded_by_user": {"id": "relman", "name": "relman"},
        "responded_at": datetime(2027, 1, 13, 9, 20, tzinfo=UTC),
    }


def test_a_meeting_log_records_its_decisions_and_refuses_one_without_an_owner(life: Any) -> None:
    task = life.get_task("m1_1000.log")
    form = {name: spec["value"] for name, spec in task.serialized_params.items()}
    form.update(decision_1="Extra staff at the desk", owner_1="svcowner", due_1="Friday")
    form.update(decision_2="A second database", owner_2="dba", escalated_to_2="deployment_lead")
    done = task.execute_complete({}, _answered(names.LOGGED, form))
    assert done["by"] == "relman"
    assert [(d["decision"], d["owner"], d["escalated_to"]) for d in done["decisions"]] == [
        ("Extra staff at the desk", "svcowner", ""),
        ("A second database", "dba", "deployment_lead"),
    ]
    form.update(owner_2="  ")
    with pytest.raises(AirflowFailException, match=r"decision 2 \(owner_2\) needs who"):
        task.execute_complete({}, _answered(names.LOGGED, form))


# -- cron cadences in the DAG -----------------------------------------------------------------


def test_a_cron_cadence_holds_every_time_it_names_and_skips_the_dates_it_does_not() -> None:
    text = EHR.read_text().replace(
        '      at_least: 4\n      between: ["06:00", "18:00"]\n',
        '      cron: "0 9,15 * * mon-fri"\n',
    )
    assert "mon-fri" in text
    runbook, _ = load_text(text, str(EHR))
    (life,) = build_dags(runbook, RUNBOOKS, only=names.early_life_dag(runbook.runbook))
    groups = sorted({g for t in life.task_ids if names.parse_round(g := t.split(".")[0])})
    assert len(groups) == 9 * 2  # both times on every day: the date is known only at run time
    went_live = datetime(2026, 11, 13, 6, 0, tzinfo=UTC)  # Friday 07:00 in Oslo, in the past
    context = _round_context(life, went_live)
    opens = life.get_task("d2_0900.opens")  # Saturday
    assert isinstance(opens, RoundOpensSensor)
    with pytest.raises(AirflowSkipException, match="no round on day 2 at 09:00"):
        opens.execute(context)
    friday = life.get_task("d1_0900.opens")
    friday.execute(context)  # a moment in the past: it opens at once (no deferral)
