"""The poll loop on fakes: what a rebalance does to pause state and to the fence."""

from __future__ import annotations

import threading

import pytest

from tests.unit.avro import SCHEMA, encode, event
from worker.batch import Batcher
from worker.clock import SystemClock
from worker.decode import Decoder
from worker.health import Health
from worker.importer import Importer
from worker.ledger import decode_jobs, encode_jobs
from worker.pipeline import LoopSettings, Pipeline
from worker.records import SourceRecord

TP = ("users", 0)


class FakeSource:
    def __init__(self, records, metadata=None):
        self.records = list(records)
        self.metadata = metadata or {}
        self.paused: set = set()
        self.resumed: list = []
        self.commits: list = []

    def consume(self, max_records, timeout):
        out, self.records = self.records, []
        return out

    def pause(self, partitions):
        self.paused |= set(partitions)

    def resume(self, partitions):
        self.resumed.append(set(partitions))
        self.paused -= set(partitions)

    def commit(self, offsets, metadata, wait):
        self.commits.append((dict(offsets), dict(metadata)))
        return True

    def committed_metadata(self, partitions):
        return {tp: self.metadata.get(tp, "") for tp in partitions}

    def close(self):
        pass


class FakeDLQ:
    def send(self, record, code, message, on_delivered, job_id=None):
        on_delivered()

    def poll(self, timeout):
        pass

    def pending(self):
        return 0

    def flush(self, timeout):
        return 0


class NeverAnswers:
    """A FullStory that keeps every job running (the fence never lifts in the test)."""

    def job_status(self, job_id):
        from worker.fullstory import JobStatus

        return JobStatus(id=job_id, status="PROCESSING")


@pytest.fixture
def abandon():
    """Set at teardown, so job threads of a failed test stop instead of hanging pytest."""
    event = threading.Event()
    yield event
    event.set()


def _pipeline(source, abandon, max_buffered=2):
    pipeline = Pipeline(
        decoder=Decoder(SCHEMA),
        batcher=Batcher(max_users=10, max_wait_s=60),
        importer=Importer(NeverAnswers(), abandon=abandon, poll_max_interval_s=0.01),
        dlq=FakeDLQ(),
        clock=SystemClock(),
        health=Health(60),
        settings=LoopSettings(max_jobs_in_flight=2, max_buffered_records=max_buffered),
        abandon=abandon,
    )
    pipeline.source = source
    return pipeline


def _records(n):
    return [SourceRecord("users", 0, i, b"k", encode(event(f"u{i}"))) for i in range(n)]


def test_a_partition_paused_by_backpressure_is_resumed_when_it_moves_away(abandon):
    """librdkafka keeps an application pause across re-assignment: a partition that leaves
    while paused must be resumed, or it would never be fetched again when it comes back."""
    source = FakeSource(_records(3))
    pipeline = _pipeline(source, abandon)
    pipeline.on_assign([TP])
    pipeline.step()
    assert TP in source.paused
    pipeline.on_lost([TP])
    assert TP not in source.paused


def test_inherited_jobs_stay_named_in_the_new_owners_commits(abandon):
    """A new owner fenced by the old owner's running job keeps naming that job in its own
    commits, so a third owner is fenced too if the partition moves again meanwhile."""
    source = FakeSource(_records(1), metadata={TP: encode_jobs(["old-job"])})
    pipeline = _pipeline(source, abandon, max_buffered=100)
    pipeline.on_assign([TP])
    pipeline.step()
    assert source.commits, "the new owner committed"
    _offsets, metadata = source.commits[-1]
    assert decode_jobs(metadata[TP]) == ["old-job"]


class AlwaysUnavailable:
    """A FullStory whose batch endpoint answers 503 for ever; counts the attempts."""

    def __init__(self):
        self.posts = 0

    def create_batch(self, body, idempotency_key):
        from worker.errors import RetriableError

        self.posts += 1
        raise RetriableError("create batch: HTTP 503", status=503)


def test_a_revoked_partitions_batch_without_a_job_is_cancelled(abandon):
    """After the revoke's wait runs out, a batch still retrying its POST stops, so it cannot
    create a job later that the partition's next owner would not know about."""
    import time

    from worker.retry import Backoff

    api = AlwaysUnavailable()
    source = FakeSource(_records(3))
    pipeline = Pipeline(
        decoder=Decoder(SCHEMA),
        batcher=Batcher(max_users=10, max_wait_s=0),
        importer=Importer(
            api, abandon=abandon, backoff=lambda: Backoff(base_s=0.01, cap_s=0.02, floor_s=0.01)
        ),
        dlq=FakeDLQ(),
        clock=SystemClock(),
        health=Health(60),
        settings=LoopSettings(max_jobs_in_flight=2, rebalance_drain_timeout_s=0.2),
        abandon=abandon,
    )
    pipeline.source = source
    pipeline.on_assign([TP])
    pipeline.step()
    deadline = time.monotonic() + 5
    while api.posts < 2 and time.monotonic() < deadline:  # the job thread is retrying
        time.sleep(0.01)
    assert api.posts >= 2
    pipeline.on_revoke([TP])
    time.sleep(0.3)
    posts = api.posts
    time.sleep(0.3)
    assert api.posts == posts, "the cancelled batch kept posting"
