"""ServiceNow over its documented Table API: ``change_request``, ``incident``, work notes, schedules.

Only what gonogo needs: read a change by number, append work notes, close it
with a close code, raise one incident linked to it, close that incident once
its incident report is approved, and read the maintenance
and blackout schedules (``cmn_schedule``) for the change calendar. Records are read with
``sysparm_display_value=all`` so a refusal can quote ServiceNow's own words
("Authorize", "requested") next to the stored values.

The incident's priority is not written: ServiceNow derives it from impact and
urgency, so each priority is asked for with the pair that yields it in the
default priority matrix. The incident carries gonogo's run key in
``correlation_id``; :meth:`ServiceNow.find_incident` looks it up, so a retried
task finds the incident it already raised instead of raising a second one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import requests

from gonogo.core.calendar.schedules import Schedule, Span
from gonogo.core.messages.itsm import ChangeRecord
from gonogo.errors import ItsmError

log = logging.getLogger(__name__)

#: Impact and urgency that give each priority in ServiceNow's default priority matrix.
IMPACT_URGENCY = {"P1": ("1", "1"), "P2": ("1", "2"), "P3": ("2", "2"), "P4": ("2", "3")}
#: change_request states (values) that mean the change will not be implemented.
ENDED_STATES = {"3", "4"}  # Closed, Canceled
CLOSED = "3"
#: incident state Closed, and the close code of an incident whose report was approved.
INCIDENT_CLOSED = "7"
INCIDENT_CLOSE_CODE = "Solved (Permanently)"
REQUEST_TIMEOUT = 15.0


def _field(record: dict[str, Any], name: str) -> tuple[str, str]:
    """(value, display value) of a field read with ``sysparm_display_value=all``."""
    raw = record.get(name)
    if isinstance(raw, dict):
        return str(raw.get("value") or ""), str(raw.get("display_value") or raw.get("value") or "")
    return str(raw or ""), str(raw or "")


def _when(value: str) -> datetime | None:
    """ServiceNow's stored date-times are UTC, ``YYYY-MM-DD HH:MM:SS``."""
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


class ServiceNow:
    """A ServiceNow instance, reached with basic auth as an integration user."""

    name = "ServiceNow"

    def __init__(
        self, base_url: str, user: str, password: str, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.session.headers.update({"Accept": "application/json"})

    def _call(self, method: str, table: str, path: str = "", **kwargs: Any) -> Any:
        what = f"{method} {table}{path}"
        try:
            response = self.session.request(
                method,
                f"{self.base_url}/api/now/table/{table}{path}",
                timeout=self.timeout,
                **kwargs,
            )
        except requests.Timeout:
            raise ItsmError(f"ServiceNow did not answer {what} within {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise ItsmError(
                f"ServiceNow could not be reached for {what}: {type(exc).__name__}"
            ) from None
        if response.status_code >= 400:
            raise ItsmError(f"ServiceNow refused {what}: {response.status_code} {_error(response)}")
        try:
            return response.json()["result"]
        except (ValueError, KeyError):
            raise ItsmError(f"ServiceNow answered {what} with no result") from None

    def find_change(self, number: str) -> ChangeRecord | None:
        rows = self._call(
            "GET",
            "change_request",
            params={
                "sysparm_query": f"number={number}",
                "sysparm_limit": "1",
                "sysparm_display_value": "all",
                "sysparm_fields": "sys_id,number,state,approval,start_date,end_date,type",
            },
        )
        if not rows:
            return None
        row = rows[0]
        sys_id, _ = _field(row, "sys_id")
        state, state_words = _field(row, "state")
        approval, _ = _field(row, "approval")
        return ChangeRecord(
            number=_field(row, "number")[0] or number,
            ref=sys_id,
            state=state_words,
            approval=approval,
            approved=approval == "approved" and state not in ENDED_STATES,
            start=_when(_field(row, "start_date")[0]),
            end=_when(_field(row, "end_date")[0]),
            url=f"{self.base_url}/change_request.do?sys_id={sys_id}",
        )

    def add_work_note(self, change: ChangeRecord, text: str) -> None:
        self._call("PATCH", "change_request", f"/{change.ref}", json={"work_notes": text})

    def close_change(self, change: ChangeRecord, code: str, notes: str) -> None:
        self._call(
            "PATCH",
            "change_request",
            f"/{change.ref}",
            json={"state": CLOSED, "close_code": code, "close_notes": notes},
        )

    def find_incident(self, key: str) -> str | None:
        rows = self._call(
            "GET",
            "incident",
            params={
                "sysparm_query": f"correlation_id={key}",
                "sysparm_limit": "1",
                "sysparm_fields": "number",
            },
        )
        return str(rows[0]["number"]) if rows else None

    def raise_incident(
        self, change: ChangeRecord, priority: str, title: str, text: str, key: str
    ) -> str:
        impact, urgency = IMPACT_URGENCY[priority]
        created = self._call(
            "POST",
            "incident",
            json={
                "short_description": title[:160],
                "description": text,
                "impact": impact,
                "urgency": urgency,
                "caused_by": change.ref,
                "rfc": change.ref,
                "correlation_id": key,
                "correlation_display": "gonogo",
            },
        )
        return str(created["number"])

    def close_incident(self, number: str, notes: str) -> None:
        """Close the incident: state Closed, a close code, and the approved report as close notes.

        ServiceNow makes the close code and notes mandatory to resolve or close an incident.
        """
        rows = self._call(
            "GET",
            "incident",
            params={
                "sysparm_query": f"number={number}",
                "sysparm_limit": "1",
                "sysparm_fields": "sys_id",
            },
        )
        if not rows:
            raise ItsmError(f"ServiceNow has no incident {number} to close")
        self._call(
            "PATCH",
            "incident",
            f"/{rows[0]['sys_id']}",
            json={
                "state": INCIDENT_CLOSED,
                "close_code": INCIDENT_CLOSE_CODE,
                "close_notes": notes,
            },
        )

    def schedules(self) -> list[Schedule]:
        """The maintenance and blackout schedules, their spans, and the items that use each."""
        found = []
        for kind in ("maintenance", "blackout"):
            rows = self._call(
                "GET",
                "cmn_schedule",
                params={
                    "sysparm_query": f"type={kind}",
                    "sysparm_fields": "sys_id,name,type,time_zone,description",
                },
            )
            for row in rows:
                ref = str(row.get("sys_id") or "")
                spans = self._call(
                    "GET",
                    "cmn_schedule_span",
                    params={
                        "sysparm_query": f"schedule={ref}",
                        "sysparm_fields": "name,start_date_time,end_date_time,repeat_type,"
                        "days_of_week",
                    },
                )
                items = self._call(
                    "GET",
                    "cmdb_ci",
                    params={
                        "sysparm_query": f"maintenance_schedule={ref}",
                        "sysparm_fields": "name",
                    },
                )
                found.append(
                    Schedule(
                        ref=ref,
                        name=str(row.get("name") or ref),
                        kind=kind,
                        time_zone=str(row.get("time_zone") or ""),
                        description=str(row.get("description") or ""),
                        spans=tuple(
                            Span(
                                name=str(s.get("name") or ""),
                                start=str(s.get("start_date_time") or ""),
                                end=str(s.get("end_date_time") or ""),
                                repeat=str(s.get("repeat_type") or ""),
                                days_of_week=str(s.get("days_of_week") or ""),
                            )
                            for s in spans
                        ),
                        services=tuple(sorted(str(i["name"]) for i in items if i.get("name"))),
                    )
                )
        return found


def _error(response: requests.Response) -> str:
    """ServiceNow's own words from an error body: ``{"error": {"message", "detail"}}``."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return response.reason or ""
    parts = [str(error.get(k)) for k in ("message", "detail") if error.get(k)]
    return ": ".join(parts) or response.reason or ""


def from_connection(conn_id: str) -> ServiceNow:
    """A client for the instance an Airflow connection names (host, port, login, password)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = conn.host or ""
    if "://" not in host:
        scheme = conn.schema if conn.schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    if conn.port:
        host = f"{host}:{conn.port}"
    timeout = float((conn.extra_dejson or {}).get("timeout", REQUEST_TIMEOUT))
    return ServiceNow(host, conn.login or "", conn.password or "", timeout=timeout)
