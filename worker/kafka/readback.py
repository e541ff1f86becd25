"""Reading records back from Kafka by offset, for the dead letters of rejected users.

The loop keeps no record values (users are merged on arrival), so when FullStory rejects a
user, the records merged into it are read again from their partition: each dead letter
carries the original key, value and headers. A record no longer in the topic (retention or
compaction removed it meanwhile) is missing from the answer: the loop still gives it a dead
letter, with its coordinates and no value. Runs on a job thread; each read is bounded in time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from structlog.typing import FilteringBoundLogger

from worker.errors import ReadBackFailed
from worker.records import Message, SourceRecord, TopicPartition, source_record

log: FilteringBoundLogger = structlog.get_logger(__name__)
_READ_TIMEOUT_S = 60.0


class KafkaRecordReader:
    """The loop's ``RecordReader`` (``worker.loop.ports``): a group-less consumer per read
    (reads are rare: only for rejected users)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {
            k: v for k, v in config.items() if not k.startswith(("group.", "enable.auto."))
        }

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        wanted = set(offsets)
        last = max(offsets)
        consumer = Consumer(
            {
                **self._config,
                "group.id": "fullstory-user-sync-readback",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        found: dict[int, SourceRecord] = {}
        deadline = time.monotonic() + _READ_TIMEOUT_S
        try:
            consumer.assign([KafkaTopicPartition(tp[0], tp[1], min(offsets))])
            while time.monotonic() < deadline:
                for message in consumer.consume(500, 1.0):
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        return found  # the rest is gone
                    offset = message.offset()
                    if error is not None or offset is None:
                        continue
                    if offset in wanted:
                        found[offset] = source_record(tp, offset, cast(Message, message))
                    if offset >= last:
                        return found
        except KafkaException as exc:
            raise ReadBackFailed(f"reading back {tp}: {exc.args[0]}") from exc
        finally:
            consumer.close()
        raise ReadBackFailed(f"reading back {tp}: no answer in {_READ_TIMEOUT_S:.0f}s")
