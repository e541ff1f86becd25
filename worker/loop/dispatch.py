"""Import jobs in flight: their threads, their job ids and their cancellation.

Threads: the poll loop alone calls every method here. ``MAX_JOBS_IN_FLIGHT`` job threads each
run one batch (``_run``: import it, or for a delete batch delete its users and wait until they
are gone; then read back from Kafka the records of the users FullStory rejected) or one fence
wait; they touch nothing of the loop's but what they are
handed (the batch, its cancel event) and the ``_created`` queue, through which they report
each job id the moment FullStory accepted a POST.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from structlog.typing import FilteringBoundLogger

from worker.errors import Abandoned, ReadBackFailed
from worker.fullstory.client import UserError
from worker.fullstory.deleter import Deleter
from worker.fullstory.importer import Importer
from worker.loop.batch import Batch
from worker.loop.ports import RecordReader
from worker.records import SourceRecord, TopicPartition
from worker.runtime.retry import Backoff

log: FilteringBoundLogger = structlog.get_logger(__name__)


# Why a dead letter has no value when its record is no longer in Kafka (its dlq.value.omitted).
GONE = "the record is no longer in the topic"


@dataclass(slots=True)
class BatchOutcome:
    """What FullStory made of a batch: users not in ``failures`` were imported."""

    batch: Batch
    job_ids: list[str] = field(default_factory=list)
    failures: dict[str, UserError] = field(default_factory=dict)
    # The records of each failed uid, read back from Kafka for its dead letters.
    rejected: dict[str, list[SourceRecord]] = field(default_factory=dict)


def records_at(
    reader: RecordReader, tp: TopicPartition, offsets: Sequence[int]
) -> list[SourceRecord]:
    """One record per offset: read back, or a stand-in naming the offset when it is gone
    (retention or compaction removed it): its dead letter has no value, never none at all."""
    found = reader.read(tp, offsets)
    missing = [o for o in offsets if o not in found]
    if missing:
        log.error("readback_records_missing", partition=tp, offsets=len(missing))
    topic, partition = tp
    return [
        found.get(o) or SourceRecord(topic, partition, o, None, None, omitted=GONE) for o in offsets
    ]


@dataclass(slots=True)
class InFlight:
    """One batch on its job thread."""

    batch: Batch
    future: Future[BatchOutcome]
    cancel: threading.Event
    job_ids: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        importer: Importer,
        reader: RecordReader,
        max_jobs: int,
        abandon: threading.Event,
        deleter: Deleter | None = None,
    ) -> None:
        """``deleter``: runs delete batches (``ON_DELETE=delete``; None: there are none)."""
        self._importer = importer
        self._deleter = deleter
        self._reader = reader
        self._abandon = abandon
        self.max_jobs = max_jobs
        self._executor = ThreadPoolExecutor(max_jobs, thread_name_prefix="import-job")
        self._jobs: dict[int, InFlight] = {}
        self._created: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()

    def __len__(self) -> int:
        return len(self._jobs)

    def imports(self) -> tuple[int, int]:
        """(import batches in flight, the users they carry): what counts against the org's
        limits (a delete batch creates no job)."""
        batches = [entry.batch for entry in self._jobs.values() if not entry.batch.deletes]
        return len(batches), sum(len(batch.units) for batch in batches)

    def submit(self, batch: Batch) -> None:
        cancel = threading.Event()
        future = self._executor.submit(self._run, batch, cancel)
        self._jobs[batch.id] = InFlight(batch, future, cancel)

    def wait_for(self, job_ids: list[str]) -> Future[None]:
        """Wait, on a job thread, until each job ended (a partition fence)."""
        return self._executor.submit(self._importer.await_jobs, job_ids, threading.Event())

    def created(self) -> list[tuple[InFlight, str]]:
        """Jobs FullStory accepted since the last call, with their batch still in flight."""
        found: list[tuple[InFlight, str]] = []
        while True:
            try:
                batch_id, job_id = self._created.get_nowait()
            except queue.Empty:
                return found
            entry = self._jobs.get(batch_id)
            if entry is not None:  # else it already ended and was collected
                entry.job_ids.append(job_id)
                found.append((entry, job_id))

    def finished(self) -> list[tuple[Batch, BatchOutcome | None]]:
        """Batches whose thread ended: their outcome, or None when it was abandoned."""
        done: list[tuple[Batch, BatchOutcome | None]] = []
        for batch_id, entry in list(self._jobs.items()):
            if not entry.future.done():
                continue
            del self._jobs[batch_id]
            try:
                done.append((entry.batch, entry.future.result()))
            except Abandoned:
                done.append((entry.batch, None))
        return done

    def busy_with(self, partitions: Collection[TopicPartition]) -> bool:
        return any(entry.batch.partitions() & set(partitions) for entry in self._jobs.values())

    def cancel_unstarted(self, partitions: Collection[TopicPartition]) -> None:
        """Cancel the batches of ``partitions`` that have no job yet: one created later
        would be unknown to the partitions' next owner."""
        for entry in self._jobs.values():
            if entry.batch.partitions() & set(partitions) and not entry.job_ids:
                entry.cancel.set()

    def close(self) -> None:
        """Stop every job thread's waits and forget them (their records stay unacknowledged)."""
        self._abandon.set()
        for entry in self._jobs.values():
            entry.cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- on a job thread ----------------------------------------------------------------

    def _run(self, batch: Batch, cancel: threading.Event) -> BatchOutcome:
        """Import the batch's users, then read back the records of the users FullStory
        rejected (the loop keeps no values) for their dead letters, again while that raises
        ``ReadBackFailed``. Any other error ends the thread and reaches the loop through
        ``finished``."""
        context = {
            "batch_id": batch.id,
            "partitions": sorted(batch.partitions()),
            "records": batch.record_count(),
        }
        if batch.deletes:
            if self._deleter is None:
                raise RuntimeError("a delete batch without a deleter (ON_DELETE=ignore)")
            deleted = self._deleter.run(list(batch.uids), cancel, context)
            outcome = BatchOutcome(batch, [], deleted.failures)
        else:
            imported = self._importer.run(
                [unit.update for unit in batch.units.values()],
                lambda job_id: self._created.put((batch.id, job_id)),
                cancel,
                context=context,
                records=batch.records_digest(),
            )
            outcome = BatchOutcome(batch, imported.job_ids, imported.failures)
        outcome.rejected = self._read_back(batch, list(outcome.failures), cancel)
        return outcome

    def _read_back(
        self, batch: Batch, uids: list[str], cancel: threading.Event
    ) -> dict[str, list[SourceRecord]]:
        """The records of the rejected ``uids``, each user's in its offsets' order: one pass
        per partition reads every wanted offset there at once (a job's rejected users share
        their partitions), again after a pause while it raises ``ReadBackFailed``."""
        wanted: dict[TopicPartition, list[int]] = {}
        for uid in uids:
            unit = batch.units[uid]
            wanted.setdefault(unit.tp, []).extend(unit.offsets)
        read: dict[TopicPartition, dict[int, SourceRecord]] = {}
        backoff = Backoff(cap_s=10.0)
        for tp, offsets in wanted.items():
            offsets.sort()
            got: dict[int, SourceRecord] = {}
            while True:
                rest = [o for o in offsets if o not in got]
                try:
                    got.update((r.offset, r) for r in records_at(self._reader, tp, rest))
                    break
                except ReadBackFailed as exc:
                    got.update(exc.found)  # the next pass reads only what this one did not
                    log.warning("readback_retry", error=str(exc), batch_id=batch.id, left=len(rest))
                    if cancel.wait(backoff.next_delay(exc)) or self._abandon.is_set():
                        raise Abandoned("cancelled while reading back records") from exc
            read[tp] = got
        rejected: dict[str, list[SourceRecord]] = {}
        for uid in uids:
            unit = batch.units[uid]
            rejected[uid] = [read[unit.tp][o] for o in unit.offsets]
        return rejected
