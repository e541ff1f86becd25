"""A group's committed offsets over time, sampled from a background thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition


@dataclass(frozen=True, slots=True)
class Sample:
    """Offset ``offset`` of ``partition`` was seen committed by wall time ``seen_s``."""

    seen_s: float
    partition: int
    offset: int


class CommitWatcher:
    """Samples a group's committed offsets every ``interval_s`` from a background thread.

    Keeps each partition's first sighting of every new offset (the time the answer came
    back, an upper bound of the commit's time) and notes any offset that went back.
    Bounded by ``max_s`` seconds of watching.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        interval_s: float = 0.15,
        max_s: float = 600.0,
    ) -> None:
        self._bootstrap, self._group, self._topic = bootstrap, group, topic
        self._interval_s, self._max_s = interval_s, max_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._latest: dict[int, int] = {}
        self.samples: list[Sample] = []
        self.regressions: list[str] = []
        self.polls = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)

    def __enter__(self) -> CommitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def latest(self) -> dict[int, int]:
        """The newest committed offset seen per partition (missing: nothing committed yet)."""
        with self._lock:
            return dict(self._latest)

    def poll_now(self) -> dict[int, int]:
        """Wait for one fresh sample after this call, and return the newest offsets."""
        target = self.polls + 2
        deadline = time.monotonic() + 15
        while self.polls < target and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        return self.latest()

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": self._group,
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(self._topic, timeout=10)
            parts = [
                TopicPartition(self._topic, p) for p in metadata.topics[self._topic].partitions
            ]
            deadline = time.monotonic() + self._max_s
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    found = consumer.committed(parts, timeout=5)
                except KafkaException:
                    self.errors += 1
                    self._stop.wait(self._interval_s)
                    continue
                seen = time.time()
                with self._lock:
                    for tp in found:
                        if tp.offset < 0:
                            continue
                        before = self._latest.get(tp.partition)
                        if before is not None and tp.offset < before:
                            self.regressions.append(
                                f"partition {tp.partition}: committed {before} then {tp.offset}"
                            )
                        if before != tp.offset:
                            self.samples.append(Sample(seen, tp.partition, tp.offset))
                            self._latest[tp.partition] = tp.offset
                    self.polls += 1
                self._stop.wait(self._interval_s)
        finally:
            consumer.close()


def wait_for_commits(
    watcher: CommitWatcher, target: dict[int, int], timeout_s: float, what: str
) -> None:
    """Wait until every partition's committed offset reached ``target`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = watcher.latest()
        if all(latest.get(p, -1) >= end for p, end in target.items() if end > 0):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what}: committed {watcher.latest()}, "
        f"want {target}"
    )
