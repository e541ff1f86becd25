"""The HTTP adapter: reads requests off the socket and writes outcomes back.

It knows nothing of FullStory. For each request it reads the whole body (Content-Length
or chunked), asks `pipeline.handle` for the outcome, waits the outcome's delay, logs the
/v2 record, then either writes a JSON answer or resets the connection (TCP RST, no bytes
sent). HTTP/1.1 keep-alive is supported; idle connections close after `timeout` seconds.
One line per request goes to the `fullstory_sandbox.http` logger at INFO (never the key).
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fullstory_sandbox import pipeline
from fullstory_sandbox.messages import ApiRequest, Response, error_response
from fullstory_sandbox.state import SandboxState

log = logging.getLogger("fullstory_sandbox.http")

MAX_BODY_BYTES = 256 * 1024 * 1024


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that carries the sandbox state for its handlers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        super().__init__(address, SandboxHandler)


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FullStorySandbox/1"
    timeout = 60
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        # http.server's own access log is replaced by the one line in _serve.
        return

    def _serve(self) -> None:
        state = self.server.state
        started = time.monotonic()
        received_mono, received_wall = state.clock.monotonic(), state.clock.now()
        body = self._read_body()
        if body is None:
            self._write(error_response(400, "invalid_argument", "unreadable request body"))
            self.close_connection = True
            return
        request = self._request(body, received_mono, received_wall)
        outcome = pipeline.handle(state, request)
        if outcome.delay_s > 0:
            time.sleep(outcome.delay_s)
        if outcome.record is not None:
            with state.lock:
                outcome.record.answered_mono = state.clock.monotonic()
                state.log.append(outcome.record)
        status = "reset" if outcome.response is None else str(outcome.response.status)
        log.info(
            "%s %s %s %s key=%s %.1fms",
            self.client_address[0],
            self.command,
            request.target,
            status,
            request.header("idempotency-key") or "-",
            (time.monotonic() - started) * 1000,
        )
        if outcome.response is None:
            self._reset()
            return
        try:
            self._write(outcome.response)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a timeout during a `slow` fault, say): nothing to do.
            self.close_connection = True

    def _request(self, body: bytes, received_mono: float, received_wall: datetime) -> ApiRequest:
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        return ApiRequest(
            method=self.command,
            target=self.path,
            path=parts.path or "/",
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            received_mono=received_mono,
            received_wall=received_wall,
        )

    def _read_body(self) -> bytes | None:
        """The request body, or None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if not 0 <= length <= MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_BODY_BYTES:  # bounded by the body cap
            try:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers; each readline consumes input, so this ends
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            total += size
            self.rfile.readline(1024)
        return None

    def _write(self, response: Response) -> None:
        payload = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Drops the connection without a byte of answer; SO_LINGER 0 makes it a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
