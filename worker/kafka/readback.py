"""Reading records back from Kafka by offset, for the dead letters of rejected users.

The loop keeps no record values (users are merged on arrival), so when FullStory rejects
users, the records merged into them are read again from their partitions: each dead letter
carries the original key, value and headers. One read is one pass over one partition: all
the wanted offsets of a job's rejected users there, with one consumer, forward from the
lowest, keeping only the wanted ones (``readback_plan`` says which spans and what is kept).
A pass ends at its last wanted offset, or at the partition's end (its high watermark, asked
of the broker first, never waited for). A record no longer in the topic (retention or
compaction removed it meanwhile) is missing from the answer: the loop still gives it a dead
letter, with its coordinates and no value. Runs on a job thread; each pass is bounded in time
and in the bytes it keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from worker.errors import ReadBackFailed
from worker.kafka.readback_plan import Budget, Span, present, spans
from worker.records import Message, SourceRecord, TopicPartition, source_record
from worker.runtime.clock import Clock, SystemClock

_READ_TIMEOUT_S = 60.0  # a whole pass
_WATERMARKS_TIMEOUT_S = 10.0
# Past this many offsets between two wanted ones the consumer is moved, not read through.
_MAX_GAP = 2_000
_BATCH = 500
# Far above the DLQ producer's default message limit (1 MB): a letter Kafka could carry
# keeps its value.
RECORD_MAX_BYTES = 8 * 1024 * 1024
PASS_MAX_BYTES = 64 * 1024 * 1024


class PassConsumer(Protocol):
    """What a pass asks of its consumer (``confluent_kafka.Consumer``'s methods)."""

    def get_watermark_offsets(
        self, partition: KafkaTopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]: ...
    def assign(self, partitions: list[KafkaTopicPartition]) -> None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...
    def close(self) -> None: ...


class KafkaRecordReader:
    """The loop's ``RecordReader`` (``worker.loop.ports``): a group-less consumer per pass
    (passes are rare: only for rejected users, one per partition of a failed job)."""

    def __init__(
        self,
        config: dict[str, Any],
        consumer: Callable[[dict[str, Any]], PassConsumer] = Consumer,
        clock: Clock | None = None,
    ) -> None:
        """``consumer`` builds a pass's consumer from its settings; ``clock`` times a pass."""
        self._config = {
            k: v for k, v in config.items() if not k.startswith(("group.", "enable.auto."))
        }
        self._consumer = consumer
        self._clock = clock or SystemClock()

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        consumer = self._consumer(
            {
                **self._config,
                "group.id": "fullstory-user-sync-readback",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                # What one pass may hold prefetched, as the worker's own consumer.
                "queued.max.messages.kbytes": 4_096,
                # The end is known from an empty fetch, which the broker holds this long.
                "fetch.wait.max.ms": 50,
            }
        )
        deadline = self._clock.monotonic() + _READ_TIMEOUT_S
        found: dict[int, SourceRecord] = {}
        try:
            low, high = consumer.get_watermark_offsets(
                KafkaTopicPartition(*tp), timeout=_WATERMARKS_TIMEOUT_S, cached=False
            )
            wanted = present(offsets, low, high)
            budget = Budget(RECORD_MAX_BYTES, PASS_MAX_BYTES)
            wanted_set = set(wanted)
            for span in spans(wanted, _MAX_GAP):
                _read_span(consumer, tp, span, wanted_set, budget, found, deadline, self._clock)
        except KafkaException as exc:
            raise ReadBackFailed(f"reading back {tp}: {exc.args[0]}", found) from exc
        finally:
            consumer.close()
        return found


def _read_span(
    consumer: PassConsumer,
    tp: TopicPartition,
    span: Span,
    wanted: set[int],
    budget: Budget,
    found: dict[int, SourceRecord],
    deadline: float,
    clock: Clock,
) -> None:
    """Adds to ``found`` the wanted records of ``span``; returns at its last offset or at
    the partition's end (the rest is gone). Takes what the consumer holds without waiting,
    and waits only while it holds nothing, for the first record to arrive."""
    consumer.assign([KafkaTopicPartition(tp[0], tp[1], span.first)])
    while (left := deadline - clock.monotonic()) > 0:
        messages = consumer.consume(_BATCH, 0) or consumer.consume(1, min(left, 1.0))
        for message in messages:
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return
            offset = message.offset()
            if error is not None or offset is None:
                continue
            if offset in wanted:
                found[offset] = budget.keep(source_record(tp, offset, cast(Message, message)))
            if offset >= span.last:
                return
    raise ReadBackFailed(f"reading back {tp}: no answer in {_READ_TIMEOUT_S:.0f}s", found)
