"""The other ends of the demo: where notifications arrive and where the change records live.

``make demo`` starts a webhook receiver, an SMTP mailbox and a ServiceNow-compatible
server on 127.0.0.1, seeds the example runbooks' changes, points the Airflow
connections the examples name at them, and prints everything that arrives, so
a newcomer sees the communication plan and the change record at work.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gonogo.client.api import AirflowClient
from gonogo.dev.receivers import Arrival, Mailbox, WebhookReceiver
from gonogo.dev.servicenow import Call, FakeServiceNow

FMT = "%Y-%m-%d %H:%M:%S"
#: The example runbooks' changes: (number, type). Each is approved and open for eight hours.
CHANGES = (("CHG0034512", "normal"), ("CHG0035177", "emergency"), ("CHG0035120", "standard"))


def _show(where: str, title: str, body: str) -> None:
    print(f"\n--- {where}: {title}", flush=True)
    for line in body.strip().splitlines():
        print(f"    {line}", flush=True)


class DemoEnds:
    """The webhook receiver, the mailbox and the ServiceNow-compatible server of the demo."""

    def __init__(self) -> None:
        self.hook = WebhookReceiver(on_arrival=self._arrived)
        self.mail = Mailbox(on_arrival=self._mailed)
        self.snow = FakeServiceNow(on_call=self._itsm)

    def start(self) -> None:
        self.hook.start()
        self.snow.start()
        try:
            self.mail.start()
        except ImportError:
            print("gonogo demo: aiosmtpd is not installed; e-mail is not shown", flush=True)
        now = datetime.now(UTC)
        for number, kind in CHANGES:
            self.snow.add_change(
                number,
                type=kind,
                start=(now - timedelta(minutes=5)).strftime(FMT),
                end=(now + timedelta(hours=8)).strftime(FMT),
            )

    def connect(self, admin: AirflowClient) -> None:
        """Create (or replace) the Airflow connections the example runbooks name."""
        connections: list[dict[str, object]] = [
            _apprise("service_desk", self.hook.apprise_url("service-desk")),
            _apprise("approvers", self.hook.apprise_url("approvers")),
            {
                "connection_id": "servicenow",
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": self.snow.port,
                "schema": "http",
                "login": self.snow.user,
                "password": self.snow.password,
            },
        ]
        if self.mail.port:
            connections.append(
                {
                    "connection_id": "mail",
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": self.mail.port,
                    "extra": json.dumps(
                        {
                            "from_email": "gonogo@hospital.example",
                            "disable_ssl": True,
                            "disable_tls": True,
                        }
                    ),
                }
            )
        for conn in connections:
            admin.request("DELETE", f"/connections/{conn['connection_id']!s}")
            admin.call("POST", "/connections", json=conn)
        print(
            f"Notifications arrive at {self.hook.url}, ServiceNow runs at {self.snow.url}; "
            "both are printed here.",
            flush=True,
        )

    def stop(self) -> None:
        self.hook.stop()
        self.mail.stop()
        self.snow.stop()

    def _arrived(self, arrival: Arrival) -> None:
        _show(f"webhook {arrival.path}", arrival.title, arrival.body)

    def _mailed(self, arrival: Arrival) -> None:
        _show(f"e-mail to {arrival.path}", arrival.title, "(HTML message)")

    def _itsm(self, call: Call) -> None:
        if call.method == "GET":
            print(f"\n--- ServiceNow: {call.method} {call.path.split('?')[0]}", flush=True)
        else:
            _show(f"ServiceNow {call.method} {call.path}", "", json.dumps(call.body, indent=2))


def _apprise(conn_id: str, url: str) -> dict[str, object]:
    return {
        "connection_id": conn_id,
        "conn_type": "apprise",
        "extra": json.dumps({"config": {"path": url}}),
    }
