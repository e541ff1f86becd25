"""The HTTP server of ``/healthz``, ``/readyz`` and ``/metrics``, which nobody can hold.

Whoever reaches ``HTTP_PORT`` is a peer like any other. Each connection gets one thread and
answers one request (HTTP/1.0), and:

* it has one deadline, ``timeout_s`` after it was accepted, for reading the request and writing
  the answer: every socket operation gets at most the time left, so headers trickled a byte at a
  time are cut at the deadline, not kept alive by each byte;
* its request line and headers may take ``max_request_bytes`` in all (past them: 431, closed);
* at most ``max_connections`` are open at once. A connection past the cap cuts the oldest open
  one to make room, and is closed at once, without a thread, only when no slot frees within
  ``room_wait_s`` (the one cut is stuck computing its answer, not waiting on the network).

Why the oldest and not the newcomer: a probe (kubelet's, Prometheus's scrape) sends its whole
request as soon as it connects and is answered within a millisecond, so it is never the oldest
connection for long; a slow client is. Refusing newcomers instead would let 64 connections,
opened again each time they are cut, fail every probe (kubelet restarts the pod after three):
cheaper for an attacker than the attack the cap is there for. Under eviction the probe is lost
only to a flood of ``max_connections`` new connections within its millisecond.

The server's own troubles are single structlog lines, never a traceback on stderr: a handler
that raised is ``health_server_error`` (error); what a peer does (a bad request, a deadline
passed, a request too large, a cut or lost connection) is debug, and counted through
``refused`` (``fsus_health_connections_refused_total{reason}``); reaching the cap is one
warning, ``health_connections_full``, a minute at most.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, cast

import structlog
from structlog.typing import FilteringBoundLogger

from worker.runtime.health import Health

log: FilteringBoundLogger = structlog.get_logger(__name__)

TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
MAX_REQUEST_BYTES = 8 * 1024  # a probe's request is about 150 bytes, a scrape's about 300
_ROOM_WAIT_S = 1.0
_TOO_LARGE = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
_FULL_LOG_EVERY_S = 60.0


class Refused(StrEnum):
    """Why a connection ended without the answer it asked for."""

    EVICTED = "evicted"  # the oldest, cut to make room for a newer one past the cap
    FULL = "full"  # closed at once: the cap was reached and no slot freed
    TIMED_OUT = "timed_out"  # past its deadline
    TOO_LARGE = "too_large"  # request line and headers past max_request_bytes
    BAD_REQUEST = "bad_request"  # answered 4xx/5xx by the server itself


class DeadlinePassed(Exception):
    """The connection's deadline passed (not an ``OSError``: the stdlib handler would take a
    ``TimeoutError`` as its own and go on)."""


class RequestTooLarge(Exception):
    """The request line and headers went past ``max_request_bytes``."""


class _Reader(io.RawIOBase):
    """The connection's bytes, each read under the time left and counted against the cap."""

    def __init__(self, conn: socket.socket, deadline: float, max_bytes: int) -> None:
        self._conn = conn
        self._deadline = deadline
        self._left_bytes = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left_bytes <= 0:
            raise RequestTooLarge
        self._conn.settimeout(_time_left(self._deadline))
        try:
            count = self._conn.recv_into(memoryview(buffer)[: self._left_bytes])
        except TimeoutError:
            raise DeadlinePassed from None
        self._left_bytes -= count
        return count


class _Writer(io.BufferedIOBase):
    """Writes the answer within the time left (``sendall``'s timeout bounds the whole send)."""

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        self._conn = conn
        self._deadline = deadline

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._conn.settimeout(_time_left(self._deadline))
        try:
            self._conn.sendall(data)
        except TimeoutError:
            raise DeadlinePassed from None
        return len(data)


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed
    return left


class _Slots:
    """The connections being served (each on its thread), oldest first, at most ``cap``.

    A connection is closed as it leaves and cut only while it is here, both under the lock:
    a cut never lands on a closed socket's reused descriptor.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: dict[socket.socket, bool] = {}  # connection -> cut already, by arrival
        self._changed = threading.Condition()

    def admit(self, conn: socket.socket, wait_s: float) -> tuple[bool, bool]:
        """Takes a slot for ``conn``, cutting the oldest connection not yet cut when all are
        taken and waiting at most ``wait_s`` for it to leave: (admitted, one was cut)."""
        with self._changed:
            cut = False
            if len(self._open) >= self._cap:
                oldest = next((c for c, was_cut in self._open.items() if not was_cut), None)
                if oldest is not None:
                    self._open[oldest] = cut = True
                    with contextlib.suppress(OSError):
                        oldest.shutdown(socket.SHUT_RDWR)
                self._changed.wait_for(lambda: len(self._open) < self._cap, wait_s)
            if len(self._open) >= self._cap:
                return False, cut
            self._open[conn] = False
            return True, cut

    def leave(self, conn: socket.socket, close: Callable[[socket.socket], None]) -> None:
        """``conn`` is done: it leaves and is closed (under the lock, see above)."""
        with self._changed:
            self._open.pop(conn, None)
            close(conn)
            self._changed.notify_all()

    def cut_all(self, wait_s: float) -> None:
        """Cuts every connection and waits at most ``wait_s`` for them to leave."""
        with self._changed:
            for conn in self._open:
                self._open[conn] = True
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._changed.wait_for(lambda: not self._open, wait_s)


class _Handler(BaseHTTPRequestHandler):
    server: _ProbeServer

    def setup(self) -> None:
        deadline = time.monotonic() + self.server.timeout_s
        self.connection = self.request
        self.rfile = io.BufferedReader(
            _Reader(self.connection, deadline, self.server.max_request_bytes)
        )
        self.wfile = _Writer(self.connection, deadline)
        # What send_error reads, for a request cut before its request line was parsed.
        self.command, self.requestline = "", ""
        self.request_version = self.default_request_version

    def handle(self) -> None:
        try:
            self.handle_one_request()
        except DeadlinePassed:
            self.server.refuse(Refused.TIMED_OUT)
        except RequestTooLarge:
            self.close_connection = True
            with contextlib.suppress(OSError, DeadlinePassed):
                self.send_error(_TOO_LARGE)
        except OSError as exc:  # the peer went away, or the connection was cut for room
            log.debug("health_connection_lost", error=type(exc).__name__)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        metrics = self.server.metrics
        if path == "/metrics" and metrics is not None:
            self._answer(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            return
        health = self.server.health
        checks = {"/healthz": health.live, "/readyz": health.ready}
        check = checks.get(path)
        if check is None:
            self.send_error(404)
            return
        ok, detail = check()
        body = json.dumps({"ok": ok, **detail}).encode()
        self._answer(200 if ok else 503, body, "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Every answer the server gives on its own (bad syntax, unknown method or version,
        # unknown path, too large) passes here; the peer's text is not logged.
        too_large = code in (HTTPStatus.REQUEST_URI_TOO_LONG, _TOO_LARGE)
        self.server.refuse(
            Refused.TOO_LARGE if too_large else Refused.BAD_REQUEST, status=int(code)
        )
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: object) -> None:
        return


class _ProbeServer(HTTPServer):
    request_queue_size = 128  # a burst of connections waits in the kernel, without a thread

    def __init__(
        self,
        address: tuple[str, int],
        health: Health,
        metrics: Callable[[], bytes] | None,
        refused: Callable[[Refused], None],
        *,
        timeout_s: float,
        max_connections: int,
        max_request_bytes: int,
        room_wait_s: float,
    ) -> None:
        # An IPv6 literal (``::``) needs an IPv6 socket; the stdlib default is IPv4.
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.health = health
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.max_request_bytes = max_request_bytes
        self._refused = refused
        self._room_wait_s = room_wait_s
        self.slots = _Slots(max_connections)
        self._max_connections = max_connections
        self._full_logged_at: float | None = None
        self._full_since_logged = {Refused.EVICTED: 0, Refused.FULL: 0}
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own asks DNS for the host's full name (socket.getfqdn): a start-up that
        # waits on a resolver for a name nothing here uses.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        conn = cast(socket.socket, request)
        admitted, cut = self.slots.admit(conn, self._room_wait_s)
        if cut:
            self._full(Refused.EVICTED)
        if not admitted:
            self._full(Refused.FULL)
            self.shutdown_request(conn)
            return
        thread = threading.Thread(
            target=self._serve, args=(conn, client_address), name="health-http", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            self.slots.leave(conn, self.shutdown_request)
            raise

    def _serve(self, conn: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(conn, client_address)
        except Exception:
            self.handle_error(conn, client_address)
        finally:
            self.slots.leave(conn, self.shutdown_request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler that raised: one line, the traceback inside it (socketserver's own would
        print it raw on stderr, many lines in the JSON log)."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError | DeadlinePassed):
            log.debug("health_connection_lost", error=type(error).__name__)
            return
        log.error("health_server_error", error=type(error).__name__, exc_info=True)

    def refuse(self, reason: Refused, **detail: object) -> None:
        """A connection's thread: counted, and logged at debug (the peer chooses how often)."""
        self._refused(reason)
        log.debug("health_request_refused", reason=reason.value, **detail)

    def _full(self, reason: Refused) -> None:
        """The accepting thread only: counted each time; logged once a minute at most, with
        the counts since the last line."""
        self._refused(reason)
        self._full_since_logged[reason] += 1
        now = time.monotonic()
        if self._full_logged_at is None or now - self._full_logged_at >= _FULL_LOG_EVERY_S:
            self._full_logged_at = now
            log.warning(
                "health_connections_full",
                max_connections=self._max_connections,
                evicted=self._full_since_logged[Refused.EVICTED],
                refused=self._full_since_logged[Refused.FULL],
            )
            self._full_since_logged = {Refused.EVICTED: 0, Refused.FULL: 0}


class HealthServer:
    """The probes' and metrics' HTTP server on its own thread; ``port=0`` picks a free one.

    Holds at most ``max_connections`` threads (one a connection) plus its accepting thread,
    whatever its peers do; a connection lasts at most ``timeout_s``.
    """

    def __init__(
        self,
        health: Health,
        host: str,
        port: int,
        metrics: Callable[[], bytes] | None = None,
        *,
        refused: Callable[[Refused], None] = lambda _reason: None,
        timeout_s: float = TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        room_wait_s: float = _ROOM_WAIT_S,
    ) -> None:
        self._server = _ProbeServer(
            (host, port),
            health,
            metrics,
            refused,
            timeout_s=timeout_s,
            max_connections=max_connections,
            max_request_bytes=max_request_bytes,
            room_wait_s=room_wait_s,
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-accept", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that never ran
            self._server.shutdown()
        self._server.server_close()
        self._server.slots.cut_all(_ROOM_WAIT_S)
