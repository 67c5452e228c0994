"""Where notifications land in tests and the demo: a webhook receiver and an SMTP mailbox.

Both listen on 127.0.0.1 on a free port and keep what arrives, in order. The
webhook receiver takes what Apprise's ``json://`` service posts (``title``,
``message``, ``type``); a path listed in ``failing`` answers 500, so a test
can see a transport failure, and ``delay`` makes it slow. The mailbox is an
aiosmtpd server (the ``dev`` extra) that keeps every message it accepts.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gonogo.dev.local import LocalServer
from gonogo.dev.stack import free_port


@dataclass
class Arrival:
    """One delivered notification: where it came in, its title and text."""

    path: str
    title: str
    body: str
    raw: Any = None


@dataclass
class WebhookReceiver(LocalServer):
    """Keeps every JSON body posted to it; paths in ``failing`` answer 500."""

    failing: set[str] = field(default_factory=set)
    delay: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    on_arrival: Callable[[Arrival], None] | None = None

    def start(self) -> str:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = 500 if self.path in receiver.failing else 200
                if status == 200:
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = {"message": raw.decode(errors="replace")}
                    arrival = Arrival(
                        self.path, str(data.get("title", "")), str(data.get("message", "")), data
                    )
                    receiver.arrivals.append(arrival)
                    if receiver.on_arrival is not None:
                        receiver.on_arrival(arrival)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return self.serve(Handler)

    def apprise_url(self, path: str) -> str:
        """The Apprise service URL that posts to ``path`` here."""
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def at(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == "/" + path.lstrip("/")]


@dataclass
class Mailbox:
    """An SMTP server (aiosmtpd) that keeps every message it accepts."""

    messages: list[Arrival] = field(default_factory=list)
    on_arrival: Callable[[Arrival], None] | None = None
    port: int = 0
    _controller: Any = None

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1; returns the port."""
        from aiosmtpd.controller import Controller

        mailbox = self

        class Keep:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                part = message.get_body(preferencelist=("html", "plain"))
                arrival = Arrival(
                    ",".join(envelope.rcpt_tos),
                    str(message["Subject"] or ""),
                    part.get_content() if part is not None else "",
                    message,
                )
                mailbox.messages.append(arrival)
                if mailbox.on_arrival is not None:
                    mailbox.on_arrival(arrival)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self._controller = Controller(Keep(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
