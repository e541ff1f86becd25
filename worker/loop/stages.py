"""The loop's stages, built whole by one factory before the loop runs.

Each stage is its own module; this one only wires them: the commit stage's ``ack`` goes to
the acknowledger, the ``Assignment`` to the commit stage, the importer and the read-back to
the job threads. Nothing here runs per record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from worker.events.change import Skip
from worker.fullstory.budget import OrgBudget
from worker.fullstory.deleter import Deleter
from worker.fullstory.importer import Importer
from worker.loop.acknowledge import Acknowledger
from worker.loop.assignment import Assignment
from worker.loop.batch import Batcher
from worker.loop.commit.committer import Committer
from worker.loop.commit.fence import Fences
from worker.loop.dispatch import Dispatcher
from worker.loop.flow import BacklogHold, Backpressure
from worker.loop.intake import Intake
from worker.loop.ports import DeadLetterSink, EventDecoder, RecordReader
from worker.runtime.metrics import Metrics


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


@dataclass(frozen=True, slots=True)
class Stages:
    """Every stage of one loop; the loop's thread owns them all (job threads see only what
    the ``Dispatcher`` hands them)."""

    assignment: Assignment  # which partitions are ours
    intake: Intake  # consumed records, decoded and merged into users' units
    batcher: Batcher  # units waiting, batches cut from them
    jobs: Dispatcher  # batches on job threads, importing
    acks: Acknowledger  # imported or dead-lettered: acknowledged
    commits: Committer  # the watermark and the jobs named, committed
    fences: Fences  # partitions held for a previous owner's jobs
    backpressure: Backpressure  # too many waiting: partitions paused
    hold: BacklogHold  # far behind: keep merging, send later
    dlq: DeadLetterSink
    budget: OrgBudget | None = None  # this replica's share of the org's FullStory limits


def build_stages(
    *,
    decoder: EventDecoder,
    batcher: Batcher,
    importer: Importer,
    reader: RecordReader,
    dlq: DeadLetterSink,
    settings: LoopSettings,
    abandon: threading.Event,
    metrics: Metrics,
    on_commit_stored: Callable[[], None] = lambda: None,
    deleter: Deleter | None = None,
    budget: OrgBudget | None = None,
) -> Stages:
    """``on_commit_stored``: Kafka stored a commit (readiness hears the brokers are there);
    ``deleter``: deletes users (``ON_DELETE=delete``); None: deletes are skipped;
    ``budget``: the org's FullStory limits shared by the group (None: only
    ``max_jobs_in_flight`` and the batcher's ``max_users`` bound the jobs)."""
    assignment = Assignment()
    commits = Committer(assignment, metrics, on_success=on_commit_stored)

    def skipped(counts: dict[Skip, int]) -> None:
        for reason, count in counts.items():
            metrics.records_skipped.labels(reason.value).inc(count)
        metrics.records_acknowledged.labels("skipped").inc(sum(counts.values()))

    return Stages(
        assignment=assignment,
        intake=Intake(decoder.read, batcher, deletes=deleter is not None, on_skipped=skipped),
        batcher=batcher,
        jobs=Dispatcher(importer, reader, settings.max_jobs_in_flight, abandon, deleter),
        acks=Acknowledger(dlq, metrics, commits.ack),
        commits=commits,
        fences=Fences(),
        backpressure=Backpressure(settings.max_pending_users),
        hold=BacklogHold(settings.backlog_lag, settings.caught_up_lag),
        dlq=dlq,
        budget=budget,
    )
