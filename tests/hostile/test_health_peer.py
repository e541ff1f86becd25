"""Whoever reaches the health port as a hostile peer: the real ``HealthServer`` on 127.0.0.1,
raw sockets as the clients. Whatever they do, the server holds a bounded number of threads,
``/healthz`` answers, and its log stays one JSON object a line."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
import structlog

from worker.runtime.health import Health
from worker.runtime.health_server import MAX_CONNECTIONS, HealthServer
from worker.runtime.logs import configure_logging
from worker.runtime.metrics import Metrics

HOST = "127.0.0.1"
WAIT_S = 10.0  # the most any test waits for the server to do something


@contextmanager
def started(
    metrics: Metrics, scrape: Callable[[], bytes] | None = None, **options: float
) -> Iterator[HealthServer]:
    """A ready replica's health server on 127.0.0.1 (``scrape`` serves ``/metrics``), its
    refusals counted in ``metrics``."""
    health = Health(liveness_timeout_s=60)
    health.joined()
    server = HealthServer(
        health,
        HOST,
        0,
        scrape or metrics.exposition,
        refused=metrics.health_connection_refused,
        **options,
    )
    server.start()
    try:
        yield server
    finally:
        server.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=WAIT_S)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def refused(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "fsus_health_connections_refused_total", {"reason": reason}
    )
    return value or 0.0


def closed_by_server(conn: socket.socket, keep_sending: bytes = b"") -> bytes | None:
    """What the server sent before closing ``conn`` (sending ``keep_sending`` a byte every
    50 ms meanwhile), or None if it still held it after ``WAIT_S``."""
    received = b""
    for step in range(int(WAIT_S / 0.05)):
        if keep_sending:
            try:
                conn.sendall(keep_sending[step % len(keep_sending) : step % len(keep_sending) + 1])
            except OSError:
                return received
        readable, _, _ = select.select([conn], [], [], 0.05)
        if readable:
            try:
                data = conn.recv(65536)
            except OSError:
                return received
            if not data:
                return received
            received += data
    return None


def test_idle_connections_past_the_cap_hold_no_more_threads_and_healthz_answers():
    """250 connections that never send a byte: the server holds at most its cap of threads (it
    cuts the oldest to make room), kubelet's probe, arriving last, still gets its 200, and the
    log says so once, not once a connection."""
    metrics = Metrics()
    before = threading.active_count()
    with structlog.testing.capture_logs() as logs, started(metrics) as server, ExitStack() as idle:
        first = idle.enter_context(socket.create_connection((HOST, server.port)))
        for _ in range(249):
            idle.enter_context(socket.create_connection((HOST, server.port)))
        status, body = get(server.port, "/healthz")
        threads = threading.active_count() - before
        assert status == 200 and json.loads(body)["ok"] is True
        assert threads <= MAX_CONNECTIONS + 5, f"{threads} threads for 250 idle connections"
        assert closed_by_server(first) == b"", "the oldest idle connection was not cut"
        assert refused(metrics, "evicted") >= 250 + 1 - MAX_CONNECTIONS
    full = [e for e in logs if e["event"] == "health_connections_full"]
    assert [e["log_level"] for e in full] == ["warning"], "one line, not one per connection"


@pytest.mark.parametrize(
    "trickle",
    [b"", b"X-Slow: " + b"a" * 200],
    ids=["half-a-request-then-nothing", "headers-trickled-a-byte-at-a-time"],
)
def test_a_request_not_sent_in_time_is_cut_at_the_connections_deadline(trickle: bytes):
    """Half a request and then silence, or headers trickled one byte every 50 ms (each byte
    well inside the deadline): the server closes the connection, unanswered, once its deadline
    (0.5 s here) passed, however lively the trickle."""
    metrics = Metrics()
    with started(metrics, timeout_s=0.5) as server:
        with socket.create_connection((HOST, server.port)) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert closed_by_server(slow, keep_sending=trickle) == b""
        assert refused(metrics, "timed_out") == 1
        assert get(server.port, "/healthz")[0] == 200


def test_request_headers_past_8_kib_are_refused_with_431():
    """50 headers of 1 KiB (the stdlib alone takes up to 100 of 64 KiB each): 431, the
    connection closed; the next probe is answered."""
    metrics = Metrics()
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1024) for i in range(50))
    with started(metrics) as server:
        with socket.create_connection((HOST, server.port)) as big:
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            answer = closed_by_server(big)
        assert answer is not None and answer.startswith(b"HTTP/1.0 431 ")
        assert refused(metrics, "too_large") == 1
        assert get(server.port, "/healthz")[0] == 200


def test_past_the_cap_with_no_room_a_connection_is_closed_at_once_without_a_thread():
    """One slot, held by a scrape stuck in its answer (cutting its socket does not free it):
    the next connection is closed unanswered, no thread started; once the scrape ends, the
    probe is answered again."""
    metrics = Metrics()
    stuck, release = threading.Event(), threading.Event()

    def scrape() -> bytes:
        stuck.set()
        release.wait(WAIT_S)
        return b""

    with started(metrics, scrape=scrape, max_connections=1, room_wait_s=0.1) as server:
        with socket.create_connection((HOST, server.port)) as scraper:
            scraper.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert stuck.wait(WAIT_S)
            threads = threading.active_count()
            with socket.create_connection((HOST, server.port)) as late:
                late.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                assert closed_by_server(late) == b""
            assert threading.active_count() <= threads
            release.set()
        assert refused(metrics, "full") == 1
        assert get(server.port, "/healthz")[0] == 200


@pytest.fixture
def json_log(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """A call that sets up the worker's production logging (JSON lines on stderr, debug on)
    on the test's captured stderr and gives what was logged; undone after the test."""

    def configure() -> str:
        configure_logging("debug", "json")
        # Not cached: a logger cached here would keep writing to this test's stderr.
        structlog.configure(cache_logger_on_first_use=False)
        return capfd.readouterr().err

    yield configure
    structlog.reset_defaults()


def test_the_servers_own_errors_are_one_json_line_each_never_a_traceback(
    json_log: Callable[[], str],
):
    """A handler that raises, a bad request line, a request too large and one past its
    deadline: stderr holds only JSON objects, one a line; the handler's error is one
    ``health_server_error`` line at error (its traceback inside it, not on lines of its own)."""
    json_log()

    def broken() -> bytes:
        raise RuntimeError("the exposition broke")

    metrics = Metrics()
    with started(metrics, scrape=broken, timeout_s=0.5) as server:
        with pytest.raises(http.client.RemoteDisconnected):
            get(server.port, "/metrics")
        sends: list[Callable[[socket.socket], None]] = [
            lambda c: c.sendall(b"\x16\x03\x01 not http\r\n\r\n"),
            lambda c: c.sendall(b"GET / HTTP/1.0\r\n" + b"X: %b\r\n" % (b"y" * 9000) + b"\r\n"),
            lambda c: c.sendall(b"GET /healthz HTTP/1.0\r\n"),
        ]
        for send in sends:
            with socket.create_connection((HOST, server.port)) as conn:
                send(conn)
                assert closed_by_server(conn) is not None
    lines = [line for line in json_log().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # each line one JSON object, or this fails
    errors = [e for e in events if e["event"] == "health_server_error"]
    assert len(errors) == 1 and errors[0]["level"] == "error"
    assert errors[0]["error"] == "RuntimeError" and "the exposition broke" in errors[0]["exception"]
    reasons = {e.get("reason") for e in events if e["event"] == "health_request_refused"}
    assert reasons == {"bad_request", "too_large", "timed_out"}


def test_a_server_that_never_started_closes_at_once():
    """A start-up that fails between binding the port and starting the thread still exits:
    closing the server does not wait for a serve loop that never ran."""
    server = HealthServer(Health(liveness_timeout_s=60), "127.0.0.1", 0)
    closing = threading.Thread(target=server.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() hung on a server that was never started"
