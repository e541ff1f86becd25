"""``KafkaSource.refresh`` runs on the topic watch's thread while the loop may be closing the
consumer: a metadata call on a handle being destroyed could crash the process, so the two
never overlap, and a refresh after the close does nothing."""

from __future__ import annotations

import threading

from worker.kafka.source import KafkaSource


class Handle:
    """A consumer whose metadata call blocks until ``answer`` is set."""

    def __init__(self) -> None:
        self.asking = threading.Event()
        self.answer = threading.Event()
        self.asked = 0
        self.closed = threading.Event()

    def list_topics(self, timeout: float) -> None:
        self.asked += 1
        self.asking.set()
        assert self.answer.wait(10), "the test never answered"
        assert not self.closed.is_set(), "closed while a metadata call was under way"

    def close(self) -> None:
        self.closed.set()


def test_close_waits_for_a_refresh_under_way_and_a_later_refresh_does_nothing():
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
        refreshing = threading.Thread(target=source.refresh)
        refreshing.start()
        assert handle.asking.wait(10)
        closing = threading.Thread(target=source.close)
        closing.start()
        closing.join(0.3)
        assert closing.is_alive() and not handle.closed.is_set()
        handle.answer.set()
        refreshing.join(10)
        closing.join(10)
        assert handle.closed.is_set()
        source.refresh()
        assert handle.asked == 1
    finally:
        real.close()
