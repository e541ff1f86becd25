"""The org's FullStory budget shared by the group (``FULLSTORY_ORG_MAX_JOBS`` /
``_OPERATIONS``): a replica keeps its share of the partitions' part of it in flight, adapts
within it on 429s, and re-computes it on every rebalance."""

from __future__ import annotations

import pytest

from tests.fakes import FakeKafka
from tests.fakes.clock import FakeClock
from worker.errors import RateLimited
from worker.fullstory.budget import OrgBudget


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka(partitions=4)


def _budget(jobs: int, operations: int, max_jobs: int = 10) -> OrgBudget:
    return OrgBudget(jobs, operations, max_jobs=max_jobs, clock=FakeClock())


def test_a_replica_keeps_its_share_of_the_org_jobs_in_flight(make_loop, kafka, fullstory):
    """An org budget of 4 jobs, 4 partitions, this replica owns 1: one job at a time,
    however many its own MAX_JOBS_IN_FLIGHT allows; owning all four: four."""
    for i in range(6):
        kafka.change(0, f"u{i}")
    loop = make_loop(max_users=1, max_jobs=10, budget=_budget(4, 1_000))
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the first job")
    loop.turn(50)
    assert len(fullstory.running()) == 1
    loop.source.assign([1, 2, 3])  # the other replicas left: the whole budget is ours
    loop.turn_until(lambda: len(fullstory.running()) == 4, "four jobs once all is ours")
    loop.turn(50)
    assert len(fullstory.running()) == 4
    assert loop.metric("fsus_org_budget_share", kind="jobs") == 4


def test_batches_are_cut_to_the_operations_share(make_loop, kafka, fullstory):
    """20 operations for the org, 2 of 4 partitions: batches of at most 10 users, and no
    second job while the first one holds the share."""
    for i in range(25):
        kafka.change(0, f"u{i}")
    loop = make_loop(max_users=100, max_jobs=10, budget=_budget(10, 20))
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs(), "the first job")
    loop.turn(50)
    assert [len(job.uids) for job in fullstory.jobs()] == [10]
    fullstory.finish()
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the next batch")
    assert len(fullstory.jobs()[1].uids) == 10


def test_a_429_on_creating_a_job_halves_the_replicas_jobs(make_loop, kafka, fullstory):
    """A share of 4 jobs, 4 creates in flight and one answered 429: the replica's limit is
    halved (the three others accepted do not undo it), so as the four jobs end it starts
    new ones only while fewer than 2 run."""
    for i in range(12):
        kafka.change(0, f"u{i}")
    fullstory.hold_creates()
    fullstory.fail_next("create_batch", RateLimited("create batch: rate limited", 0.01))
    loop = make_loop(max_users=1, max_jobs=10, budget=_budget(4, 1_000))
    loop.source.assign([0, 1, 2, 3])
    loop.turn_until(lambda: fullstory.creates_held == 4, "four creates in flight")
    fullstory.release_creates()
    loop.turn_until(lambda: len(fullstory.running()) == 4, "the four jobs, one after a retry")
    loop.turn(50)
    assert loop.metric("fsus_import_jobs_limit") == 2
    first_wave = fullstory.running()
    for job in first_wave[:3]:
        fullstory.finish(job.id)
    loop.turn_until(lambda: len(fullstory.jobs()) > 4, "a job after the first wave")
    loop.turn(100)
    assert len(fullstory.running()) == 2, "one of the first wave and one new: half the share"
