"""Kafka for the poll loop: partition logs and the group's commits (``FakeKafka``, shared by
members as a broker is), and one group member (``ScriptedSource``) whose rebalances and
commit answers the test scripts. Implements ``worker.loop.ports.Source``.

Like librdkafka, rebalance callbacks and asynchronous commit results reach the loop only
inside ``consume``; paused partitions are not fetched, and a pause outlives a re-assignment;
``close`` revokes what is still assigned.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.avro import encode, event
from tests.fakes.clock import FakeClock
from worker.records import Fetched, SourceRecord, TopicPartition

Callback = Callable[[list[TopicPartition]], None]


@dataclass(frozen=True, eq=False)
class FakeMessage:
    """A consumed message, read through ``confluent_kafka.Message``'s methods."""

    record: SourceRecord

    def offset(self) -> int:
        return self.record.offset

    def key(self) -> bytes | None:
        return self.record.key

    def value(self) -> bytes | None:
        return self.record.value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return list(self.record.headers) or None


@dataclass(frozen=True)
class Commit:
    """One commit the member asked for, and whether Kafka stored it."""

    offsets: dict[TopicPartition, int]
    metadata: dict[TopicPartition, str]
    wait: bool
    stored: bool


def jobs_named(metadata: str) -> list[str]:
    """The job ids commit metadata names (the worker's format: {"fsus": 1, "jobs": [...]})."""
    if not metadata:
        return []
    return list(json.loads(metadata)["jobs"])


class FakeKafka:
    """Partition logs and the consumer group's committed offsets (with their metadata)."""

    def __init__(self, topic: str = "users", partitions: int = 1) -> None:
        self.topic = topic
        self.logs: dict[TopicPartition, list[SourceRecord]] = {
            (topic, p): [] for p in range(partitions)
        }
        self.committed: dict[TopicPartition, tuple[int, str]] = {}

    def produce(
        self, partition: int, value: bytes | None, key: bytes | None = None
    ) -> SourceRecord:
        tp = (self.topic, partition)
        log = self.logs[tp]
        record = SourceRecord(self.topic, partition, len(log), key, value)
        log.append(record)
        return record

    def change(self, partition: int, uid: str, **fields: Any) -> SourceRecord:
        """A user-change event for ``uid``, Avro-encoded as a producer writes it."""
        return self.produce(partition, encode(event(uid, **fields)), uid.encode())

    def tombstone(self, partition: int, uid: str) -> SourceRecord:
        """A tombstone keyed by ``uid``: the user's deletion, in the canonical format."""
        return self.produce(partition, None, uid.encode())

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        """``worker.loop.ports.RecordReader``: records still in the log, by offset."""
        log = self.logs[tp]
        return {o: log[o] for o in offsets if o < len(log) and log[o] is not None}

    def log_end(self, partition: int = 0) -> int:
        return len(self.logs[(self.topic, partition)])

    def committed_to_end(self) -> bool:
        """Every partition's committed offset is its log end (nothing left to redo)."""
        return all(
            self.committed_offset(p) == len(log) for (_t, p), log in self.logs.items() if log
        )

    def committed_offset(self, partition: int = 0) -> int | None:
        found = self.committed.get((self.topic, partition))
        return None if found is None else found[0]

    def committed_jobs(self, partition: int = 0) -> list[str]:
        found = self.committed.get((self.topic, partition))
        return [] if found is None else jobs_named(found[1])


class ScriptedSource:
    """One consumer-group member over ``FakeKafka``."""

    def __init__(self, kafka: FakeKafka, clock: FakeClock) -> None:
        self.kafka = kafka
        self.clock = clock
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.commits: list[Commit] = []
        self.closed = False
        self.polls = 0
        self.violations: list[str] = []
        self._events: deque[Callable[[], None]] = deque()
        self._results: deque[tuple[object | None, list[TopicPartition]]] = deque()
        self._commit_script: deque[str] = deque()
        self.on_assign: Callback = lambda _p: None
        self.on_revoke: Callback = lambda _p: None
        self.on_lost: Callback = lambda _p: None
        self.on_commit: Callable[[object | None, list[TopicPartition]], None] = lambda e, p: None

    # -- what the test scripts --------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """The group hands these partitions over, at the next ``consume``."""
        tps = [(self.kafka.topic, p) for p in partitions]

        def fire() -> None:
            for tp in tps:
                found = self.kafka.committed.get(tp)
                self.positions[tp] = 0 if found is None else found[0]
            self.assigned.update(tps)
            self.on_assign(tps)

        self._events.append(fire)

    def revoke(self, partitions: Iterable[int]) -> None:
        """The group takes these back (cooperative), at the next ``consume``."""
        tps = [(self.kafka.topic, p) for p in partitions]

        def fire() -> None:
            self.on_revoke(tps)  # still owned while the callback commits
            self.assigned.difference_update(tps)

        self._events.append(fire)

    def lose(self, partitions: Iterable[int]) -> None:
        """The partitions were lost (session timed out): they already belong to others."""
        tps = [(self.kafka.topic, p) for p in partitions]

        def fire() -> None:
            self.assigned.difference_update(tps)
            self.on_lost(tps)

        self._events.append(fire)

    def fail_commits(self, count: int, how: str = "error") -> None:
        """The next ``count`` commits fail: ``error`` (Kafka answers with an error: through
        ``on_commit`` for asynchronous commits, as False for waited ones) or ``refused``
        (the client refuses at once: ``commit`` returns False)."""
        if how not in ("error", "refused"):
            raise ValueError(how)
        self._commit_script.extend([how] * count)

    # -- worker.loop.ports.Source ------------------------------------------------------------

    def consume(self, max_records: int, timeout: float) -> list[Fetched]:
        if self.closed:
            raise RuntimeError("consume after close")
        self.polls += 1
        while self._events:
            self._events.popleft()()
        while self._results:
            error, partitions = self._results.popleft()
            self.on_commit(error, partitions)
        runs: list[Fetched] = []
        room = max_records
        for tp in sorted(self.assigned - self.paused):
            log = self.kafka.logs[tp]
            position = self.positions[tp]
            take = log[position : position + room]
            if take:
                runs.append(Fetched(tp, [FakeMessage(record) for record in take]))
                room -= len(take)
            self.positions[tp] = position + len(take)
        if not runs:
            self.clock.waited(timeout)
        return runs

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused.difference_update(partitions)

    def commit(
        self,
        offsets: dict[TopicPartition, int],
        metadata: dict[TopicPartition, str],
        wait: bool,
    ) -> bool:
        foreign = set(offsets) - self.assigned
        if foreign:
            self.violations.append(f"committed partitions it does not own: {sorted(foreign)}")
        outcome = self._commit_script.popleft() if self._commit_script else "ok"
        stored = outcome == "ok" and not foreign
        self.commits.append(Commit(dict(offsets), dict(metadata), wait, stored))
        if outcome == "refused":
            return False
        if stored:
            for tp, offset in offsets.items():
                self.kafka.committed[tp] = (offset, metadata.get(tp, ""))
        if wait:
            return stored
        error = None if stored else "commit failed (scripted)"
        self._results.append((error, list(offsets)))
        return True

    def lag(self) -> int:
        return sum(
            len(self.kafka.logs[tp]) - self.positions[tp] for tp in self.assigned - self.paused
        )

    def committed_metadata(self, partitions: list[TopicPartition]) -> dict[TopicPartition, str]:
        return {tp: self.kafka.committed.get(tp, (0, ""))[1] for tp in partitions}

    def all_partitions(self) -> list[TopicPartition] | None:
        return sorted(self.kafka.logs)

    def close(self) -> None:
        """Leave the group: like librdkafka, revoke what is still assigned first."""
        if self.closed:
            return
        if self.assigned:
            revoked = sorted(self.assigned)
            self.on_revoke(revoked)
            self.assigned.clear()
        self.closed = True
