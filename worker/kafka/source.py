"""The Kafka side of the loop: a consumer-group member that never auto-commits.

Offsets are committed only through ``commit`` with explicit values from the tracker.
Partitions use cooperative-sticky assignment under the classic group protocol, so a rebalance
revokes only what moves; under Kafka 4's consumer protocol (KIP-848,
``KAFKA_CFG_GROUP_PROTOCOL=consumer``) the broker assigns, always incrementally, and the
classic-only properties (``CLASSIC_DEFAULTS``: session timeout, heartbeat interval,
assignment strategy) are not set, librdkafka refuses them there. The rebalance callbacks
given to ``KafkaSource`` run inside ``consume``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition as KafkaTopicPartition
from structlog.typing import FilteringBoundLogger

from worker.kafka.stats import KafkaStats, parse_stats
from worker.records import Fetched, Message, TopicPartition

log: FilteringBoundLogger = structlog.get_logger(__name__)

Callback = Callable[[list[TopicPartition]], None]
# The longest a rebalance waits for the topics' partition count (the org budget's shares).
METADATA_TIMEOUT_S = 5.0

# The classic protocol's: chosen so a replacement replica gets a dead member's partitions
# within ~15 s (librdkafka defaults to 45 s), while heartbeats every 3 s keep a busy member
# from flapping. Under the consumer protocol the broker's group settings decide these.
CLASSIC_DEFAULTS: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 15_000,
    "heartbeat.interval.ms": 3_000,
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "max.poll.interval.ms": 300_000,
    # Broker states for readiness and the lag gauge, delivered inside consume().
    "statistics.interval.ms": 5_000,
    # Prefetch at most 4 MB of records (librdkafka's default is 64 MB; its own buffers cost
    # about three times that in RSS): a tenth of a second of decoding at full speed, enough
    # to keep it busy, and memory the pending users need more (bench/RESULTS.md).
    "queued.max.messages.kbytes": 4_096,
    # A partition whose queue is full is fetched again after this long (librdkafka's default
    # is 1 s, longer than the ~0.4 s decoding takes to drain 4 MB: in a backlog the loop then
    # waited for records a third of the time). 100 ms: four refills in one drain, without
    # fetching in a tight loop (10 ms cost more CPU than it saved on 2 cores).
    "fetch.queue.backoff.ms": 100,
}


def consumer_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The worker's defaults for a consumer of ``config`` (the ``KAFKA_CFG_*`` pass-through):
    without the classic-only ones when ``group.protocol`` is ``consumer``."""
    if str(config.get("group.protocol", "classic")).strip().lower() == "consumer":
        return dict(CONSUMER_DEFAULTS)
    return {**CONSUMER_DEFAULTS, **CLASSIC_DEFAULTS}


def _tps(partitions: Iterable[KafkaTopicPartition]) -> list[TopicPartition]:
    return [(p.topic, p.partition) for p in partitions]


def _kafka_tps(partitions: Iterable[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(t, p) for t, p in partitions]


class KafkaSource:
    """The loop's ``Source`` (``worker.loop.ports``) on a confluent-kafka consumer."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: Iterable[str],
        *,
        on_assign: Callback,
        on_revoke: Callback,
        on_lost: Callback,
        on_error: Callable[[KafkaError], None] | None = None,
        on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] | None = None,
        on_stats: Callable[[KafkaStats], None] | None = None,
    ) -> None:
        def error_cb(err: KafkaError) -> None:
            if on_error is None:
                log.warning("kafka_error", error=str(err), code=err.code())
            else:  # it counts them and logs once per outage
                on_error(err)

        def commit_cb(err: KafkaError | None, partitions: list[KafkaTopicPartition]) -> None:
            failed = [p for p in partitions if p.error is not None]
            if err is None and failed:
                err = failed[0].error
            if err is not None:
                log.warning("commit_failed", error=str(err))
            if on_commit is not None:
                on_commit(err, _tps(partitions))

        def stats_cb(text: str) -> None:
            if on_stats is not None:
                on_stats(parse_stats(text))

        # Set from any thread (the topic watch's); the metadata call itself is made by the
        # thread that consumes, before its next fetch (``refresh``).
        self._refresh_wanted = threading.Event()
        self._consumer = Consumer(
            {
                "client.id": f"fullstory-user-sync-{socket.gethostname()}",
                **consumer_defaults(config),
                **config,
                "error_cb": error_cb,
                "on_commit": commit_cb,
                "stats_cb": stats_cb,
            }
        )
        self._topics = list(topics)
        self._paused: set[TopicPartition] = set()
        self._starts: dict[TopicPartition, int] = {}
        self._consumer.subscribe(
            self._topics,
            on_assign=lambda _c, parts: on_assign(_tps(parts)),
            on_revoke=lambda _c, parts: on_revoke(_tps(parts)),
            on_lost=lambda _c, parts: on_lost(_tps(parts)),
        )

    def consume(self, max_records: int, timeout: float) -> list[Fetched]:
        """Up to ``max_records`` messages, grouped in runs of one partition (in order)."""
        if self._refresh_wanted.is_set():
            self._refresh_now()
        runs: list[Fetched] = []
        run: list[KafkaMessage] = []
        topic, partition = "", -1
        for message in self._consumer.consume(max_records, timeout):
            error = message.error()
            if error is not None:  # an error, or the end of a partition
                if error.fatal() or error.code() == KafkaError._FATAL:
                    # The consumer is unusable (e.g. its KAFKA_CFG_GROUP_INSTANCE_ID is still
                    # held by another member): fail, and let the restart try again.
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume_error", error=str(error))
                continue
            if message.partition() != partition or message.topic() != topic:
                topic, partition = message.topic() or "", message.partition() or 0
                run = []
                # Past the error check a message carries a record: its offset is never None.
                runs.append(Fetched((topic, partition), cast(list[Message], run)))
            run.append(message)
        return runs

    def all_partitions(self) -> list[TopicPartition] | None:
        try:
            metadata = self._consumer.list_topics(timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("partition_count_unknown", error=str(exc))
            return None
        if not all(t in metadata.topics for t in self._topics):
            return None
        return sorted((t, p) for t in self._topics for p in metadata.topics[t].partitions)

    def refresh(self) -> None:
        """Have the cluster's metadata asked for on the next ``consume``: a subscribed topic
        created after start-up is otherwise consumed only after librdkafka's next metadata
        refresh (``topic.metadata.refresh.interval.ms``, 5 minutes by default). Safe from
        any thread.

        The call is made by the consuming thread, never here: made from another thread while
        ``consume`` waits, it blocked for many seconds, past its own timeout, and sometimes
        for good (measured on the broker). Asking about that topic alone is not enough once
        another subscribed topic was assigned: librdkafka re-checks the subscription only on a
        whole-cluster answer."""
        self._refresh_wanted.set()

    def _refresh_now(self) -> None:
        self._refresh_wanted.clear()
        try:
            self._consumer.list_topics(timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("metadata_refresh_failed", error=str(exc))

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        partitions = list(partitions)
        self._consumer.pause(_kafka_tps(partitions))
        self._paused.update(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        partitions = list(partitions)
        self._consumer.resume(_kafka_tps(partitions))
        self._paused.difference_update(partitions)

    def commit(
        self,
        offsets: dict[TopicPartition, int],
        metadata: dict[TopicPartition, str],
        wait: bool,
    ) -> bool:
        """Commit exactly these offsets (with their metadata).

        ``wait=False`` queues the commit and returns at once (the loop must never block on
        an absent coordinator); its result reaches ``on_commit``. ``wait=True`` (revoke,
        shutdown) blocks for the answer. False when Kafka refused or the queue is full.
        """
        if not offsets:
            return True
        kafka_offsets = [
            KafkaTopicPartition(t, p, o, metadata=metadata.get((t, p), ""))
            for (t, p), o in offsets.items()
        ]
        try:
            if not wait:
                self._consumer.commit(offsets=kafka_offsets, asynchronous=True)
                return True
            done = self._consumer.commit(offsets=kafka_offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit_failed", error=str(exc.args[0]))
            return False
        failed = [tp for tp in done or [] if tp.error is not None]
        if failed:
            log.warning("commit_failed", error=str(failed[0].error))
        return not failed

    def committed_metadata(self, partitions: list[TopicPartition]) -> dict[TopicPartition, str]:
        """The commit metadata of ``partitions`` (blocking; used on assignment)."""
        try:
            found = self._consumer.committed(_kafka_tps(partitions), timeout=30)
        except KafkaException as exc:
            log.warning("committed_read_failed", error=str(exc.args[0]))
            return {}
        for tp in found:  # where reading starts, for ``lag`` until a record arrives
            self._starts[(tp.topic, tp.partition)] = tp.offset
        return {(tp.topic, tp.partition): tp.metadata or "" for tp in found}

    def lag(self) -> int:
        """Records in the assigned, unpaused partitions not yet returned by ``consume``.

        From the high watermarks of the latest fetch responses (no request to the broker),
        against the position, or before a partition's first record the committed offset read
        on assignment (the low watermark when nothing was committed). A partition librdkafka
        has not fetched yet counts nothing.
        """
        assignment = [tp for tp in self._consumer.assignment() if not self._is_paused(tp)]
        if not assignment:
            return 0
        total = 0
        for tp in self._consumer.position(assignment):
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                continue
            at = tp.offset
            if at < 0:
                at = self._starts.get((tp.topic, tp.partition), high)
                if at < 0:  # nothing committed: reading starts at the earliest record
                    at = low if low is not None and low >= 0 else high
            total += max(0, high - at)
        return total

    def _is_paused(self, tp: KafkaTopicPartition) -> bool:
        return (tp.topic, tp.partition) in self._paused

    def close(self) -> None:
        """Leave the group (no commit here: the pipeline committed what was acknowledged).
        A static member (``group.instance.id``) does not leave: the broker keeps its
        partitions for it until its session times out."""
        self._consumer.close()
