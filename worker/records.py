"""Kafka records as the stages pass them: partitions, consumed messages, what a dead letter
carries. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

TopicPartition = tuple[str, int]
Headers = tuple[tuple[str, bytes | None], ...]


class Message(Protocol):
    """What the loop reads of a consumed Kafka message (``confluent_kafka.Message`` is one)."""

    def offset(self) -> int: ...  # never None for a message that carries a record
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(
        self,
    ) -> dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None: ...


@dataclass(slots=True)
class Fetched:
    """Consecutive messages of one partition, in offset order, as one poll returned them:
    the loop decodes and tracks them a run at a time, not a record at a time."""

    tp: TopicPartition
    messages: list[Message]


@dataclass(slots=True)
class SourceRecord:
    """One Kafka message, bytes untouched: what a dead letter carries."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    # Set by the worker on a stand-in for a record it could not carry (gone from the topic,
    # over a bound): why the dead letter has no key or value (its ``dlq.value.omitted``).
    omitted: str | None = None
    tp: TopicPartition = field(init=False, compare=False)  # (topic, partition), read often

    def __post_init__(self) -> None:
        self.tp = (self.topic, self.partition)


def source_record(tp: TopicPartition, offset: int, message: Message) -> SourceRecord:
    """The record a consumed message carries, for its dead letter."""
    raw = message.headers()
    headers: Headers = ()
    if raw:
        items = raw.items() if isinstance(raw, dict) else raw
        headers = tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items)
    return SourceRecord(tp[0], tp[1], offset, message.key(), message.value(), headers)
