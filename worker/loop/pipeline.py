"""The poll loop: consume -> decode and merge -> batch -> import -> dead-letter -> commit.

This module is the loop alone: one turn, the drain before a revoke or a stop, and the
rebalance callbacks. Its stages are built by ``stages.build_stages``. Delivery rules kept
here (the pieces live in their own modules):

* a decoded record is merged into its user's pending unit at once and not kept (``batch``);
* a record is acknowledged (``Committer.ack``, called by ``acknowledge``) when its user's
  job ended and the user was imported, or when its dead letter was written; the commit is
  the contiguous acknowledged prefix (``commit.watermark``, ``commit.committer``);
* only partitions the ``Assignment`` says are ours are taken in, committed or named;
* two in-flight jobs never share a uid (the batcher blocks a batch's uids until it ends);
  a delete goes only after the uid's jobs ended, and the uid's later changes only once the
  user is gone; deletes go as soon as a job slot is free (``_submit_deletes``);
* far behind the log end users keep merging, and too many waiting users pause the partitions
  while the loop keeps polling (``flow``); it never sleeps;
* on revoke it sends the revoked partitions' users and waits (bounded) for their jobs,
  commits their prefix and forgets them; acknowledgements arriving later are ignored;
* on stop it stops fetching, does the same for every partition up to the deadline, commits
  what is acknowledged and leaves the group;
* every commit names, in its metadata, the jobs still in flight for the partition, and a new
  owner holds a partition's records back until the jobs named there have ended
  (``commit.fence``).

Threads: this loop's thread owns everything here, and librdkafka's callbacks (rebalance,
commit, error, statistics, DLQ deliveries) run on it, inside ``consume`` and ``poll``. Job
threads are the ``Dispatcher``'s and see only what it hands them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

import structlog
from structlog.typing import FilteringBoundLogger

from worker.loop.ports import Source
from worker.loop.stages import LoopSettings, Stages
from worker.records import TopicPartition
from worker.runtime.clock import Clock
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics

log: FilteringBoundLogger = structlog.get_logger(__name__)


class Pipeline:
    def __init__(
        self,
        stages: Stages,
        *,
        clock: Clock,
        health: Health,
        settings: LoopSettings,
        metrics: Metrics,
        stop: threading.Event | None = None,
    ) -> None:
        """``stages``: built whole by ``worker.loop.stages.build_stages``."""
        self._metrics = metrics
        self._assignment = stages.assignment
        self._intake = stages.intake
        self._batcher = stages.batcher
        self._jobs = stages.jobs
        self._acks = stages.acks
        self._commits = stages.commits
        self._fences = stages.fences
        self._backpressure = stages.backpressure
        self._hold = stages.hold
        self._dlq = stages.dlq
        self._budget = stages.budget
        self._reshare_due = False  # a rebalance moved partitions: re-compute the share
        self._clock = clock
        self._health = health
        self._settings = settings
        self._polled = False  # the last poll brought records
        self._last_commit = 0.0
        self._stop = stop or threading.Event()
        self._closed = False
        self.source: Source | None = None

    # -- librdkafka's callbacks (run inside source.consume) ------------------------------

    def on_commit(self, error: object | None, partitions: list[TopicPartition]) -> None:
        self._commits.on_commit(error, partitions)

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        self._assignment.add(partitions)
        self._commits.assign(partitions)
        self._health.joined()
        log.info("partitions_assigned", partitions=partitions)
        self._reshare_due = True
        if not partitions:
            return
        metadata = self._require_source().committed_metadata(partitions)
        for tp, jobs in self._fences.hold(metadata, self._jobs.wait_for).items():
            # A previous owner's jobs may still run: their uids must not race ours, and our
            # commits keep naming them until they end, in case the partition moves on.
            for job in jobs:
                self._commits.job_started([tp], job)

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
        self._assignment.remove(partitions)
        self._note_created_jobs()
        # A batch of theirs still waiting to create its job would create one the next owner
        # cannot know about: cancel it (its records are that owner's to send now).
        self._jobs.cancel_unstarted(partitions)
        self._backpressure.forget(self._require_source(), partitions)
        for topic, partition in partitions:
            self._metrics.forget_partition(topic, partition)
        self._commits.forget(partitions)
        self._fences.forget(partitions)
        self._batcher.drop_partitions(partitions)
        self._intake.drop(partitions)
        self._reshare_due = True

    def _reshare(self) -> None:
        """After a rebalance, on the next turn (not inside librdkafka's callback, which must
        not call the client): this replica's share of the org budget follows its share of
        the partitions (kept as it was when the brokers do not say how many there are)."""
        self._reshare_due = False
        if self._budget is None or self.source is None:
            return
        partitions = self.source.all_partitions()
        if not partitions:
            return
        owned = self._assignment.owned()
        positions = [i for i, tp in enumerate(partitions) if tp in owned]
        share = self._budget.share(positions, len(partitions))
        log.info(
            "org_budget_share", jobs=share.jobs, operations=share.operations, of=len(partitions)
        )

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
        """One turn: poll, then move every stage on; never blocks past the poll timeout."""
        source = self._require_source()
        idle = not len(self._intake) and not len(self._jobs) and not self._dlq.pending()
        # consume() waits for a full batch until its timeout: after a poll that brought
        # records (a backlog), take what is there at once instead.
        timeout = 0.0 if self._polled else self._settings.poll_timeout_s if idle else 0.02
        runs = source.consume(self._settings.consume_max_records, timeout)
        self._polled = bool(runs)
        if self._reshare_due:
            self._reshare()
        if runs:
            self._metrics.records_consumed.inc(sum(len(run.messages) for run in runs))
            self._intake.extend(run for run in runs if self._assignment.owns(run.tp))
        now = self._clock.monotonic()
        self._advance(now)
        waiting = len(self._intake) + len(self._batcher)
        self._backpressure.apply(source, waiting, self._assignment.owned())
        self._dlq.poll(0)
        if now - self._last_commit >= self._settings.commit_interval_s:
            self._commit()
            self._last_commit = now
        self._metrics.loop_state(
            jobs=len(self._jobs),
            pending=len(self._batcher),
            assigned=len(self._assignment),
            paused=len(self._backpressure.paused),
            fenced=len(self._fences),
            deletes=self._batcher.deletes_waiting(),
        )
        if self._budget is not None:
            share = self._budget.current
            jobs, users = self._jobs.imports()
            self._metrics.org_budget(
                share.jobs, share.operations, self._budget.jobs_limit(), jobs, users
            )
        self._health.beat()

    def _advance(self, now: float, flush: Collection[TopicPartition] | None = None) -> None:
        """The stages after polling, shared by a turn and a drain (``flush``: send those
        partitions' users now, however young)."""
        decoding = self._intake.decode(now, self._commits.track, self._acks.undecodable)
        if decoding is not None:
            self._health.decoding(decoding)
        if self._note_created_jobs():
            self._commit()  # name the new jobs in the partitions' metadata at once
        self._collect_finished()
        for _tp, jobs in self._fences.lift():
            self._commits.jobs_ended(jobs)
        self._submit_deletes(flush)
        self._submit_ready(now, flush)

    def _drain(self, partitions: Collection[TopicPartition] | None, deadline: float) -> None:
        """Before a stop or a revoke, bounded by ``deadline``: send the pending users of
        ``partitions`` (all if None) and finish their jobs and dead letters, so the commit
        reaches as far as was consumed and the next owner repeats as little as possible."""
        owned = self._assignment.owned() if partitions is None else set(partitions)

        def busy() -> bool:
            targets = owned - self._fences.partitions()  # fenced users cannot go yet
            return bool(
                self._dlq.pending()
                or self._jobs.busy_with(owned)
                or (self._health.decoding_ok and self._intake.holds_any(targets))
                or self._batcher.pending_for(targets)
            )

        while busy() and self._clock.monotonic() < deadline:
            self._advance(self._clock.monotonic(), flush=owned - self._fences.partitions())
            self._dlq.poll(0.05)
            self._health.beat()
        self._note_created_jobs()  # jobs still running get named in the final commit
        self._collect_finished()

    def shutdown(self, timeout_s: float) -> None:
        """Stop fetching, finish in-flight jobs up to ``timeout_s``, commit, leave the group."""
        source = self._require_source()
        deadline = self._clock.monotonic() + timeout_s
        log.info("shutdown_started", jobs_in_flight=len(self._jobs), timeout_s=timeout_s)
        self._drain(None, deadline)
        self._commit(wait=True)
        if len(self._jobs):
            log.warning("shutdown_abandoned_jobs", jobs=len(self._jobs))
        self._closed = True
        self._jobs.close()
        left = self._dlq.flush(max(0.0, deadline - self._clock.monotonic()))
        source.close()
        log.info("shutdown_complete", dead_letters_unflushed=left)

    def abort(self) -> None:
        """After an unexpected error: stop every job thread's waits and leave the group."""
        self._closed = True
        self._jobs.close()
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

    def _import_room(self) -> int | None:
        """Users the next import batch may carry within this replica's share of the org
        budget: 0 when no job may start now; None without a budget."""
        if self._budget is None:
            return None
        jobs, users = self._jobs.imports()
        if jobs >= self._budget.jobs_limit():
            return 0
        return self._budget.operations_room(users, jobs)

    def _submit_ready(self, now: float, flush: Collection[TopicPartition] | None) -> None:
        while len(self._jobs) < self._settings.max_jobs_in_flight:
            cap = self._import_room()
            if cap == 0:
                return
            if flush is None:
                if (
                    self._stop.is_set()
                    or not self._batcher.ready(now, cap=cap)
                    or self._hold.holding(self._require_source().lag())
                ):
                    return
            elif not self._batcher.ready(now, force=True):
                return
            batch = self._batcher.take(now, self._fences.partitions(), only=flush, cap=cap)
            if batch is None:
                return
            self._jobs.submit(batch)

    def _submit_deletes(self, flush: Collection[TopicPartition] | None) -> None:
        """Deletes go as soon as a job slot is free, never held back by the backlog hold or
        a batch's wait: at most one batch cycle behind the upserts before them."""
        if flush is None and self._stop.is_set():
            return
        while len(self._jobs) < self._settings.max_jobs_in_flight:
            batch = self._batcher.take_deletes(self._fences.partitions(), only=flush)
            if batch is None:
                return
            self._jobs.submit(batch)

    def _note_created_jobs(self) -> bool:
        """Name jobs FullStory accepted since the last turn; True if there were any."""
        created = self._jobs.created()
        for entry, job_id in created:
            batch = entry.batch
            self._commits.job_started(batch.partitions(), job_id, len(batch.units))
        return bool(created)

    def _collect_finished(self) -> None:
        ended = False
        for batch, outcome in self._jobs.finished():
            self._batcher.release(batch)
            if outcome is None:
                continue  # abandoned: unacknowledged, its jobs stay named in the metadata
            self._commits.jobs_ended(outcome.job_ids)
            self._acks.batch_ended(batch, outcome)
            ended = True
        if ended:
            self._commit()  # what FullStory just acknowledged, without waiting for the interval

    def _commit(
        self, partitions: Collection[TopicPartition] | None = None, wait: bool = False
    ) -> None:
        self._commits.commit(self._require_source(), partitions, wait)
