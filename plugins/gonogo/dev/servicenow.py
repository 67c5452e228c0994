"""A small ServiceNow-compatible server: the Table API subset gonogo uses, on 127.0.0.1.

For tests and the demo, never for production. It answers like an instance
does: ``/api/now/table/<table>`` with basic auth, ``{"result": …}`` bodies,
``sysparm_query`` (``field=value`` joined by ``^``), ``sysparm_limit``,
``sysparm_fields`` and ``sysparm_display_value`` (``false``/``true``/``all``),
201 on create, 401 without valid credentials, 404 for an unknown record or
table, errors as ``{"error": {"message", "detail"}, "status": "failure"}``.
Work notes are journal entries: written through the field, kept apart, and
never read back through it. Schedules (``cmn_schedule``, their spans in
``cmn_schedule_span``, the configuration items in ``cmdb_ci`` that use one) hold
maintenance windows and blackouts. ``delay`` makes every answer slow;
``fail_next`` makes the next answers fail with the given status codes.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from gonogo.dev.local import LocalServer

TABLES = ("change_request", "incident", "cmn_schedule", "cmn_schedule_span", "cmdb_ci")
CHANGE_STATES = {
    "-5": "New",
    "-4": "Assess",
    "-3": "Authorize",
    "-2": "Scheduled",
    "-1": "Implement",
    "0": "Review",
    "3": "Closed",
    "4": "Canceled",
}
APPROVALS = {
    "not requested": "Not Yet Requested",
    "requested": "Requested",
    "approved": "Approved",
    "rejected": "Rejected",
}
#: ServiceNow's default priority matrix: (impact, urgency) -> priority.
PRIORITY = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("2", "1"): "2",
    ("1", "3"): "3",
    ("2", "2"): "3",
    ("3", "1"): "3",
    ("2", "3"): "4",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
JOURNAL = ("work_notes", "comments")


@dataclass
class Call:
    method: str
    path: str
    body: Any


@dataclass
class FakeServiceNow(LocalServer):
    """The instance: its records, journal, the calls it saw, and knobs for errors and slowness."""

    user: str = "gonogo.integration"
    password: str = "snow-s3cret"
    delay: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    tables: dict[str, dict[str, dict[str, str]]] = field(
        default_factory=lambda: {t: {} for t in TABLES}
    )
    journal: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    on_call: Callable[[Call], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- records -----------------------------------------------------------------------------

    def add_change(
        self,
        number: str,
        *,
        type: str = "normal",
        state: str = "-2",
        approval: str = "approved",
        start: str = "",
        end: str = "",
    ) -> str:
        """A change record; ``start``/``end`` as ServiceNow stores them, UTC ``YYYY-MM-DD HH:MM:SS``."""
        return self._insert(
            "change_request",
            {
                "number": number,
                "type": type,
                "state": state,
                "approval": approval,
                "start_date": start,
                "end_date": end,
                "short_description": f"Change {number}",
            },
        )

    def add_schedule(
        self,
        name: str,
        kind: str,
        spans: list[dict[str, str]],
        *,
        time_zone: str = "",
        description: str = "",
        services: tuple[str, ...] = (),
    ) -> str:
        """A maintenance or blackout schedule, its spans and the configuration items that use it.

        A span is ``{name, start_date_time, end_date_time, repeat_type, days_of_week}``,
        times as ServiceNow stores them in the schedule's zone: ``20261218T000000``.
        """
        sys_id = self._insert(
            "cmn_schedule",
            {"name": name, "type": kind, "time_zone": time_zone, "description": description},
        )
        for span in spans:
            self._insert("cmn_schedule_span", {"schedule": sys_id, **span})
        for service in services:
            self._insert("cmdb_ci", {"name": service, "maintenance_schedule": sys_id})
        return sys_id

    def change(self, number: str) -> dict[str, str]:
        return next(r for r in self.tables["change_request"].values() if r["number"] == number)

    def notes(self, number: str) -> list[str]:
        """The work notes on a change, oldest first."""
        record = self.change(number)
        return [
            text for kind, text in self.journal.get(record["sys_id"], []) if kind == "work_notes"
        ]

    def incidents(self) -> list[dict[str, str]]:
        return list(self.tables["incident"].values())

    def _insert(self, table: str, values: dict[str, Any]) -> str:
        with self._lock:
            sys_id = uuid.uuid4().hex
            record = {"sys_id": sys_id}
            if table == "incident":
                count = len(self.tables["incident"]) + 1
                record["number"] = f"INC{10000 + count:07d}"
                record["state"] = "1"
            self._update(table, record, values)
            self.tables[table][sys_id] = record
            return sys_id

    def _update(self, table: str, record: dict[str, str], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key in JOURNAL:
                if value:
                    self.journal.setdefault(record["sys_id"], []).append((key, str(value)))
                continue
            record[key] = "" if value is None else str(value)
        if table == "incident":
            pair = (record.get("impact", "3"), record.get("urgency", "3"))
            record["priority"] = PRIORITY.get(pair, "5")

    # -- serving -----------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free port of 127.0.0.1; returns the instance's base URL."""
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_PUT(self) -> None:
                fake._handle(self, "PATCH")

            def log_message(self, *args: Any) -> None:
                pass

        return self.serve(Handler)

    def _handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(method, request.path, body)
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        if self.delay:
            time.sleep(self.delay)
        status, payload = self._answer(request, method, parsed.path, parse_qs(parsed.query), body)
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json;charset=UTF-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(
        self,
        request: http.server.BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, Any]:
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _error(401, "User Not Authenticated", "Required to provide Auth information")
        if self.fail_next:
            status = self.fail_next.pop(0)
            return _error(status, "Transaction cancelled: maximum execution time exceeded", "")
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "now", "table"] or len(parts) not in (4, 5):
            return _error(400, "Requested URI does not represent any resource", path)
        table = parts[3]
        if table not in self.tables:
            return _error(400, f"Invalid table {table}", "")
        sys_id = parts[4] if len(parts) == 5 else None
        display = (query.get("sysparm_display_value") or ["false"])[0]
        fields = [f for f in (query.get("sysparm_fields") or [""])[0].split(",") if f]
        if method == "GET" and sys_id is None:
            rows = self._query(table, (query.get("sysparm_query") or [""])[0])
            limit = int((query.get("sysparm_limit") or ["10000"])[0])
            return 200, {"result": [_shape(table, r, fields, display) for r in rows[:limit]]}
        if method == "POST" and sys_id is None:
            if not isinstance(body, dict):
                return _error(
                    400, "Exception while reading request", "The payload is not valid JSON."
                )
            new = self._insert(table, body)
            return 201, {"result": _shape(table, self.tables[table][new], fields, display)}
        record = self.tables[table].get(sys_id or "")
        if record is None:
            return _error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        if method == "PATCH":
            if not isinstance(body, dict):
                return _error(
                    400, "Exception while reading request", "The payload is not valid JSON."
                )
            with self._lock:
                self._update(table, record, body)
        return 200, {"result": _shape(table, record, fields, display)}

    def _query(self, table: str, text: str) -> list[dict[str, str]]:
        terms = [t.split("=", 1) for t in text.split("^") if "=" in t]
        return [r for r in self.tables[table].values() if all(r.get(k) == v for k, v in terms)]


def _display(table: str, key: str, value: str) -> str:
    if table == "change_request" and key == "state":
        return CHANGE_STATES.get(value, value)
    if key == "approval":
        return APPROVALS.get(value, value)
    return value


def _shape(table: str, record: dict[str, str], fields: list[str], display: str) -> dict[str, Any]:
    keys = fields or [*record, *JOURNAL]
    out: dict[str, Any] = {}
    for key in keys:
        value = "" if key in JOURNAL else record.get(key, "")
        if display == "all":
            out[key] = {"value": value, "display_value": _display(table, key, value)}
        elif display == "true":
            out[key] = _display(table, key, value)
        else:
            out[key] = value
    return out


def _error(status: int, message: str, detail: str) -> tuple[int, Any]:
    return status, {"error": {"message": message, "detail": detail}, "status": "failure"}
