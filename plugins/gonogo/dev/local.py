"""An HTTP server on 127.0.0.1 in a daemon thread: what every fake end of the demo and tests shares."""

from __future__ import annotations

import http.server
import threading


class LocalServer:
    """Serve a request handler on a free port of 127.0.0.1 until :meth:`stop`."""

    _server: http.server.ThreadingHTTPServer | None = None

    def serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        """Start serving ``handler``; returns the base URL."""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
