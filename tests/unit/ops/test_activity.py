"""What ``status --worker`` shows of the replicas (``worker.ops.activity``), read from the
worker's own ``/metrics`` exposition."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.ops import activity
from worker.runtime.metrics import Metrics


def _replica(deleted: int, unchanged: int, pending: int) -> bytes:
    metrics = Metrics()
    metrics.deletes.labels("deleted").inc(deleted)
    metrics.records_skipped.labels("unchanged").inc(unchanged)
    metrics.records_acknowledged.labels("deleted").inc(deleted)
    metrics.deletes_waiting.set(pending)
    return metrics.exposition()


def test_the_replicas_counters_are_summed_and_shown_by_label():
    total = activity.Activity()
    total.add(activity.parse(_replica(3, 10, 1).decode()))
    total.add(activity.parse(_replica(4, 0, 2).decode()))
    assert total.replicas == 2
    assert total.counters["fsus_user_deletes"]["deleted"] == 7
    assert total.counters["fsus_records_skipped"]["unchanged"] == 10
    shown = activity.lines(total)
    assert "deletes: pending 3; deleted 7, absent 0, rejected 0" in shown
    assert any(line.startswith("skipped: unchanged 10,") for line in shown)


def test_a_label_that_is_not_the_workers_own_word_is_never_printed():
    """A replica's answer reaches the operator's terminal: escape sequences stay out."""
    text = 'fsus_records_skipped_total{reason="\\u001b[2Jx"} 5.0\n'
    parsed = activity.parse(text)
    assert parsed.counters.get("fsus_records_skipped", {}) == {}


class _Server:
    def __init__(self, status: int, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_replica_that_does_not_answer_is_named_and_the_others_still_count():
    good = _Server(200, _replica(2, 0, 0))
    broken = _Server(500, b"no")
    try:
        read = activity.read([good.url, broken.url, "http://127.0.0.1:1"])
    finally:
        good.close()
        broken.close()
    assert read.replicas == 1
    assert read.counters["fsus_user_deletes"]["deleted"] == 2
    assert read.unreachable == {broken.url: "HTTP 500", "http://127.0.0.1:1": "ConnectError"}
