"""Liveness and readiness, served over HTTP for Kubernetes probes.

``/healthz`` is 200 while the poll loop has turned within ``liveness_timeout_s`` (a stuck
loop gets the pod restarted); ``/readyz`` is 200 once the consumer joined its group.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health:
    def __init__(self, liveness_timeout_s: float) -> None:
        self._liveness_timeout = liveness_timeout_s
        self._last_beat = time.monotonic()
        self._joined = False

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def joined(self) -> None:
        self._joined = True

    def live(self) -> tuple[bool, dict[str, object]]:
        age = time.monotonic() - self._last_beat
        return age <= self._liveness_timeout, {"loop_age_s": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        return self._joined, {"joined_group": self._joined}


class HealthServer:
    """A small threaded HTTP server; ``port=0`` picks a free one."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                checks = {"/healthz": health.live, "/readyz": health.ready}
                check = checks.get(self.path.split("?")[0])
                if check is None:
                    self.send_error(404)
                    return
                ok, detail = check()
                body = json.dumps({"ok": ok, **detail}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
