"""The job book's pure core, driven by explicit times (no server, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fullstory_sandbox.jobs import CapacityExceeded, JobBook, JobLimits

WALL = datetime(2024, 1, 1, tzinfo=UTC)


def book(durations: list[float], **limits: int) -> JobBook:
    remaining = iter(durations)
    return JobBook(JobLimits(**limits), lambda: next(remaining))


def test_due_jobs_come_in_completion_order() -> None:
    """A shorter job submitted later is due before a longer one submitted earlier."""
    jobs = book([5.0, 1.0])
    slow = jobs.submit([{"uid": "a"}], [], [], None, 0.0, WALL)
    fast = jobs.submit([{"uid": "a"}], [], [], None, 0.0, WALL)
    assert jobs.due(0.5) == []
    assert jobs.due(1.0) == [fast]
    assert jobs.due(10.0) == [fast, slow]
    assert jobs.next_due() == 1.0


def test_capacity_refusal_carries_seconds_until_a_slot() -> None:
    """At the in-progress limit, Retry-After is the time until the next job ends (>= 1 s)."""
    jobs = book([2.5], max_in_progress=1)
    jobs.submit([{"uid": "a"}], [], [], None, 0.0, WALL)
    with pytest.raises(CapacityExceeded) as refused:
        jobs.check_capacity(1, now_mono=0.2)
    assert refused.value.retry_after_s == 3


def test_finishing_frees_a_slot_for_the_queue() -> None:
    """A finished job's slot goes to the oldest queued job."""
    jobs = book([1.0, 1.0, 1.0], max_running=1)
    first = jobs.submit([{"uid": "a"}], [], [], None, 0.0, WALL)
    second = jobs.submit([{"uid": "b"}], [], [], None, 0.0, WALL)
    assert second.started_mono is None
    jobs.finish(first, [], 1.0, WALL)
    assert jobs.start_queued(1.0, WALL) == [second]
    assert second.due_mono == 2.0
