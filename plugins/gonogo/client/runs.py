"""The client's one mapper of a run: Airflow's REST API into :class:`~gonogo.core.runs.records.RunRecord`.

``gonogo decisions`` reads a run here. The pages, the report and the run note
read the same records from the database (:mod:`gonogo.server.rundata`); both
sides read requests with :meth:`~gonogo.core.runs.records.Request.from_detail` and
events with :func:`~gonogo.core.runs.records.events_in_order`, so the decision log
and the events the CLI prints are the ones the pages and the note show: every
task's events (gate_expiring, step_interrupted, forecast_overrun,
rollback_failed) and the notifications that failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gonogo.client.api import AirflowClient
from gonogo.core import naming
from gonogo.core.runs.records import (
    EVENT_KEYS,
    Request,
    RunRecord,
    TaskRecord,
    approved_reports,
    events_in_order,
    given_start,
    latest_forecast,
    moment,
)

#: Airflow's ``[operators] default_owner``: a task without a runbook owner has it.
DEFAULT_OWNER = "airflow"


def read_run(client: AirflowClient, dag_id: str, run_id: str) -> RunRecord:
    """One run's records, through the REST API as the client's user."""
    xcoms = []
    for key in (
        naming.XCOM_OUTCOME,
        naming.XCOM_FORECAST,
        naming.XCOM_INCIDENT_REPORT,
        *EVENT_KEYS,
    ):
        for entry in client.xcom_entries(dag_id, run_id, key):
            if entry.get("map_index", -1) == -1:
                value = client.xcom(dag_id, run_id, entry["task_id"], key=key)
                xcoms.append({**entry, "value": value})
    return run_record(
        client.run(dag_id, run_id),
        client.task_instances(dag_id, run_id).values(),
        client.hitl_details(dag_id, run_id),
        xcoms,
    )


def run_record(
    run: Mapping[str, Any],
    task_instances: Iterable[Mapping[str, Any]],
    details: Iterable[Mapping[str, Any]],
    xcoms: Sequence[Mapping[str, Any]],
) -> RunRecord:
    """A run's records from the REST API's JSON: the run, its task instances, HITL details, XComs.

    ``xcoms`` are XCom entries (task id, key, timestamp) each with its ``value``.
    """
    tasks = {
        str(ti["task_id"]): TaskRecord(
            str(ti["task_id"]),
            ti.get("state"),
            moment(ti.get("start_date")),
            moment(ti.get("end_date")),
            int(ti.get("try_number") or 1),
        )
        for ti in task_instances
        if ti.get("map_index", -1) == -1
    }
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for entry in xcoms:
        by_key.setdefault(str(entry.get("key")), []).append(entry)
    outcomes = [
        e["value"] for e in by_key.get(naming.XCOM_OUTCOME, []) if isinstance(e["value"], dict)
    ]
    forecasts = [latest_forecast(e["value"]) for e in by_key.get(naming.XCOM_FORECAST, [])]
    return RunRecord(
        dag_id=str(run["dag_id"]),
        run_id=str(run["dag_run_id"]),
        state=str(run.get("state") or ""),
        start=moment(run.get("start_date")),
        end=moment(run.get("end_date")),
        triggered_by=str(run.get("triggering_user_name") or ""),
        tasks=tasks,
        requests=[Request.from_detail(d) for d in details],
        outcome=outcomes[0] if outcomes else None,
        events=events_in_order(
            (str(e["task_id"]), e.get("timestamp"), e["value"])
            for key in EVENT_KEYS
            for e in by_key.get(key, [])
        ),
        forecast=forecasts[0] if forecasts else None,
        planned_start=given_start(run.get("conf")),
        incident_reports=approved_reports(
            (str(e["task_id"]), e["value"]) for e in by_key.get(naming.XCOM_INCIDENT_REPORT, [])
        ),
    )


def owners(client: AirflowClient, dag_id: str) -> dict[str, str]:
    """Each forward step's runbook role, by task id, as the pages read it from the runbook.

    The builder makes it the step task's Airflow ``owner``
    (:func:`gonogo.core.runs.run.owners_by_task` is the pages' side).
    """
    return {
        t["task_id"]: str(t["owner"])
        for t in client.tasks(dag_id)
        if t.get("owner")
        and t["owner"] != DEFAULT_OWNER
        and not naming.parse_gate_task(t["task_id"])
        and not naming.is_rollback_task(t["task_id"])
    }
