"""``KafkaSource.refresh`` is asked for on the topic watch's thread, and made by the thread
that consumes, before its next fetch: a metadata call made from another thread while
``consume`` waited blocked for many seconds past its timeout, and sometimes for good
(measured on the broker), so a topic created after start-up was still not read."""

from __future__ import annotations

import threading

from worker.kafka.source import KafkaSource


class Handle:
    """A consumer that notes which thread asks for metadata, and what it did in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def list_topics(self, timeout: float) -> None:
        self.calls.append(("list_topics", threading.current_thread().name))

    def consume(self, num_messages: int, timeout: float) -> list[object]:
        self.calls.append(("consume", threading.current_thread().name))
        return []


def test_a_refresh_asked_from_another_thread_is_made_once_by_the_consuming_thread():
    source = KafkaSource(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "refresh-test"},
        ["users"],
        on_assign=lambda _p: None,
        on_revoke=lambda _p: None,
        on_lost=lambda _p: None,
    )
    real, handle = source._consumer, Handle()
    source._consumer = handle  # type: ignore[assignment]
    try:
        watch = threading.Thread(target=source.refresh, name="topic-watch")
        watch.start()
        watch.join(10)
        assert handle.calls == []  # nothing made on the watch's thread
        source.consume(10, 0.0)
        source.consume(10, 0.0)
        me = threading.current_thread().name
        assert handle.calls == [("list_topics", me), ("consume", me), ("consume", me)]
    finally:
        real.close()
