"""The loop's ports: what the poll loop needs of the world, declared here with the loop so the
core never imports an adapter to name a type.

The Kafka adapters of ``worker.kafka`` implement them (``KafkaSource``, ``KafkaDeadLetters``,
``KafkaRecordReader``); the fakes of ``tests.fakes`` implement them for the component tests.
FullStory's port is ``worker.fullstory.importer.Importer`` itself, which takes plain users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from worker.errors import DeadLetterCode
from worker.events.change import Event
from worker.records import Fetched, Message, SourceRecord, TopicPartition


class EventDecoder(Protocol):
    """What a consumed record means (``events.decode.Decoder`` for the canonical format,
    ``events.debezium.DebeziumDecoder`` for Debezium's): raises ``InvalidRecord`` for a record
    that can never be read, ``RegistryUnavailable`` while the registry does not answer."""

    def read(self, message: Message) -> Event: ...


class Source(Protocol):
    """The consumer-group member: records in runs of one partition, explicit commits only.

    Its rebalance and commit callbacks (given to the adapter when it is built) run inside
    ``consume``, on the loop's thread."""

    def consume(self, max_records: int, timeout: float) -> list[Fetched]: ...
    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...
    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...
    def commit(
        self,
        offsets: dict[TopicPartition, int],
        metadata: dict[TopicPartition, str],
        wait: bool,
    ) -> bool:
        """Commit exactly ``offsets`` with their ``metadata``; ``wait=False`` returns at once
        and reports through the commit callback. False when the commit was refused."""
        ...

    def committed_metadata(self, partitions: list[TopicPartition]) -> dict[TopicPartition, str]: ...
    def lag(self) -> int:
        """Records in the assigned, unpaused partitions not yet consumed (no broker call)."""
        ...

    def all_partitions(self) -> list[TopicPartition] | None:
        """Every partition of the source topics, the whole group's, in order (a bounded
        metadata call, made after a rebalance); None when the brokers do not say."""
        ...

    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    """The dead-letter topic. ``on_delivered`` runs once Kafka acknowledged the letter
    (inside ``poll``, on the loop's thread); a failed write is sent again, never dropped."""

    def send(
        self,
        record: SourceRecord,
        code: DeadLetterCode,
        message: str,
        on_delivered: Callable[[], None],
        job_id: str | None = None,
        fullstory_code: str | None = None,
    ) -> None:
        """``fullstory_code``: FullStory's own code for a user it refused (``code`` is then
        ``FULLSTORY_REJECTED``), kept in a header of its own, never in a metric label."""
        ...

    def poll(self, timeout: float) -> None: ...
    def pending(self) -> int: ...
    def flush(self, timeout: float) -> int: ...


class RecordReader(Protocol):
    """Records read back by offset, for the dead letters of users FullStory rejected (the
    loop keeps no values). Called on a job thread."""

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        """The records at ``offsets`` (increasing) still in the partition, by offset.

        Raises ``ReadBackFailed`` when Kafka fails or does not answer in time."""
        ...
