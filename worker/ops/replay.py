"""Replay: move the group's committed offsets back, to an offset or a point in time.

Run with every replica stopped: Kafka refuses offset commits from outside the group while it
has members, and so does this command (it checks first and names the problem). Replaying is
safe because imports are upserts: users end in the state of their latest event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from worker.config.settings import KafkaSettings
from worker.errors import WorkerError
from worker.kafka.clients import describe, kafka_client, quiet_config


@dataclass(frozen=True, slots=True)
class Target:
    """Where to move: exactly one of ``offset`` (-2 earliest) and ``timestamp_ms``."""

    offset: int | None = None
    timestamp_ms: int | None = None

    @classmethod
    def parse(cls, earliest: bool, offset: int | None, when: str | None) -> Target:
        chosen = [earliest, offset is not None, when is not None]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of --to-earliest, --to-offset, --to-datetime")
        if earliest:
            return cls(offset=-2)
        if offset is not None:
            if offset < 0:
                raise ValueError("--to-offset must be >= 0")
            return cls(offset=offset)
        moment = datetime.fromisoformat(when or "")
        if moment.tzinfo is None:
            raise ValueError("--to-datetime needs a UTC offset, e.g. 2026-11-26T00:00:00+00:00")
        return cls(timestamp_ms=int(moment.timestamp() * 1000))


def _require_empty_group(admin: AdminClient, group: str) -> None:
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    if description.members:
        raise WorkerError(
            f"group {group} has {len(description.members)} active member(s); "
            "stop every replica before replaying"
        )


def _clients(kafka: KafkaSettings, group: str) -> tuple[AdminClient, Consumer]:
    """Quiet clients (one line per failure, as ``status`` says it); librdkafka refusing a
    ``KAFKA_CFG_*`` value is a ``ConfigError`` naming it (exit 2)."""
    config = quiet_config(kafka)
    admin = kafka_client(kafka, lambda: AdminClient(config))
    # Not a member: a static replica's group.instance.id (run from its pod) would make the
    # broker take this commit-only client for that member.
    own = {k: v for k, v in config.items() if k != "group.instance.id"}
    consumer = kafka_client(
        kafka, lambda: Consumer({**own, "group.id": group, "enable.auto.commit": False})
    )
    return admin, consumer


def plan(
    kafka: KafkaSettings,
    group: str,
    topics: tuple[str, ...],
    target: Target,
    partitions: set[int] | None = None,
) -> dict[tuple[str, int], int]:
    """The offsets the group would get, without committing anything."""
    admin, consumer = _clients(kafka, group)
    try:
        metadata = admin.list_topics(timeout=30)
        tps = []
        for topic in topics:
            if topic not in metadata.topics:
                raise WorkerError(f"topic {topic} does not exist")
            tps += [
                TopicPartition(topic, p)
                for p in sorted(metadata.topics[topic].partitions)
                if partitions is None or p in partitions
            ]
        result: dict[tuple[str, int], int] = {}
        if target.timestamp_ms is not None:
            for tp in tps:
                tp.offset = target.timestamp_ms
            found = consumer.offsets_for_times(tps, timeout=30)
            for tp in found:
                if tp.offset < 0:  # no record at or after the time: the log end
                    tp.offset = consumer.get_watermark_offsets(tp, timeout=30)[1]
                result[(tp.topic, tp.partition)] = tp.offset
            return result
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            wanted = low if target.offset == -2 else int(target.offset or 0)
            result[(tp.topic, tp.partition)] = min(max(wanted, low), high)
        return result
    except KafkaException as exc:  # unreachable, timed out, not authorized
        raise WorkerError(f"Kafka failed to plan the replay: {describe(exc)}") from exc
    finally:
        consumer.close()


def commit(kafka: KafkaSettings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for ``group``, which must have no active member."""
    admin, consumer = _clients(kafka, group)
    try:
        _require_empty_group(admin, group)
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    except KafkaException as exc:
        raise WorkerError(f"Kafka refused the commit: {describe(exc)}") from exc
    finally:
        consumer.close()
