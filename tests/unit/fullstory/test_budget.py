"""The org budget's shares and the adaptive job limit (``worker.fullstory.budget``)."""

from __future__ import annotations

import random

import pytest

from tests.fakes.clock import FakeClock
from worker.fullstory.budget import OrgBudget, Share, share_of, slots


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5, 7, 12, 20])
def test_the_replicas_shares_add_up_to_the_budget_however_many_they_are(replicas):
    """12 partitions dealt out to the replicas in any order, as a group assigns them: every
    replica with partitions has at least one job, and the shares add up to the org's budget
    exactly (beyond it only by that one job each, with more replicas than jobs)."""
    partitions = list(range(12))
    random.Random(replicas).shuffle(partitions)
    owned = [partitions[i::replicas] for i in range(replicas)]
    shares = [share_of(6, 30_000, mine, 12) for mine in owned]
    working = [s for mine, s in zip(owned, shares, strict=True) if mine]
    assert all(s.jobs >= 1 and s.operations >= 1 for s in working)
    if len(working) <= 6:
        assert sum(s.jobs for s in shares) == 6, "the budget is used whole, not rounded away"
    carrying_none = sum(1 for mine in owned if mine and not sum(slots(6, i, 12) for i in mine))
    assert sum(s.jobs for s in shares) == 6 + carrying_none
    assert sum(s.operations for s in shares) == 30_000
    assert share_of(6, 30_000, [], 12) == Share(0, 0)


def test_each_partition_carries_its_slot_of_the_budget():
    assert [slots(6, i, 12) for i in range(12)] == [0, 1] * 6
    assert sum(slots(100, i, 7) for i in range(7)) == 100


def test_a_429_halves_the_limit_once_per_window_and_accepted_jobs_grow_it_back():
    clock = FakeClock()
    budget = OrgBudget(100, 400_000, max_jobs=10, decrease_every_s=2.0, clock=clock)
    budget.share(range(6), total=12)  # 50 jobs by the org's budget, 10 by the replica's own
    assert budget.jobs_limit() == 10
    budget.rate_limited()
    budget.rate_limited()  # the same burst of 429s: one decrease
    assert budget.jobs_limit() == 5
    clock.advance(2.0)
    budget.rate_limited()
    assert budget.jobs_limit() == 2
    for _ in range(2):
        budget.accepted(budget.sending())
    assert budget.jobs_limit() == 3  # +1 per round of `limit` accepted jobs
    for _ in range(50):
        budget.accepted(budget.sending())
    assert budget.jobs_limit() == 10, "grows back up to the share, never past it"


def test_jobs_sent_before_a_429_do_not_grow_the_limit_back():
    """Ten creates in flight, one answered 429, nine accepted: the limit stays halved (the
    nine say nothing of the org since the 429); the next creates grow it again."""
    budget = OrgBudget(100, 400_000, max_jobs=10, clock=FakeClock())
    budget.share(range(12), total=12)
    tickets = [budget.sending() for _ in range(10)]
    budget.rate_limited()
    for ticket in tickets[1:]:
        budget.accepted(ticket)
    assert budget.jobs_limit() == 5
    for _ in range(6):  # 5 + 1/5 + 1/5.2 + ...
        budget.accepted(budget.sending())
    assert budget.jobs_limit() == 6


def test_a_smaller_share_shrinks_the_limit_at_once_and_never_below_one_job():
    budget = OrgBudget(6, 30_000, max_jobs=10)
    budget.share(range(12), total=12)
    assert budget.jobs_limit() == 6
    budget.share([1], total=12)  # eleven more replicas joined
    assert budget.jobs_limit() == 1 and budget.current.operations == 2_500
    for _ in range(5):
        budget.rate_limited()
    assert budget.jobs_limit() == 1
    budget.share([], total=12)
    assert budget.jobs_limit() == 0


def test_operations_room_cuts_the_next_batch_but_a_replica_without_jobs_may_send():
    budget = OrgBudget(6, 30_000, max_jobs=10)
    budget.share([0, 1, 2], total=12)  # 7,500 operations
    assert budget.operations_room(in_flight=5_000, jobs_in_flight=1) == 2_500
    assert budget.operations_room(in_flight=7_500, jobs_in_flight=2) == 0
    budget.share([], total=1_000_000)
    budget.share([0], total=1_000_000)  # no whole operation: still one user at a time
    assert budget.operations_room(in_flight=0, jobs_in_flight=0) == 1
