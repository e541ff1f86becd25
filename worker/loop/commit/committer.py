"""The commit stage: acknowledging records, and committing what is acknowledged.

Its verbs, the loop's commit protocol: ``track`` (records taken in, and the spans they
start), ``ack`` (a span's records were imported or dead-lettered: the one place a span is
acknowledged), ``job_started`` / ``jobs_ended`` (FullStory jobs to name in the commits),
``commit`` (the acknowledged prefix, with the jobs and the read position as metadata) and
``on_commit`` (Kafka's answer). The read position rides along, never instead: a partition
read further since its last commit is committed again at its unchanged watermark with the new
position in its metadata (``ledger`` says why there), so ``status`` sees a catch-up move before
its first job ended. Joins the offset watermark (``watermark``) and the in-flight job ledger
(``ledger``); which partitions are this replica's is the ``Assignment``'s to say. Only the
poll thread calls this.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable

from worker.loop.assignment import Assignment
from worker.loop.commit.ledger import JobLedger
from worker.loop.commit.watermark import OffsetTracker, Span
from worker.loop.ports import Source
from worker.records import TopicPartition
from worker.runtime.metrics import Metrics

# A read position alone is committed at most this often (a moved watermark at once): status
# refreshes every few seconds, and each such commit is a write to __consumer_offsets.
READ_PUBLISH_EVERY_S = 5.0


class Committer:
    def __init__(
        self,
        assignment: Assignment,
        metrics: Metrics,
        on_success: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_success``: a commit Kafka stored (it proves the brokers reachable)."""
        self._monotonic = monotonic
        self._read_published_at = -math.inf
        # Partitions whose commit on its way moves their offset: only such a commit is
        # progress (fsus_last_commit_timestamp_seconds, which the no-progress alert reads);
        # one that carries only a read position or a job list is not.
        self._advancing: set[TopicPartition] = set()
        self._assignment = assignment
        self._tracker = OffsetTracker()
        self._ledger = JobLedger()
        self._metrics = metrics
        self._on_success = on_success
        self._published: dict[TopicPartition, int] = {}  # read positions committed

    # -- partitions ---------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Newly assigned partitions: their watermarks start with their first record."""
        self._tracker.assign(partitions)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Partitions moved away: never commit for them again."""
        self._tracker.revoke(partitions)
        self._ledger.forget(partitions)
        for tp in partitions:
            self._published.pop(tp, None)

    # -- acknowledgements ---------------------------------------------------------------

    def track(self, tp: TopicPartition, first: int, end: int, spans: Iterable[Span]) -> None:
        """Decoded records ``first``..``end - 1`` of an owned partition, and the spans that
        start among them."""
        if self._tracker.track(tp, first, end, spans):
            self._metrics.read_position.labels(tp[0], str(tp[1])).set(end)

    def ack(self, span: Span) -> None:
        """Every record of ``span`` was imported by FullStory or written to the DLQ: the
        watermark may pass it. A span of a partition no longer owned is forgotten already,
        so acknowledging it commits nothing."""
        span.acked = True

    def job_started(
        self, partitions: Collection[TopicPartition], job_id: str, users: int = 0
    ) -> None:
        """Name ``job_id`` (carrying ``users``) in the next commits of the owned
        ``partitions``."""
        owned = {tp for tp in partitions if self._assignment.owns(tp)}
        self._ledger.started(owned, job_id, users)

    def jobs_ended(self, job_ids: Iterable[str]) -> None:
        self._ledger.ended(job_ids)

    # -- committing ---------------------------------------------------------------------

    def commit(
        self,
        source: Source,
        partitions: Collection[TopicPartition] | None,
        wait: bool,
    ) -> None:
        """Commit moved watermarks, and partitions whose in-flight job list or read position
        changed (at their unchanged watermark: the committed offset is always the acknowledged
        prefix, the read position only its metadata).

        The loop's own commits do not wait (results come back through ``on_commit``), so an
        absent coordinator never stalls polling. Revoke and shutdown wait for the answer, and
        commit every partition's watermark again: an asynchronous commit still on its way
        must not be what the next owner reads.
        """
        offsets = self._tracker.committable(partitions)
        advancing = set(offsets)
        again = (
            (self._assignment.owned() if partitions is None else partitions)
            if wait
            else self._ledger.dirty() | self._read_moved()
        )
        for tp in again:
            if tp not in offsets and (partitions is None or tp in partitions):
                position = self._tracker.position(tp)
                if position is not None:
                    offsets[tp] = position
        if not offsets:
            return
        reads = {tp: self._tracker.read(tp) for tp in offsets}
        metadata = {tp: self._ledger.metadata(tp, reads[tp]) for tp in offsets}
        self._advancing |= advancing  # before: an answer may come inside commit()
        if not source.commit(offsets, metadata, wait=wait):
            self._advancing -= advancing
            self._metrics.commits.labels("failed").inc()
            return
        self._published.update({tp: read for tp, read in reads.items() if read is not None})
        self._tracker.mark_committed(offsets)
        self._ledger.committed(offsets)
        if wait:
            self.on_commit(None, list(offsets))

    def _read_moved(self) -> set[TopicPartition]:
        now = self._monotonic()
        if now - self._read_published_at < READ_PUBLISH_EVERY_S:
            return set()
        moved = set()
        for tp in self._tracker.owned():
            read = self._tracker.read(tp)
            if read is not None and read != self._published.get(tp):
                moved.add(tp)
        if moved:
            self._read_published_at = now
        return moved

    def on_commit(self, error: object | None, partitions: list[TopicPartition]) -> None:
        """The result of a commit (librdkafka's callback, run inside ``consume``)."""
        if error is not None:
            self._metrics.commits.labels("failed").inc()
            self._tracker.uncommit(partitions)
            self._ledger.recommit(partitions)
            for tp in partitions:
                self._published.pop(tp, None)  # publish the read position again
            self._advancing.difference_update(partitions)  # the watermark is committed again
            return
        self._on_success()
        self._metrics.commits.labels("ok").inc()
        if self._advancing.intersection(partitions):
            self._advancing.difference_update(partitions)
            self._metrics.last_commit.set_to_current_time()
