"""A loopback HTTP/1.1 server that answers as badly as told, for the hostile-peer tests.

It listens on 127.0.0.1 on an ephemeral port, one thread per connection. Each route answers
with a *behaviour*, a function writing the raw answer on the socket; every behaviour ends on
its own: bodies are bounded in bytes, trickles in bytes and time, and every wait ends when the
server stops. ``bytes_sent`` counts what each behaviour managed to write, so a test can show
the client hung up early.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_CHUNK = 64 * 1024
# The clients under test get DEADLINE_S per call; a trickling peer sends a byte every DRIP_S,
# each read well inside the per-read timeout, so only the call's own deadline can end it.
DEADLINE_S = 1.0
DRIP_S = 0.25


@dataclass
class Exchange:
    """One request, and the means to answer it."""

    method: str
    path: str  # as sent, still percent-encoded
    query: dict[str, list[str]]
    body: bytes
    _handler: BaseHTTPRequestHandler
    _server: HostileServer

    def write(self, data: bytes) -> bool:
        """Send ``data``; False once the client is gone."""
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            return False
        self._server.count_sent(len(data))
        return True

    def wait(self, seconds: float) -> bool:
        """Pause; False when the server is stopping."""
        return not self._server.stopping.wait(seconds)

    def close_after(self) -> None:
        self._handler.close_connection = True


Behaviour = Callable[[Exchange], None]


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw(status: int, body: bytes, content_type: str = "application/json", **headers: str):
    """A well-formed answer with this body (keep-alive)."""

    def behave(exchange: Exchange) -> None:
        head = {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}
        exchange.write(_head(status, head) + body)

    return behave


def answer(status: int, body: Any, **headers: str) -> Behaviour:
    """A well-formed JSON answer."""
    return raw(status, json.dumps(body).encode(), **headers)


def huge(total: int = 100 * 1024 * 1024, declared: bool = False) -> Behaviour:
    """A 200 whose body is ``total`` bytes of a JSON string, generated as it is sent; without
    a Content-Length (ended by closing) unless ``declared``."""

    def behave(exchange: Exchange) -> None:
        exchange.close_after()
        head = {"Content-Type": "application/json", "Connection": "close"}
        if declared:
            head["Content-Length"] = str(total)
        if not exchange.write(_head(200, head) + b'"'):
            return
        for _ in range(total // _CHUNK):
            if not exchange.write(b"x" * _CHUNK):
                return

    return behave


def trickle(prefix: bytes, drip: bytes, every_s: float, count: int) -> Behaviour:
    """Send ``prefix``, then ``drip`` one byte at a time every ``every_s``, ``count`` bytes
    at most, then hang up."""

    def behave(exchange: Exchange) -> None:
        exchange.close_after()
        if not exchange.write(prefix):
            return
        for byte in _bytes(drip, count):
            if not exchange.wait(every_s) or not exchange.write(byte):
                return

    return behave


def trickled_body(every_s: float, count: int = 60) -> Behaviour:
    """Headers at once (Content-Length honest), then the body one byte at a time."""
    body = b'{"pad":"' + b"x" * count + b'"}'
    head = _head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    return trickle(head, body, every_s, count)


def trickled_headers(every_s: float, count: int = 60) -> Behaviour:
    """The status line at once, then a header one byte at a time, never ending the headers."""
    return trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"x" * count, every_s, count)


def _bytes(data: bytes, count: int) -> Iterator[bytes]:
    for index in range(min(count, len(data))):
        yield data[index : index + 1]


@dataclass
class _Route:
    behaviours: list[Behaviour]
    served: int = 0


@dataclass
class HostileServer:
    """``answer_with(method, path, *behaviours)``: the behaviours in turn, the last for ever."""

    routes: dict[tuple[str, str], _Route] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    bytes_sent: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    # Serve https with this context (``tests/fakes/tls``: a certificate for 127.0.0.1).
    tls: ssl.SSLContext | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._http = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._http.block_on_close = False
        scheme = "http"
        if self.tls is not None:
            # The handshake happens on the handler's first read, on its own thread.
            self._http.socket = self.tls.wrap_socket(
                self._http.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def answer_with(self, method: str, path: str, *behaviours: Behaviour) -> None:
        self.routes[(method, path)] = _Route(list(behaviours))

    def count_sent(self, size: int) -> None:
        with self._lock:
            self.bytes_sent += size

    def served(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    def serve(self, exchange: Exchange) -> None:
        with self._lock:
            self.requests.append((exchange.method, exchange.path, exchange.query))
            route = self.routes.get((exchange.method, exchange.path))
            if route is None:
                behave = answer(404, {"code": "not_found"})
            else:
                behave = route.behaviours[min(route.served, len(route.behaviours) - 1)]
                route.served += 1
        behave(exchange)

    def stop(self) -> None:
        self.stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up mid-answer is what these tests provoke


def _handler_for(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a client that stops reading cannot hold a handler thread longer

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            exchange = Exchange(self.command, parts.path, parse_qs(parts.query), body, self, server)
            server.serve(exchange)

        do_GET = do_POST = _any

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
