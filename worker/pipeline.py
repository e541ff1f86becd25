"""The poll loop: consume -> decode -> batch -> import -> dead-letter -> commit.

Only this thread touches the offset tracker and the batcher; import jobs run on a thread
pool and hand back a ``BatchOutcome``. Delivery rules kept here:

* a decoded record is merged into its user's pending unit at once and not kept (``batch``);
* a record is acknowledged when its user's job ended and the user was imported, or when
  its dead letter was written; the commit is the contiguous acknowledged prefix;
* two in-flight jobs never share a uid (the batcher blocks a batch's uids until it ends);
* when ``max_pending_users`` users wait, the loop pauses its partitions and keeps polling,
  so it stays in the group however long FullStory takes; it never sleeps in the loop;
* on revoke it waits (bounded) for jobs of the revoked partitions, commits their prefix,
  and forgets them; acknowledgements arriving later for them are ignored;
* on stop it stops fetching, waits for in-flight jobs up to the deadline, commits what is
  acknowledged and leaves the group;
* every commit names, in its metadata, the jobs still in flight for the partition, and a new
  owner holds a partition's records back until the jobs named there have ended (``ledger``).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from confluent_kafka import KafkaError

from worker.batch import Batch, Batcher, Unit
from worker.clock import Clock
from worker.commit import Committer
from worker.decode import Decoder
from worker.dlq import DeadLetterSink
from worker.errors import Abandoned, InvalidRecord, RetriableError
from worker.health import Health
from worker.importer import BatchOutcome, Importer
from worker.kafka_stats import KafkaStats
from worker.ledger import decode_jobs
from worker.metrics import Metrics
from worker.offsets import Span
from worker.readback import RecordReader, records_at
from worker.records import SourceRecord, TopicPartition
from worker.retry import Backoff
from worker.source import Source

log = structlog.get_logger("worker.pipeline")


@dataclass(frozen=True, slots=True)
class LoopSettings:
    max_jobs_in_flight: int
    poll_timeout_s: float = 0.1
    consume_max_records: int = 1000
    max_pending_users: int = 100_000
    commit_interval_s: float = 0.5
    rebalance_drain_timeout_s: float = 10.0
    # Lag (records not yet consumed) from which the partitions count as far behind, and at
    # which they count as caught up again: in between, users keep merging instead of going
    # out in batches, so a backlog or a replay sends each user about once.
    backlog_lag: int = 10_000
    caught_up_lag: int = 100


class Pipeline:
    def __init__(
        self,
        *,
        decoder: Decoder,
        batcher: Batcher,
        importer: Importer,
        reader: RecordReader,
        dlq: DeadLetterSink,
        clock: Clock,
        health: Health,
        settings: LoopSettings,
        abandon: threading.Event,
        stop: threading.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._decoder = decoder
        self._batcher = batcher
        self._importer = importer
        self._reader = reader
        self._dlq = dlq
        self._clock = clock
        self._health = health
        self._settings = settings
        self._abandon = abandon
        self._commits = Committer(self._metrics, on_success=self._kafka_reachable)
        self._job_created: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._fences: dict[TopicPartition, tuple[Future[None], list[str]]] = {}
        self._intake: deque[SourceRecord] = deque()
        self._intake_backoff = Backoff(cap_s=10.0)
        self._intake_retry_at = 0.0
        self._in_flight: dict[int, tuple[Batch, Future[BatchOutcome]]] = {}
        self._cancels: dict[int, threading.Event] = {}
        self._job_ids: dict[int, list[str]] = {}
        self._paused: set[TopicPartition] = set()
        self._in_backlog = False
        self._executor = ThreadPoolExecutor(
            settings.max_jobs_in_flight, thread_name_prefix="import-job"
        )
        self._last_commit = 0.0
        self._stop = stop or threading.Event()
        self._closed = False
        self.source: Source | None = None

    # -- rebalance callbacks (run inside source.consume) -------------------------------

    def on_kafka_error(self, code: int) -> None:
        """librdkafka's error callback (runs inside ``consume``)."""
        if code == KafkaError._ALL_BROKERS_DOWN:
            self._kafka_unreachable()

    def on_kafka_stats(self, stats: KafkaStats) -> None:
        """librdkafka's periodic statistics (inside ``consume``): reachability and lag.

        Records alone prove nothing (they may come from the prefetch queue after the brokers
        went away), and "all brokers down" is not always reported, so broker states decide.
        """
        if stats.brokers_up:
            self._kafka_reachable()
        else:
            self._kafka_unreachable()
        for (topic, partition), lag in stats.lag.items():
            self._metrics.consumer_lag.labels(topic, str(partition)).set(lag)

    def job_created(self, batch_id: int, job_id: str) -> None:
        """Called from a job thread as soon as FullStory accepted a batch."""
        self._job_created.put((batch_id, job_id))

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        self._commits.assign(partitions)
        self._health.joined()
        log.info("partitions_assigned", partitions=partitions)
        if not partitions:
            return
        metadata = self._require_source().committed_metadata(partitions)
        for tp, text in metadata.items():
            jobs = decode_jobs(text)
            if jobs:
                # A previous owner's jobs may still run: their uids must not race ours, and
                # our commits keep naming them until they end, in case the partition moves on.
                for job in jobs:
                    self._commits.job_started([tp], job)
                wait = self._executor.submit(self._importer.await_jobs, jobs, threading.Event())
                self._fences[tp] = (wait, jobs)
                log.info("partition_fenced", partition=tp, jobs=jobs)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        revoked = set(partitions)
        if not self._closed:  # closing the consumer revokes too, after shutdown drained
            deadline = self._clock.monotonic() + self._settings.rebalance_drain_timeout_s
            self._drain(revoked, deadline)
        self._commit(revoked, wait=True)
        self._forget(revoked)
        log.info("partitions_revoked", partitions=partitions)

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self._forget(set(partitions))
        log.warning("partitions_lost", partitions=partitions)

    def _forget(self, partitions: set[TopicPartition]) -> None:
        """Drop every trace of partitions that moved away (revoked or lost)."""
        self._note_created_jobs()
        # A batch of theirs still waiting to create its job would create one the next owner
        # cannot know about: cancel it (its records are that owner's to send now).
        for batch_id, (batch, _) in self._in_flight.items():
            if batch.partitions() & partitions and batch_id not in self._job_ids:
                self._cancels[batch_id].set()
        # librdkafka keeps an application pause across a re-assignment: undo ours now.
        paused = partitions & self._paused
        if paused:
            self._require_source().resume(paused)
        for topic, partition in partitions:
            self._metrics.forget_partition(topic, partition)
        self._commits.forget(partitions)
        for tp in partitions:
            self._fences.pop(tp, None)
        self._batcher.drop_partitions(partitions)
        self._intake = deque(r for r in self._intake if r.tp not in partitions)
        self._paused -= partitions

    # -- the loop ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to drain and return (safe from a signal handler)."""
        self._stop.set()

    def run(self, source: Source, shutdown_timeout_s: float) -> None:
        self.source = source
        log.info("worker_started")
        while not self._stop.is_set():
            self.step()
        log.info("stop_requested")
        self.shutdown(shutdown_timeout_s)

    def step(self) -> None:
        source = self._require_source()
        idle = not self._intake and not self._in_flight and not self._dlq.pending()
        timeout = self._settings.poll_timeout_s if idle else 0.02
        records = source.consume(self._settings.consume_max_records, timeout)
        if records:
            self._metrics.records_consumed.inc(len(records))
            owns = self._commits.owns
            self._intake.extend(record for record in records if owns(record.tp))
        now = self._clock.monotonic()
        self._decode_intake(now)
        if self._note_created_jobs():
            self._commit()  # name the new jobs in the partitions' metadata at once
        self._collect_finished()
        self._lift_fences()
        self._submit_ready(now)
        self._apply_backpressure(source)
        self._dlq.poll(0)
        if now - self._last_commit >= self._settings.commit_interval_s:
            self._commit()
            self._last_commit = now
        self._update_gauges()
        self._health.beat()

    def shutdown(self, timeout_s: float) -> None:
        """Stop fetching, finish in-flight jobs up to ``timeout_s``, commit, leave the group."""
        source = self._require_source()
        deadline = self._clock.monotonic() + timeout_s
        log.info("shutdown_started", jobs_in_flight=len(self._in_flight), timeout_s=timeout_s)
        self._drain(None, deadline)
        self._commit(wait=True)
        if self._in_flight:
            log.warning("shutdown_abandoned_jobs", jobs=len(self._in_flight))
        self._abandon.set()
        for cancel in self._cancels.values():
            cancel.set()
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        left = self._dlq.flush(max(0.0, deadline - self._clock.monotonic()))
        source.close()
        log.info("shutdown_complete", dead_letters_unflushed=left)

    def abort(self) -> None:
        """After an unexpected error: stop every job thread's waits and leave the group."""
        self._abandon.set()
        for cancel in self._cancels.values():
            cancel.set()
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.source is not None:
            try:
                self.source.close()
            except Exception:  # already failing; leaving the group is best effort
                log.exception("close_failed")

    def _require_source(self) -> Source:
        if self.source is None:
            raise RuntimeError("the pipeline has no source yet")
        return self.source

    # -- stages -----------------------------------------------------------------------

    def _decode_intake(self, now: float) -> None:
        if now < self._intake_retry_at:
            return
        intake, decode = self._intake, self._decoder.decode
        add, track = self._batcher.add, self._commits.track
        while intake:
            record = intake[0]
            try:
                change = decode(record.value)
            except InvalidRecord as exc:
                intake.popleft()
                span = Span(record.offset)
                track(record.tp, record.offset, span)
                self._dead_letter(record, exc.code, exc.message, None, span)
                continue
            except RetriableError as exc:
                delay = self._intake_backoff.next_delay(exc)
                self._intake_retry_at = now + delay
                self._health.decoding(False)
                log.warning("decode_retry", error=str(exc), delay_s=round(delay, 3))
                return
            intake.popleft()
            track(record.tp, record.offset, add(record.tp, record.offset, change, now))
        self._intake_backoff.reset()
        self._health.decoding(True)

    def _submit_ready(self, now: float, flush: Collection[TopicPartition] | None = None) -> None:
        """Start jobs for ready batches; ``flush``: send those partitions' records now."""
        while len(self._in_flight) < self._settings.max_jobs_in_flight:
            if flush is None:
                if self._stop.is_set() or not self._batcher.ready(now) or self._holding():
                    return
            elif not self._batcher.ready(now, force=True):
                return
            batch = self._batcher.take(now, self._fences.keys(), only=flush)
            if batch is None:
                return
            cancel = self._cancels[batch.id] = threading.Event()
            future = self._executor.submit(self._run_job, batch, cancel)
            self._in_flight[batch.id] = (batch, future)

    def _holding(self) -> bool:
        """From far behind the log end until caught up, users keep merging (a backlog sends
        each user about once). Backpressure ends the hold: paused partitions count no lag."""
        lag = self._require_source().lag()
        if lag >= self._settings.backlog_lag:
            self._in_backlog = True
        elif lag <= self._settings.caught_up_lag:
            self._in_backlog = False
        return self._in_backlog

    def _run_job(self, batch: Batch, cancel: threading.Event) -> BatchOutcome:
        """On a job thread: import the batch, then read back the records of the users
        FullStory rejected (the loop keeps no values) for their dead letters."""
        outcome = self._importer.run(batch, self.job_created, cancel)
        backoff = Backoff(cap_s=10.0)
        for uid in outcome.failures:
            unit = batch.units[uid]
            while True:
                try:
                    outcome.rejected[uid] = records_at(self._reader, unit.tp, unit.offsets)
                    break
                except RetriableError as exc:
                    log.warning("readback_retry", error=str(exc), batch_id=batch.id)
                    if cancel.wait(backoff.next_delay(exc)) or self._abandon.is_set():
                        raise Abandoned("cancelled while reading back records") from exc
        return outcome

    def _collect_finished(self) -> None:
        for batch_id, (batch, future) in list(self._in_flight.items()):
            if not future.done():
                continue
            del self._in_flight[batch_id]
            self._cancels.pop(batch_id, None)
            self._job_ids.pop(batch_id, None)
            self._batcher.release(batch)
            try:
                outcome = future.result()
            except Abandoned:
                continue  # unacknowledged, and its jobs stay named in the commit metadata
            self._commits.jobs_ended(outcome.job_ids)
            imported = 0
            for uid, unit in batch.units.items():
                failure = outcome.failures.get(uid)
                if failure is None:
                    unit.acked = True
                    imported += len(unit.offsets)
                    continue
                letters = _Countdown(unit, len(unit.offsets))
                for record in outcome.rejected[uid]:
                    self._dead_letter(
                        record, failure.code, failure.message, failure.job_id, letters
                    )
            self._metrics.records_acknowledged.labels("imported").inc(imported)

    def _dead_letter(
        self,
        record: SourceRecord,
        code: str,
        message: str,
        job_id: str | None,
        span: Span | _Countdown,
    ) -> None:
        """Send ``record`` to the DLQ; ``span`` counts as acknowledged once Kafka took it."""

        def delivered() -> None:
            if isinstance(span, _Countdown):
                span.one_done()
            else:
                span.acked = True
            self._metrics.records_acknowledged.labels("dead_lettered").inc()
            self._metrics.dead_letters.labels(code).inc()

        self._dlq.send(record, code, message, on_delivered=delivered, job_id=job_id)

    def _apply_backpressure(self, source: Source) -> None:
        buffered = len(self._intake) + len(self._batcher)
        limit = self._settings.max_pending_users
        if buffered >= limit:
            to_pause = self._commits.owned() - self._paused
            if to_pause:
                source.pause(to_pause)
                self._paused |= to_pause
                log.info("partitions_paused", buffered=buffered, jobs=len(self._in_flight))
        elif self._paused and buffered <= limit // 2:
            source.resume(self._paused)
            log.info("partitions_resumed", buffered=buffered)
            self._paused.clear()

    def _note_created_jobs(self) -> bool:
        """Record jobs FullStory accepted since the last turn; True if there were any."""
        noted = False
        while True:
            try:
                batch_id, job_id = self._job_created.get_nowait()
            except queue.Empty:
                return noted
            entry = self._in_flight.get(batch_id)
            if entry is not None:  # else it already ended and was collected
                self._job_ids.setdefault(batch_id, []).append(job_id)
                self._commits.job_started(entry[0].partitions(), job_id)
                noted = True

    def _kafka_unreachable(self) -> None:
        if self._health.kafka_ok:
            log.warning("kafka_unreachable")
        self._health.kafka(False)

    def _kafka_reachable(self) -> None:
        if not self._health.kafka_ok:
            log.info("kafka_reachable")
        self._health.kafka(True)

    def _lift_fences(self) -> None:
        for tp, (future, jobs) in list(self._fences.items()):
            if future.done():
                del self._fences[tp]
                self._commits.jobs_ended(jobs)
                log.info("partition_fence_lifted", partition=tp)

    def _commit(
        self, partitions: Collection[TopicPartition] | None = None, wait: bool = False
    ) -> None:
        self._commits.commit(self._require_source(), partitions, wait)

    def on_commit(self, error: object | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (inside ``consume``)."""
        self._commits.on_commit(error, partitions)

    def _update_gauges(self) -> None:
        metrics = self._metrics
        metrics.jobs_in_flight.set(len(self._in_flight))
        metrics.pending_users.set(len(self._batcher))
        metrics.partitions.labels("assigned").set(len(self._commits.owned()))
        metrics.partitions.labels("paused").set(len(self._paused))
        metrics.partitions.labels("fenced").set(len(self._fences))

    def _drain(self, partitions: Collection[TopicPartition] | None, deadline: float) -> None:
        """Before a stop or a revoke, bounded by ``deadline``: send the buffered records of
        ``partitions`` (all if None) and finish their jobs and dead letters, so the commit
        reaches as far as was consumed and the next owner repeats as little as possible."""
        owned = self._commits.owned() if partitions is None else set(partitions)

        def busy() -> bool:
            targets = owned - self._fences.keys()  # fenced records cannot go yet
            if self._dlq.pending():
                return True
            if any(batch.partitions() & owned for batch, _ in self._in_flight.values()):
                return True
            if self._health.decoding_ok and any(r.tp in targets for r in self._intake):
                return True
            return self._batcher.pending_for(targets) > 0

        while busy() and self._clock.monotonic() < deadline:
            now = self._clock.monotonic()
            self._decode_intake(now)
            self._note_created_jobs()
            self._collect_finished()
            self._lift_fences()
            self._submit_ready(now, flush=owned - self._fences.keys())
            self._dlq.poll(0.05)
            self._health.beat()
        self._note_created_jobs()  # jobs still running get named in the final commit
        self._collect_finished()


class _Countdown:
    """A rejected user's unit: acknowledged once each of its dead letters was written."""

    __slots__ = ("left", "unit")

    def __init__(self, unit: Unit, letters: int) -> None:
        self.unit = unit
        self.left = letters

    def one_done(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.unit.acked = True
