"""Plain data passed between stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

# A property value as the Avro schema allows it (null leaves the property as it is).
PropertyValue = bool | int | float | str | None

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class SourceRecord:
    """One Kafka message as consumed, bytes untouched (the DLQ needs the originals)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    tp: TopicPartition = field(init=False, compare=False)  # (topic, partition), read often

    def __post_init__(self) -> None:
        self.tp = (self.topic, self.partition)


@dataclass(slots=True)
class UserChange:
    """A partial update of one user: ``None`` means "leave as it is"."""

    uid: str
    changed_at_ms: int
    display_name: str | None = None
    email: str | None = None
    properties: dict[str, PropertyValue] = field(default_factory=dict)
