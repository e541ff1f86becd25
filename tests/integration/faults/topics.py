"""The stream's Kafka side for the fault suite: producing events, reading topics back.

``StreamProducer`` keys events by uid and keeps each partition's order (idempotent producer);
``source_records`` and ``read_dead_letters`` read a topic from the start to its current end,
with each message's Kafka timestamp, which the oracle compares with commit and job times: a
source record's CreateTime (when it was produced) and a dead letter's LogAppendTime (when
Kafka accepted it, which is what acknowledges the record: ``create_dlq_topic`` makes a DLQ
topic stamp its messages so).
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.fakes.avro import SCHEMA, encode


@dataclass(frozen=True, slots=True)
class Record:
    """One source record as read back from Kafka; ``event`` is None when it does not decode."""

    partition: int
    offset: int
    produced_s: float
    event: dict[str, Any] | None

    @property
    def uid(self) -> str | None:
        """None when the worker must dead-letter the record: it does not decode, or its uid
        is empty or blank."""
        if self.event is None or not self.event["uid"].strip():
            return None
        return str(self.event["uid"])


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One DLQ message. ``written_s`` is Kafka's LogAppendTime when ``broker_time`` (the
    moment the broker took it), else the producer's CreateTime (which proves nothing)."""

    source_partition: int
    source_offset: int
    written_s: float
    key: bytes | None
    headers: dict[str, bytes]
    broker_time: bool = True

    @property
    def code(self) -> str:
        return self.headers.get("dlq.error.code", b"").decode()

    @property
    def fullstory_code(self) -> str | None:
        """FullStory's own code, for a user it rejected (``code``: ``fullstory_rejected``)."""
        found = self.headers.get("dlq.fullstory.code")
        return None if found is None else found.decode()

    @property
    def job_id(self) -> str | None:
        found = self.headers.get("dlq.job.id")
        return None if found is None else found.decode()


DLQ_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def create_dlq_topic(admin: AdminClient, name: str | None = None) -> str:
    """A one-partition DLQ topic whose messages carry the broker's append time."""
    name = name or f"dlq-{uuid.uuid4().hex[:10]}"
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=DLQ_TOPIC_CONFIG)]
    )
    for future in futures.values():
        future.result(timeout=30)
    return name


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"checker-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every message of ``topic`` up to its current end (assign, no group membership)."""
    consumer = _consumer(bootstrap)
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        ends = {}
        for partition in metadata.topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            if high > 0:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        messages: list[Any] = []
        left = dict(ends)
        deadline = time.monotonic() + timeout_s
        while left and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                messages.append(message)
                if message.offset() + 1 >= ends[message.partition()]:
                    left.pop(message.partition(), None)
        if left:
            raise AssertionError(f"could not read {topic} to its end: partitions {sorted(left)}")
        return messages
    finally:
        consumer.close()


def _decode(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        datum = fastavro.schemaless_reader(io.BytesIO(value), SCHEMA)
    except Exception:  # any decoding failure makes it a record the worker must dead-letter
        return None
    return datum if isinstance(datum, dict) else None


def source_records(bootstrap: str, topic: str) -> list[Record]:
    """The source topic read back, in (partition, offset) order, with produce times."""
    records = [
        Record(m.partition(), m.offset(), m.timestamp()[1] / 1000, _decode(m.value()))
        for m in read_topic(bootstrap, topic)
    ]
    return sorted(records, key=lambda r: (r.partition, r.offset))


def letter_from(message: Any) -> DeadLetter:
    """A DLQ message as a ``DeadLetter``; its time is Kafka's only under LogAppendTime."""
    headers = {k: v for k, v in (message.headers() or [])}
    kind, millis = message.timestamp()
    return DeadLetter(
        source_partition=int(headers["dlq.source.partition"]),
        source_offset=int(headers["dlq.source.offset"]),
        written_s=millis / 1000,
        key=message.key(),
        headers=headers,
        broker_time=kind == TIMESTAMP_LOG_APPEND_TIME,
    )


def read_dead_letters(bootstrap: str, dlq: str, source_topic: str) -> list[DeadLetter]:
    """Every letter the DLQ holds for ``source_topic`` (a record may have several)."""
    source = ("dlq.source.topic", source_topic.encode())
    return [
        letter_from(message)
        for message in read_topic(bootstrap, dlq)
        if source in (message.headers() or [])
    ]


def earliest(letters: Iterable[DeadLetter]) -> dict[tuple[int, int], DeadLetter]:
    """Each dead-lettered record's first letter, by source (partition, offset)."""
    found: dict[tuple[int, int], DeadLetter] = {}
    for letter in letters:
        key = (letter.source_partition, letter.source_offset)
        if key not in found or letter.written_s < found[key].written_s:
            found[key] = letter
    return found


def dead_letters(bootstrap: str, dlq: str, source_topic: str) -> dict[tuple[int, int], DeadLetter]:
    """The DLQ's first letter for each dead-lettered record of ``source_topic``."""
    return earliest(read_dead_letters(bootstrap, dlq, source_topic))


class StreamProducer:
    """Produces events keyed by uid (idempotent producer: per-partition order kept).

    ``start_background`` sends them in chunks with a pause between, from a thread, so the
    stream keeps arriving while the worker runs; bounded by the number of chunks.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
        )
        self._topic = topic
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.started_s: float | None = None

    def send(self, events: Iterable[dict[str, Any]]) -> int:
        if self.started_s is None:
            self.started_s = time.time()
        count = 0
        for event in events:
            for _ in range(1000):  # bounded: each try waits up to 0.1 s for queue room
                try:
                    self._producer.produce(
                        self._topic, key=event["uid"].encode(), value=encode(event)
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            else:
                raise RuntimeError("the producer queue stayed full")
            count += 1
        if self._producer.flush(30) != 0:
            raise RuntimeError("messages left unflushed")
        return count

    def start_background(
        self, events: Sequence[dict[str, Any]], chunk: int, pause_s: float
    ) -> None:
        def run() -> None:
            try:
                for start in range(0, len(events), chunk):
                    self.send(events[start : start + chunk])
                    if self._stop.wait(pause_s):
                        return
            except BaseException as exc:  # reported by join()
                self.error = exc

        self._thread = threading.Thread(target=run, name="stream-producer", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def join(self, timeout_s: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._stop.set()
                raise AssertionError("the producer thread did not finish in time")
        if self.error is not None:
            raise AssertionError(f"producing failed: {self.error!r}")
