"""A forwarding HTTP proxy on 127.0.0.1, for the egress tests: the worker's calls go through a
real proxy process-side, over real sockets, the way they go through Squid or an egress gateway.

It forwards absolute-URI requests (``GET http://host:port/path``: plain-http targets) and opens
``CONNECT host:port`` tunnels (https targets), to loopback targets only, and records each in
``forwarded`` as ``(method, target)``. With ``credentials`` it answers 407 to a request without
that ``Proxy-Authorization``. ``misbehave`` makes it a hostile peer instead:

- ``refuse``: 403 to everything (a CONNECT refused by policy);
- ``stall``: reads the request and never answers;
- ``trickle``: the status line at once, then a header a byte every ``DRIP_S``, never ending;
- ``garbage``: bytes that are not HTTP, then hangs up.

Every loop is bounded: sockets time out after ``IDLE_S``, trickles stop after ``TRICKLE_BYTES``,
and everything ends when ``stop()`` is called. One thread per client connection; a connection
carries one request (the answer says ``Connection: close``), or one tunnel.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Misbehaviour = Literal["refuse", "stall", "trickle", "garbage"]

IDLE_S = 10.0  # a silent socket is given up after this long
DRIP_S = 0.25
TRICKLE_BYTES = 200
_HEAD_MAX = 64 * 1024
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ForwardProxy:
    credentials: tuple[str, str] | None = None
    misbehave: Misbehaviour | None = None
    forwarded: list[tuple[str, str]] = field(default_factory=list)
    # The Proxy-Authorization headers received, decoded (``user:password``), in order.
    authorizations: list[str] = field(default_factory=list)
    requests: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: set[socket.socket] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with suppress(OSError):
                    sock.close()

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def targets(self, method: str | None = None) -> list[str]:
        with self._lock:
            return [t for m, t in self.forwarded if method is None or m == method]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @contextmanager
    def _tracked(self, sock: socket.socket) -> Iterator[socket.socket]:
        sock.settimeout(IDLE_S)
        with self._lock:
            self._open.add(sock)
        try:
            yield sock
        finally:
            with self._lock:
                self._open.discard(sock)
            with suppress(OSError):
                sock.close()

    def _serve(self, conn: socket.socket) -> None:
        with self._tracked(conn), suppress(OSError):
            head, rest = _read_head(conn)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = [*lines[0].split(" "), "", ""][:3]
            headers = [line for line in lines[1:] if line]
            with self._lock:
                self.requests += 1
            if self.misbehave is not None:
                self._misbehave(conn)
                return
            if not self._authorized(headers):
                conn.sendall(_answer(407, b"", "Proxy-Authenticate: Basic realm=test"))
                return
            if method == "CONNECT":
                self._tunnel(conn, target, rest)
            else:
                self._forward(conn, method, target, headers, rest)

    def _misbehave(self, conn: socket.socket) -> None:
        if self.misbehave == "refuse":
            conn.sendall(_answer(403, b"blocked by policy"))
        elif self.misbehave == "stall":
            self.stopping.wait(IDLE_S)
        elif self.misbehave == "trickle":
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n")
            for _ in range(TRICKLE_BYTES):
                if self.stopping.wait(DRIP_S):
                    return
                conn.sendall(b"x")
        else:
            conn.sendall(b"\x00\xff\xfe not http at all \r\n\r\n\x1b[2J")

    def _authorized(self, headers: list[str]) -> bool:
        given = ""
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "proxy-authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() == "basic":
                    given = base64.b64decode(token).decode("utf-8", "replace")
        with self._lock:
            if given:
                self.authorizations.append(given)
        return self.credentials is None or given == ":".join(self.credentials)

    def _upstream(self, host: str, port: int) -> socket.socket | None:
        if host.strip("[]") not in _LOOPBACK:
            return None  # a test proxy never reaches beyond the machine
        return socket.create_connection((host.strip("[]"), port), timeout=IDLE_S)

    def _tunnel(self, conn: socket.socket, target: str, early: bytes) -> None:
        host, _, port = target.rpartition(":")
        upstream = self._upstream(host, int(port or 443))
        if upstream is None:
            conn.sendall(_answer(403, b"not a loopback target"))
            return
        with self._lock:
            self.forwarded.append(("CONNECT", target))
        with self._tracked(upstream):
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            back.start()
            _pump(conn, upstream)
            back.join(timeout=IDLE_S)

    def _forward(
        self, conn: socket.socket, method: str, target: str, headers: list[str], body: bytes
    ) -> None:
        parts = urlsplit(target)
        upstream = self._upstream(parts.hostname or "", parts.port or 80)
        if parts.scheme != "http" or upstream is None:
            conn.sendall(_answer(403, b"not a loopback http target"))
            return
        with self._lock:
            self.forwarded.append((method, target))
        kept = [
            h
            for h in headers
            if h.partition(":")[0].strip().lower()
            not in ("proxy-authorization", "proxy-connection", "connection", "keep-alive")
        ]
        length = next(
            (int(h.partition(":")[2]) for h in kept if h.lower().startswith("content-length:")),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                return
            body += chunk
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = "\r\n".join([f"{method} {path or '/'} HTTP/1.1", *kept, "Connection: close"])
        with self._tracked(upstream):
            upstream.sendall(request.encode("latin-1") + b"\r\n\r\n" + body)
            head, rest = _read_head(upstream)
            if head is None:
                conn.sendall(_answer(502, b"upstream gave no answer"))
                return
            answer = [
                line
                for line in head.decode("latin-1").split("\r\n")
                if line and not line.lower().startswith(("connection:", "keep-alive:"))
            ]
            conn.sendall("\r\n".join([*answer, "Connection: close"]).encode("latin-1"))
            conn.sendall(b"\r\n\r\n" + rest)
            _pump(upstream, conn)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The bytes up to the blank line ending a request's or answer's head, and what followed."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _HEAD_MAX:
            return None, b""
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends (or either side fails or idles out), then end ``sink``'s
    sending side."""
    with suppress(OSError):
        while chunk := source.recv(64 * 1024):
            sink.sendall(chunk)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} Proxy", f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n").encode() + body
