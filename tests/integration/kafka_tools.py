"""Test-side Kafka helpers: topics, producing events, reading offsets and the DLQ."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

_LOADING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)


@dataclass
class Broker:
    bootstrap: str

    def __post_init__(self) -> None:
        # One long-lived client: a dropped AdminClient fails its pending futures.
        self._admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def admin(self) -> AdminClient:
        return self._admin

    def quick_handover(self, group: str, protocol: str) -> dict[str, str]:
        """The worker settings (and, for Kafka 4's consumer protocol, the group's own broker
        config) that let a dead member's partitions move within about 6 s, under
        ``protocol`` (``classic`` or ``consumer``)."""
        if protocol == "classic":
            return {
                "KAFKA_CFG_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_CFG_HEARTBEAT_INTERVAL_MS": "1000",
            }
        entries = [
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in (
                ("consumer.session.timeout.ms", "6000"),
                ("consumer.heartbeat.interval.ms", "1000"),
            )
        ]
        resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
        for future in self.admin().incremental_alter_configs([resource]).values():
            future.result(timeout=30)
        return {"KAFKA_CFG_GROUP_PROTOCOL": "consumer"}

    def create_topic(self, partitions: int, prefix: str = "users") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        for future in futures.values():
            future.result(timeout=30)
        return name

    def produce(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]], **config: object
    ) -> int:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 5,
                "enable.idempotence": True,
                # Errors only: on a fresh broker its retried "Coordinator load in progress"
                # warnings read like failures in make demo's output; a failure still raises.
                "log_level": 3,
                **config,
            }
        )
        count = 0
        for key, value in messages:
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
            count += 1
        if producer.flush(30) != 0:
            raise RuntimeError("messages left unflushed")
        return count

    def partitions(self, topic: str) -> list[int]:
        metadata = self.admin().list_topics(topic, timeout=10)
        return sorted(metadata.topics[topic].partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "offset-reader"})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in self.partitions(topic)
            }
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offsets of ``group`` (-1001 when nothing is committed)."""
        return {p: offset for p, (offset, _) in self.committed_with_metadata(group, topic).items()}

    def committed_with_metadata(self, group: str, topic: str) -> dict[int, tuple[int, str]]:
        """Committed (offset, metadata) per partition of ``topic`` for ``group``.

        Retries for up to 30 s while the group coordinator is still loading (a fresh broker).
        """
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        deadline = time.monotonic() + 30
        try:
            parts = [TopicPartition(topic, p) for p in self.partitions(topic)]
            while True:
                try:
                    found = consumer.committed(parts, timeout=10)
                    return {tp.partition: (tp.offset, tp.metadata or "") for tp in found}
                except KafkaException as exc:
                    if not exc.args[0].retriable() and exc.args[0].code() not in _LOADING:
                        raise
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            consumer.close()

    def read_all(self, topic: str, expected: int, timeout_s: float = 30.0) -> list:
        """Read ``expected`` messages from the start of ``topic`` (fewer if the time runs out)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        messages = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(messages) < expected and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    if message.error() is None:
                        messages.append(message)
        finally:
            consumer.close()
        return messages
